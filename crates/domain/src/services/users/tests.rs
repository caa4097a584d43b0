//! The rules of `UserService`, checked through mocked ports. A mock without an expectation for
//! a method panics if that method is called, so "no lookup happens" is asserted by omission and,
//! where it is the point of the test, spelled out with `.never()`.

use std::sync::Arc;

use mockall::Sequence;
use mockall::predicate::eq;

use super::*;
use crate::pagination::PageLimit;
use crate::ports::{MockPasswordHasher, MockUserRepository};
use crate::services::fixtures::{
    actor, admin, credentials, customer, email, name, new_hash, now, other_customer, password, stored_hash,
};
use crate::user::UserCursor;
use crate::user::{UserSort, UserUpdate};

#[derive(Default)]
struct Ports {
    users: MockUserRepository,
    hasher: MockPasswordHasher,
}

impl Ports {
    fn service(self) -> UserService {
        UserService::new(Arc::new(self.users), Arc::new(self.hasher), crate::services::fixtures::fixed_clock())
    }
}

/// What the store hands back for a user it has just inserted.
fn inserted(user: &NewUser) -> User {
    User {
        id: user.id,
        email: user.email.clone(),
        name: user.name.clone(),
        role: user.role,
        active: true,
        version: 1,
        created_at: user.created_at,
        updated_at: user.created_at,
    }
}

fn registered_event(user: &NewUser) -> DomainEvent {
    DomainEvent::UserRegistered {
        user_id: user.id,
        email: user.email.as_str().to_owned(),
        role: user.role,
        occurred_at: user.created_at,
    }
}

fn store_down() -> StoreError {
    StoreError::Unavailable(anyhow::anyhow!("connection refused"))
}

fn violation(error: UpdateUserError) -> (Vec<String>, &'static str) {
    match error {
        UpdateUserError::Invalid(violations) => {
            assert_eq!(violations.len(), 1, "{violations:?}");
            (violations[0].path.clone(), violations[0].code)
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn current_password_violation(code: &'static str) -> (Vec<String>, &'static str) {
    (vec!["current_password".to_owned()], code)
}

// ---- register -------------------------------------------------------------------------------

#[test]
fn register_hashes_the_password_and_inserts_a_customer_with_a_registered_event() {
    let mut ports = Ports::default();
    ports.hasher.expect_hash().with(eq(password("correct horse battery"))).times(1).returning(|_| Ok(new_hash()));
    ports
        .users
        .expect_insert()
        .withf(|user, event| {
            user.email == email("ada@example.com")
                && user.name == name("Ada")
                && user.role == Role::Customer
                && user.password_hash == new_hash()
                && user.created_at == now()
                && event.type_name() == "user.registered"
                && *event == registered_event(user)
        })
        .times(1)
        .returning(|user, _| Ok(inserted(user)));

    let user =
        ports.service().register(email("ada@example.com"), name("Ada"), password("correct horse battery")).unwrap();

    assert_eq!(user.role, Role::Customer);
    assert_eq!(user.email, email("ada@example.com"));
    assert!(user.active);
}

#[test]
fn register_stores_and_announces_the_one_normalised_spelling_of_the_email() {
    // Typed with u + combining diaeresis and capitals; stored as "jürgen@" with a precomposed ü.
    let mut ports = Ports::default();
    ports.hasher.expect_hash().times(1).returning(|_| Ok(new_hash()));
    ports
        .users
        .expect_insert()
        .withf(|user, event| user.email.as_str() == "j\u{fc}rgen@example.com" && *event == registered_event(user))
        .times(1)
        .returning(|user, _| Ok(inserted(user)));

    let user = ports
        .service()
        .register(email(" JU\u{308}rgen@Example.com "), name("J\u{fc}rgen"), password("correct horse battery"))
        .unwrap();

    assert_eq!(user.email.as_str(), "j\u{fc}rgen@example.com");
}

#[test]
fn register_maps_a_taken_email_to_email_taken() {
    let mut ports = Ports::default();
    ports.hasher.expect_hash().times(1).returning(|_| Ok(new_hash()));
    ports.users.expect_insert().times(1).returning(|_, _| Err(InsertUserError::EmailTaken));

    let error =
        ports.service().register(email("ada@example.com"), name("Ada"), password("correct horse battery")).unwrap_err();

    assert!(matches!(error, RegisterError::EmailTaken), "{error:?}");
}

#[test]
fn register_passes_store_failures_through() {
    let mut ports = Ports::default();
    ports.hasher.expect_hash().times(1).returning(|_| Ok(new_hash()));
    ports.users.expect_insert().times(1).returning(|_, _| Err(InsertUserError::Store(store_down())));

    let error =
        ports.service().register(email("ada@example.com"), name("Ada"), password("correct horse battery")).unwrap_err();

    assert!(matches!(error, RegisterError::Store(StoreError::Unavailable(_))), "{error:?}");
}

#[test]
fn register_inserts_nothing_when_hashing_fails() {
    let mut ports = Ports::default();
    ports.hasher.expect_hash().times(1).returning(|_| Err(anyhow::anyhow!("out of memory")));
    ports.users.expect_insert().never();

    let error =
        ports.service().register(email("ada@example.com"), name("Ada"), password("correct horse battery")).unwrap_err();

    assert!(matches!(error, RegisterError::Unexpected(_)), "{error:?}");
}

// ---- bootstrap_admin ------------------------------------------------------------------------

#[test]
fn bootstrap_admin_creates_an_admin_when_the_email_is_free() {
    let mut ports = Ports::default();
    ports.users.expect_find_credentials_by_email().with(eq(email("root@example.com"))).times(1).returning(|_| Ok(None));
    ports.hasher.expect_hash().with(eq(password("a long admin password"))).times(1).returning(|_| Ok(new_hash()));
    ports
        .users
        .expect_insert()
        .withf(|user, event| {
            user.role == Role::Admin
                && user.email == email("root@example.com")
                && user.password_hash == new_hash()
                && *event == registered_event(user)
        })
        .times(1)
        .returning(|user, _| Ok(inserted(user)));

    let outcome = ports
        .service()
        .bootstrap_admin(email("root@example.com"), name("Root"), password("a long admin password"))
        .unwrap();

    let AdminBootstrap::Created(user) = outcome else { panic!("expected Created, got {outcome:?}") };
    assert_eq!(user.role, Role::Admin);
}

#[test]
fn bootstrap_admin_leaves_an_existing_account_untouched() {
    let existing = admin();
    let mut ports = Ports::default();
    let found = credentials(&existing);
    ports.users.expect_find_credentials_by_email().times(1).returning(move |_| Ok(Some(found.clone())));
    ports.hasher.expect_hash().never();
    ports.users.expect_insert().never();
    ports.users.expect_update().never();

    let outcome = ports
        .service()
        .bootstrap_admin(existing.email.clone(), name("Root"), password("a long admin password"))
        .unwrap();

    assert_eq!(outcome, AdminBootstrap::AlreadyExists(existing));
}

#[test]
fn bootstrap_admin_losing_the_insert_race_reports_the_winner() {
    // Another instance inserts the same admin between our read and our insert.
    let winner = admin();
    let mut ports = Ports::default();
    let mut sequence = Sequence::new();
    ports.users.expect_find_credentials_by_email().times(1).in_sequence(&mut sequence).returning(|_| Ok(None));
    ports.hasher.expect_hash().times(1).in_sequence(&mut sequence).returning(|_| Ok(new_hash()));
    ports.users.expect_insert().times(1).in_sequence(&mut sequence).returning(|_, _| Err(InsertUserError::EmailTaken));
    let found = credentials(&winner);
    ports
        .users
        .expect_find_credentials_by_email()
        .with(eq(winner.email.clone()))
        .times(1)
        .in_sequence(&mut sequence)
        .returning(move |_| Ok(Some(found.clone())));

    let outcome =
        ports.service().bootstrap_admin(winner.email.clone(), name("Root"), password("a long admin password")).unwrap();

    assert_eq!(outcome, AdminBootstrap::AlreadyExists(winner));
}

#[test]
fn bootstrap_admin_reports_email_taken_if_the_race_winner_cannot_be_read_back() {
    let mut ports = Ports::default();
    ports.users.expect_find_credentials_by_email().times(2).returning(|_| Ok(None));
    ports.hasher.expect_hash().times(1).returning(|_| Ok(new_hash()));
    ports.users.expect_insert().times(1).returning(|_, _| Err(InsertUserError::EmailTaken));

    let error = ports
        .service()
        .bootstrap_admin(email("root@example.com"), name("Root"), password("a long admin password"))
        .unwrap_err();

    assert!(matches!(error, RegisterError::EmailTaken), "{error:?}");
}

// ---- me / get -------------------------------------------------------------------------------

#[test]
fn me_returns_the_callers_own_account() {
    let ada = customer();
    let mut ports = Ports::default();
    let found = ada.clone();
    ports.users.expect_find_by_id().with(eq(ada.id)).times(1).returning(move |_| Ok(Some(found.clone())));

    assert_eq!(ports.service().me(actor(&ada)).unwrap(), ada);
}

#[test]
fn me_for_an_account_that_no_longer_exists_is_not_found() {
    let ada = customer();
    let mut ports = Ports::default();
    ports.users.expect_find_by_id().with(eq(ada.id)).times(1).returning(|_| Ok(None));

    assert!(matches!(ports.service().me(actor(&ada)), Err(GetUserError::NotFound)));
}

#[test]
fn a_customer_sees_themselves() {
    let ada = customer();
    let mut ports = Ports::default();
    let found = ada.clone();
    ports.users.expect_find_by_id().with(eq(ada.id)).times(1).returning(move |_| Ok(Some(found.clone())));

    assert_eq!(ports.service().get(actor(&ada), ada.id).unwrap(), ada);
}

#[test]
fn a_customer_asking_for_someone_else_gets_not_found_never_forbidden() {
    let mut ports = Ports::default();
    // Not even looked up: the answer must not depend on whether the user exists.
    ports.users.expect_find_by_id().never();

    let result = ports.service().get(actor(&customer()), other_customer().id);

    assert!(matches!(result, Err(GetUserError::NotFound)), "{result:?}");
}

#[test]
fn an_admin_sees_anyone() {
    let bob = other_customer();
    let mut ports = Ports::default();
    let found = bob.clone();
    ports.users.expect_find_by_id().with(eq(bob.id)).times(1).returning(move |_| Ok(Some(found.clone())));

    assert_eq!(ports.service().get(actor(&admin()), bob.id).unwrap(), bob);
}

#[test]
fn an_admin_asking_for_a_missing_user_gets_not_found() {
    let mut ports = Ports::default();
    ports.users.expect_find_by_id().times(1).returning(|_| Ok(None));

    assert!(matches!(ports.service().get(actor(&admin()), UserId::new()), Err(GetUserError::NotFound)));
}

#[test]
fn get_passes_store_failures_through() {
    let mut ports = Ports::default();
    ports.users.expect_find_by_id().times(1).returning(|_| Err(store_down()));

    let result = ports.service().get(actor(&admin()), UserId::new());

    assert!(matches!(result, Err(GetUserError::Store(StoreError::Unavailable(_)))), "{result:?}");
}

// ---- list -----------------------------------------------------------------------------------

fn filtered_query(limit: i64) -> UserQuery {
    UserQuery {
        role: Some(Role::Customer),
        active: Some(true),
        sort: UserSort::CreatedAtDescending,
        after: Some(UserCursor::of(&customer())),
        limit: PageLimit::new(limit).unwrap(),
    }
}

#[test]
fn a_customer_may_not_list_users() {
    let mut ports = Ports::default();
    ports.users.expect_list().never();

    let result = ports.service().list(actor(&customer()), &UserQuery::default());

    assert!(matches!(result, Err(ListUsersError::Forbidden)), "{result:?}");
}

#[test]
fn an_admin_gets_a_page_with_more_and_a_cursor_from_the_overfetched_row() {
    let rows = vec![customer(), other_customer(), customer()];
    let query = filtered_query(2);
    let mut ports = Ports::default();
    let returned = rows.clone();
    ports.users.expect_list().with(eq(query.clone())).times(1).returning(move |_| Ok(returned.clone()));

    let page = ports.service().list(actor(&admin()), &query).unwrap();

    assert_eq!(page.items, rows[..2]);
    assert!(page.has_more);
    assert_eq!(page.next_after(UserCursor::of), Some(UserCursor::of(&rows[1])));
}

#[test]
fn the_last_page_has_no_more_and_no_cursor() {
    let rows = vec![customer(), other_customer()];
    let mut ports = Ports::default();
    let returned = rows.clone();
    ports.users.expect_list().times(1).returning(move |_| Ok(returned.clone()));

    let page = ports.service().list(actor(&admin()), &filtered_query(2)).unwrap();

    assert_eq!(page.items, rows);
    assert!(!page.has_more);
    assert_eq!(page.next_after(UserCursor::of), None);
}

#[test]
fn an_empty_collection_is_an_empty_last_page() {
    let mut ports = Ports::default();
    ports.users.expect_list().times(1).returning(|_| Ok(Vec::new()));

    let page = ports.service().list(actor(&admin()), &UserQuery::default()).unwrap();

    assert_eq!(page, Page { items: Vec::new(), has_more: false });
    assert_eq!(page.next_after(UserCursor::of), None);
}

// ---- update: who may change what ------------------------------------------------------------

#[test]
fn a_customer_may_not_change_role_or_active() {
    let ada = customer();
    let mut ports = Ports::default();
    ports.users.expect_update().never();

    let changes = UserChanges { role: Some(Role::Admin), active: Some(true), ..UserChanges::default() };
    let result = ports.service().update(actor(&ada), ada.id, changes, None);

    assert!(
        matches!(result, Err(UpdateUserError::Forbidden(ref fields)) if fields == &["role", "active"]),
        "{result:?}"
    );
}

#[test]
fn a_forbidden_change_names_only_the_offending_field() {
    let ada = customer();
    let ports = Ports::default();

    let changes = UserChanges { name: Some(name("Ada L.")), active: Some(false), ..UserChanges::default() };
    let result = ports.service().update(actor(&ada), ada.id, changes, None);

    assert!(matches!(result, Err(UpdateUserError::Forbidden(ref fields)) if fields == &["active"]), "{result:?}");
}

#[test]
fn a_customer_updating_someone_else_gets_not_found() {
    let mut ports = Ports::default();
    ports.users.expect_find_by_id().never();
    ports.users.expect_update().never();
    let service = ports.service();
    let bob = other_customer();

    for changes in [
        UserChanges { name: Some(name("Mallory")), ..UserChanges::default() },
        // Not "forbidden" either: that would confirm the account exists.
        UserChanges { role: Some(Role::Admin), ..UserChanges::default() },
        UserChanges { password: Some(password("a brand new password")), ..UserChanges::default() },
    ] {
        let result = service.update(actor(&customer()), bob.id, changes, None);
        assert!(matches!(result, Err(UpdateUserError::NotFound)), "{result:?}");
    }
}

#[test]
fn a_customer_renames_themselves_without_revoking_sessions() {
    let ada = customer();
    let renamed = User { name: name("Ada L."), version: 4, ..ada.clone() };
    let mut ports = Ports::default();
    let expected = UserUpdate { name: Some(name("Ada L.")), ..UserUpdate::default() };
    let returned = renamed.clone();
    ports
        .users
        .expect_update()
        .with(eq(ada.id), eq(expected), eq(Some(3)), eq(now()))
        .times(1)
        .returning(move |_, _, _, _| Ok(returned.clone()));

    let changes = UserChanges { name: Some(name("Ada L.")), ..UserChanges::default() };
    let user = ports.service().update(actor(&ada), ada.id, changes, Some(3)).unwrap();

    assert_eq!(user, renamed);
}

#[test]
fn an_admin_may_change_role_and_reactivate_without_revoking_sessions() {
    let bob = other_customer();
    let mut ports = Ports::default();
    let expected =
        UserUpdate { role: Some(Role::Admin), active: Some(true), revoke_access_tokens: true, ..UserUpdate::default() };
    let returned = User { role: Role::Admin, ..bob.clone() };
    ports
        .users
        .expect_update()
        .with(eq(bob.id), eq(expected), eq(None), eq(now()))
        .times(1)
        .returning(move |_, _, _, _| Ok(returned.clone()));

    let changes = UserChanges { role: Some(Role::Admin), active: Some(true), ..UserChanges::default() };
    let user = ports.service().update(actor(&admin()), bob.id, changes, None).unwrap();

    assert_eq!(user.role, Role::Admin);
}

#[test]
fn deactivation_revokes_sessions() {
    let bob = other_customer();
    let mut ports = Ports::default();
    let expected = UserUpdate { active: Some(false), revoke_sessions: true, ..UserUpdate::default() };
    let returned = User { active: false, ..bob.clone() };
    ports
        .users
        .expect_update()
        .with(eq(bob.id), eq(expected), eq(None), eq(now()))
        .times(1)
        .returning(move |_, _, _, _| Ok(returned.clone()));

    let changes = UserChanges { active: Some(false), ..UserChanges::default() };
    let user = ports.service().update(actor(&admin()), bob.id, changes, None).unwrap();

    assert!(!user.active);
}

// ---- update: passwords ----------------------------------------------------------------------

#[test]
fn changing_ones_own_password_requires_the_current_one() {
    let ada = customer();
    let mut ports = Ports::default();
    ports.hasher.expect_verify().never();
    ports.hasher.expect_hash().never();
    ports.users.expect_update().never();

    let changes = UserChanges { password: Some(password("a brand new password")), ..UserChanges::default() };
    let error = ports.service().update(actor(&ada), ada.id, changes, None).unwrap_err();

    assert_eq!(violation(error), current_password_violation("required"));
}

#[test]
fn a_wrong_current_password_is_invalid_and_changes_nothing() {
    let ada = customer();
    let mut ports = Ports::default();
    let found = credentials(&ada);
    ports.users.expect_find_credentials_by_id().with(eq(ada.id)).times(1).returning(move |_| Ok(Some(found.clone())));
    ports.hasher.expect_verify().with(eq("not my password"), eq(stored_hash())).times(1).returning(|_, _| Ok(false));
    ports.hasher.expect_hash().never();
    ports.users.expect_update().never();

    let changes = UserChanges {
        password: Some(password("a brand new password")),
        current_password: Some("not my password".to_owned()),
        ..UserChanges::default()
    };
    let error = ports.service().update(actor(&ada), ada.id, changes, None).unwrap_err();

    assert_eq!(violation(error), current_password_violation("incorrect"));
}

#[test]
fn the_right_current_password_changes_the_hash_and_revokes_sessions() {
    let ada = customer();
    let mut ports = Ports::default();
    let found = credentials(&ada);
    ports.users.expect_find_credentials_by_id().with(eq(ada.id)).times(1).returning(move |_| Ok(Some(found.clone())));
    ports.hasher.expect_verify().with(eq("my old password"), eq(stored_hash())).times(1).returning(|_, _| Ok(true));
    ports.hasher.expect_hash().with(eq(password("a brand new password"))).times(1).returning(|_| Ok(new_hash()));
    let expected = UserUpdate { password_hash: Some(new_hash()), revoke_sessions: true, ..UserUpdate::default() };
    let returned = User { version: 4, ..ada.clone() };
    ports
        .users
        .expect_update()
        .with(eq(ada.id), eq(expected), eq(Some(3)), eq(now()))
        .times(1)
        .returning(move |_, _, _, _| Ok(returned.clone()));

    let changes = UserChanges {
        password: Some(password("a brand new password")),
        current_password: Some("my old password".to_owned()),
        ..UserChanges::default()
    };
    let user = ports.service().update(actor(&ada), ada.id, changes, Some(3)).unwrap();

    assert_eq!(user.version, 4);
}

#[test]
fn an_admin_changing_their_own_password_also_needs_the_current_one() {
    let grace = admin();
    let mut ports = Ports::default();
    ports.hasher.expect_hash().never();
    ports.users.expect_update().never();

    let changes = UserChanges { password: Some(password("a brand new password")), ..UserChanges::default() };
    let error = ports.service().update(actor(&grace), grace.id, changes, None).unwrap_err();

    assert_eq!(violation(error), current_password_violation("required"));
}

#[test]
fn an_admin_resets_someone_elses_password_without_knowing_it() {
    let bob = other_customer();
    let mut ports = Ports::default();
    ports.users.expect_find_credentials_by_id().never();
    ports.hasher.expect_verify().never();
    ports.hasher.expect_hash().with(eq(password("a brand new password"))).times(1).returning(|_| Ok(new_hash()));
    let expected = UserUpdate { password_hash: Some(new_hash()), revoke_sessions: true, ..UserUpdate::default() };
    let returned = bob.clone();
    ports
        .users
        .expect_update()
        .with(eq(bob.id), eq(expected), eq(None), eq(now()))
        .times(1)
        .returning(move |_, _, _, _| Ok(returned.clone()));

    let changes = UserChanges { password: Some(password("a brand new password")), ..UserChanges::default() };
    assert_eq!(ports.service().update(actor(&admin()), bob.id, changes, None).unwrap(), bob);
}

#[test]
fn a_current_password_without_a_new_one_is_invalid() {
    let ada = customer();
    let mut ports = Ports::default();
    ports.hasher.expect_verify().never();
    ports.users.expect_update().never();

    let changes = UserChanges { current_password: Some("my old password".to_owned()), ..UserChanges::default() };
    let error = ports.service().update(actor(&ada), ada.id, changes, None).unwrap_err();

    assert_eq!(violation(error), current_password_violation("unexpected"));
}

#[test]
fn a_password_change_for_a_vanished_account_is_not_found() {
    let ada = customer();
    let mut ports = Ports::default();
    ports.users.expect_find_credentials_by_id().times(1).returning(|_| Ok(None));
    ports.users.expect_update().never();

    let changes = UserChanges {
        password: Some(password("a brand new password")),
        current_password: Some("my old password".to_owned()),
        ..UserChanges::default()
    };
    let result = ports.service().update(actor(&ada), ada.id, changes, None);

    assert!(matches!(result, Err(UpdateUserError::NotFound)), "{result:?}");
}

#[test]
fn an_unusable_stored_hash_is_unexpected_not_incorrect() {
    let ada = customer();
    let mut ports = Ports::default();
    let found = credentials(&ada);
    ports.users.expect_find_credentials_by_id().times(1).returning(move |_| Ok(Some(found.clone())));
    ports.hasher.expect_verify().times(1).returning(|_, _| Err(anyhow::anyhow!("not a PHC string")));
    ports.users.expect_update().never();

    let changes = UserChanges {
        password: Some(password("a brand new password")),
        current_password: Some("my old password".to_owned()),
        ..UserChanges::default()
    };
    let result = ports.service().update(actor(&ada), ada.id, changes, None);

    assert!(matches!(result, Err(UpdateUserError::Unexpected(_))), "{result:?}");
}

// ---- update: empty changes and the store's answers ------------------------------------------

#[test]
fn an_empty_change_returns_the_current_user_without_writing() {
    let ada = customer();
    let mut ports = Ports::default();
    let found = ada.clone();
    ports.users.expect_find_by_id().with(eq(ada.id)).times(3).returning(move |_| Ok(Some(found.clone())));
    ports.users.expect_update().never();
    let service = ports.service();

    assert_eq!(service.update(actor(&ada), ada.id, UserChanges::default(), None).unwrap(), ada);
    assert_eq!(service.update(actor(&ada), ada.id, UserChanges::default(), Some(3)).unwrap(), ada);
    let stale = service.update(actor(&ada), ada.id, UserChanges::default(), Some(2));
    assert!(matches!(stale, Err(UpdateUserError::VersionMismatch)), "{stale:?}");
}

#[test]
fn an_empty_change_to_a_missing_user_is_not_found() {
    let mut ports = Ports::default();
    ports.users.expect_find_by_id().times(1).returning(|_| Ok(None));

    let result = ports.service().update(actor(&admin()), UserId::new(), UserChanges::default(), None);

    assert!(matches!(result, Err(UpdateUserError::NotFound)), "{result:?}");
}

#[test]
fn a_version_mismatch_from_the_store_is_reported() {
    let ada = customer();
    let mut ports = Ports::default();
    ports.users.expect_update().times(1).returning(|_, _, _, _| Err(UpdateError::VersionMismatch));

    let changes = UserChanges { name: Some(name("Ada L.")), ..UserChanges::default() };
    let result = ports.service().update(actor(&ada), ada.id, changes, Some(2));

    assert!(matches!(result, Err(UpdateUserError::VersionMismatch)), "{result:?}");
}

#[test]
fn a_user_deleted_before_the_write_is_not_found() {
    let mut ports = Ports::default();
    ports.users.expect_update().times(1).returning(|_, _, _, _| Err(UpdateError::NotFound));

    let changes = UserChanges { name: Some(name("Bob B.")), ..UserChanges::default() };
    let result = ports.service().update(actor(&admin()), other_customer().id, changes, None);

    assert!(matches!(result, Err(UpdateUserError::NotFound)), "{result:?}");
}

#[test]
fn update_passes_store_failures_through() {
    let mut ports = Ports::default();
    ports.users.expect_update().times(1).returning(|_, _, _, _| Err(store_down().into()));

    let changes = UserChanges { name: Some(name("Bob B.")), ..UserChanges::default() };
    let result = ports.service().update(actor(&admin()), other_customer().id, changes, None);

    assert!(matches!(result, Err(UpdateUserError::Store(StoreError::Unavailable(_)))), "{result:?}");
}
