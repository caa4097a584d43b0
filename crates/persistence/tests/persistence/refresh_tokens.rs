use std::sync::Barrier;

use orderly_domain::StoreError;
use orderly_domain::auth::{RefreshTokenHash, Rotation};
use orderly_domain::ports::RefreshTokenRepository;
use orderly_domain::user::UserId;
use orderly_persistence::DieselRefreshTokenRepository;
use orderly_persistence::testing::TestDatabase;
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
}
