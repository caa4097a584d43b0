//! Connecting, and surviving the database going away.

use std::time::{Duration, Instant};

use orderly_domain::StoreError;
use orderly_domain::ports::{NotReady, Readiness, UserRepository};
use orderly_domain::user::UserId;
use orderly_persistence::testing::TestDatabase;
use orderly_persistence::{Backend, Database, DatabaseUrl, DieselReadiness, DieselUserRepository, PoolOptions};

use crate::fixtures::{at, insert_user};

const QUICK: PoolOptions = PoolOptions {
    max_size: 2,
    acquire_timeout: Duration::from_secs(1),
    statement_timeout: Some(Duration::from_secs(5)),
};

orderly_persistence::backend_tests! {
    fn the_url_of_a_test_database_connects_to_it(db: &TestDatabase) {
        let user = insert_user(db, at(0));
        let url = DatabaseUrl::parse(&db.url()).unwrap();
        assert_eq!(url.backend(), db.backend());
        let again = Database::connect(&url, QUICK).unwrap();
        assert_eq!(again.backend(), db.backend());
        assert!(DieselUserRepository::new(again).find_by_id(user.id).unwrap().is_some());
    }

    fn pool_status_reports_the_configured_size(db: &TestDatabase) {
        let status = db.database().status();
        assert_eq!(status.max_size, 8);
        assert!(status.idle_connections <= status.connections);
    }
}

#[test]
fn a_missing_sqlite_file_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fresh.db");
    let url = DatabaseUrl::parse(path.to_str().unwrap()).unwrap();
    let db = Database::connect(&url, QUICK).unwrap();
    assert!(path.exists());
    assert_eq!(db.backend(), Backend::Sqlite);
    assert!(db.run_migrations().unwrap() >= 1);
    assert_eq!(db.pending_migrations().unwrap(), 0);
}

#[test]
fn an_unopenable_sqlite_path_reports_why() {
    let dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::parse(&format!("sqlite://{}/no/such/dir/x.db", dir.path().display())).unwrap();
    let message = format!("{:#}", Database::connect(&url, QUICK).unwrap_err());
    assert!(message.contains("could not open the SQLite database"), "{message}");
    assert!(message.to_lowercase().contains("unable to open the database file"), "{message}");
}

#[test]
fn an_unreachable_postgres_reports_the_driver_error_without_the_password() {
    // Port 1 on loopback: nothing listens there, so the refusal is immediate.
    let url = DatabaseUrl::parse("postgres://orderly:s3cr3t@127.0.0.1:1/orderly?connect_timeout=2").unwrap();
    let message = format!("{:#}", Database::connect(&url, QUICK).unwrap_err());
    assert!(
        message.contains("could not connect to PostgreSQL at postgres://orderly:***@127.0.0.1:1/orderly"),
        "{message}"
    );
    assert!(message.to_lowercase().contains("refused"), "{message}");
    assert!(!message.contains("s3cr3t"), "{message}");
}

/// PostgreSQL restarting kills every pooled connection, and the service recovers without a
/// restart. What it costs: a connection idle a second or more is checked with a round trip
/// before use and replaced (no request fails: see the unit tests in `database.rs`); one used
/// more recently gets only the free check, which sees the server's goodbye once it has arrived.
/// If it has not yet, that one call fails as `Unavailable` (a retryable 503) and its
/// connection is discarded. So: at most one failed call per killed connection, each
/// `Unavailable`, then success.
#[test]
fn postgres_pool_replaces_connections_the_server_killed() {
    let Some(db) = TestDatabase::postgres() else { return };
    let repo = DieselUserRepository::new(db.database().clone());
    let user = insert_user(&db, at(0));
    // Every connection the pool will hold is open (r2d2 opens them in the background), so
    // the kill below ends all of them and `killed` counts them exactly.
    let deadline = Instant::now() + Duration::from_secs(30);
    while db.database().status().connections < db.database().status().max_size {
        assert!(Instant::now() < deadline, "the pool did not fill: {:?}", db.database().status());
        std::thread::sleep(Duration::from_millis(10));
    }
    let killed = db.database().status().connections;
    db.terminate_connections();

    let mut failed = 0;
    for _ in 0..killed + 10 {
        match repo.find_by_id(user.id) {
            Ok(found) => assert!(found.is_some()),
            Err(StoreError::Unavailable(_)) => failed += 1,
            Err(other) => panic!("a call on a killed connection must fail as Unavailable: {other:?}"),
        }
    }
    eprintln!("{killed} pooled connections killed: {failed} calls failed");
    assert!(failed <= killed, "{failed} calls failed for {killed} killed connections");
    // Each killed connection failed at most once, and was then discarded: from here on, success.
    for _ in 0..10 {
        assert!(repo.find_by_id(user.id).unwrap().is_some());
    }
}

/// While PostgreSQL refuses connections, calls fail as `Unavailable` (a 503) and readiness as
/// `DatabaseUnreachable`; once it is back, the same pool serves again.
#[test]
fn postgres_outage_is_unavailable_and_recovers_without_restart() {
    let Some(db) = TestDatabase::postgres() else { return };
    let user = insert_user(&db, at(0));
    let database = Database::connect(&DatabaseUrl::parse(&db.url()).unwrap(), QUICK).unwrap();
    let repo = DieselUserRepository::new(database.clone());
    let readiness = DieselReadiness::new(database.clone());
    assert!(repo.find_by_id(user.id).unwrap().is_some());

    db.begin_outage();
    let error = repo.find_by_id(UserId::new()).unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert_eq!(error.to_string(), "the database is unavailable");
    assert!(matches!(readiness.check(), Err(NotReady::DatabaseUnreachable(_))));
    assert!(matches!(database.pending_migrations(), Err(StoreError::Unavailable(_))));

    db.end_outage();
    assert!(repo.find_by_id(user.id).unwrap().is_some());
    readiness.check().unwrap();
}
