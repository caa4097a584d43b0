//! The rules of `SessionService`, checked through mocked ports. Unconfigured mock methods panic
//! when called, so a failed login that issues no token is asserted by giving the token service no
//! expectations at all.

use std::sync::Arc;

use chrono::Duration;
use mockall::predicate::eq;

use super::*;
use crate::Actor;
use crate::auth::{AccessToken, RefreshTokenHash, RefreshTokenSecret, Replacement};
use crate::ports::{
    MockPasswordHasher, MockRefreshTokenRepository, MockTokenService, MockUserRepository, TokenRejected,
};
use crate::services::fixtures::{admin, credentials, customer, dummy_hash, email, fixed_clock, now, stored_hash};
use crate::user::{Role, User};

#[derive(Default)]
struct Ports {
    users: MockUserRepository,
    refresh_tokens: MockRefreshTokenRepository,
    hasher: MockPasswordHasher,
    tokens: MockTokenService,
}

impl Ports {
    fn service(self) -> SessionService {
        SessionService::new(
            Arc::new(self.users),
            Arc::new(self.refresh_tokens),
            Arc::new(self.hasher),
            Arc::new(self.tokens),
            fixed_clock(),
        )
    }

    /// The token service issues one access token for `claims` at `now()` and mints one refresh
    /// token living 30 days. The access token names a refresh token (which one is checked in
    /// `every_access_token_names_the_refresh_token_issued_with_it`).
    fn expect_pair_for(&mut self, claims: AccessClaims) {
        self.tokens
            .expect_issue_access_token()
            .withf(move |issued, at| {
                issued.refresh_token_id.is_some()
                    && AccessClaims { refresh_token_id: None, ..*issued } == claims
                    && *at == now()
            })
            .times(1)
            .returning(|_, _| Ok(access_token()));
        self.tokens
            .expect_mint_refresh_token()
            .times(1)
            .returning(|| Ok((RefreshTokenSecret::new("next-refresh-secret".to_owned()), next_hash())));
        self.tokens.expect_refresh_token_lifetime().return_const(refresh_lifetime());
    }

    /// `PRESENTED` hashes to `presented_hash()`, which the store resolves to `stored`.
    fn expect_presented_token(&mut self, stored: Option<StoredRefreshToken>) {
        self.tokens.expect_hash_refresh_token().with(eq(PRESENTED)).times(1).return_const(presented_hash());
        self.refresh_tokens
            .expect_find_by_hash()
            .with(eq(presented_hash()))
            .times(1)
            .returning(move |_| Ok(stored.clone()));
    }
}

const PRESENTED: &str = "presented-refresh-secret";

fn presented_hash() -> RefreshTokenHash {
    RefreshTokenHash::new("digest-of-presented".to_owned())
}

fn next_hash() -> RefreshTokenHash {
    RefreshTokenHash::new("digest-of-next".to_owned())
}

fn refresh_lifetime() -> Duration {
    Duration::days(30)
}

fn access_token() -> AccessToken {
    AccessToken { token: "signed.access.token".to_owned(), expires_in_seconds: 900 }
}

fn expected_pair() -> TokenPair {
    TokenPair {
        access: access_token(),
        refresh: RefreshTokenSecret::new("next-refresh-secret".to_owned()),
        refresh_expires_in_seconds: 2_592_000,
    }
}

/// A live, unspent token of `user`'s, issued a day ago.
fn stored_token(user: &User) -> StoredRefreshToken {
    StoredRefreshToken {
        id: Uuid::now_v7(),
        family_id: Uuid::now_v7(),
        user_id: user.id,
        expires_at: now() + Duration::days(29),
        spent: false,
        replaced: None,
        family_revoked: false,
    }
}

fn claims_of(user: &User) -> AccessClaims {
    AccessClaims { user_id: user.id, role: user.role, generation: 0, refresh_token_id: None }
}

// ---- login ----------------------------------------------------------------------------------

#[test]
fn login_with_the_right_password_starts_a_new_family() {
    let ada = customer();
    let mut ports = Ports::default();
    let found = credentials(&ada);
    ports
        .users
        .expect_find_credentials_by_email()
        .with(eq(email("ada@example.com")))
        .times(1)
        .returning(move |_| Ok(Some(found.clone())));
    ports.hasher.expect_dummy_hash().never();
    ports
        .hasher
        .expect_verify()
        .with(eq("correct horse battery"), eq(stored_hash()))
        .times(1)
        .returning(|_, _| Ok(true));
    ports.expect_pair_for(claims_of(&ada));
    let user_id = ada.id;
    ports
        .refresh_tokens
        .expect_start_family()
        .withf(move |token| {
            token.user_id == user_id
                && token.hash == next_hash()
                && token.issued_at == now()
                && token.expires_at == now() + refresh_lifetime()
                && token.id != token.family_id
        })
        .times(1)
        .returning(|_| Ok(()));

    // The raw email is normalised the same way registration normalised it.
    let pair = ports.service().login("  Ada@Example.COM ", "correct horse battery").unwrap();

    assert_eq!(pair, expected_pair());
}

#[test]
fn each_login_gets_its_own_family() {
    let ada = customer();
    let mut ports = Ports::default();
    let found = credentials(&ada);
    ports.users.expect_find_credentials_by_email().times(2).returning(move |_| Ok(Some(found.clone())));
    ports.hasher.expect_verify().times(2).returning(|_, _| Ok(true));
    ports.tokens.expect_issue_access_token().times(2).returning(|_, _| Ok(access_token()));
    ports
        .tokens
        .expect_mint_refresh_token()
        .times(2)
        .returning(|| Ok((RefreshTokenSecret::new("s".to_owned()), next_hash())));
    ports.tokens.expect_refresh_token_lifetime().return_const(refresh_lifetime());
    let families = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&families);
    ports.refresh_tokens.expect_start_family().times(2).returning(move |token| {
        seen.lock().unwrap().push(token.family_id);
        Ok(())
    });

    let service = ports.service();
    service.login("ada@example.com", "correct horse battery").unwrap();
    service.login("ada@example.com", "correct horse battery").unwrap();

    let families = families.lock().unwrap();
    assert_ne!(families[0], families[1]);
}

#[test]
fn an_unknown_email_still_costs_one_verification_against_the_dummy_hash() {
    let mut ports = Ports::default();
    ports
        .users
        .expect_find_credentials_by_email()
        .with(eq(email("nobody@example.com")))
        .times(1)
        .returning(|_| Ok(None));
    ports.hasher.expect_dummy_hash().times(1).returning(dummy_hash);
    ports.hasher.expect_verify().with(eq("some password"), eq(dummy_hash())).times(1).returning(|_, _| Ok(false));
    ports.refresh_tokens.expect_start_family().never();

    let result = ports.service().login("nobody@example.com", "some password");

    assert!(matches!(result, Err(LoginError::InvalidCredentials)), "{result:?}");
}

#[test]
fn any_spelling_of_an_email_is_looked_up_in_its_one_normalised_spelling() {
    let mut ports = Ports::default();
    // u + combining diaeresis, capitals and spaces: looked up as "jürgen@" with a precomposed ü.
    ports
        .users
        .expect_find_credentials_by_email()
        .withf(|email| email.as_str() == "j\u{fc}rgen@example.com")
        .times(1)
        .returning(|_| Ok(None));
    ports.hasher.expect_dummy_hash().times(1).returning(dummy_hash);
    ports.hasher.expect_verify().times(1).returning(|_, _| Ok(false));

    let result = ports.service().login(" JU\u{308}RGEN@example.com ", "some password");

    assert!(matches!(result, Err(LoginError::InvalidCredentials)), "{result:?}");
}

#[test]
fn an_unknown_email_fails_even_if_the_dummy_hash_were_to_match() {
    let mut ports = Ports::default();
    ports.users.expect_find_credentials_by_email().times(1).returning(|_| Ok(None));
    ports.hasher.expect_dummy_hash().times(1).returning(dummy_hash);
    ports.hasher.expect_verify().with(eq("some password"), eq(dummy_hash())).times(1).returning(|_, _| Ok(true));

    let result = ports.service().login("nobody@example.com", "some password");

    assert!(matches!(result, Err(LoginError::InvalidCredentials)), "{result:?}");
}

#[test]
fn a_malformed_email_is_a_failed_login_with_the_same_work() {
    let mut ports = Ports::default();
    // Not looked up (it cannot exist), but the argon2 work is still done.
    ports.users.expect_find_credentials_by_email().never();
    ports.hasher.expect_dummy_hash().times(1).returning(dummy_hash);
    ports.hasher.expect_verify().with(eq("some password"), eq(dummy_hash())).times(1).returning(|_, _| Ok(false));

    let result = ports.service().login("not an email", "some password");

    assert!(matches!(result, Err(LoginError::InvalidCredentials)), "{result:?}");
}

#[test]
fn a_wrong_password_is_invalid_credentials() {
    let ada = customer();
    let mut ports = Ports::default();
    let found = credentials(&ada);
    ports.users.expect_find_credentials_by_email().times(1).returning(move |_| Ok(Some(found.clone())));
    ports.hasher.expect_dummy_hash().never();
    ports.hasher.expect_verify().with(eq("wrong password"), eq(stored_hash())).times(1).returning(|_, _| Ok(false));
    ports.refresh_tokens.expect_start_family().never();

    let result = ports.service().login("ada@example.com", "wrong password");

    assert!(matches!(result, Err(LoginError::InvalidCredentials)), "{result:?}");
}

#[test]
fn a_deactivated_user_with_the_right_password_is_invalid_credentials() {
    let ada = User { active: false, ..customer() };
    let mut ports = Ports::default();
    let found = credentials(&ada);
    ports.users.expect_find_credentials_by_email().times(1).returning(move |_| Ok(Some(found.clone())));
    ports
        .hasher
        .expect_verify()
        .with(eq("correct horse battery"), eq(stored_hash()))
        .times(1)
        .returning(|_, _| Ok(true));
    ports.tokens.expect_issue_access_token().never();
    ports.refresh_tokens.expect_start_family().never();

    let result = ports.service().login("ada@example.com", "correct horse battery");

    assert!(matches!(result, Err(LoginError::InvalidCredentials)), "{result:?}");
}

#[test]
fn an_unusable_stored_hash_is_unexpected_not_invalid_credentials() {
    let ada = customer();
    let mut ports = Ports::default();
    let found = credentials(&ada);
    ports.users.expect_find_credentials_by_email().times(1).returning(move |_| Ok(Some(found.clone())));
    ports.hasher.expect_verify().times(1).returning(|_, _| Err(anyhow::anyhow!("not a PHC string")));

    let result = ports.service().login("ada@example.com", "correct horse battery");

    assert!(matches!(result, Err(LoginError::Unexpected(_))), "{result:?}");
}

#[test]
fn login_passes_store_failures_through() {
    let mut ports = Ports::default();
    ports
        .users
        .expect_find_credentials_by_email()
        .times(1)
        .returning(|_| Err(StoreError::Unavailable(anyhow::anyhow!("connection refused"))));

    let result = ports.service().login("ada@example.com", "correct horse battery");

    assert!(matches!(result, Err(LoginError::Store(StoreError::Unavailable(_)))), "{result:?}");
}

// ---- refresh --------------------------------------------------------------------------------

#[test]
fn an_unknown_refresh_token_is_invalid() {
    let mut ports = Ports::default();
    ports.expect_presented_token(None);

    let result = ports.service().refresh(PRESENTED);

    assert!(matches!(result, Err(RefreshError::InvalidToken)), "{result:?}");
}

#[test]
fn an_expired_refresh_token_is_invalid() {
    for expires_at in [now(), now() - Duration::seconds(1)] {
        let mut ports = Ports::default();
        ports.expect_presented_token(Some(StoredRefreshToken { expires_at, ..stored_token(&customer()) }));
        ports.users.expect_find_credentials_by_id().never();
        ports.refresh_tokens.expect_rotate().never();
        ports.refresh_tokens.expect_revoke_family().never();

        let result = ports.service().refresh(PRESENTED);

        assert!(matches!(result, Err(RefreshError::InvalidToken)), "expiring at {expires_at}: {result:?}");
    }
}

#[test]
fn a_token_of_a_revoked_family_is_invalid_and_not_revoked_again() {
    // Spent as well: once the family is revoked, replaying its tokens is no longer news.
    let stored = StoredRefreshToken { family_revoked: true, spent: true, ..stored_token(&customer()) };
    let mut ports = Ports::default();
    ports.expect_presented_token(Some(stored));
    ports.refresh_tokens.expect_revoke_family().never();
    ports.refresh_tokens.expect_rotate().never();

    let result = ports.service().refresh(PRESENTED);

    assert!(matches!(result, Err(RefreshError::InvalidToken)), "{result:?}");
}

#[test]
fn a_spent_token_revokes_its_family_and_reports_reuse() {
    let stored = StoredRefreshToken { spent: true, ..stored_token(&customer()) };
    let family_id = stored.family_id;
    let mut ports = Ports::default();
    ports.expect_presented_token(Some(stored));
    ports.refresh_tokens.expect_revoke_family().with(eq(family_id), eq(now())).times(1).returning(|_, _| Ok(()));
    ports.users.expect_find_credentials_by_id().never();
    ports.refresh_tokens.expect_rotate().never();

    let result = ports.service().refresh(PRESENTED);

    assert!(matches!(result, Err(RefreshError::ReuseDetected { family_id: f }) if f == family_id), "{result:?}");
}

#[test]
fn a_deactivated_user_cannot_refresh() {
    let ada = User { active: false, ..customer() };
    let mut ports = Ports::default();
    ports.expect_presented_token(Some(stored_token(&ada)));
    let found = credentials(&ada);
    ports.users.expect_find_credentials_by_id().with(eq(ada.id)).times(1).returning(move |_| Ok(Some(found.clone())));
    ports.tokens.expect_issue_access_token().never();
    ports.refresh_tokens.expect_rotate().never();

    let result = ports.service().refresh(PRESENTED);

    assert!(matches!(result, Err(RefreshError::InvalidToken)), "{result:?}");
}

#[test]
fn a_deleted_user_cannot_refresh() {
    let ada = customer();
    let mut ports = Ports::default();
    ports.expect_presented_token(Some(stored_token(&ada)));
    ports.users.expect_find_credentials_by_id().with(eq(ada.id)).times(1).returning(|_| Ok(None));
    ports.refresh_tokens.expect_rotate().never();

    let result = ports.service().refresh(PRESENTED);

    assert!(matches!(result, Err(RefreshError::InvalidToken)), "{result:?}");
}

#[test]
fn refresh_rotates_within_the_family_and_issues_the_users_current_role() {
    // Logged in as a customer; promoted to admin since. The new access token must say admin.
    let promoted = User { role: Role::Admin, ..customer() };
    let stored = stored_token(&promoted);
    let (spent_id, family_id, user_id) = (stored.id, stored.family_id, promoted.id);
    let mut ports = Ports::default();
    ports.expect_presented_token(Some(stored));
    let found = credentials(&promoted);
    ports
        .users
        .expect_find_credentials_by_id()
        .with(eq(promoted.id))
        .times(1)
        .returning(move |_| Ok(Some(found.clone())));
    ports.expect_pair_for(AccessClaims { user_id, role: Role::Admin, generation: 0, refresh_token_id: None });
    ports
        .refresh_tokens
        .expect_rotate()
        .withf(move |spent, next, at| {
            *spent == spent_id
                && next.family_id == family_id
                && next.id != spent_id
                && next.user_id == user_id
                && next.hash == next_hash()
                && next.issued_at == now()
                && next.expires_at == now() + refresh_lifetime()
                && *at == now()
        })
        .times(1)
        .returning(|_, _, _| Ok(Rotation::Rotated));
    ports.refresh_tokens.expect_revoke_family().never();

    let pair = ports.service().refresh(PRESENTED).unwrap();

    assert_eq!(pair, expected_pair());
}

#[test]
fn losing_the_rotation_race_is_reuse_and_revokes_the_family() {
    let ada = customer();
    let stored = stored_token(&ada);
    let family_id = stored.family_id;
    let mut ports = Ports::default();
    ports.expect_presented_token(Some(stored));
    let found = credentials(&ada);
    ports.users.expect_find_credentials_by_id().times(1).returning(move |_| Ok(Some(found.clone())));
    ports.expect_pair_for(claims_of(&ada));
    ports.refresh_tokens.expect_rotate().times(1).returning(|_, _, _| Ok(Rotation::Lost));
    ports.refresh_tokens.expect_revoke_family().with(eq(family_id), eq(now())).times(1).returning(|_, _| Ok(()));

    let result = ports.service().refresh(PRESENTED);

    assert!(matches!(result, Err(RefreshError::ReuseDetected { family_id: f }) if f == family_id), "{result:?}");
}

// ---- logout ---------------------------------------------------------------------------------

#[test]
fn logout_revokes_the_family() {
    let stored = stored_token(&customer());
    let family_id = stored.family_id;
    let mut ports = Ports::default();
    ports.expect_presented_token(Some(stored));
    ports.refresh_tokens.expect_revoke_family().with(eq(family_id), eq(now())).times(1).returning(|_, _| Ok(()));

    ports.service().logout(PRESENTED).unwrap();
}

#[test]
fn logout_with_a_spent_or_expired_token_still_revokes_the_family() {
    let stored = StoredRefreshToken { spent: true, expires_at: now() - Duration::days(1), ..stored_token(&customer()) };
    let family_id = stored.family_id;
    let mut ports = Ports::default();
    ports.expect_presented_token(Some(stored));
    ports.refresh_tokens.expect_revoke_family().with(eq(family_id), eq(now())).times(1).returning(|_, _| Ok(()));

    ports.service().logout(PRESENTED).unwrap();
}

#[test]
fn logout_with_an_unknown_token_is_ok() {
    let mut ports = Ports::default();
    ports.expect_presented_token(None);
    ports.refresh_tokens.expect_revoke_family().never();

    ports.service().logout(PRESENTED).unwrap();
}

#[test]
fn logout_of_a_revoked_family_is_ok_and_does_not_revoke_again() {
    let mut ports = Ports::default();
    ports.expect_presented_token(Some(StoredRefreshToken { family_revoked: true, ..stored_token(&customer()) }));
    ports.refresh_tokens.expect_revoke_family().never();

    ports.service().logout(PRESENTED).unwrap();
}

#[test]
fn logout_passes_store_failures_through() {
    let mut ports = Ports::default();
    ports.tokens.expect_hash_refresh_token().times(1).return_const(presented_hash());
    ports
        .refresh_tokens
        .expect_find_by_hash()
        .times(1)
        .returning(|_| Err(StoreError::Unavailable(anyhow::anyhow!("connection refused"))));

    assert!(matches!(ports.service().logout(PRESENTED), Err(StoreError::Unavailable(_))));
}

// ---- the reuse leeway -----------------------------------------------------------------------

/// A token spent `ago` ago by a rotation that issued `successor`.
fn rotated(user: &User, ago: Duration, successor: Uuid) -> StoredRefreshToken {
    StoredRefreshToken { spent: true, replaced: Some(Replacement { at: now() - ago, successor }), ..stored_token(user) }
}

#[test]
fn a_retry_within_the_leeway_replaces_the_unused_successor_with_a_new_pair() {
    let ada = customer();
    let successor = Uuid::now_v7();
    let stored = rotated(&ada, Duration::seconds(29), successor);
    let (spent_id, family_id) = (stored.id, stored.family_id);
    let mut ports = Ports::default();
    ports.expect_presented_token(Some(stored));
    let found = credentials(&ada);
    ports.users.expect_find_credentials_by_id().with(eq(ada.id)).times(1).returning(move |_| Ok(Some(found.clone())));
    ports.expect_pair_for(claims_of(&ada));
    ports
        .refresh_tokens
        .expect_replace_unused_successor()
        .withf(move |spent, voided, next, at| {
            *spent == spent_id
                && *voided == successor
                && next.family_id == family_id
                && next.id != successor
                && next.hash == next_hash()
                && *at == now()
        })
        .times(1)
        .returning(|_, _, _, _| Ok(Rotation::Rotated));
    ports.refresh_tokens.expect_rotate().never();
    ports.refresh_tokens.expect_revoke_family().never();

    let service = ports.service().with_refresh_reuse_leeway(Duration::seconds(30));

    assert_eq!(service.refresh(PRESENTED).unwrap(), expected_pair());
}

#[test]
fn a_retry_whose_successor_was_used_meanwhile_is_reuse_and_revokes_the_family() {
    let ada = customer();
    let stored = rotated(&ada, Duration::seconds(1), Uuid::now_v7());
    let family_id = stored.family_id;
    let mut ports = Ports::default();
    ports.expect_presented_token(Some(stored));
    let found = credentials(&ada);
    ports.users.expect_find_credentials_by_id().times(1).returning(move |_| Ok(Some(found.clone())));
    ports.expect_pair_for(claims_of(&ada));
    ports.refresh_tokens.expect_replace_unused_successor().times(1).returning(|_, _, _, _| Ok(Rotation::Lost));
    ports.refresh_tokens.expect_revoke_family().with(eq(family_id), eq(now())).times(1).returning(|_, _| Ok(()));

    let result = ports.service().refresh(PRESENTED);

    assert!(matches!(result, Err(RefreshError::ReuseDetected { family_id: f }) if f == family_id), "{result:?}");
}

#[test]
fn after_the_leeway_or_without_one_a_spent_token_revokes_the_family() {
    let cases = [
        (Duration::seconds(30), Duration::seconds(30)),
        (Duration::seconds(30), Duration::seconds(31)),
        (Duration::zero(), Duration::zero()),
        (Duration::zero(), Duration::seconds(1)),
    ];
    for (leeway, ago) in cases {
        let stored = rotated(&customer(), ago, Uuid::now_v7());
        let family_id = stored.family_id;
        let mut ports = Ports::default();
        ports.expect_presented_token(Some(stored));
        ports.refresh_tokens.expect_revoke_family().with(eq(family_id), eq(now())).times(1).returning(|_, _| Ok(()));
        ports.refresh_tokens.expect_replace_unused_successor().never();
        ports.users.expect_find_credentials_by_id().never();

        let result = ports.service().with_refresh_reuse_leeway(leeway).refresh(PRESENTED);

        assert!(
            matches!(result, Err(RefreshError::ReuseDetected { .. })),
            "leeway {leeway}, spent {ago} ago: {result:?}"
        );
    }
}

#[test]
fn a_token_voided_by_a_retry_is_never_a_retry_itself() {
    // Spent, but replaced by nothing: the unused successor a retry voided.
    let stored = StoredRefreshToken { spent: true, replaced: None, ..stored_token(&customer()) };
    let family_id = stored.family_id;
    let mut ports = Ports::default();
    ports.expect_presented_token(Some(stored));
    ports.refresh_tokens.expect_revoke_family().with(eq(family_id), eq(now())).times(1).returning(|_, _| Ok(()));
    ports.refresh_tokens.expect_replace_unused_successor().never();

    let result = ports.service().refresh(PRESENTED);

    assert!(matches!(result, Err(RefreshError::ReuseDetected { .. })), "{result:?}");
}

#[test]
fn a_retry_for_a_deactivated_user_is_invalid() {
    let ada = User { active: false, ..customer() };
    let mut ports = Ports::default();
    ports.expect_presented_token(Some(rotated(&ada, Duration::seconds(1), Uuid::now_v7())));
    let found = credentials(&ada);
    ports.users.expect_find_credentials_by_id().times(1).returning(move |_| Ok(Some(found.clone())));
    ports.refresh_tokens.expect_replace_unused_successor().never();
    ports.tokens.expect_issue_access_token().never();

    let result = ports.service().refresh(PRESENTED);

    assert!(matches!(result, Err(RefreshError::InvalidToken)), "{result:?}");
}

#[test]
fn issued_access_tokens_carry_the_users_current_generation() {
    let ada = customer();
    let mut ports = Ports::default();
    ports.expect_presented_token(Some(stored_token(&ada)));
    let found = UserCredentials { token_generation: 7, ..credentials(&ada) };
    ports.users.expect_find_credentials_by_id().times(1).returning(move |_| Ok(Some(found.clone())));
    ports.expect_pair_for(AccessClaims { generation: 7, ..claims_of(&ada) });
    ports.refresh_tokens.expect_rotate().times(1).returning(|_, _, _| Ok(Rotation::Rotated));

    assert_eq!(ports.service().refresh(PRESENTED).unwrap(), expected_pair());
}

/// The token service issues any access token and mints refresh tokens; answers the claims of
/// every access token issued.
fn issuing_any_pair(ports: &mut Ports) -> Arc<std::sync::Mutex<Vec<AccessClaims>>> {
    let issued = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&issued);
    ports.tokens.expect_issue_access_token().returning(move |claims, _| {
        seen.lock().unwrap().push(claims);
        Ok(access_token())
    });
    ports.tokens.expect_mint_refresh_token().returning(|| Ok((RefreshTokenSecret::new("s".to_owned()), next_hash())));
    ports.tokens.expect_refresh_token_lifetime().return_const(refresh_lifetime());
    issued
}

#[test]
fn every_access_token_names_the_refresh_token_issued_with_it() {
    let ada = customer();
    let stored_ids = Arc::new(std::sync::Mutex::new(Vec::new()));

    // A login.
    let mut ports = Ports::default();
    let found = credentials(&ada);
    ports.users.expect_find_credentials_by_email().returning(move |_| Ok(Some(found.clone())));
    ports.hasher.expect_verify().returning(|_, _| Ok(true));
    let issued = issuing_any_pair(&mut ports);
    let seen = Arc::clone(&stored_ids);
    ports.refresh_tokens.expect_start_family().times(1).returning(move |token| {
        seen.lock().unwrap().push(token.id);
        Ok(())
    });
    ports.service().login("ada@example.com", "correct horse battery").unwrap();
    let login = issued.lock().unwrap().clone();

    // A refresh.
    let mut ports = Ports::default();
    ports.expect_presented_token(Some(stored_token(&ada)));
    let found = credentials(&ada);
    ports.users.expect_find_credentials_by_id().returning(move |_| Ok(Some(found.clone())));
    let issued = issuing_any_pair(&mut ports);
    let seen = Arc::clone(&stored_ids);
    ports.refresh_tokens.expect_rotate().times(1).returning(move |_, next, _| {
        seen.lock().unwrap().push(next.id);
        Ok(Rotation::Rotated)
    });
    ports.service().refresh(PRESENTED).unwrap();
    let refresh = issued.lock().unwrap().clone();

    // A retry within the leeway.
    let mut ports = Ports::default();
    ports.expect_presented_token(Some(rotated(&ada, Duration::seconds(1), Uuid::now_v7())));
    let found = credentials(&ada);
    ports.users.expect_find_credentials_by_id().returning(move |_| Ok(Some(found.clone())));
    let issued = issuing_any_pair(&mut ports);
    let seen = Arc::clone(&stored_ids);
    ports.refresh_tokens.expect_replace_unused_successor().times(1).returning(move |_, _, next, _| {
        seen.lock().unwrap().push(next.id);
        Ok(Rotation::Rotated)
    });
    ports.service().refresh(PRESENTED).unwrap();
    let retry = issued.lock().unwrap().clone();

    let named: Vec<_> = [login, refresh, retry].concat().iter().map(|claims| claims.refresh_token_id).collect();
    let stored: Vec<_> = stored_ids.lock().unwrap().iter().copied().map(Some).collect();
    assert_eq!(named, stored);
}

#[test]
fn a_retry_after_the_successors_access_token_was_used_is_reuse() {
    // The store finds the successor used — here, its access token's use recorded — and voids
    // nothing; the presentation is reuse after all, however early in the leeway.
    let ada = customer();
    let stored = rotated(&ada, Duration::seconds(1), Uuid::now_v7());
    let family_id = stored.family_id;
    let mut ports = Ports::default();
    ports.expect_presented_token(Some(stored));
    let found = credentials(&ada);
    ports.users.expect_find_credentials_by_id().times(1).returning(move |_| Ok(Some(found.clone())));
    ports.expect_pair_for(claims_of(&ada));
    ports.refresh_tokens.expect_replace_unused_successor().times(1).returning(|_, _, _, _| Ok(Rotation::Lost));
    ports.refresh_tokens.expect_revoke_family().with(eq(family_id), eq(now())).times(1).returning(|_, _| Ok(()));
    ports.refresh_tokens.expect_rotate().never();

    let result = ports.service().with_refresh_reuse_leeway(Duration::seconds(30)).refresh(PRESENTED);

    assert!(matches!(result, Err(RefreshError::ReuseDetected { family_id: f }) if f == family_id), "{result:?}");
}

#[test]
fn recording_an_access_tokens_use_marks_its_refresh_token_at_the_clocks_time() {
    let token = Uuid::now_v7();
    let mut ports = Ports::default();
    ports.refresh_tokens.expect_record_access_use().with(eq(token), eq(now())).times(1).returning(|_, _| Ok(()));

    ports.service().record_access_use(token).unwrap();
}

#[test]
fn recording_an_access_tokens_use_passes_store_failures_through() {
    let mut ports = Ports::default();
    ports
        .refresh_tokens
        .expect_record_access_use()
        .times(1)
        .returning(|_, _| Err(StoreError::Unavailable(anyhow::anyhow!("connection refused"))));

    assert!(matches!(ports.service().record_access_use(Uuid::now_v7()), Err(StoreError::Unavailable(_))));
}

// ---- authenticate ---------------------------------------------------------------------------

#[test]
fn a_token_is_admitted_iff_its_generation_is_the_current_one() {
    let grace = admin();
    let at = |generation| AccessClaims { generation, ..claims_of(&grace) };
    assert_eq!(SessionService::admit(at(3), Some(3)), Ok(Actor { user_id: grace.id, role: Role::Admin }));
    // Issued before a revocation.
    assert_eq!(SessionService::admit(at(2), Some(3)), Err(TokenRejected::Revoked));
    // Newer than the store knows: not issued by it.
    assert_eq!(SessionService::admit(at(4), Some(3)), Err(TokenRejected::Revoked));
    // Its user is gone.
    assert_eq!(SessionService::admit(at(0), None), Err(TokenRejected::Revoked));
}

#[test]
fn the_generation_check_tells_a_stale_view_from_a_revocation() {
    let claims = AccessClaims { generation: 5, ..claims_of(&customer()) };
    assert_eq!(claims.check_generation(5), GenerationCheck::Current);
    assert_eq!(claims.check_generation(6), GenerationCheck::Revoked);
    assert_eq!(claims.check_generation(4), GenerationCheck::Newer);
}

#[test]
fn authenticate_checks_the_stored_generation() {
    let grace = admin();
    for (stored, expected) in
        [(0, Ok(Actor { user_id: grace.id, role: Role::Admin })), (1, Err(TokenRejected::Revoked))]
    {
        let mut ports = Ports::default();
        let claims = claims_of(&grace);
        ports
            .tokens
            .expect_verify_access_token()
            .with(eq("signed.access.token"), eq(now()))
            .times(1)
            .returning(move |_, _| Ok(claims));
        ports.users.expect_token_generation().with(eq(grace.id)).times(1).returning(move |_| Ok(Some(stored)));

        let result = ports.service().authenticate("signed.access.token");

        match (result, expected) {
            (Ok(actor), Ok(expected)) => assert_eq!(actor, expected),
            (Err(AuthenticationError::Rejected(rejection)), Err(expected)) => assert_eq!(rejection, expected),
            (other, _) => panic!("stored generation {stored}: {other:?}"),
        }
    }
}

#[test]
fn authenticate_passes_the_rejection_through_without_reading_the_store() {
    let rejections: [fn() -> TokenRejected; 2] = [|| TokenRejected::Expired, || TokenRejected::Invalid];
    for rejection in rejections {
        let mut ports = Ports::default();
        ports.tokens.expect_verify_access_token().times(1).returning(move |_, _| Err(rejection()));
        ports.users.expect_token_generation().never();

        let result = ports.service().authenticate("signed.access.token");

        assert!(matches!(&result, Err(AuthenticationError::Rejected(r)) if *r == rejection()), "{result:?}");
    }
}

#[test]
fn authenticate_fails_rather_than_accepts_when_the_store_is_down() {
    let grace = admin();
    let mut ports = Ports::default();
    let claims = claims_of(&grace);
    ports.tokens.expect_verify_access_token().times(1).returning(move |_, _| Ok(claims));
    ports
        .users
        .expect_token_generation()
        .times(1)
        .returning(|_| Err(StoreError::Unavailable(anyhow::anyhow!("connection refused"))));

    let result = ports.service().authenticate("signed.access.token");

    assert!(matches!(result, Err(AuthenticationError::Store(StoreError::Unavailable(_)))), "{result:?}");
}
