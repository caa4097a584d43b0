//! Opaque refresh tokens: random secrets for the client, digests for the store.
//!
//! A plain SHA-256 (not argon2, not a keyed MAC) is enough here because the secret is 256 bits
//! from the OS RNG: nothing can be guessed or brute-forced from a leaked digest, and a fast,
//! deterministic digest lets the store find a token by equality on an indexed column.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use orderly_domain::auth::{RefreshTokenHash, RefreshTokenSecret};
use sha2::{Digest as _, Sha256};

/// 256 bits of entropy.
const SECRET_BYTES: usize = 32;

/// A fresh secret (base64url, unpadded, 43 characters: safe in JSON, URLs and headers) and the
/// digest to store for it.
pub(crate) fn mint() -> anyhow::Result<(RefreshTokenSecret, RefreshTokenHash)> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|error| anyhow::anyhow!("the OS random number generator failed: {error}"))?;
    let secret = URL_SAFE_NO_PAD.encode(bytes);
    let hash = digest(&secret);
    Ok((RefreshTokenSecret::new(secret), hash))
}

/// Lower-case hex SHA-256 of the token exactly as presented. Any string is accepted: an
/// unknown or malformed token simply has a digest that matches no row.
pub(crate) fn digest(presented: &str) -> RefreshTokenHash {
    RefreshTokenHash::new(format!("{:x}", Sha256::digest(presented.as_bytes())))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn secrets_are_43_base64url_characters_from_32_random_bytes() {
        let (secret, _) = mint().unwrap();
        assert_eq!(secret.expose().len(), 43);
        assert!(secret.expose().chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(URL_SAFE_NO_PAD.decode(secret.expose()).unwrap().len(), SECRET_BYTES);
    }

    #[test]
    fn secrets_are_unique() {
        let secrets: HashSet<String> = (0..1_000).map(|_| mint().unwrap().0.expose().to_owned()).collect();
        assert_eq!(secrets.len(), 1_000);
    }

    #[test]
    fn the_minted_hash_is_the_digest_of_the_secret() {
        let (secret, hash) = mint().unwrap();
        assert_eq!(digest(secret.expose()), hash);
    }

    #[test]
    fn digests_are_stable_lower_case_hex_sha256() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(digest("abc").as_str(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(digest("some token"), digest("some token"));
        assert_ne!(digest("some token"), digest("some token "));
    }

    #[test]
    fn the_digest_does_not_contain_the_secret() {
        let (secret, hash) = mint().unwrap();
        assert!(!hash.as_str().contains(secret.expose()));
        assert!(!format!("{secret:?}").contains(secret.expose()));
    }
}
