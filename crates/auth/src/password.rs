//! Password hashing with argon2id.

use std::fmt;
use std::num::NonZeroUsize;

use anyhow::Context as _;
use argon2::password_hash::phc;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use orderly_domain::ports::PasswordHasher;
use orderly_domain::user::{Password, PasswordHash};

use crate::permits::Permits;

/// OWASP's minimum recommendation for argon2id (Password Storage Cheat Sheet): 19 MiB of
/// memory, 2 passes, 1 lane. About 30 ms a hash on the target machine — slow for an attacker
/// with a stolen table, cheap enough for a login.
const MEMORY_KIB: u32 = 19_456;
const ITERATIONS: u32 = 2;
const PARALLELISM: u32 = 1;

/// Bytes of random salt per hash (the PHC recommendation).
const SALT_BYTES: usize = 16;

/// Length of the random password behind the dummy hash. Nobody can log in with it because
/// nobody ever sees it; its length only has to make guessing hopeless.
const DUMMY_PASSWORD_BYTES: usize = 32;

/// The address space reserved for each hash's working memory, of which only the 19 MiB the
/// hash needs is ever touched.
///
/// Why reserve more than is used: glibc's `malloc` serves a request below its mmap threshold
/// from an arena — one per thread that allocates, up to 8 per core — and keeps the memory when
/// it is freed; and after the first 19 MiB block is freed it raises that threshold to 19 MiB,
/// so every later hash's memory lands in some thread's arena and stays resident. Measured on
/// the 2-core benchmark machine: 880 MiB resident after seeding 1,000 customers, 3.6 GiB after
/// a burst of 32 concurrent logins. Requests of 32 MiB and more are above any threshold glibc
/// adjusts to on 64-bit, so they are always mapped afresh and unmapped when freed: the memory
/// goes back to the system when it is dropped. Untouched pages cost nothing. Other allocators
/// (musl, jemalloc) return blocks this large to the system anyway.
///
/// Fresh memory costs page faults (~10 ms of CPU per hash on the benchmark machine, a third of
/// the hash), so during a burst each hash hands its memory on to the next one in the queue;
/// see [`Argon2PasswordHasher::hashing`].
const RESERVED_WORKING_MEMORY_BYTES: usize = 33 * 1024 * 1024;

/// argon2id `PasswordHasher`. Hashes carry their own parameters (PHC format), so raising the
/// cost later still verifies old hashes.
///
/// At most `max_concurrent` hashes and verifications run at once; further callers wait their
/// turn in arrival order. Each takes a core for ~30 ms and 19 MiB, so without a bound a burst
/// of logins takes as many cores and as much memory as it has requests, and every other request
/// waits behind it.
pub struct Argon2PasswordHasher {
    cost: Cost,
    /// Verified against when a login names an unknown email, so that failure costs one real
    /// verification, like a wrong password does.
    dummy_hash: PasswordHash,
    /// The bound, and the working memory finished hashes leave for the ones still queueing
    /// (at most one per permit; none while nobody is hashing).
    permits: Permits<Vec<Block>>,
}

/// What a hash is computed with.
#[derive(Debug, Clone)]
struct Cost {
    algorithm: Algorithm,
    version: Version,
    params: Params,
}

impl Cost {
    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(self.algorithm, self.version, self.params.clone())
    }
}

impl Argon2PasswordHasher {
    /// Builds the hasher, allowing as many concurrent hashes as the machine has cores, and
    /// precomputes the dummy hash (one full hash, ~30 ms).
    pub fn new() -> anyhow::Result<Self> {
        Self::with_max_concurrent(default_max_concurrent())
    }

    /// As [`new`](Self::new), with at most `max_concurrent` hashes or verifications at once.
    pub fn with_max_concurrent(max_concurrent: NonZeroUsize) -> anyhow::Result<Self> {
        let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
            .map_err(|error| anyhow::anyhow!("invalid argon2 parameters: {error}"))?;
        let cost = Cost { algorithm: Algorithm::Argon2id, version: Version::V0x13, params };

        let mut dummy_password = [0u8; DUMMY_PASSWORD_BYTES];
        getrandom::fill(&mut dummy_password)
            .map_err(|error| anyhow::anyhow!("the OS random number generator failed: {error}"))?;
        let dummy_hash =
            hash_bytes(&cost, &dummy_password, &mut Vec::new()).context("cannot compute the dummy password hash")?;

        Ok(Self { cost, dummy_hash, permits: Permits::new(max_concurrent.get()) })
    }

    /// How many hashes or verifications may run at once.
    pub fn max_concurrent(&self) -> usize {
        self.permits.limit()
    }

    /// Runs `work` once a permit is free, with working memory: the memory a finished hash left
    /// if there is some, otherwise none (`compute` then maps fresh memory). Afterwards the
    /// memory is left for the next hash if anyone else is hashing or waiting; if nobody is,
    /// all of it is given back to the system, so a quiet server holds none.
    fn hashing<T>(&self, work: impl FnOnce(&mut Vec<Block>) -> T) -> T {
        let (permit, spare) = self.permits.acquire();
        let mut memory = spare.unwrap_or_default();
        let result = work(&mut memory);
        permit.finish(memory);
        result
    }
}

/// The number of cores (1 if it cannot be told): more concurrent hashes than cores only
/// share the same cores more slowly, while each holds its 19 MiB.
pub fn default_max_concurrent() -> NonZeroUsize {
    std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
}

impl fmt::Debug for Argon2PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Argon2PasswordHasher")
            .field("algorithm", &"argon2id")
            .field("memory_kib", &MEMORY_KIB)
            .field("iterations", &ITERATIONS)
            .field("parallelism", &PARALLELISM)
            .field("max_concurrent", &self.permits.limit())
            .finish_non_exhaustive()
    }
}

impl PasswordHasher for Argon2PasswordHasher {
    fn hash(&self, password: &Password) -> anyhow::Result<PasswordHash> {
        self.hashing(|memory| hash_bytes(&self.cost, password.expose().as_bytes(), memory))
    }

    fn verify(&self, candidate: &str, hash: &PasswordHash) -> anyhow::Result<bool> {
        // Messages below never include the hash or the candidate: both are secrets.
        let parsed = phc::PasswordHash::new(hash.as_str()).context("the stored password hash is not a PHC string")?;
        // argon2 reports a PHC string without salt or output as a mismatch; for us that is a
        // corrupt row, and must surface as an error rather than as "wrong password" forever.
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
            anyhow::bail!("the stored password hash has no salt or no output");
        };
        // Verification uses the parameters recorded in the hash, not `self.cost`.
        let unusable =
            |error: &dyn fmt::Display| anyhow::anyhow!("cannot verify against the stored password hash: {error}");
        let cost = Cost {
            algorithm: Algorithm::try_from(parsed.algorithm.as_str()).map_err(|e| unusable(&e))?,
            version: parsed.version.map(Version::try_from).transpose().map_err(|e| unusable(&e))?.unwrap_or_default(),
            params: Params::try_from(&parsed).map_err(|e| unusable(&e))?,
        };
        let mut output = vec![0u8; expected.len()];
        self.hashing(|memory| compute(&cost, candidate.as_bytes(), salt, &mut output, memory))
            .map_err(|e| unusable(&e))?;
        // `Output`'s equality is constant-time.
        Ok(phc::Output::new(&output).map_err(|e| unusable(&e))? == *expected)
    }

    fn dummy_hash(&self) -> PasswordHash {
        self.dummy_hash.clone()
    }
}

/// Hashes with a fresh random salt from the OS and renders the PHC string.
fn hash_bytes(cost: &Cost, password: &[u8], memory: &mut Vec<Block>) -> anyhow::Result<PasswordHash> {
    let failed = |error: &dyn fmt::Display| anyhow::anyhow!("argon2 hashing failed: {error}");
    let mut salt = [0u8; SALT_BYTES];
    getrandom::fill(&mut salt).map_err(|error| anyhow::anyhow!("the OS random number generator failed: {error}"))?;
    let salt = phc::Salt::new(&salt).map_err(|e| failed(&e))?;
    let mut output = vec![0u8; cost.params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)];
    compute(cost, password, &salt, &mut output, memory).map_err(|e| failed(&e))?;
    let hash = phc::PasswordHash {
        algorithm: cost.algorithm.ident(),
        version: Some(cost.version.into()),
        params: phc::ParamsString::try_from(&cost.params).map_err(|e| failed(&e))?,
        salt: Some(salt),
        hash: Some(phc::Output::new(&output).map_err(|e| failed(&e))?),
    };
    Ok(PasswordHash::new(hash.to_string()))
}

/// Runs argon2 into `output` in `memory`, replacing it with fresh [`working_memory`] if it is
/// too small. Its previous contents do not matter: argon2's first pass writes every block
/// before any is read.
fn compute(
    cost: &Cost,
    password: &[u8],
    salt: &[u8],
    output: &mut [u8],
    memory: &mut Vec<Block>,
) -> argon2::Result<()> {
    let blocks = cost.params.block_count();
    if memory.len() < blocks {
        *memory = working_memory(blocks);
    }
    cost.argon2().hash_password_into_with_memory(password, salt, output, memory.as_mut_slice())
}

/// `blocks` zeroed blocks in an allocation of at least [`RESERVED_WORKING_MEMORY_BYTES`].
fn working_memory(blocks: usize) -> Vec<Block> {
    let reserved = blocks.max(RESERVED_WORKING_MEMORY_BYTES / Block::SIZE);
    let mut memory = Vec::with_capacity(reserved);
    memory.resize(blocks, Block::new());
    memory
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
        Password::parse(raw).unwrap()
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
        let cheap = Cost {
            algorithm: Algorithm::Argon2id,
            version: Version::V0x13,
            params: Params::new(8, 1, 1, None).unwrap(),
        };
        let old = hash_bytes(&cheap, b"correct horse battery staple", &mut Vec::new()).unwrap();
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
        assert!(debug.contains("max_concurrent"));
        assert!(!debug.contains('$'), "must not print the dummy hash: {debug}");
    }

    /// The hashes are the argon2 crate's own, both ways: hashes stored before this crate
    /// computed them itself still verify, and its hashes verify with the crate's verifier.
    #[test]
    fn hashes_match_the_argon2_crates_own_hasher_and_verifier() {
        use argon2::{PasswordHasher as _, PasswordVerifier as _};
        let reference = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None).unwrap(),
        );

        let theirs = PasswordHash::new(reference.hash_password(b"correct horse battery staple").unwrap().to_string());
        assert!(hasher().verify("correct horse battery staple", &theirs).unwrap());
        assert!(!hasher().verify("correct horse battery stapler", &theirs).unwrap());

        let ours = hasher().hash(&password("correct horse battery staple")).unwrap();
        let parsed = phc::PasswordHash::new(ours.as_str()).unwrap();
        reference.verify_password(b"correct horse battery staple", &parsed).unwrap();
        assert!(reference.verify_password(b"correct horse battery stapler", &parsed).is_err());
    }

    #[test]
    fn concurrency_defaults_to_the_cores_and_can_be_bounded() {
        assert_eq!(hasher().max_concurrent(), default_max_concurrent().get());
        let one = Argon2PasswordHasher::with_max_concurrent(NonZeroUsize::MIN).unwrap();
        assert_eq!(one.max_concurrent(), 1);
    }

    /// Callers beyond the bound wait their turn; none fails and none is lost.
    #[test]
    fn concurrent_callers_beyond_the_bound_all_get_their_answer() {
        let one = std::sync::Arc::new(Argon2PasswordHasher::with_max_concurrent(NonZeroUsize::MIN).unwrap());
        let callers: Vec<_> = (0..4)
            .map(|n| {
                let hasher = one.clone();
                std::thread::spawn(move || {
                    let secret = format!("correct horse battery {n}");
                    let hash = hasher.hash(&password(&secret)).unwrap();
                    (hasher.verify(&secret, &hash).unwrap(), hasher.verify("wrong", &hash).unwrap())
                })
            })
            .collect();
        for caller in callers {
            assert_eq!(caller.join().unwrap(), (true, false));
        }
        assert_eq!((one.permits.held(), one.permits.waiting()), (0, 0));
        assert_eq!(one.permits.spare(), 0, "a quiet hasher holds no working memory");
    }

    /// Memory handed on from one hash to the next still holds that hash's state; the result
    /// must not depend on it.
    #[test]
    fn reused_working_memory_gives_the_same_hash() {
        let cost = &hasher().cost;
        let salt = b"sixteen byte salt";
        let mut memory = Vec::new();
        let mut fresh = [0u8; 32];
        compute(cost, b"correct horse battery staple", salt, &mut fresh, &mut memory).unwrap();
        let mut other = [0u8; 32];
        compute(cost, b"something else entirely", salt, &mut other, &mut memory).unwrap();
        let mut reused = [0u8; 32];
        compute(cost, b"correct horse battery staple", salt, &mut reused, &mut memory).unwrap();
        assert_eq!(fresh, reused);
        assert_ne!(fresh, other);
    }

    #[test]
    fn working_memory_is_handed_on_while_others_hash_and_given_back_after() {
        let two = Argon2PasswordHasher::with_max_concurrent(NonZeroUsize::new(2).unwrap()).unwrap();
        let hash = two.hash(&password("correct horse battery staple")).unwrap();
        assert_eq!(two.permits.spare(), 0, "alone: the memory went back");
        // Another holder is busy while this verification finishes: its memory is kept.
        let (other, _) = two.permits.acquire();
        assert!(two.verify("correct horse battery staple", &hash).unwrap());
        assert_eq!(two.permits.spare(), 1, "kept for the busy one");
        other.finish(Vec::new());
        assert_eq!(two.permits.spare(), 0, "the last one out gave it back");
    }

    #[test]
    fn working_memory_is_zeroed_and_reserved_above_the_mmap_threshold() {
        let blocks = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None).unwrap().block_count();
        let memory = working_memory(blocks);
        assert_eq!(memory.len(), blocks);
        assert!(memory.capacity() * Block::SIZE >= 32 * 1024 * 1024, "glibc's largest dynamic mmap threshold");
        assert!(memory.iter().all(|block| block.as_ref().iter().all(|&word| word == 0)));
    }
}
