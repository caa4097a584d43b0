use std::sync::Barrier;

use orderly_domain::StoreError;
use orderly_domain::auth::{RefreshTokenHash, Replacement, Rotation};
use orderly_domain::ports::{RefreshTokenRepository, UserRepository};
use orderly_domain::user::UserId;
use orderly_persistence::testing::TestDatabase;
use orderly_persistence::{DieselRefreshTokenRepository, DieselUserRepository};
use uuid::Uuid;

use crate::fixtures::{at, insert_user, refresh_token};

fn tokens(db: &TestDatabase) -> DieselRefreshTokenRepository {
    DieselRefreshTokenRepository::new(db.database().clone())
}

orderly_persistence::backend_tests! {
    fn a_new_family_holds_its_first_token(db: &TestDatabase) {
        let user = insert_user(db, at(0));
        let token = refresh_token(user.id, Uuid::now_v7(), at(10));
        tokens(db).start_family(&token).unwrap();

        let stored = tokens(db).find_by_hash(&token.hash).unwrap().unwrap();
        assert_eq!(stored.id, token.id);
        assert_eq!(stored.family_id, token.family_id);
        assert_eq!(stored.user_id, user.id);
        assert_eq!(stored.expires_at, token.expires_at);
        assert!(!stored.spent);
        assert!(!stored.family_revoked);
    }

    fn an_unknown_hash_finds_nothing(db: &TestDatabase) {
        let user = insert_user(db, at(0));
        tokens(db).start_family(&refresh_token(user.id, Uuid::now_v7(), at(1))).unwrap();
        assert_eq!(tokens(db).find_by_hash(&RefreshTokenHash::new("unknown".to_owned())).unwrap(), None);
    }

    fn a_family_for_an_unknown_user_is_refused(db: &TestDatabase) {
        // Foreign keys are enforced on both backends (SQLite needs the pragma for that).
        let error = tokens(db).start_family(&refresh_token(UserId::new(), Uuid::now_v7(), at(1))).unwrap_err();
        assert!(matches!(error, StoreError::Unexpected(_)), "{error:?}");
    }

    fn rotation_spends_the_token_and_stores_its_successor(db: &TestDatabase) {
        let user = insert_user(db, at(0));
        let first = refresh_token(user.id, Uuid::now_v7(), at(10));
        tokens(db).start_family(&first).unwrap();
        let next = refresh_token(user.id, first.family_id, at(20));

        assert_eq!(tokens(db).rotate(first.id, &next, at(20)).unwrap(), Rotation::Rotated);
        assert!(tokens(db).find_by_hash(&first.hash).unwrap().unwrap().spent);
        let stored = tokens(db).find_by_hash(&next.hash).unwrap().unwrap();
        assert_eq!((stored.id, stored.family_id, stored.spent), (next.id, first.family_id, false));
    }

    fn rotating_a_spent_token_is_lost_and_stores_nothing(db: &TestDatabase) {
        let user = insert_user(db, at(0));
        let first = refresh_token(user.id, Uuid::now_v7(), at(10));
        tokens(db).start_family(&first).unwrap();
        let winner = refresh_token(user.id, first.family_id, at(20));
        let loser = refresh_token(user.id, first.family_id, at(21));

        assert_eq!(tokens(db).rotate(first.id, &winner, at(20)).unwrap(), Rotation::Rotated);
        assert_eq!(tokens(db).rotate(first.id, &loser, at(21)).unwrap(), Rotation::Lost);
        assert_eq!(tokens(db).find_by_hash(&loser.hash).unwrap(), None);
        assert!(!tokens(db).find_by_hash(&winner.hash).unwrap().unwrap().spent);
    }

    fn rotating_in_a_revoked_family_is_lost(db: &TestDatabase) {
        let user = insert_user(db, at(0));
        let first = refresh_token(user.id, Uuid::now_v7(), at(10));
        tokens(db).start_family(&first).unwrap();
        tokens(db).revoke_family(first.family_id, at(15)).unwrap();
        let next = refresh_token(user.id, first.family_id, at(20));

        assert_eq!(tokens(db).rotate(first.id, &next, at(20)).unwrap(), Rotation::Lost);
        assert_eq!(tokens(db).find_by_hash(&next.hash).unwrap(), None);
        assert!(!tokens(db).find_by_hash(&first.hash).unwrap().unwrap().spent, "a lost rotation spends nothing");
    }

    fn rotating_an_unknown_token_is_lost(db: &TestDatabase) {
        let user = insert_user(db, at(0));
        let first = refresh_token(user.id, Uuid::now_v7(), at(10));
        tokens(db).start_family(&first).unwrap();
        let next = refresh_token(user.id, first.family_id, at(20));
        assert_eq!(tokens(db).rotate(Uuid::now_v7(), &next, at(20)).unwrap(), Rotation::Lost);
        assert_eq!(tokens(db).find_by_hash(&next.hash).unwrap(), None);
    }

    fn revoking_a_family_revokes_every_token_in_it_and_only_it(db: &TestDatabase) {
        let user = insert_user(db, at(0));
        let first = refresh_token(user.id, Uuid::now_v7(), at(10));
        let other = refresh_token(user.id, Uuid::now_v7(), at(10));
        tokens(db).start_family(&first).unwrap();
        tokens(db).start_family(&other).unwrap();
        let second = refresh_token(user.id, first.family_id, at(20));
        tokens(db).rotate(first.id, &second, at(20)).unwrap();

        tokens(db).revoke_family(first.family_id, at(30)).unwrap();
        assert!(tokens(db).find_by_hash(&first.hash).unwrap().unwrap().family_revoked);
        assert!(tokens(db).find_by_hash(&second.hash).unwrap().unwrap().family_revoked);
        assert!(!tokens(db).find_by_hash(&other.hash).unwrap().unwrap().family_revoked);

        // Idempotent, and a family that does not exist is not an error.
        tokens(db).revoke_family(first.family_id, at(40)).unwrap();
        tokens(db).revoke_family(Uuid::now_v7(), at(40)).unwrap();
    }

    fn eight_racing_rotations_of_one_token_let_exactly_one_through(db: &TestDatabase) {
        let user = insert_user(db, at(0));
        let first = refresh_token(user.id, Uuid::now_v7(), at(10));
        tokens(db).start_family(&first).unwrap();
        let successors: Vec<_> = (0..8).map(|i| refresh_token(user.id, first.family_id, at(20 + i))).collect();
        let barrier = Barrier::new(successors.len());

        let outcomes: Vec<Rotation> = std::thread::scope(|scope| {
            let handles: Vec<_> = successors
                .iter()
                .map(|next| {
                    let (repo, barrier) = (tokens(db), &barrier);
                    scope.spawn(move || {
                        barrier.wait();
                        repo.rotate(first.id, next, at(20)).unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|handle| handle.join().unwrap()).collect()
        });

        assert_eq!(outcomes.iter().filter(|outcome| **outcome == Rotation::Rotated).count(), 1, "{outcomes:?}");
        let stored: Vec<_> =
            successors.iter().filter(|next| tokens(db).find_by_hash(&next.hash).unwrap().is_some()).collect();
        assert_eq!(stored.len(), 1, "exactly the winner's successor is stored");
        let winner = outcomes.iter().position(|outcome| *outcome == Rotation::Rotated).unwrap();
        assert_eq!(stored[0].id, successors[winner].id);
    }

    fn rotation_records_the_successor_and_when(db: &TestDatabase) {
        let user = insert_user(db, at(0));
        let first = refresh_token(user.id, Uuid::now_v7(), at(10));
        tokens(db).start_family(&first).unwrap();
        let next = refresh_token(user.id, first.family_id, at(20));
        tokens(db).rotate(first.id, &next, at(20)).unwrap();

        let spent = tokens(db).find_by_hash(&first.hash).unwrap().unwrap();
        assert_eq!(spent.replaced, Some(Replacement { at: at(20), successor: next.id }));
        assert_eq!(tokens(db).find_by_hash(&next.hash).unwrap().unwrap().replaced, None);
    }

    fn a_retry_voids_the_unused_successor_and_stores_the_new_one(db: &TestDatabase) {
        let user = insert_user(db, at(0));
        let first = refresh_token(user.id, Uuid::now_v7(), at(10));
        tokens(db).start_family(&first).unwrap();
        let lost = refresh_token(user.id, first.family_id, at(20));
        tokens(db).rotate(first.id, &lost, at(20)).unwrap();
        let retried = refresh_token(user.id, first.family_id, at(25));

        assert_eq!(tokens(db).replace_unused_successor(first.id, lost.id, &retried, at(25)).unwrap(), Rotation::Rotated);

        // The rotation keeps its time; the voided token is spent with no successor.
        let spent = tokens(db).find_by_hash(&first.hash).unwrap().unwrap();
        assert_eq!(spent.replaced, Some(Replacement { at: at(20), successor: retried.id }));
        let voided = tokens(db).find_by_hash(&lost.hash).unwrap().unwrap();
        assert!(voided.spent && voided.replaced.is_none(), "{voided:?}");
        let live = tokens(db).find_by_hash(&retried.hash).unwrap().unwrap();
        assert!(!live.spent && !live.family_revoked);
    }

    fn a_retry_after_the_successor_was_used_is_lost(db: &TestDatabase) {
        let user = insert_user(db, at(0));
        let first = refresh_token(user.id, Uuid::now_v7(), at(10));
        tokens(db).start_family(&first).unwrap();
        let second = refresh_token(user.id, first.family_id, at(20));
        tokens(db).rotate(first.id, &second, at(20)).unwrap();
        let third = refresh_token(user.id, first.family_id, at(21));
        tokens(db).rotate(second.id, &third, at(21)).unwrap();
        let retried = refresh_token(user.id, first.family_id, at(22));

        assert_eq!(tokens(db).replace_unused_successor(first.id, second.id, &retried, at(22)).unwrap(), Rotation::Lost);
        assert_eq!(tokens(db).find_by_hash(&retried.hash).unwrap(), None);
        let spent = tokens(db).find_by_hash(&first.hash).unwrap().unwrap();
        assert_eq!(spent.replaced.map(|r| r.successor), Some(second.id), "a lost retry changes nothing");
    }

    fn a_retry_after_the_successors_access_token_was_used_is_lost(db: &TestDatabase) {
        let user = insert_user(db, at(0));
        let first = refresh_token(user.id, Uuid::now_v7(), at(10));
        tokens(db).start_family(&first).unwrap();
        let second = refresh_token(user.id, first.family_id, at(20));
        tokens(db).rotate(first.id, &second, at(20)).unwrap();

        // The access token issued with `second` was used: its pair was received.
        tokens(db).record_access_use(second.id, at(21)).unwrap();
        let retried = refresh_token(user.id, first.family_id, at(22));

        assert_eq!(tokens(db).replace_unused_successor(first.id, second.id, &retried, at(22)).unwrap(), Rotation::Lost);
        assert_eq!(tokens(db).find_by_hash(&retried.hash).unwrap(), None);
        let successor = tokens(db).find_by_hash(&second.hash).unwrap().unwrap();
        assert!(!successor.spent, "a lost retry voids nothing: {successor:?}");
        let spent = tokens(db).find_by_hash(&first.hash).unwrap().unwrap();
        assert_eq!(spent.replaced.map(|r| r.successor), Some(second.id), "a lost retry changes nothing");
        // Using the refresh token itself is unaffected by its access token's use.
        let third = refresh_token(user.id, first.family_id, at(23));
        assert_eq!(tokens(db).rotate(second.id, &third, at(23)).unwrap(), Rotation::Rotated);
    }

    fn recording_an_access_use_marks_only_that_token_and_is_idempotent(db: &TestDatabase) {
        let user = insert_user(db, at(0));
        let first = refresh_token(user.id, Uuid::now_v7(), at(10));
        tokens(db).start_family(&first).unwrap();
        let second = refresh_token(user.id, first.family_id, at(20));
        tokens(db).rotate(first.id, &second, at(20)).unwrap();

        // The spent token's own access token was used (before or after the rotation): that
        // says nothing about whether its successor's answer arrived.
        tokens(db).record_access_use(first.id, at(15)).unwrap();
        tokens(db).record_access_use(first.id, at(21)).unwrap();
        // An unknown token (its row gone, or never stored) is not an error.
        tokens(db).record_access_use(Uuid::now_v7(), at(21)).unwrap();

        let retried = refresh_token(user.id, first.family_id, at(22));
        assert_eq!(
            tokens(db).replace_unused_successor(first.id, second.id, &retried, at(22)).unwrap(),
            Rotation::Rotated
        );
        // Recording a use of the voided token's access token changes nothing for the new one.
        tokens(db).record_access_use(second.id, at(23)).unwrap();
        let again = refresh_token(user.id, first.family_id, at(24));
        assert_eq!(tokens(db).replace_unused_successor(first.id, retried.id, &again, at(24)).unwrap(), Rotation::Rotated);
    }

    fn a_retry_racing_the_successors_access_use_either_wins_or_is_lost_never_both(db: &TestDatabase) {
        for round in 0..4 {
            let user = insert_user(db, at(0));
            let first = refresh_token(user.id, Uuid::now_v7(), at(10));
            tokens(db).start_family(&first).unwrap();
            let second = refresh_token(user.id, first.family_id, at(20));
            tokens(db).rotate(first.id, &second, at(20)).unwrap();
            let retried = refresh_token(user.id, first.family_id, at(30));
            let barrier = Barrier::new(2);
            let (first_id, second_id, next) = (first.id, second.id, &retried);

            let barrier = &barrier;
            let outcome = std::thread::scope(|scope| {
                let repo = tokens(db);
                let recording = scope.spawn(move || {
                    barrier.wait();
                    repo.record_access_use(second_id, at(30)).unwrap();
                });
                let repo = tokens(db);
                let retry = scope.spawn(move || {
                    barrier.wait();
                    repo.replace_unused_successor(first_id, second_id, next, at(30)).unwrap()
                });
                recording.join().unwrap();
                retry.join().unwrap()
            });

            // Whichever went first, the family has exactly one live token, and a retry now is
            // lost: either the successor's access use is recorded, or it was voided already.
            let live = [&second, &retried]
                .iter()
                .filter(|token| tokens(db).find_by_hash(&token.hash).unwrap().is_some_and(|stored| !stored.spent))
                .count();
            assert_eq!(live, 1, "round {round}: {outcome:?}");
            let late = refresh_token(user.id, first.family_id, at(31));
            let successor = if outcome == Rotation::Rotated { retried.id } else { second.id };
            let expected = if outcome == Rotation::Rotated { Rotation::Rotated } else { Rotation::Lost };
            assert_eq!(
                tokens(db).replace_unused_successor(first.id, successor, &late, at(31)).unwrap(),
                expected,
                "round {round}: the retried token's own access token was never used"
            );
        }
    }

    fn a_retry_in_a_revoked_family_or_naming_another_successor_is_lost(db: &TestDatabase) {
        let user = insert_user(db, at(0));
        let first = refresh_token(user.id, Uuid::now_v7(), at(10));
        tokens(db).start_family(&first).unwrap();
        let second = refresh_token(user.id, first.family_id, at(20));
        tokens(db).rotate(first.id, &second, at(20)).unwrap();

        // `second` is not the successor of `second`: nothing is voided.
        let next = refresh_token(user.id, first.family_id, at(21));
        assert_eq!(tokens(db).replace_unused_successor(second.id, second.id, &next, at(21)).unwrap(), Rotation::Lost);
        assert!(!tokens(db).find_by_hash(&second.hash).unwrap().unwrap().spent, "rolled back");

        tokens(db).revoke_family(first.family_id, at(22)).unwrap();
        let next = refresh_token(user.id, first.family_id, at(23));
        assert_eq!(tokens(db).replace_unused_successor(first.id, second.id, &next, at(23)).unwrap(), Rotation::Lost);
    }

    fn eight_racing_retries_leave_exactly_one_live_token(db: &TestDatabase) {
        let user = insert_user(db, at(0));
        let first = refresh_token(user.id, Uuid::now_v7(), at(10));
        tokens(db).start_family(&first).unwrap();
        let lost = refresh_token(user.id, first.family_id, at(20));
        tokens(db).rotate(first.id, &lost, at(20)).unwrap();
        let retries: Vec<_> = (0..8).map(|i| refresh_token(user.id, first.family_id, at(30 + i))).collect();
        let barrier = Barrier::new(retries.len());

        let outcomes: Vec<Rotation> = std::thread::scope(|scope| {
            let handles: Vec<_> = retries
                .iter()
                .map(|next| {
                    let (repo, barrier) = (tokens(db), &barrier);
                    scope.spawn(move || {
                        barrier.wait();
                        repo.replace_unused_successor(first.id, lost.id, next, at(30)).unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|handle| handle.join().unwrap()).collect()
        });

        assert_eq!(outcomes.iter().filter(|outcome| **outcome == Rotation::Rotated).count(), 1, "{outcomes:?}");
        let live: Vec<_> = std::iter::once(&lost)
            .chain(&retries)
            .filter(|token| tokens(db).find_by_hash(&token.hash).unwrap().is_some_and(|stored| !stored.spent))
            .collect();
        assert_eq!(live.len(), 1, "the family has exactly one live token");
    }

    fn revoking_a_family_bumps_its_users_token_generation_once(db: &TestDatabase) {
        let user = insert_user(db, at(0));
        let users = DieselUserRepository::new(db.database().clone());
        let first = refresh_token(user.id, Uuid::now_v7(), at(10));
        tokens(db).start_family(&first).unwrap();
        assert_eq!(users.token_generation(user.id).unwrap(), Some(0));

        tokens(db).revoke_family(first.family_id, at(20)).unwrap();
        assert_eq!(users.token_generation(user.id).unwrap(), Some(1));
        // Revoking a revoked family revokes nothing, so bumps nothing.
        tokens(db).revoke_family(first.family_id, at(30)).unwrap();
        assert_eq!(users.token_generation(user.id).unwrap(), Some(1));
        assert_eq!(users.token_generation(UserId::new()).unwrap(), None);
    }
}
