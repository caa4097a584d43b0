use std::collections::HashSet;
use std::sync::Barrier;

use orderly_domain::pagination::{Page, PageLimit};
use orderly_domain::ports::{InsertUserError, RefreshTokenRepository, UpdateError, UserRepository};
use orderly_domain::user::{PasswordHash, Role, User, UserCursor, UserId, UserName, UserQuery, UserSort, UserUpdate};
use orderly_persistence::DieselRefreshTokenRepository;
use orderly_persistence::testing::TestDatabase;
use uuid::Uuid;

use crate::fixtures::{at, insert_user, new_user, refresh_token, registered, users};

orderly_persistence::backend_tests! {
    fn inserted_users_are_found_by_id_and_email(db: &TestDatabase) {
        let repo = users(db);
        let new = new_user("ada@example.com", Role::Admin, at(0));
        let inserted = repo.insert(&new, &registered(&new)).unwrap();
        assert_eq!(inserted.id, new.id);
        assert_eq!(inserted.email.as_str(), "ada@example.com");
        assert_eq!(inserted.role, Role::Admin);
        assert!(inserted.active);
        assert_eq!(inserted.version, 1);
        assert_eq!((inserted.created_at, inserted.updated_at), (at(0), at(0)));

        assert_eq!(repo.find_by_id(new.id).unwrap(), Some(inserted.clone()));
        let by_email = repo.find_credentials_by_email(&new.email).unwrap().unwrap();
        assert_eq!(by_email.user, inserted);
        assert_eq!(by_email.password_hash, new.password_hash);
        let by_id = repo.find_credentials_by_id(new.id).unwrap().unwrap();
        assert_eq!(by_id.user, inserted);
        assert_eq!(by_id.password_hash, new.password_hash);
    }

    fn unknown_users_are_none(db: &TestDatabase) {
        let repo = users(db);
        insert_user(db, at(0));
        assert_eq!(repo.find_by_id(UserId::new()).unwrap(), None);
        assert!(repo.find_credentials_by_id(UserId::new()).unwrap().is_none());
        let nobody = orderly_domain::user::Email::parse("nobody@example.com").unwrap();
        assert!(repo.find_credentials_by_email(&nobody).unwrap().is_none());
    }

    fn sub_second_times_survive_the_round_trip(db: &TestDatabase) {
        let repo = users(db);
        let created_at = at(0) + chrono::Duration::nanoseconds(123_456_789);
        let new = new_user("time@example.com", Role::Customer, created_at);
        let inserted = repo.insert(&new, &registered(&new)).unwrap();
        // Microseconds are what both databases keep; the returned user says what was stored.
        assert_eq!(inserted.created_at, at(0) + chrono::Duration::microseconds(123_456));
        assert_eq!(repo.find_by_id(new.id).unwrap().unwrap(), inserted);
    }

    fn the_registration_event_is_written_with_the_user(db: &TestDatabase) {
        let new = new_user("ada@example.com", Role::Customer, at(5));
        users(db).insert(&new, &registered(&new)).unwrap();
        let events = db.recorded_events();
        assert_eq!(events.len(), 1);
        let event = &events[0];
        assert_eq!(event.event_type, "user.registered");
        assert_eq!(event.subject_type, "user");
        assert_eq!(event.subject_id, new.id.to_string());
        assert_eq!(event.occurred_at, at(5));
        assert_eq!(event.data["email"], "ada@example.com");
        assert_eq!(event.data["role"], "customer");
        assert_eq!(Uuid::parse_str(&event.id).unwrap().get_version_num(), 7);
    }

    fn a_taken_email_is_email_taken_and_writes_nothing(db: &TestDatabase) {
        let repo = users(db);
        let first = new_user("ada@example.com", Role::Customer, at(0));
        repo.insert(&first, &registered(&first)).unwrap();

        let second = new_user("ada@example.com", Role::Admin, at(1));
        let error = repo.insert(&second, &registered(&second)).unwrap_err();
        assert!(matches!(error, InsertUserError::EmailTaken), "{error:?}");
        assert_eq!(repo.find_by_id(second.id).unwrap(), None);
        // The failed insert's event was rolled back with it.
        let events = db.recorded_events();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].subject_id, first.id.to_string());
        // The connection is still usable after the failed transaction.
        assert!(repo.find_by_id(first.id).unwrap().is_some());
    }

    fn racing_registrations_of_one_email_let_exactly_one_in(db: &TestDatabase) {
        let barrier = Barrier::new(8);
        let outcomes: Vec<Result<User, InsertUserError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let (repo, barrier) = (users(db), &barrier);
                    scope.spawn(move || {
                        let new = new_user("race@example.com", Role::Customer, at(i));
                        barrier.wait();
                        repo.insert(&new, &registered(&new))
                    })
                })
                .collect();
            handles.into_iter().map(|handle| handle.join().unwrap()).collect()
        });
        assert_eq!(outcomes.iter().filter(|outcome| outcome.is_ok()).count(), 1, "{outcomes:?}");
        assert!(outcomes.iter().all(|outcome| matches!(outcome, Ok(_) | Err(InsertUserError::EmailTaken))), "{outcomes:?}");
        assert_eq!(db.recorded_events().len(), 1);
    }

    fn update_changes_only_the_given_fields_and_bumps_the_version(db: &TestDatabase) {
        let repo = users(db);
        let user = insert_user(db, at(0));
        let update = UserUpdate { name: Some(UserName::parse("Grace").unwrap()), ..UserUpdate::default() };
        let Ok(updated) = repo.update(user.id, &update, Some(1), at(60)) else {
            panic!("expected Updated");
        };
        assert_eq!(updated.name.as_str(), "Grace");
        assert_eq!(updated.version, 2);
        assert_eq!(updated.updated_at, at(60));
        assert_eq!(updated.created_at, user.created_at);
        assert_eq!((updated.email.clone(), updated.role, updated.active), (user.email.clone(), user.role, user.active));
        assert_eq!(repo.find_by_id(user.id).unwrap(), Some(updated));

        let update = UserUpdate {
            password_hash: Some(PasswordHash::new("new-hash".to_owned())),
            role: Some(Role::Admin),
            active: Some(false),
            ..UserUpdate::default()
        };
        let Ok(updated) = repo.update(user.id, &update, None, at(120)) else {
            panic!("expected Updated");
        };
        assert_eq!((updated.role, updated.active, updated.version), (Role::Admin, false, 3));
        assert_eq!(updated.name.as_str(), "Grace");
        let credentials = repo.find_credentials_by_id(user.id).unwrap().unwrap();
        assert_eq!(credentials.password_hash.as_str(), "new-hash");
    }

    fn a_revoking_update_bumps_the_token_generation_in_the_same_statement(db: &TestDatabase) {
        let repo = users(db);
        let user = insert_user(db, at(0));
        assert_eq!(repo.token_generation(user.id).unwrap(), Some(0));
        let rename = UserUpdate { name: Some(UserName::parse("Grace").unwrap()), ..UserUpdate::default() };
        repo.update(user.id, &rename, None, at(10)).unwrap();
        assert_eq!(repo.token_generation(user.id).unwrap(), Some(0), "a rename revokes nothing");

        let demote = UserUpdate { role: Some(Role::Customer), revoke_access_tokens: true, ..UserUpdate::default() };
        repo.update(user.id, &demote, None, at(20)).unwrap();
        assert_eq!(repo.token_generation(user.id).unwrap(), Some(1));
        let deactivate = UserUpdate { active: Some(false), revoke_sessions: true, ..UserUpdate::default() };
        repo.update(user.id, &deactivate, None, at(30)).unwrap();
        assert_eq!(repo.token_generation(user.id).unwrap(), Some(2));
        assert_eq!(repo.find_credentials_by_id(user.id).unwrap().unwrap().token_generation, 2);

        // A mismatched version changes nothing, the generation included.
        assert!(matches!(repo.update(user.id, &deactivate, Some(1), at(40)), Err(UpdateError::VersionMismatch)));
        assert_eq!(repo.token_generation(user.id).unwrap(), Some(2));
    }

    fn a_stale_version_is_a_mismatch_and_changes_nothing(db: &TestDatabase) {
        let repo = users(db);
        let user = insert_user(db, at(0));
        let update = UserUpdate { active: Some(false), revoke_sessions: true, ..UserUpdate::default() };
        let tokens = DieselRefreshTokenRepository::new(db.database().clone());
        let token = refresh_token(user.id, Uuid::now_v7(), at(1));
        tokens.start_family(&token).unwrap();

        assert!(matches!(repo.update(user.id, &update, Some(7), at(60)), Err(UpdateError::VersionMismatch)));
        assert_eq!(repo.find_by_id(user.id).unwrap(), Some(user));
        assert!(!tokens.find_by_hash(&token.hash).unwrap().unwrap().family_revoked);
    }

    fn updating_a_missing_user_is_not_found(db: &TestDatabase) {
        let repo = users(db);
        insert_user(db, at(0));
        let update = UserUpdate { active: Some(false), ..UserUpdate::default() };
        assert!(matches!(repo.update(UserId::new(), &update, Some(1), at(1)), Err(UpdateError::NotFound)));
        assert!(matches!(repo.update(UserId::new(), &update, None, at(1)), Err(UpdateError::NotFound)));
    }

    fn racing_updates_of_one_version_let_exactly_one_win(db: &TestDatabase) {
        let user = insert_user(db, at(0));
        let barrier = Barrier::new(8);
        let outcomes: Vec<Result<User, UpdateError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let (repo, barrier) = (users(db), &barrier);
                    scope.spawn(move || {
                        let update =
                            UserUpdate { name: Some(UserName::parse(&format!("Writer {i}")).unwrap()), ..UserUpdate::default() };
                        barrier.wait();
                        repo.update(user.id, &update, Some(1), at(60))
                    })
                })
                .collect();
            handles.into_iter().map(|handle| handle.join().unwrap()).collect()
        });
        let winners: Vec<&User> =
            outcomes.iter().filter_map(|outcome| outcome.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "{outcomes:?}");
        assert_eq!(outcomes.iter().filter(|outcome| matches!(outcome, Err(UpdateError::VersionMismatch))).count(), 7);
        assert_eq!(users(db).find_by_id(user.id).unwrap().unwrap(), *winners[0]);
    }

    fn revoke_sessions_revokes_every_family_of_that_user_only(db: &TestDatabase) {
        let repo = users(db);
        let tokens = DieselRefreshTokenRepository::new(db.database().clone());
        let (ada, grace) = (insert_user(db, at(0)), insert_user(db, at(1)));
        let ada_tokens: Vec<_> = (0..3).map(|i| refresh_token(ada.id, Uuid::now_v7(), at(10 + i))).collect();
        let grace_token = refresh_token(grace.id, Uuid::now_v7(), at(10));
        for token in ada_tokens.iter().chain([&grace_token]) {
            tokens.start_family(token).unwrap();
        }
        // One of Ada's families was already revoked; it stays revoked.
        tokens.revoke_family(ada_tokens[0].family_id, at(20)).unwrap();

        let rename = UserUpdate { name: Some(UserName::parse("Ada").unwrap()), ..UserUpdate::default() };
        repo.update(ada.id, &rename, Some(1), at(30)).unwrap();
        assert!(!tokens.find_by_hash(&ada_tokens[1].hash).unwrap().unwrap().family_revoked, "no revocation asked");

        let password = UserUpdate {
            password_hash: Some(PasswordHash::new("changed".to_owned())),
            revoke_sessions: true,
            ..UserUpdate::default()
        };
        repo.update(ada.id, &password, Some(2), at(40)).unwrap();
        for token in &ada_tokens {
            assert!(tokens.find_by_hash(&token.hash).unwrap().unwrap().family_revoked);
        }
        assert!(!tokens.find_by_hash(&grace_token.hash).unwrap().unwrap().family_revoked);
    }

    fn listing_walks_every_row_exactly_once_in_both_directions_with_filters(db: &TestDatabase) {
        let repo = users(db);
        // 13 users in 5 distinct creation times (ties of up to 4), with ids that do not follow
        // insertion order, so the id tie-breaker is really exercised.
        let mut all = Vec::new();
        for i in 0..13_u32 {
            let role = if i % 3 == 0 { Role::Admin } else { Role::Customer };
            let mut new = new_user(&format!("user{i}@example.com"), role, at(i64::from(i % 5)));
            new.id = UserId::from_uuid(Uuid::from_u128(u128::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)));
            let mut user = repo.insert(&new, &registered(&new)).unwrap();
            if i % 4 == 1 {
                let deactivate = UserUpdate { active: Some(false), ..UserUpdate::default() };
                let Ok(updated) = repo.update(user.id, &deactivate, None, at(100)) else {
                    panic!("expected Updated");
                };
                user = updated;
            }
            all.push(user);
        }

        let filters = [
            (None, None),
            (Some(Role::Admin), None),
            (Some(Role::Customer), None),
            (None, Some(true)),
            (None, Some(false)),
            (Some(Role::Customer), Some(false)),
            (Some(Role::Admin), Some(true)),
        ];
        for (role, active) in filters {
            for sort in [UserSort::CreatedAtAscending, UserSort::CreatedAtDescending] {
                for limit in [1, 2, 5, 100] {
                    let mut expected: Vec<&User> = all
                        .iter()
                        .filter(|user| role.is_none_or(|role| user.role == role))
                        .filter(|user| active.is_none_or(|active| user.active == active))
                        .collect();
                    expected.sort_by_key(|user| (user.created_at, user.id));
                    if sort == UserSort::CreatedAtDescending {
                        expected.reverse();
                    }
                    let walked = walk(&repo, UserQuery { role, active, sort, after: None, limit: PageLimit::new(limit).unwrap() });
                    let expected: Vec<UserId> = expected.iter().map(|user| user.id).collect();
                    assert_eq!(walked, expected, "role {role:?}, active {active:?}, {sort:?}, limit {limit}");
                }
            }
        }
    }

    fn rows_inserted_during_a_walk_neither_repeat_nor_shift_rows(db: &TestDatabase) {
        let repo = users(db);
        let originals: Vec<User> = (0..6).map(|i| insert_user(db, at(10 + i / 2))).collect();
        let limit = PageLimit::new(2).unwrap();
        let mut query = UserQuery { limit, ..UserQuery::default() };
        let mut seen = Vec::new();
        let mut late = Vec::new();
        loop {
            let page = Page::from_overfetched(repo.list(&query).unwrap(), limit);
            seen.extend(page.items.iter().map(|user| user.id));
            if seen.len() == 2 {
                // Behind the cursor (never seen) and ahead of it (seen at the end).
                insert_user(db, at(0));
                late.push(insert_user(db, at(99)).id);
            }
            if !page.has_more {
                break;
            }
            query.after = page.items.last().map(UserCursor::of);
        }
        let mut expected: Vec<UserId> = originals.iter().map(|user| user.id).collect();
        expected.extend(late);
        assert_eq!(seen, expected);
        assert_eq!(seen.iter().collect::<HashSet<_>>().len(), seen.len());
    }

    fn an_empty_table_lists_nothing(db: &TestDatabase) {
        let query = UserQuery { limit: PageLimit::new(5).unwrap(), ..UserQuery::default() };
        assert!(users(db).list(&query).unwrap().is_empty());
    }

    fn list_fetches_one_row_beyond_the_limit(db: &TestDatabase) {
        for i in 0..5 {
            insert_user(db, at(i));
        }
        let query = UserQuery { limit: PageLimit::new(3).unwrap(), ..UserQuery::default() };
        assert_eq!(users(db).list(&query).unwrap().len(), 4);
    }
}

/// Walks every page the way the domain does and returns the ids in the order seen.
fn walk(repo: &impl UserRepository, mut query: UserQuery) -> Vec<UserId> {
    let mut seen = Vec::new();
    for _ in 0..100 {
        let rows = repo.list(&query).unwrap();
        assert!(rows.len() <= usize::from(query.limit.get()) + 1);
        let page = Page::from_overfetched(rows, query.limit);
        seen.extend(page.items.iter().map(|user| user.id));
        if !page.has_more {
            return seen;
        }
        query.after = page.items.last().map(UserCursor::of);
    }
    panic!("pagination did not end");
}
