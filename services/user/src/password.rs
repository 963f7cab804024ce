//! Argon2id password hashing, off the async runtime (it is deliberately slow).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;

use crate::config::HashCost;

/// Why hashing failed (bad parameters; never the user's fault).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

impl HashError {
    /// A hashing task that panicked or was cancelled.
    pub fn from_join(e: &tokio::task::JoinError) -> Self {
        Self(e.to_string())
    }
}

/// Hashes and verifies passwords with a fixed cost.
#[derive(Debug, Clone)]
pub struct PasswordHashing {
    cost: HashCost,
    /// A hash of a random password, verified when a login names an unknown email so both
    /// cases take the same time (no account enumeration by timing).
    dummy: String,
}

fn hasher(cost: HashCost) -> Result<Argon2<'static>, HashError> {
    let params = Params::new(cost.memory_kib, cost.iterations, 1, None)
        .map_err(|e| HashError(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_blocking(cost: HashCost, password: &str) -> Result<String, HashError> {
    let mut salt = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| HashError(e.to_string()))?;
    hasher(cost)?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

fn verify_blocking(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        // The stored PHC string carries its own parameters.
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

impl PasswordHashing {
    /// Hashing at `cost`.
    pub fn new(cost: HashCost) -> Result<Self, HashError> {
        let mut pw = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut pw);
        let dummy = hash_blocking(cost, &hex_string(&pw))?;
        Ok(Self { cost, dummy })
    }

    /// The PHC string of `password`.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        let cost = self.cost;
        tokio::task::spawn_blocking(move || hash_blocking(cost, &password))
            .await
            .map_err(|e| HashError(e.to_string()))?
    }

    /// Whether `password` matches `hash`; with `None` (unknown user) verify against the
    /// dummy hash and answer false.
    pub async fn verify(&self, hash: Option<String>, password: String) -> bool {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy.clone());
        let ok = tokio::task::spawn_blocking(move || verify_blocking(&hash, &password))
            .await
            .unwrap_or(false);
        ok && known
    }
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: HashCost = HashCost {
        memory_kib: 64,
        iterations: 1,
    };

    #[tokio::test]
    async fn hashes_are_argon2id_salted_and_verify() {
        let h = PasswordHashing::new(CHEAP).expect("params");
        let a = h.hash("correct horse".into()).await.expect("hash");
        let b = h.hash("correct horse".into()).await.expect("hash");
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(h.verify(Some(a.clone()), "correct horse".into()).await);
        assert!(!h.verify(Some(a), "wrong horse".into()).await);
        assert!(!h.verify(None, "anything".into()).await);
        assert!(!h.verify(Some("not a phc string".into()), "x".into()).await);
    }
}
