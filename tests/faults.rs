//! Faults the service must survive, with the real binary: its database going away and coming
//! back (on a PostgreSQL cluster of the test's own, never the shared one), and the process
//! itself being killed with `kill -9` in the middle of a burst of writes. See docs/testing.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, unreachable_pub)]

mod support;

use std::collections::{HashSet, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use orderly_persistence::testing::TestDatabase;
use serde_json::{Value, json};
use support::api::{
    Snapshot, admin_token, answered, assert_database_invariants, assert_problem, change_status, create_product,
    id_in_location, order_request, place_order, register_customer, stock, text,
};
use support::{
    REQUIRE_POSTGRES_VAR, Response, Server, announce, free_port, postgres_server_url, request, required,
    with_common_env,
};

// ---------------------------------------------------------------------------------------------
// The database goes away and comes back
// ---------------------------------------------------------------------------------------------

/// How long a request may take while the database is down before the test calls it a hang.
/// The server is configured to give up on the database after 1 s.
const PATIENCE: Duration = Duration::from_secs(15);

#[test]
fn when_the_database_goes_away_requests_get_503_and_the_service_recovers_without_a_restart() {
    let test = "faults::when_the_database_goes_away_requests_get_503_and_the_service_recovers_without_a_restart";
    let Some(cluster) = PostgresCluster::create(test) else { return };
    cluster.start();
    let dir = tempfile::tempdir().unwrap();
    let url = cluster.url();
    let env = with_common_env(&[
        ("ORDERLY_DATABASE_URL", url.as_str()),
        ("ORDERLY_DATABASE_TIMEOUT_MS", "1000"),
        ("ORDERLY_STATEMENT_TIMEOUT_MS", "2000"),
        ("ORDERLY_DATABASE_POOL_SIZE", "4"),
        // The sweep keeps failing during the outage; that must not take the server down.
        ("ORDERLY_SWEEP_INTERVAL", "1"),
        ("ORDERLY_RATE_LIMIT", "0"),
    ]);
    // Declared after the cluster, so it is stopped first.
    let server = Server::start(dir.path(), &env);
    let base = server.base.as_str();

    // Normal service.
    assert_eq!(answered(request("GET", &server.url("/readyz")).send(), "readyz").status, 200);
    let admin = admin_token(base);
    let product = create_product(base, &admin, "OUTAGE-1", 500, 10);
    let customer = register_customer(base, "outage@example.com");
    let before = answered(place_order(base, &customer.token, &[(product.as_str(), 1)], None), "an order");
    assert_eq!(before.status, 201, "{before}");
    let order_before = id_in_location(&before);

    cluster.stop_immediately();

    let needs_the_database = [
        ("GET /v1/products/{id}", request("GET", &server.url(&format!("/v1/products/{product}")))),
        ("GET /v1/orders", request("GET", &server.url("/v1/orders")).bearer(&customer.token)),
        (
            "POST /v1/orders",
            request("POST", &server.url("/v1/orders"))
                .bearer(&customer.token)
                .json(&order_request(&[(product.as_str(), 1)])),
        ),
        (
            "POST /v1/auth/tokens",
            request("POST", &server.url("/v1/auth/tokens"))
                .json(&json!({"email": customer.email, "password": support::PASSWORD})),
        ),
        ("GET /v1/events", request("GET", &server.url("/v1/events")).bearer(&admin)),
        ("GET /readyz", request("GET", &server.url("/readyz"))),
    ];
    for (what, call) in needs_the_database {
        let asked = Instant::now();
        let answer = call.timeout(PATIENCE).send().unwrap_or_else(|error| {
            panic!("{what} while the database is down: no answer within {PATIENCE:?}: {error}")
        });
        eprintln!("database down: {what} answered {} after {:?}", answer.status, asked.elapsed());
        assert_problem(&answer, 503, "service_unavailable");
        let retry_after = answer.header("retry-after").and_then(|value| value.parse::<u64>().ok());
        assert!(retry_after.is_some_and(|seconds| seconds >= 1), "{what}: 503 needs Retry-After: {answer:?}");
    }
    let health = answered(request("GET", &server.url("/healthz")).timeout(PATIENCE).send(), "healthz");
    assert_eq!((health.status, health.json()), (200, json!({"status": "ok"})), "liveness does not need the database");

    cluster.start();

    // Recovery without a restart: ready again within a deadline, then real reads and writes.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = request("GET", &server.url("/readyz")).timeout(PATIENCE).send();
        if ready.as_ref().is_ok_and(|answer| answer.status == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "not ready 30 s after the database came back; last answer: {ready:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let order = answered(
        request("GET", &server.url(&format!("/v1/orders/{order_before}"))).bearer(&customer.token).send(),
        "order",
    );
    assert_eq!((order.status, order.json()["status"].clone()), (200, json!("pending")), "{order}");
    let after = answered(place_order(base, &customer.token, &[(product.as_str(), 2)], None), "an order");
    assert_eq!(after.status, 201, "writes succeed again: {after}");
    assert_eq!(stock(base, &product), (10, 3), "both orders' reservations and nothing else");
    assert!(!admin_token(base).is_empty(), "logins work again");
}

/// A PostgreSQL cluster of the test's own (`initdb` into a temporary directory, `pg_ctl` on a
/// free port), so that stopping it disturbs nobody. Run as the `postgres` user when the tests
/// run as root, which `initdb` refuses. Dropping it stops the server and removes the directory,
/// also when the test fails.
struct PostgresCluster {
    pg_ctl: PathBuf,
    data: PathBuf,
    log: PathBuf,
    port: u16,
    as_postgres: bool,
    // Last: removed after the server is stopped.
    dir: tempfile::TempDir,
}

impl PostgresCluster {
    /// `None` (after saying why) when the PostgreSQL suite is not enabled or `initdb` and
    /// `pg_ctl` are not on `PATH`; the latter fails instead with `ORDERLY_TEST_REQUIRE_POSTGRES=1`.
    fn create(test: &str) -> Option<PostgresCluster> {
        postgres_server_url(test)?;
        let (Some(initdb), Some(pg_ctl)) = (on_path("initdb"), on_path("pg_ctl")) else {
            let why = "initdb and pg_ctl (PostgreSQL's server binaries) are not on PATH";
            assert!(!required(REQUIRE_POSTGRES_VAR), "{REQUIRE_POSTGRES_VAR}=1 but {why}");
            announce(&format!("{test} NOT run: {why}"));
            return None;
        };
        let dir = tempfile::Builder::new().prefix("orderly-faults-pg-").tempdir().unwrap();
        let as_postgres = command_output("id", &["-u"]) == "0";
        if as_postgres {
            let uid = command_output("id", &["-u", "postgres"]).parse().expect("a postgres user to run initdb as");
            let gid = command_output("id", &["-g", "postgres"]).parse().expect("the postgres user's group");
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let cluster = PostgresCluster {
            pg_ctl,
            data: dir.path().join("data"),
            log: dir.path().join("postgres.log"),
            port: free_port(),
            as_postgres,
            dir,
        };
        let data = cluster.data.to_str().unwrap().to_owned();
        let initialised = cluster
            .run(&initdb, &["-D", &data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"]);
        assert!(initialised.status.success(), "initdb failed: {}", describe(&initialised));
        Some(cluster)
    }

    /// `program args…`, as the `postgres` user when we are root, in the cluster's directory.
    fn run(&self, program: &Path, args: &[&str]) -> Output {
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        };
        command.args(args).current_dir(self.dir.path()).stdin(Stdio::null());
        command.output().unwrap_or_else(|error| panic!("cannot run {}: {error}", program.display()))
    }

    /// Starts (or restarts) the server on the cluster's port and waits until it accepts.
    fn start(&self) {
        let options =
            format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, self.dir.path().display());
        let (data, log) = (self.data.to_str().unwrap(), self.log.to_str().unwrap());
        let started = self.run(&self.pg_ctl, &["-D", data, "-l", log, "-o", &options, "-w", "-t", "60", "start"]);
        let server_log = std::fs::read_to_string(&self.log).unwrap_or_default();
        assert!(started.status.success(), "pg_ctl start failed: {}\nserver log:\n{server_log}", describe(&started));
    }

    /// The outage: `pg_ctl stop -m immediate`, as abrupt as a crash.
    fn stop_immediately(&self) {
        let stopped = self.stop();
        assert!(stopped.status.success(), "pg_ctl stop failed: {}", describe(&stopped));
    }

    fn stop(&self) -> Output {
        self.run(&self.pg_ctl, &["-D", self.data.to_str().unwrap(), "-m", "immediate", "-w", "stop"])
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PostgresCluster {
    fn drop(&mut self) {
        if self.data.join("postmaster.pid").exists() {
            let stopped = self.stop();
            if !stopped.status.success() {
                announce(&format!("warning: the test's PostgreSQL cluster did not stop: {}", describe(&stopped)));
            }
        }
    }
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| candidate.is_file())
}

fn command_output(program: &str, args: &[&str]) -> String {
    let output = Command::new(program).args(args).output().unwrap_or_else(|error| panic!("{program}: {error}"));
    assert!(output.status.success(), "{program} {args:?}: {}", describe(&output));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn describe(output: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout).trim(),
        String::from_utf8_lossy(&output.stderr).trim()
    )
}

// ---------------------------------------------------------------------------------------------
// kill -9 in the middle of a burst
// ---------------------------------------------------------------------------------------------

#[test]
fn kill_9_during_a_burst_on_postgresql_leaves_nothing_half_written() {
    let test = "faults::kill_9_during_a_burst_on_postgresql_leaves_nothing_half_written";
    if postgres_server_url(test).is_none() {
        return;
    }
    let Some(db) = TestDatabase::postgres() else { return };
    kill_9_during_a_burst(&db);
}

#[test]
fn kill_9_during_a_burst_on_sqlite_leaves_nothing_half_written() {
    kill_9_during_a_burst(&TestDatabase::sqlite());
}

/// A tax rate whose products with the prices below often need rounding (half-to-even).
const TAX_RATE_BPS: i64 = 1950;
const PRODUCTS: [(&str, i64); 4] = [("KILL-1", 199), ("KILL-2", 1250), ("KILL-3", 333), ("KILL-4", 5)];
/// Plenty: no order in the burst is ever short, so every refusal would be a bug.
const INITIAL_STOCK: i64 = 100_000;
const CUSTOMERS: usize = 5;
const ADMIN_SETTLERS: usize = 2;

/// What the burst's clients learnt before the kill.
#[derive(Default)]
struct Burst {
    /// Set just before SIGKILL: failures after it are expected.
    killing: AtomicBool,
    /// Set after the kill (or when the test fails): every client stops.
    stop: AtomicBool,
    /// Orders the server acknowledged (201 bodies).
    placed: Mutex<Vec<Value>>,
    /// Acknowledged orders not yet handed to an admin.
    to_settle: Mutex<VecDeque<String>>,
    /// Confirmations and cancellations the server acknowledged (200 bodies).
    settled: Mutex<Vec<Value>>,
    /// Stock adjustments the server acknowledged (their ids).
    adjusted: Mutex<Vec<String>>,
    /// Requests sent but never answered: the kill cut them off. Their outcome is unknown.
    cut_off: Mutex<Vec<CutOff>>,
    /// Answers that should not happen in a healthy burst.
    unexpected: Mutex<Vec<String>>,
}

#[derive(Debug, Clone)]
enum CutOff {
    Placement { customer: usize, key: String, lines: Vec<(String, i64)> },
    Settlement { order: String, status: &'static str },
    Adjustment { product: String, key: String, body: Value },
}

impl Burst {
    fn is_over(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Records a request that got no answer; tells the client to stop.
    fn no_answer(&self, error: &io::Error, request: CutOff) {
        if !self.killing.load(Ordering::SeqCst) {
            self.unexpected.lock().unwrap().push(format!("{request:?} failed before the kill: {error}"));
        } else if error.kind() != io::ErrorKind::ConnectionRefused {
            self.cut_off.lock().unwrap().push(request);
        }
    }

    fn unexpected(&self, what: String) {
        self.unexpected.lock().unwrap().push(what);
    }
}

/// Stops the burst's clients when dropped, so that a failing test never waits for them forever.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn kill_9_during_a_burst(db: &TestDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let url = db.url();
    let tax = TAX_RATE_BPS.to_string();
    let env = with_common_env(&[
        ("ORDERLY_DATABASE_URL", url.as_str()),
        ("ORDERLY_DATABASE_POOL_SIZE", "6"),
        ("ORDERLY_TAX_RATE_BPS", tax.as_str()),
        ("ORDERLY_RATE_LIMIT", "0"),
        // Each customer places orders as fast as it can until the kill, and how many stay
        // pending depends on how fast the admins settle them: a cap never reached, so that
        // every refusal would still be a bug.
        ("ORDERLY_MAX_RESERVED_UNITS_PER_CUSTOMER", "1000000000"),
    ]);
    let mut server = Server::start(dir.path(), &env);
    let base = server.base.clone();
    let admin = admin_token(&base);
    let products: Vec<String> =
        PRODUCTS.iter().map(|(sku, price)| create_product(&base, &admin, sku, *price, INITIAL_STOCK)).collect();
    let customers: Vec<_> =
        (0..CUSTOMERS).map(|n| register_customer(&base, &format!("burst{n}@example.com"))).collect();

    let burst = Burst::default();
    std::thread::scope(|scope| {
        let _stop_clients_whatever_happens = StopOnDrop(&burst.stop);
        for (number, customer) in customers.iter().enumerate() {
            let (burst, base, products) = (&burst, base.as_str(), products.as_slice());
            scope.spawn(move || place_orders(burst, base, number, &customer.token, products));
        }
        for _ in 0..ADMIN_SETTLERS {
            let (burst, base, admin) = (&burst, base.as_str(), admin.as_str());
            scope.spawn(move || settle_orders(burst, base, admin));
        }
        let (burst_ref, base_ref, admin_ref, products_ref) =
            (&burst, base.as_str(), admin.as_str(), products.as_slice());
        scope.spawn(move || adjust_stock(burst_ref, base_ref, admin_ref, products_ref));

        // Mid-burst: once enough of everything has been acknowledged, with every client busy.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let placed = burst.placed.lock().unwrap().len();
            let settled = burst.settled.lock().unwrap().len();
            let adjusted = burst.adjusted.lock().unwrap().len();
            if placed >= 40 && settled >= 15 && adjusted >= 5 {
                break;
            }
            let unexpected = burst.unexpected.lock().unwrap().clone();
            assert!(unexpected.is_empty(), "the burst went wrong before the kill: {unexpected:#?}");
            assert!(
                Instant::now() < deadline,
                "the burst did not get going within 60 s: {placed} placed, {settled} settled, {adjusted} adjusted"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        burst.killing.store(true, Ordering::SeqCst);
        server.kill();
    });

    let unexpected = burst.unexpected.into_inner().unwrap();
    assert!(unexpected.is_empty(), "unexpected answers during the burst: {unexpected:#?}");
    let cut_off = burst.cut_off.into_inner().unwrap();
    assert!(!cut_off.is_empty(), "the kill cut off no request: it did not land mid-burst");
    let placed = burst.placed.into_inner().unwrap();
    let settled = burst.settled.into_inner().unwrap();
    let adjusted = burst.adjusted.into_inner().unwrap();
    let adjusted_count = adjusted.len();

    // Restarted on the same database.
    let server = Server::start(dir.path(), &env);
    let base = server.base.as_str();
    let admin = admin_token(base);

    // What was acknowledged survived as acknowledged.
    for order in &placed {
        let id = text(&order["id"]);
        let now = answered(request("GET", &format!("{base}/v1/orders/{id}")).bearer(&admin).send(), "order");
        assert_eq!(now.status, 200, "acknowledged order {id} is gone after the restart: {now}");
        let now = now.json();
        assert_eq!((&now["items"], &now["total"]), (&order["items"], &order["total"]), "order {id} changed");
    }
    for change in &settled {
        let id = text(&change["id"]);
        let now = answered(request("GET", &format!("{base}/v1/orders/{id}")).bearer(&admin).send(), "order").json();
        assert_eq!(
            (&now["status"], &now["invoice_number"]),
            (&change["status"], &change["invoice_number"]),
            "order {id} lost its acknowledged transition"
        );
    }

    // Retry what the kill cut off, with the same Idempotency-Key: either the first attempt
    // committed (whole, with its stored answer, which is replayed), or nothing of it did (and
    // the retry executes, or waits for the dead attempt's claim to lapse).
    let mut order_ids: HashSet<String> = placed.iter().map(|order| text(&order["id"]).to_owned()).collect();
    let mut adjustment_ids: HashSet<String> = adjusted.into_iter().collect();
    let (mut replayed, mut executed, mut in_progress) = (0, 0, 0);
    for cut in &cut_off {
        let answer = match cut {
            CutOff::Placement { customer, key, lines } => {
                let lines: Vec<(&str, i64)> =
                    lines.iter().map(|(product, quantity)| (product.as_str(), *quantity)).collect();
                answered(place_order(base, &customers[*customer].token, &lines, Some(key)), "retried order")
            }
            CutOff::Adjustment { product, key, body } => answered(
                request("POST", &format!("{base}/v1/products/{product}/stock-adjustments"))
                    .bearer(&admin)
                    .header("Idempotency-Key", key)
                    .json(body)
                    .send(),
                "retried adjustment",
            ),
            // A status change cut off by the kill happened whole or not at all (the invariants
            // below check "whole"); retrying it would prove nothing more.
            CutOff::Settlement { order, status } => {
                let now = answered(request("GET", &format!("{base}/v1/orders/{order}")).bearer(&admin).send(), "order");
                let now = now.json()["status"].clone();
                assert!(now == "pending" || now == *status, "order {order}, cut off on its way to {status}, is {now}");
                continue;
            }
        };
        match answer.status {
            201 => {
                let id = text(&answer.json()["id"]).to_owned();
                if answer.header("idempotency-replayed") == Some("true") {
                    replayed += 1;
                } else {
                    executed += 1;
                }
                let fresh = match cut {
                    CutOff::Placement { .. } => order_ids.insert(id.clone()),
                    _ => adjustment_ids.insert(id.clone()),
                };
                assert!(fresh, "the retry of {cut:?} answered with {id}, which was acknowledged already");
            }
            _ => {
                assert_problem(&answer, 409, "idempotency_in_progress");
                in_progress += 1;
            }
        }
    }

    let snapshot = Snapshot::read(base, &admin);
    let listed: HashSet<String> = snapshot.orders.iter().map(|order| text(&order["id"]).to_owned()).collect();
    assert_eq!(listed, order_ids, "every order is one that was acknowledged or that a retry found or made");
    let trail: HashSet<String> = snapshot
        .adjustments
        .values()
        .flatten()
        .filter(|adjustment| adjustment["reason"] != "initial stock")
        .map(|adjustment| text(&adjustment["id"]).to_owned())
        .collect();
    assert_eq!(trail, adjustment_ids, "every adjustment is one that was acknowledged or that a retry found or made");
    snapshot.assert_invariants(TAX_RATE_BPS);
    assert_eq!(i64::try_from(snapshot.events.len()).unwrap(), db.count_rows("events"), "the feed shows every event");
    assert_database_invariants(db);
    eprintln!(
        "burst: {} orders, {} transitions, {} adjustments acknowledged; {} requests cut off by the kill \
         (retried: {replayed} replayed, {executed} executed, {in_progress} still claimed); {} orders after restart",
        placed.len(),
        settled.len(),
        adjusted_count,
        cut_off.len(),
        snapshot.orders.len()
    );
}

/// A customer placing orders of 1–3 lines, each with its own `Idempotency-Key`, until the kill.
fn place_orders(burst: &Burst, base: &str, customer: usize, token: &str, products: &[String]) {
    for n in 0.. {
        if burst.is_over() {
            return;
        }
        let first = (customer * 7 + n) % products.len();
        let lines: Vec<(String, i64)> = (0..1 + (customer + n) % 3)
            .map(|i| {
                (products[(first + i) % products.len()].clone(), i64::try_from(1 + (customer + n + i) % 4).unwrap())
            })
            .collect();
        let key = format!("burst-{customer}-{n}");
        let borrowed: Vec<(&str, i64)> =
            lines.iter().map(|(product, quantity)| (product.as_str(), *quantity)).collect();
        match place_order(base, token, &borrowed, Some(&key)) {
            Ok(answer) if answer.status == 201 => {
                let order = answer.json();
                burst.to_settle.lock().unwrap().push_back(text(&order["id"]).to_owned());
                burst.placed.lock().unwrap().push(order);
            }
            Ok(answer) => burst.unexpected(format!("placing {key}: {answer}")),
            Err(error) => return burst.no_answer(&error, CutOff::Placement { customer, key, lines }),
        }
    }
}

/// An admin confirming two of every three acknowledged orders and cancelling the third.
fn settle_orders(burst: &Burst, base: &str, admin: &str) {
    for n in 0.. {
        if burst.is_over() {
            return;
        }
        let Some(order) = burst.to_settle.lock().unwrap().pop_front() else {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        };
        let status = if n % 3 == 2 { "cancelled" } else { "confirmed" };
        match change_status(base, admin, &order, 1, status) {
            Ok(answer) if answer.status == 200 => burst.settled.lock().unwrap().push(answer.json()),
            Ok(answer) => burst.unexpected(format!("{status} {order}: {answer}")),
            Err(error) => return burst.no_answer(&error, CutOff::Settlement { order, status }),
        }
    }
}

/// An admin adding and removing stock, each adjustment with its own `Idempotency-Key`.
fn adjust_stock(burst: &Burst, base: &str, admin: &str, products: &[String]) {
    for n in 0.. {
        if burst.is_over() {
            return;
        }
        let product = products[n % products.len()].clone();
        let delta = if n % 2 == 0 { 7 } else { -3 };
        let body = json!({"delta": delta, "reason": format!("burst adjustment {n}")});
        let key = format!("adjust-{n}");
        let answer: io::Result<Response> = request("POST", &format!("{base}/v1/products/{product}/stock-adjustments"))
            .bearer(admin)
            .header("Idempotency-Key", &key)
            .json(&body)
            .send();
        match answer {
            Ok(answer) if answer.status == 201 => {
                burst.adjusted.lock().unwrap().push(text(&answer.json()["id"]).to_owned());
            }
            Ok(answer) => burst.unexpected(format!("adjusting {product} by {delta}: {answer}")),
            Err(error) => return burst.no_answer(&error, CutOff::Adjustment { product, key, body }),
        }
    }
}
