//! Passwords and tokens: argon2 (default parameters) for passwords, 32 random bytes from the OS
//! for tokens, of which only the SHA-256 digest is ever stored.

use crate::error::CommandError;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bosun_domain::identity::{Password, PasswordHash, TokenDigest};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};

/// Tokens start with this, so a leaked one is easy to recognize (and to scan for).
pub const TOKEN_PREFIX: &str = "bosun_";

/// Hashes on a blocking thread: argon2 is meant to be slow.
pub async fn hash_password(password: &Password) -> Result<PasswordHash, CommandError> {
    let password = password.clone();
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|h| PasswordHash(h.to_string()))
            .map_err(|e| CommandError::Internal(format!("hashing a password failed: {e}")))
    })
    .await
    .map_err(|e| CommandError::Internal(format!("hashing a password failed: {e}")))?
}

/// Whether `password` matches `hash`; with no hash (an unknown user) the same work is done
/// against a fixed one, so the answer takes as long either way.
pub async fn verify_password(password: &str, hash: Option<String>) -> bool {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| DUMMY_HASH.to_string());
        let Ok(parsed) = argon2::password_hash::PasswordHash::new(&hash) else {
            return false;
        };
        let matches = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        known && matches
    })
    .await
    .unwrap_or(false)
}

/// argon2id of a random string nobody knows, with the default parameters.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$bm90LWEtcmVhbC1zYWx0$JxQ3q0kq6O0v1Jm2xYkzQ2pQJv5cS5cH2mWl0qgq0dU";

/// A new token: the secret for its holder, and the digest for the log.
pub struct NewToken {
    pub secret: String,
    pub digest: TokenDigest,
}

pub fn new_token() -> NewToken {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let secret = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let digest = digest(&secret);
    NewToken { secret, digest }
}

pub fn digest(token: &str) -> TokenDigest {
    let hash = Sha256::digest(token.as_bytes());
    TokenDigest(hex::encode(hash))
}

/// A random password for a generated account: 24 URL-safe characters (18 bytes).
pub fn random_password() -> Password {
    let mut bytes = [0u8; 18];
    OsRng.fill_bytes(&mut bytes);
    // 24 characters from a URL-safe alphabet always parse (6 to 50).
    Password::parse("password", &URL_SAFE_NO_PAD.encode(bytes))
        .unwrap_or_else(|_| unreachable!("a 24-character password is valid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_and_nothing_else() {
        let password = Password::parse("password", "correct horse").unwrap();
        let hash = hash_password(&password).await.unwrap();
        assert!(hash.0.starts_with("$argon2id$"));
        assert!(!hash.0.contains("correct horse"));
        assert!(verify_password("correct horse", Some(hash.0.clone())).await);
        assert!(!verify_password("correct horsf", Some(hash.0)).await);
        assert!(!verify_password("correct horse", None).await);
    }

    #[test]
    fn tokens_are_random_and_only_their_digest_is_kept() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a.secret, b.secret);
        assert!(a.secret.len() >= TOKEN_PREFIX.len() + 43);
        assert_eq!(a.digest, digest(&a.secret));
        assert_eq!(a.digest.0.len(), 64);
        assert!(!a.digest.0.contains(&a.secret[TOKEN_PREFIX.len()..]));
    }
}
