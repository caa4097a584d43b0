use orderly_domain::ports::{NotReady, Readiness};
use orderly_persistence::DieselReadiness;
use orderly_persistence::testing::TestDatabase;

orderly_persistence::backend_tests! {
    fn a_migrated_database_is_ready(db: &TestDatabase) {
        DieselReadiness::new(db.database().clone()).check().unwrap();
        assert_eq!(db.database().pending_migrations().unwrap(), 0);
    }

    fn migrations_are_idempotent(db: &TestDatabase) {
        assert_eq!(db.database().run_migrations().unwrap(), 0);
        assert_eq!(db.database().run_migrations().unwrap(), 0);
    }

    fn an_unmigrated_database_is_not_ready_until_migrated(db: &TestDatabase) {
        let empty = TestDatabase::unmigrated(db.backend()).unwrap();
        let readiness = DieselReadiness::new(empty.database().clone());
        let pending = empty.database().pending_migrations().unwrap();
        assert!(pending >= 1);
        match readiness.check() {
            Err(NotReady::MigrationsPending { pending: reported }) => assert_eq!(reported, pending),
            other => panic!("expected MigrationsPending, got {other:?}"),
        }

        assert_eq!(empty.database().run_migrations().unwrap(), pending);
        readiness.check().unwrap();
        assert_eq!(empty.database().run_migrations().unwrap(), 0);
    }

    /// The async form of the macro, as HTTP tests use it: the runtime's test attribute is given.
    #[tokio::test]
    async fn the_async_form_runs_on_both_backends(db: &TestDatabase) {
        let database = db.database().clone();
        let pending = tokio::task::spawn_blocking(move || database.pending_migrations()).await.unwrap().unwrap();
        assert_eq!(pending, 0);
    }
}
