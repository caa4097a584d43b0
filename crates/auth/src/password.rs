//! Password hashing with argon2id.

use std::fmt;

use anyhow::Context as _;
use argon2::password_hash::phc;
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use orderly_domain::ports::PasswordHasher;
use orderly_domain::user::{Password, PasswordHash};

/// OWASP's minimum recommendation for argon2id (Password Storage Cheat Sheet): 19 MiB of
/// memory, 2 passes, 1 lane. About 30 ms a hash on the target machine — slow for an attacker
/// with a stolen table, cheap enough for a login.
const MEMORY_KIB: u32 = 19_456;
const ITERATIONS: u32 = 2;
const PARALLELISM: u32 = 1;

/// Length of the random password behind the dummy hash. Nobody can log in with it because
/// nobody ever sees it; its length only has to make guessing hopeless.
const DUMMY_PASSWORD_BYTES: usize = 32;

/// argon2id `PasswordHasher`. Hashes carry their own parameters (PHC format), so raising the
/// cost later still verifies old hashes.
pub struct Argon2PasswordHasher {
    argon2: Argon2<'static>,
    /// Verified against when a login names an unknown email, so that failure costs one real
    /// verification, like a wrong password does.
    dummy_hash: PasswordHash,
}

impl Argon2PasswordHasher {
    /// Builds the hasher and precomputes the dummy hash (one full hash, ~30 ms).
    pub fn new() -> anyhow::Result<Self> {
        let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
            .map_err(|error| anyhow::anyhow!("invalid argon2 parameters: {error}"))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);

        let mut dummy_password = [0u8; DUMMY_PASSWORD_BYTES];
        getrandom::fill(&mut dummy_password)
            .map_err(|error| anyhow::anyhow!("the OS random number generator failed: {error}"))?;
        let dummy_hash = hash_bytes(&argon2, &dummy_password).context("cannot compute the dummy password hash")?;

        Ok(Self { argon2, dummy_hash })
    }
}

impl fmt::Debug for Argon2PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Argon2PasswordHasher")
            .field("algorithm", &"argon2id")
            .field("memory_kib", &MEMORY_KIB)
            .field("iterations", &ITERATIONS)
            .field("parallelism", &PARALLELISM)
            .finish_non_exhaustive()
    }
}

impl PasswordHasher for Argon2PasswordHasher {
    fn hash(&self, password: &Password) -> anyhow::Result<PasswordHash> {
        hash_bytes(&self.argon2, password.expose().as_bytes())
    }

    fn verify(&self, candidate: &str, hash: &PasswordHash) -> anyhow::Result<bool> {
        // Messages below never include the hash or the candidate: both are secrets.
        let parsed = phc::PasswordHash::new(hash.as_str()).context("the stored password hash is not a PHC string")?;
        // argon2 reports a PHC string without salt or output as a mismatch; for us that is a
        // corrupt row, and must surface as an error rather than as "wrong password" forever.
        anyhow::ensure!(
            parsed.salt.is_some() && parsed.hash.is_some(),
            "the stored password hash has no salt or no output"
        );
        // Verification uses the parameters recorded in the hash, not `self.argon2`'s.
        match self.argon2.verify_password(candidate.as_bytes(), &parsed) {
            Ok(()) => Ok(true),
            Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
            Err(error) => Err(anyhow::anyhow!("cannot verify against the stored password hash: {error}")),
        }
    }

    fn dummy_hash(&self) -> PasswordHash {
        self.dummy_hash.clone()
    }
}

/// Hashes with a fresh random salt from the OS and renders the PHC string.
fn hash_bytes(argon2: &Argon2<'_>, password: &[u8]) -> anyhow::Result<PasswordHash> {
    let hash = argon2.hash_password(password).map_err(|error| anyhow::anyhow!("argon2 hashing failed: {error}"))?;
    Ok(PasswordHash::new(hash.to_string()))
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use super::*;

    /// One hasher for the whole module: building it costs a full hash.
    fn hasher() -> &'static Argon2PasswordHasher {
        static HASHER: OnceLock<Argon2PasswordHasher> = OnceLock::new();
        HASHER.get_or_init(|| Argon2PasswordHasher::new().unwrap())
    }

    fn password(raw: &str) -> Password {
        Password::parse(raw, "password").unwrap()
    }

    #[test]
    fn verifies_the_right_password_and_rejects_a_wrong_one() {
        let hash = hasher().hash(&password("correct horse battery staple")).unwrap();
        assert!(hasher().verify("correct horse battery staple", &hash).unwrap());
        assert!(!hasher().verify("correct horse battery stapler", &hash).unwrap());
        assert!(!hasher().verify("", &hash).unwrap());
    }

    #[test]
    fn output_is_an_argon2id_phc_string_at_the_owasp_minimum_cost() {
        let hash = hasher().hash(&password("correct horse battery staple")).unwrap();
        assert!(hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "unexpected PHC prefix");

        let parsed = phc::PasswordHash::new(hash.as_str()).unwrap();
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        assert_eq!(parsed.version, Some(19));
        assert_eq!(parsed.params.get_decimal("m"), Some(19_456));
        assert_eq!(parsed.params.get_decimal("t"), Some(2));
        assert_eq!(parsed.params.get_decimal("p"), Some(1));
        assert!(parsed.salt.is_some_and(|salt| salt.len() >= 16));
    }

    #[test]
    fn the_same_password_hashes_differently_each_time() {
        let first = hasher().hash(&password("correct horse battery staple")).unwrap();
        let second = hasher().hash(&password("correct horse battery staple")).unwrap();
        assert_ne!(first, second, "salts must be random");
        assert!(hasher().verify("correct horse battery staple", &second).unwrap());
    }

    #[test]
    fn the_dummy_hash_is_a_valid_argon2id_hash_that_matches_nothing() {
        let dummy = hasher().dummy_hash();
        assert!(dummy.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        for candidate in ["", "password", "correct horse battery staple", "\u{0}"] {
            assert!(!hasher().verify(candidate, &dummy).unwrap(), "{candidate:?}");
        }
    }

    #[test]
    fn each_hasher_gets_its_own_dummy_hash() {
        let other = Argon2PasswordHasher::new().unwrap();
        assert_ne!(other.dummy_hash(), hasher().dummy_hash());
    }

    #[test]
    fn hashes_made_with_other_parameters_still_verify() {
        // A future cost increase must not lock out users with older hashes.
        let cheap = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(8, 1, 1, None).unwrap());
        let old = hash_bytes(&cheap, b"correct horse battery staple").unwrap();
        assert!(old.as_str().starts_with("$argon2id$v=19$m=8,t=1,p=1$"));
        assert!(hasher().verify("correct horse battery staple", &old).unwrap());
        assert!(!hasher().verify("wrong", &old).unwrap());
    }

    #[test]
    fn an_unusable_stored_hash_is_an_error_not_a_mismatch() {
        for stored in [
            "",
            "not a hash",
            "$argon2id$v=19$m=19456,t=2,p=1",
            "$bcrypt$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA",
        ] {
            let result = hasher().verify("correct horse battery staple", &PasswordHash::new(stored.to_owned()));
            assert!(result.is_err(), "{stored:?} should be rejected as unusable");
        }
    }

    #[test]
    fn debug_shows_parameters_only() {
        let debug = format!("{:?}", hasher());
        assert!(debug.contains("argon2id"));
        assert!(!debug.contains('$'), "must not print the dummy hash: {debug}");
    }
}
