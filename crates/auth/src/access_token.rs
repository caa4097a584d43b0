//! HS256 JWT access tokens (docs/api.md#authentication-and-authorisation) and the `TokenService`
//! adapter that also mints refresh tokens.
//!
//! Every claim is both issued and required, but `gen` (the user's token generation, ADR 0015),
//! which tokens issued before it existed lack and which then counts as 0, and `sid` (the id of
//! the refresh token issued with the access token, ADR 0015), which such tokens lack too and
//! which then names none. The library checks signature, algorithm, `iss`, `aud` and the
//! presence of `exp`/`iss`/`aud`/`sub`; this module checks the rest (`iat`, `role`, `sub`,
//! `jti` and `sid` shape, `gen` not negative) and judges expiry
//! against the caller's `now`, not the system clock, so expiry is deterministic under test and
//! consistent with the domain's injected `Clock`.

use std::fmt;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use orderly_domain::auth::{AccessClaims, AccessToken, RefreshTokenHash, RefreshTokenSecret};
use orderly_domain::ports::{TokenRejected, TokenService};
use orderly_domain::user::{Role, UserId};
use secrecy::{ExposeSecret as _, SecretSlice};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::refresh_token;

/// The only algorithm issued or accepted. Pinning it is what defeats `alg: none` and
/// algorithm-confusion tokens: a header naming anything else is refused before any key is used.
const ALGORITHM: Algorithm = Algorithm::HS256;

/// How far in the future `iat` may lie. Instances sharing the secret may disagree about the time
/// by a little; a token "issued" further ahead than this was not issued by a sane clock.
const ISSUED_AT_LEEWAY_SECONDS: i64 = 5;

/// What the token service needs to know. The server supplies every value (issuer "orderly",
/// audience "orderly-api" are its defaults); nothing here is assumed.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    /// HMAC key. The server should insist on ≥ 32 random bytes in production (RFC 7518 §3.2).
    /// `SecretSlice`'s `Debug` prints no bytes.
    pub secret: SecretSlice<u8>,
    /// Written to and required in `iss`.
    pub issuer: String,
    /// Written to and required in `aud`.
    pub audience: String,
    pub access_token_ttl: chrono::Duration,
    pub refresh_token_ttl: chrono::Duration,
}

impl JwtSettings {
    /// docs/api.md#authentication-and-authorisation: access tokens live 15 minutes by default.
    pub const DEFAULT_ACCESS_TOKEN_TTL: chrono::Duration = chrono::Duration::minutes(15);
    /// Refresh tokens live 30 days by default (each rotation starts a fresh 30 days).
    pub const DEFAULT_REFRESH_TOKEN_TTL: chrono::Duration = chrono::Duration::days(30);

    /// Settings with the default lifetimes.
    pub fn new(secret: SecretSlice<u8>, issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            secret,
            issuer: issuer.into(),
            audience: audience.into(),
            access_token_ttl: Self::DEFAULT_ACCESS_TOKEN_TTL,
            refresh_token_ttl: Self::DEFAULT_REFRESH_TOKEN_TTL,
        }
    }
}

/// The claims as they travel. Every field is mandatory: a token missing any of them fails to
/// deserialize and is refused.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    /// The user id, as a hyphenated UUID.
    sub: String,
    /// `customer` or `admin`.
    role: String,
    iat: i64,
    exp: i64,
    /// Unique per token, so individual tokens can be told apart in logs or a future denylist.
    jti: String,
    /// The user's token generation it was issued under (ADR 0015). The one optional claim:
    /// tokens issued before it existed carry none and count as generation 0, so they keep
    /// working until they expire or their user's sessions are revoked.
    #[serde(rename = "gen", default)]
    generation: i64,
    /// The refresh token issued together with this token, as a hyphenated UUID (ADR 0015): its
    /// first use ends the reuse leeway of the refresh token that pair replaced. Optional like
    /// `gen`, for the same reason; when present it must be a UUID, like `jti`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
}

/// `TokenService` adapter: HS256 access tokens plus opaque refresh tokens.
pub struct JwtTokenService {
    encoding_key: EncodingKey,
    decoding_key: DecodingKey,
    header: Header,
    validation: Validation,
    issuer: String,
    audience: String,
    access_token_ttl: chrono::Duration,
    refresh_token_ttl: chrono::Duration,
}

impl JwtTokenService {
    pub fn new(settings: JwtSettings) -> Self {
        let secret = settings.secret.expose_secret();

        let mut validation = Validation::new(ALGORITHM);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        // The library ignores `iat` here; `Claims` makes it (and `role`, `jti`) mandatory.
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        // Expiry is judged in `verify_access_token` against the `now` it is given; the library
        // would read the system clock, with a 60-second default leeway.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;

        Self {
            encoding_key: EncodingKey::from_secret(secret),
            decoding_key: DecodingKey::from_secret(secret),
            header: Header::new(ALGORITHM),
            validation,
            issuer: settings.issuer,
            audience: settings.audience,
            access_token_ttl: settings.access_token_ttl,
            refresh_token_ttl: settings.refresh_token_ttl,
        }
    }
}

/// Hand-written because `DecodingKey`'s derived `Debug` would print the key bytes.
impl fmt::Debug for JwtTokenService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtTokenService")
            .field("algorithm", &ALGORITHM)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("access_token_ttl", &self.access_token_ttl)
            .field("refresh_token_ttl", &self.refresh_token_ttl)
            .finish_non_exhaustive()
    }
}

impl TokenService for JwtTokenService {
    fn issue_access_token(&self, claims: AccessClaims, now: DateTime<Utc>) -> anyhow::Result<AccessToken> {
        let issued_at = now.timestamp();
        let lifetime = self.access_token_ttl.num_seconds();
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: claims.user_id.as_uuid().hyphenated().to_string(),
            role: claims.role.as_str().to_owned(),
            iat: issued_at,
            exp: issued_at + lifetime,
            jti: Uuid::now_v7().hyphenated().to_string(),
            generation: claims.generation,
            sid: claims.refresh_token_id.map(|id| id.hyphenated().to_string()),
        };
        let token =
            jsonwebtoken::encode(&self.header, &claims, &self.encoding_key).context("cannot sign access token")?;
        Ok(AccessToken { token, expires_in_seconds: lifetime })
    }

    fn verify_access_token(&self, token: &str, now: DateTime<Utc>) -> Result<AccessClaims, TokenRejected> {
        // Signature, algorithm, issuer, audience and required claims, in that order: nothing
        // about an unauthenticated token (not even "expired") is reported.
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding_key, &self.validation)
            .map_err(|error| match error.kind() {
                ErrorKind::ExpiredSignature => TokenRejected::Expired,
                _ => TokenRejected::Invalid,
            })?
            .claims;

        let now = now.timestamp();
        if claims.iat > now + ISSUED_AT_LEEWAY_SECONDS || claims.exp <= claims.iat || claims.generation < 0 {
            return Err(TokenRejected::Invalid);
        }
        let user_id = Uuid::parse_str(&claims.sub).map_err(|_| TokenRejected::Invalid)?;
        let role = claims.role.parse::<Role>().map_err(|_| TokenRejected::Invalid)?;
        Uuid::parse_str(&claims.jti).map_err(|_| TokenRejected::Invalid)?;
        let refresh_token_id =
            claims.sid.as_deref().map(Uuid::parse_str).transpose().map_err(|_| TokenRejected::Invalid)?;
        // RFC 7519 §4.1.4: not accepted "on or after" `exp`. No leeway: the issuer's clock is
        // the same `Clock` (or one in sync with it), and 15 minutes is the whole lifetime.
        if now >= claims.exp {
            return Err(TokenRejected::Expired);
        }
        Ok(AccessClaims { user_id: UserId::from_uuid(user_id), role, generation: claims.generation, refresh_token_id })
    }

    fn mint_refresh_token(&self) -> anyhow::Result<(RefreshTokenSecret, RefreshTokenHash)> {
        refresh_token::mint()
    }

    fn hash_refresh_token(&self, presented: &str) -> RefreshTokenHash {
        refresh_token::digest(presented)
    }

    fn refresh_token_lifetime(&self) -> chrono::Duration {
        self.refresh_token_ttl
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::{Value, json};

    use super::*;

    const SECRET: &[u8] = b"a test key that is at least thirty-two bytes long";
    const ISSUER: &str = "orderly";
    const AUDIENCE: &str = "orderly-api";

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T18:04:05.678Z").unwrap().with_timezone(&Utc)
    }

    fn settings() -> JwtSettings {
        JwtSettings::new(SECRET.to_vec().into(), ISSUER, AUDIENCE)
    }

    fn service() -> JwtTokenService {
        JwtTokenService::new(settings())
    }

    fn customer() -> AccessClaims {
        AccessClaims {
            user_id: UserId::new(),
            role: Role::Customer,
            generation: 0,
            refresh_token_id: Some(Uuid::now_v7()),
        }
    }

    /// Valid claims for a customer issued at `now()`, as JSON so tests can break them.
    fn valid_claims() -> Value {
        let iat = now().timestamp();
        json!({
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": Uuid::now_v7().to_string(),
            "role": "customer",
            "iat": iat,
            "exp": iat + 900,
            "jti": Uuid::now_v7().to_string(),
        })
    }

    fn with(mut claims: Value, field: &str, value: Value) -> Value {
        claims[field] = value;
        claims
    }

    fn without(mut claims: Value, field: &str) -> Value {
        claims.as_object_mut().unwrap().remove(field);
        claims
    }

    /// Signs `claims` the way the library would for any header and key.
    fn sign(header: &Header, claims: &Value, secret: &[u8]) -> String {
        jsonwebtoken::encode(header, claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    fn sign_hs256(claims: &Value) -> String {
        sign(&Header::new(Algorithm::HS256), claims, SECRET)
    }

    fn b64(json: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(json).unwrap())
    }

    fn verify(token: &str) -> Result<AccessClaims, TokenRejected> {
        service().verify_access_token(token, now())
    }

    fn decode_part(token: &str, index: usize) -> Value {
        let part = token.split('.').nth(index).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn an_issued_token_verifies_to_the_same_claims() {
        let service = service();
        let admin = AccessClaims { user_id: UserId::new(), role: Role::Admin, generation: 7, refresh_token_id: None };
        for claims in [customer(), admin] {
            let issued = service.issue_access_token(claims, now()).unwrap();
            assert_eq!(issued.expires_in_seconds, 900);
            assert_eq!(service.verify_access_token(&issued.token, now()), Ok(claims));
        }
    }

    #[test]
    fn an_issued_token_carries_every_claim_and_an_hs256_header() {
        let claims = customer();
        let token = service().issue_access_token(claims, now()).unwrap().token;

        let header = decode_part(&token, 0);
        assert_eq!(header["alg"], "HS256");
        assert_eq!(header["typ"], "JWT");

        let payload = decode_part(&token, 1);
        assert_eq!(payload["iss"], ISSUER);
        assert_eq!(payload["aud"], AUDIENCE);
        assert_eq!(payload["sub"], claims.user_id.to_string());
        assert_eq!(payload["role"], "customer");
        assert_eq!(payload["iat"], now().timestamp());
        assert_eq!(payload["exp"], now().timestamp() + 900);
        assert!(Uuid::parse_str(payload["jti"].as_str().unwrap()).is_ok());
        assert_eq!(payload["gen"], 0);
        assert_eq!(payload["sid"], claims.refresh_token_id.unwrap().hyphenated().to_string());
        assert_eq!(payload.as_object().unwrap().len(), 9, "no unexpected claims: {payload}");
    }

    #[test]
    fn a_token_naming_no_refresh_token_carries_no_sid() {
        let claims = AccessClaims { refresh_token_id: None, ..customer() };
        let token = service().issue_access_token(claims, now()).unwrap().token;
        assert!(decode_part(&token, 1).get("sid").is_none());
        assert_eq!(verify(&token), Ok(claims));
    }

    #[test]
    fn a_token_without_a_sid_names_no_refresh_token_and_a_malformed_one_is_invalid() {
        // Issued before `sid` existed: still valid, naming no refresh token (ADR 0015).
        assert_eq!(verify(&sign_hs256(&valid_claims())).map(|claims| claims.refresh_token_id), Ok(None));
        let id = Uuid::now_v7();
        assert_eq!(
            verify(&sign_hs256(&with(valid_claims(), "sid", json!(id.to_string())))).map(|c| c.refresh_token_id),
            Ok(Some(id))
        );
        for sid in [json!("abc"), json!(""), json!(42), json!(null)] {
            let verified = verify(&sign_hs256(&with(valid_claims(), "sid", sid.clone())));
            // `null` reads as absent, like a missing claim; anything else must be a UUID.
            if sid.is_null() {
                assert_eq!(verified.map(|c| c.refresh_token_id), Ok(None));
            } else {
                assert_eq!(verified, Err(TokenRejected::Invalid), "{sid}");
            }
        }
    }

    #[test]
    fn a_token_without_a_generation_is_generation_zero_and_a_negative_one_is_invalid() {
        // Issued before `gen` existed: still valid, as generation 0 (ADR 0015).
        assert_eq!(verify(&sign_hs256(&valid_claims())).map(|claims| claims.generation), Ok(0));
        assert_eq!(verify(&sign_hs256(&with(valid_claims(), "gen", json!(3)))).map(|c| c.generation), Ok(3));
        assert_eq!(verify(&sign_hs256(&with(valid_claims(), "gen", json!(-1)))), Err(TokenRejected::Invalid));
        assert_eq!(verify(&sign_hs256(&with(valid_claims(), "gen", json!("1")))), Err(TokenRejected::Invalid));
    }

    #[test]
    fn every_token_has_its_own_jti() {
        let service = service();
        let claims = customer();
        let first = decode_part(&service.issue_access_token(claims, now()).unwrap().token, 1);
        let second = decode_part(&service.issue_access_token(claims, now()).unwrap().token, 1);
        assert_ne!(first["jti"], second["jti"]);
    }

    #[test]
    fn the_configured_issuer_audience_and_lifetime_are_used() {
        let service = JwtTokenService::new(JwtSettings {
            issuer: "issuer-x".into(),
            audience: "audience-y".into(),
            access_token_ttl: chrono::Duration::seconds(60),
            ..settings()
        });
        let issued = service.issue_access_token(customer(), now()).unwrap();
        assert_eq!(issued.expires_in_seconds, 60);
        let payload = decode_part(&issued.token, 1);
        assert_eq!((payload["iss"].as_str(), payload["aud"].as_str()), (Some("issuer-x"), Some("audience-y")));
        assert_eq!(payload["exp"], now().timestamp() + 60);
        // And the default service, expecting "orderly"/"orderly-api", refuses it.
        assert_eq!(verify(&issued.token), Err(TokenRejected::Invalid));
    }

    #[test]
    fn expiry_is_judged_against_the_given_time_with_no_leeway() {
        let service = service();
        let claims = customer();
        let token = service.issue_access_token(claims, now()).unwrap().token;
        let exp = DateTime::from_timestamp(now().timestamp() + 900, 0).unwrap();

        assert_eq!(service.verify_access_token(&token, exp - chrono::Duration::milliseconds(1)), Ok(claims));
        assert_eq!(service.verify_access_token(&token, exp), Err(TokenRejected::Expired));
        assert_eq!(service.verify_access_token(&token, exp + chrono::Duration::days(365)), Err(TokenRejected::Expired));
    }

    #[test]
    fn a_hand_made_expired_token_is_expired() {
        let iat = now().timestamp() - 1_000;
        let claims = with(with(valid_claims(), "iat", json!(iat)), "exp", json!(iat + 900));
        assert_eq!(verify(&sign_hs256(&claims)), Err(TokenRejected::Expired));
    }

    #[test]
    fn the_hand_made_baseline_token_is_accepted() {
        // Guards the rejection tests below: each breaks exactly one thing of this token.
        let claims = valid_claims();
        let accepted = verify(&sign_hs256(&claims)).unwrap();
        assert_eq!(accepted.user_id.to_string(), claims["sub"]);
        assert_eq!(accepted.role, Role::Customer);
    }

    #[test]
    fn a_token_signed_with_another_secret_is_invalid() {
        let token = sign(&Header::new(Algorithm::HS256), &valid_claims(), b"another key, also thirty-two bytes long!");
        assert_eq!(verify(&token), Err(TokenRejected::Invalid));
    }

    #[test]
    fn an_expired_token_with_a_bad_signature_is_invalid_not_expired() {
        let claims = with(valid_claims(), "exp", json!(now().timestamp() - 1));
        let token = sign(&Header::new(Algorithm::HS256), &claims, b"another key, also thirty-two bytes long!");
        assert_eq!(verify(&token), Err(TokenRejected::Invalid));
    }

    #[test]
    fn a_tampered_payload_is_invalid() {
        let token = sign_hs256(&valid_claims());
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = b64(&with(valid_claims(), "role", json!("admin")));
        assert_eq!(verify(&parts.join(".")), Err(TokenRejected::Invalid));
    }

    #[test]
    fn a_wrong_issuer_is_invalid() {
        assert_eq!(
            verify(&sign_hs256(&with(valid_claims(), "iss", json!("someone-else")))),
            Err(TokenRejected::Invalid)
        );
    }

    #[test]
    fn a_wrong_audience_is_invalid() {
        assert_eq!(
            verify(&sign_hs256(&with(valid_claims(), "aud", json!("another-api")))),
            Err(TokenRejected::Invalid)
        );
        assert_eq!(
            verify(&sign_hs256(&with(valid_claims(), "aud", json!(["another-api"])))),
            Err(TokenRejected::Invalid)
        );
    }

    #[test]
    fn alg_none_is_invalid() {
        let payload = b64(&valid_claims());
        for alg in ["none", "None", "NONE"] {
            let header = b64(&json!({"alg": alg, "typ": "JWT"}));
            assert_eq!(verify(&format!("{header}.{payload}.")), Err(TokenRejected::Invalid), "{alg}");
        }
        // Even with the valid HS256 signature of the same claims attached.
        let signature = sign_hs256(&valid_claims()).rsplit('.').next().unwrap().to_owned();
        let header = b64(&json!({"alg": "none", "typ": "JWT"}));
        assert_eq!(verify(&format!("{header}.{payload}.{signature}")), Err(TokenRejected::Invalid));
    }

    #[test]
    fn other_hmac_algorithms_are_invalid_even_with_the_right_key() {
        for alg in [Algorithm::HS384, Algorithm::HS512] {
            let token = sign(&Header::new(alg), &valid_claims(), SECRET);
            assert_eq!(verify(&token), Err(TokenRejected::Invalid), "{alg:?}");
        }
    }

    #[test]
    fn an_rs256_header_is_invalid() {
        // Algorithm confusion: a header naming RS256 over a message HMAC-signed with our secret.
        let message = format!("{}.{}", b64(&json!({"alg": "RS256", "typ": "JWT"})), b64(&valid_claims()));
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &EncodingKey::from_secret(SECRET), Algorithm::HS256)
                .unwrap();
        assert_eq!(verify(&format!("{message}.{signature}")), Err(TokenRejected::Invalid));
    }

    #[test]
    fn a_missing_claim_is_invalid() {
        for claim in ["iss", "aud", "sub", "role", "iat", "exp", "jti"] {
            let token = sign_hs256(&without(valid_claims(), claim));
            assert_eq!(verify(&token), Err(TokenRejected::Invalid), "missing {claim}");
        }
    }

    #[test]
    fn a_sub_that_is_not_a_uuid_is_invalid() {
        for sub in [json!("42"), json!("not-a-uuid"), json!(""), json!(42)] {
            assert_eq!(
                verify(&sign_hs256(&with(valid_claims(), "sub", sub.clone()))),
                Err(TokenRejected::Invalid),
                "{sub}"
            );
        }
    }

    #[test]
    fn an_unknown_role_is_invalid() {
        for role in [json!("root"), json!("Admin"), json!(""), json!(null), json!(1)] {
            assert_eq!(
                verify(&sign_hs256(&with(valid_claims(), "role", role.clone()))),
                Err(TokenRejected::Invalid),
                "{role}"
            );
        }
    }

    #[test]
    fn a_jti_that_is_not_a_uuid_is_invalid() {
        assert_eq!(verify(&sign_hs256(&with(valid_claims(), "jti", json!("abc")))), Err(TokenRejected::Invalid));
    }

    #[test]
    fn timestamps_of_the_wrong_type_are_invalid() {
        assert_eq!(verify(&sign_hs256(&with(valid_claims(), "exp", json!("tomorrow")))), Err(TokenRejected::Invalid));
        assert_eq!(verify(&sign_hs256(&with(valid_claims(), "iat", json!("today")))), Err(TokenRejected::Invalid));
    }

    #[test]
    fn a_token_issued_in_the_future_is_invalid() {
        let iat = now().timestamp() + ISSUED_AT_LEEWAY_SECONDS + 1;
        let claims = with(with(valid_claims(), "iat", json!(iat)), "exp", json!(iat + 900));
        assert_eq!(verify(&sign_hs256(&claims)), Err(TokenRejected::Invalid));

        // A few seconds of clock skew between instances is tolerated.
        let iat = now().timestamp() + ISSUED_AT_LEEWAY_SECONDS;
        let claims = with(with(valid_claims(), "iat", json!(iat)), "exp", json!(iat + 900));
        assert!(verify(&sign_hs256(&claims)).is_ok());
    }

    #[test]
    fn a_token_expiring_before_it_was_issued_is_invalid() {
        let claims = with(valid_claims(), "exp", valid_claims()["iat"].clone());
        assert_eq!(verify(&sign_hs256(&claims)), Err(TokenRejected::Invalid));
    }

    #[test]
    fn garbage_is_invalid() {
        for token in ["", ".", "..", "a.b.c", "not a token", "eyJhbGciOiJIUzI1NiJ9.e30.", "\u{0}"] {
            assert_eq!(verify(token), Err(TokenRejected::Invalid), "{token:?}");
        }
    }

    #[test]
    fn refresh_tokens_are_minted_hashed_and_given_the_configured_lifetime() {
        let service = service();
        let (secret, hash) = service.mint_refresh_token().unwrap();
        assert_eq!(service.hash_refresh_token(secret.expose()), hash);
        let (other, _) = service.mint_refresh_token().unwrap();
        assert_ne!(secret, other);
        assert_eq!(service.refresh_token_lifetime(), chrono::Duration::days(30));
    }

    #[test]
    fn settings_default_to_fifteen_minutes_and_thirty_days() {
        let settings = settings();
        assert_eq!(settings.access_token_ttl, chrono::Duration::seconds(900));
        assert_eq!(settings.refresh_token_ttl, chrono::Duration::seconds(2_592_000));
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let secret_text = std::str::from_utf8(SECRET).unwrap();
        let byte_list = format!("{:?}", &SECRET[..8]);
        for debug in [format!("{:?}", settings()), format!("{:?}", service())] {
            assert!(!debug.contains(secret_text), "{debug}");
            assert!(!debug.contains(&byte_list[1..byte_list.len() - 1]), "{debug}");
        }
    }
}
