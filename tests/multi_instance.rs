//! Two `orderly` instances on different ports over ONE PostgreSQL database (and, for the rate
//! limit, one Redis), driven over HTTP with requests alternating or racing between them. The
//! service keeps its promises with the database (and Redis), never with in-process state, so
//! what one instance promises the other must keep: idempotent retries, stock, invoice numbers,
//! rate limits and the expiry sweep. See docs/testing.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, unreachable_pub)]

mod support;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use orderly_persistence::testing::TestDatabase;
use support::api::{
    Snapshot, admin_token, answered, assert_database_invariants, assert_problem, change_status, collect,
    create_product, id_in_location, integer, place_order, register_customer, stock, text,
};
use support::redis::Redis;
use support::{Response, Server, postgres_server_url, redis_server_url, request, unique_suffix, with_common_env};

/// Two instances over one fresh, migrated PostgreSQL database of their own. Fields drop in
/// declaration order: the instances stop before the database is dropped.
struct TwoInstances {
    instances: [Server; 2],
    db: TestDatabase,
    _dir: tempfile::TempDir,
}

impl TwoInstances {
    /// `None` (the test then passes without running, and says so) when PostgreSQL is not
    /// configured. Rate limits are off unless `extra_env` sets them.
    fn start(test: &str, extra_env: &[(&str, &str)]) -> Option<TwoInstances> {
        postgres_server_url(test)?;
        let db = TestDatabase::postgres()?;
        let dir = tempfile::tempdir().unwrap();
        let url = db.url();
        let mut env = with_common_env(&[
            ("ORDERLY_DATABASE_URL", url.as_str()),
            ("ORDERLY_DATABASE_POOL_SIZE", "4"),
            ("ORDERLY_RATE_LIMIT", "0"),
        ]);
        env.extend_from_slice(extra_env);
        let instances = [Server::start(dir.path(), &env), Server::start(dir.path(), &env)];
        Some(TwoInstances { instances, db, _dir: dir })
    }

    /// The instance that serves the `n`th request: they take turns.
    fn base(&self, n: usize) -> &str {
        &self.instances[n % 2].base
    }
}

#[test]
fn an_idempotent_retry_on_the_other_instance_replays_the_first_outcome() {
    let test = "multi_instance::an_idempotent_retry_on_the_other_instance_replays_the_first_outcome";
    let Some(deployment) = TwoInstances::start(test, &[]) else { return };
    let (first, second) = (deployment.base(0), deployment.base(1));
    let admin = admin_token(first);
    let product = create_product(first, &admin, "IDEM-1", 1250, 10);
    // Registered and logged in on the first instance; its token is good on the second too.
    let customer = register_customer(first, "idempotent@example.com");

    let three = [(product.as_str(), 3)];
    let original = answered(place_order(first, &customer.token, &three, Some("order-1")), "the first attempt");
    assert_eq!(original.status, 201, "{original}");
    assert_eq!(original.header("idempotency-replayed"), None, "{original:?}");
    let retry = answered(place_order(second, &customer.token, &three, Some("order-1")), "the retry");
    assert_eq!(retry.status, 201, "the retry on the other instance: {retry}");
    assert_eq!(retry.header("idempotency-replayed"), Some("true"), "{retry:?}");
    assert_eq!(retry.header("location"), original.header("location"));
    assert_eq!(retry.text(), original.text(), "a replay is the stored response, byte for byte");
    let reused = answered(place_order(second, &customer.token, &[(product.as_str(), 4)], Some("order-1")), "reuse");
    assert_problem(&reused, 422, "idempotency_key_reused");
    assert_eq!(stock(first, &product), (10, 3), "one reservation, seen from the first instance");
    assert_eq!(stock(second, &product), (10, 3), "one reservation, seen from the second instance");
    assert_eq!(collect(second, &customer.token, "/v1/orders").len(), 1, "one order");

    // Ten copies of one request racing over both instances: one executes; the others replay
    // it or are told it is still in progress.
    const COPIES: usize = 10;
    let two = [(product.as_str(), 2)];
    let barrier = Barrier::new(COPIES);
    let answers: Vec<Response> = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..COPIES)
            .map(|n| {
                let (barrier, base, token, two) = (&barrier, deployment.base(n), &customer.token, &two);
                scope.spawn(move || {
                    barrier.wait();
                    answered(place_order(base, token, two, Some("order-2")), "a racing copy")
                })
            })
            .collect();
        racers.into_iter().map(|racer| racer.join().unwrap()).collect()
    });
    let mut locations = HashSet::new();
    let mut executed = 0;
    for answer in &answers {
        match answer.status {
            201 => {
                locations.insert(answer.header("location").unwrap().to_owned());
                executed += usize::from(answer.header("idempotency-replayed").is_none());
            }
            _ => {
                assert_problem(answer, 409, "idempotency_in_progress");
            }
        }
    }
    assert_eq!(executed, 1, "exactly one copy executes: {answers:#?}");
    assert_eq!(locations.len(), 1, "every 201 names the same order: {locations:?}");
    assert_eq!(stock(second, &product), (10, 5), "the racing copies reserved once");
    let orders = collect(first, &admin, "/v1/orders");
    assert_eq!(orders.len(), 2, "two keys, two orders: {orders:#?}");
    let placed = collect(first, &admin, "/v1/events?type=order.placed");
    assert_eq!(placed.len(), 2, "one order.placed per order: {placed:#?}");
    Snapshot::read(second, &admin).assert_invariants(0);
    assert_database_invariants(&deployment.db);
}

#[test]
fn racing_orders_and_confirmations_on_two_instances_never_oversell_or_skip_an_invoice_number() {
    let test =
        "multi_instance::racing_orders_and_confirmations_on_two_instances_never_oversell_or_skip_an_invoice_number";
    let Some(deployment) = TwoInstances::start(test, &[]) else { return };
    const UNITS: i64 = 15;
    const ORDERS: usize = 40;
    const CUSTOMERS: usize = 8;
    let admin = admin_token(deployment.base(0));
    let product = create_product(deployment.base(0), &admin, "RACE-1", 999, UNITS);
    let customers: Vec<_> =
        (0..CUSTOMERS).map(|n| register_customer(deployment.base(n), &format!("racer{n}@example.com"))).collect();

    // 40 one-unit orders for 15 units, released at once, alternating between the instances.
    let barrier = Barrier::new(ORDERS);
    let answers: Vec<Response> = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..ORDERS)
            .map(|n| {
                let (barrier, base, product) = (&barrier, deployment.base(n), product.as_str());
                let token = &customers[(n / 2) % CUSTOMERS].token;
                scope.spawn(move || {
                    barrier.wait();
                    answered(place_order(base, token, &[(product, 1)], None), "a racing order")
                })
            })
            .collect();
        racers.into_iter().map(|racer| racer.join().unwrap()).collect()
    });
    let mut created = Vec::new();
    for answer in &answers {
        if answer.status == 201 {
            created.push(id_in_location(answer));
        } else {
            assert_problem(answer, 409, "insufficient_stock");
        }
    }
    assert_eq!(created.len(), 15, "exactly the 15 units are sold, {} orders refused", answers.len() - created.len());
    for n in 0..2 {
        assert_eq!(stock(deployment.base(n), &product), (UNITS, UNITS), "instance {n}: everything is reserved");
    }
    let pending = collect(deployment.base(1), &admin, "/v1/orders?status=pending");
    let pending_units: i64 = pending.iter().map(|order| integer(&order["items"][0]["quantity"])).sum();
    assert_eq!(pending_units, UNITS, "reserved == the sum of pending quantities");
    let pending_ids: HashSet<&str> = pending.iter().map(|order| text(&order["id"])).collect();
    assert_eq!(pending_ids, created.iter().map(String::as_str).collect(), "the pending orders are the 201s");
    assert_database_invariants(&deployment.db);

    // Every order confirmed twice at once, once on each instance: one confirmation wins.
    let barrier = Barrier::new(2 * created.len());
    let confirmations: Vec<(String, Response)> = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..2 * created.len())
            .map(|n| {
                let (barrier, base, admin) = (&barrier, deployment.base(n), admin.as_str());
                let order = created[n / 2].clone();
                scope.spawn(move || {
                    barrier.wait();
                    let answer = answered(change_status(base, admin, &order, 1, "confirmed"), "a confirmation");
                    (order, answer)
                })
            })
            .collect();
        racers.into_iter().map(|racer| racer.join().unwrap()).collect()
    });
    let mut invoice_numbers = BTreeSet::new();
    let mut winners: HashMap<&str, usize> = HashMap::new();
    for (order, answer) in &confirmations {
        match answer.status {
            200 => {
                *winners.entry(order).or_default() += 1;
                let number = answer.json()["invoice_number"].as_str().expect("an invoice number").to_owned();
                assert!(invoice_numbers.insert(number.clone()), "invoice number {number} issued twice");
            }
            // The loser read version 1 too: its conditional update finds version 2 (or, had it
            // re-read, a confirmed order).
            412 => {
                assert_problem(answer, 412, "precondition_failed");
            }
            _ => {
                assert_problem(answer, 409, "invalid_transition");
            }
        }
    }
    assert!(
        created.iter().all(|order| winners.get(order.as_str()) == Some(&1)),
        "every order is confirmed exactly once: {winners:?}"
    );
    let year = &invoice_numbers.first().expect("invoices were issued")[..4];
    let expected: BTreeSet<String> = (1..=created.len()).map(|n| format!("{year}-{n:06}")).collect();
    assert_eq!(invoice_numbers, expected, "invoice numbers are gapless and unique across both instances");
    for n in 0..2 {
        assert_eq!(stock(deployment.base(n), &product), (0, 0), "instance {n}: the stock was committed once");
    }
    let snapshot = Snapshot::read(deployment.base(0), &admin);
    let listed: BTreeSet<String> =
        snapshot.invoices.iter().map(|invoice| text(&invoice["number"]).to_owned()).collect();
    assert_eq!(listed, expected, "GET /v1/invoices lists exactly those invoices");
    assert_eq!(snapshot.events_of("order.confirmed").len(), created.len());
    assert_eq!(snapshot.events_of("invoice.issued").len(), created.len());
    snapshot.assert_invariants(0);
    assert_database_invariants(&deployment.db);
}

#[test]
fn a_rate_limit_is_shared_by_both_instances_through_redis() {
    let test = "multi_instance::a_rate_limit_is_shared_by_both_instances_through_redis";
    let Some(redis_url) = redis_server_url(test) else { return };
    const LIMIT: usize = 6;
    let prefix = format!("orderly-test-{}:", unique_suffix());
    let redis = RedisKeys::new(&redis_url, &prefix);
    let limit = LIMIT.to_string();
    let env = [
        ("ORDERLY_RATE_LIMIT", limit.as_str()),
        ("ORDERLY_REDIS_URL", redis_url.as_str()),
        ("ORDERLY_REDIS_KEY_PREFIX", prefix.as_str()),
    ];
    let Some(deployment) = TwoInstances::start(test, &env) else { return };
    let admin = admin_token(deployment.base(0));

    // One caller (the admin's user id) alternating between the instances, three times the limit.
    let started = Instant::now();
    let answers: Vec<Response> = (0..3 * LIMIT)
        .map(|n| answered(request("GET", &format!("{}/v1/users/me", deployment.base(n))).bearer(&admin).send(), "me"))
        .collect();
    let elapsed = started.elapsed();

    // A bucket of LIMIT tokens refilled at LIMIT per minute can have let through at most this
    // many within `elapsed` (normally LIMIT itself: the requests take far less than a refill).
    let refills = usize::try_from(elapsed.as_millis() * LIMIT as u128 / 60_000).unwrap();
    let allowed: Vec<usize> = (0..answers.len()).filter(|&n| answers[n].status == 200).collect();
    assert!(
        answers[..LIMIT].iter().all(|answer| answer.status == 200),
        "the first {LIMIT} requests are within the limit: {:?}",
        statuses(&answers)
    );
    assert!(
        allowed.len() <= LIMIT + refills,
        "with ORDERLY_RATE_LIMIT={LIMIT} on both instances, {} of {} alternating requests got through \
         (at most {LIMIT} + {refills} refilled): the instances do not share the bucket. Statuses: {:?}",
        allowed.len(),
        answers.len(),
        statuses(&answers)
    );
    for (n, answer) in answers.iter().enumerate() {
        let policy = answer.header("ratelimit-policy").unwrap_or_else(|| panic!("no RateLimit-Policy: {answer:?}"));
        assert_eq!(structured_parameter(policy, "q"), Some(LIMIT as i64), "RateLimit-Policy: {policy}");
        assert_eq!(structured_parameter(policy, "w"), Some(60), "a per-minute window; RateLimit-Policy: {policy}");
        let remaining = answer.header("ratelimit").and_then(|value| structured_parameter(value, "r"));
        assert!(remaining.is_some(), "request {n}: no RateLimit with r=: {answer:?}");
        if answer.status != 200 {
            assert_problem(answer, 429, "rate_limited");
            let retry_after = answer.header("retry-after").and_then(|value| value.parse::<u64>().ok());
            assert!(retry_after.is_some_and(|seconds| seconds >= 1), "429 needs Retry-After in seconds: {answer:?}");
        }
    }
    // The remaining quota falls with every allowed request, whichever instance answers it
    // (unless a token was refilled in between, which takes 10 s).
    let remaining: Vec<i64> = allowed
        .iter()
        .map(|&n| answers[n].header("ratelimit").and_then(|value| structured_parameter(value, "r")).unwrap())
        .collect();
    assert!(
        refills > 0 || remaining.windows(2).all(|pair| pair[1] < pair[0]),
        "RateLimit r= across alternating instances must fall with every request: {remaining:?}"
    );
    for instance in 0..2 {
        assert!(
            (0..answers.len()).any(|n| n % 2 == instance && answers[n].status == 429),
            "instance {instance} refused nothing: {:?}",
            statuses(&answers)
        );
    }
    let keys = redis.keys();
    assert!(!keys.is_empty(), "the buckets live in Redis under ORDERLY_REDIS_KEY_PREFIX={prefix}, found none");
}

/// Logs in on `base`; returns (access token, refresh token).
fn login_pair(base: &str, email: &str, password: &str) -> (String, String) {
    let body = serde_json::json!({"email": email, "password": password});
    let response = answered(request("POST", &format!("{base}/v1/auth/tokens")).json(&body).send(), "login");
    assert_eq!(response.status, 200, "login of {email}: {response}");
    let pair = response.json();
    (pair["access_token"].as_str().unwrap().to_owned(), pair["refresh_token"].as_str().unwrap().to_owned())
}

fn me(base: &str, token: &str) -> Response {
    answered(request("GET", &format!("{base}/v1/users/me")).bearer(token).send(), "GET /v1/users/me")
}

#[test]
fn a_revocation_on_one_instance_reaches_the_other_within_the_check_interval() {
    let test = "multi_instance::a_revocation_on_one_instance_reaches_the_other_within_the_check_interval";
    // Longer than the default, so that the second instance surely holds a fresh, stale entry
    // when the new token arrives; the bound is still a few seconds.
    const INTERVAL_SECONDS: u64 = 5;
    let interval = INTERVAL_SECONDS.to_string();
    let Some(deployment) = TwoInstances::start(test, &[("ORDERLY_REVOCATION_CHECK_INTERVAL", interval.as_str())])
    else {
        return;
    };
    let (a, b) = (deployment.base(0), deployment.base(1));
    let customer = register_customer(a, "revoked@example.com");
    let (access, refresh) = login_pair(a, &customer.email, support::PASSWORD);
    // The second instance has read (and remembers) the user's generation.
    assert_eq!(me(b, &access).status, 200);

    let logout = serde_json::json!({"refresh_token": refresh});
    let answer = answered(request("POST", &format!("{a}/v1/auth/logout")).json(&logout).send(), "logout");
    assert_eq!(answer.status, 204, "{answer}");
    assert_problem(&me(a, &access), 401, "unauthenticated");

    // Within the interval (polled; how fast is not asserted), the old token fails there too.
    let deadline = Instant::now() + Duration::from_secs(INTERVAL_SECONDS * 4);
    loop {
        let answer = me(b, &access);
        if answer.status == 401 {
            assert_problem(&answer, 401, "unauthenticated");
            assert_eq!(answer.header("www-authenticate"), Some("Bearer error=\"invalid_token\""), "{answer}");
            break;
        }
        assert_eq!(answer.status, 200, "{answer}");
        assert!(Instant::now() < deadline, "the revoked token still works on the other instance");
        std::thread::sleep(Duration::from_millis(100));
    }

    // A token issued after a revocation works on the other instance at once, even while that
    // instance remembers the generation before it.
    let (access, _) = login_pair(a, &customer.email, support::PASSWORD);
    assert_eq!(me(b, &access).status, 200, "remembered by the second instance now");
    let change = serde_json::json!({"password": "a new password 123", "current_password": support::PASSWORD});
    let patch = request("PATCH", &format!("{a}/v1/users/{}", customer.id)).bearer(&access).json(&change);
    assert_eq!(answered(patch.send(), "password change").status, 200);
    let (newest, _) = login_pair(a, &customer.email, "a new password 123");
    let answer = me(b, &newest);
    assert_eq!(answer.status, 200, "the new token on the other instance: {answer}");
}

#[test]
fn two_sweeping_instances_release_each_expired_reservation_exactly_once() {
    let test = "multi_instance::two_sweeping_instances_release_each_expired_reservation_exactly_once";
    let env = [("ORDERLY_RESERVATION_TTL", "1"), ("ORDERLY_SWEEP_INTERVAL", "1")];
    let Some(deployment) = TwoInstances::start(test, &env) else { return };
    const UNITS: i64 = 500;
    const PLACERS: usize = 6;
    const ORDERS_EACH: usize = 10;
    let admin = admin_token(deployment.base(0));
    let products = [
        create_product(deployment.base(0), &admin, "SWEEP-1", 100, UNITS),
        create_product(deployment.base(1), &admin, "SWEEP-2", 250, UNITS),
    ];
    let customers: Vec<_> =
        (0..PLACERS).map(|n| register_customer(deployment.base(n), &format!("sweep{n}@example.com"))).collect();

    // 60 orders of one or two lines, placed over both instances while both sweeps run.
    let placed: Vec<String> = std::thread::scope(|scope| {
        let placers: Vec<_> = (0..PLACERS)
            .map(|placer| {
                let (deployment, products, token) = (&deployment, &products, &customers[placer].token);
                scope.spawn(move || {
                    (0..ORDERS_EACH)
                        .map(|n| {
                            let quantity = i64::try_from(1 + (placer + n) % 3).unwrap();
                            let lines: Vec<(&str, i64)> = if n % 2 == 0 {
                                vec![(products[0].as_str(), quantity)]
                            } else {
                                vec![(products[0].as_str(), 1), (products[1].as_str(), quantity)]
                            };
                            let answer =
                                answered(place_order(deployment.base(placer + n), token, &lines, None), "an order");
                            assert_eq!(answer.status, 201, "{answer}");
                            id_in_location(&answer)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        placers.into_iter().flat_map(|placer| placer.join().unwrap()).collect()
    });

    // Wait for the sweeps, watching the stock on both instances meanwhile.
    let deadline = Instant::now() + Duration::from_secs(30);
    for poll in 0.. {
        for product in &products {
            let (on_hand, reserved) = stock(deployment.base(poll), product);
            assert_eq!(on_hand, UNITS, "nothing was confirmed, so nothing leaves the shelf");
            assert!((0..=UNITS).contains(&reserved), "product {product}: reserved {reserved} out of range");
        }
        let still_pending = collect(deployment.base(poll), &admin, "/v1/orders?status=pending");
        if still_pending.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} orders still pending 30 s after a 1 s reservation TTL with 1 s sweeps",
            still_pending.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    for n in 0..2 {
        for product in &products {
            assert_eq!(stock(deployment.base(n), product), (UNITS, 0), "instance {n}: every reservation released");
        }
    }
    let snapshot = Snapshot::read(deployment.base(1), &admin);
    assert_eq!(snapshot.orders.len(), placed.len());
    assert!(snapshot.orders.iter().all(|order| order["status"] == "cancelled"), "every order expired");
    let cancellations = snapshot.events_of("order.cancelled");
    let mut cancelled_once = HashSet::new();
    for event in &cancellations {
        assert_eq!(event["data"]["reason"], "expired", "{event}");
        assert!(event["data"]["actor_id"].is_null(), "the server cancels, no actor: {event}");
        assert!(cancelled_once.insert(text(&event["subject"]["id"])), "cancelled twice: {event}");
    }
    assert_eq!(
        cancelled_once,
        placed.iter().map(String::as_str).collect::<HashSet<_>>(),
        "exactly one order.cancelled per order"
    );
    snapshot.assert_invariants(0);
    assert_database_invariants(&deployment.db);
}

/// The statuses in request order, for failure messages.
fn statuses(answers: &[Response]) -> Vec<u16> {
    answers.iter().map(|answer| answer.status).collect()
}

/// The integer parameter `name` of an IETF structured-field item such as `"default";r=5;t=12`.
fn structured_parameter(field: &str, name: &str) -> Option<i64> {
    field.split(';').skip(1).find_map(|parameter| {
        let (key, value) = parameter.trim().split_once('=')?;
        if key == name { value.trim().parse().ok() } else { None }
    })
}

/// The Redis keys of one test run, deleted when the test ends (also when it fails).
struct RedisKeys {
    url: String,
    prefix: String,
}

impl RedisKeys {
    /// Panics with a clear message when the configured Redis cannot be reached.
    fn new(url: &str, prefix: &str) -> RedisKeys {
        if let Err(error) = Redis::connect(url).and_then(|mut redis| redis.command(&["PING"])) {
            panic!("ORDERLY_TEST_REDIS_URL is set but Redis at {url} cannot be used: {error}");
        }
        RedisKeys { url: url.to_owned(), prefix: prefix.to_owned() }
    }

    fn keys(&self) -> Vec<String> {
        Redis::connect(&self.url).and_then(|mut redis| redis.keys_with_prefix(&self.prefix)).unwrap()
    }
}

impl Drop for RedisKeys {
    fn drop(&mut self) {
        if let Err(error) = Redis::connect(&self.url).and_then(|mut redis| redis.delete_keys_with_prefix(&self.prefix))
        {
            support::announce(&format!("warning: Redis keys under {} were not deleted: {error}", self.prefix));
        }
    }
}
