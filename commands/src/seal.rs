//! Sealing secrets before they enter an event: ChaCha20-Poly1305 with a key derived from the
//! server's data key, a random nonce per value, and the value's place (`context`, such as
//! `app-web/env/DB_PASSWORD`) as associated data, so a sealed value copied to another place
//! does not open there.
//!
//! Every node of one database reads the same data key, so any node opens what another sealed.

use crate::error::CommandError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bosun_domain::sealed::Sealed;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use sha2::Sha256;

const VERSION: &str = "v1";
const NONCE: usize = 12;

/// Seals and opens values with the data key. Its Debug shows nothing of the key.
pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(…)")
    }
}

impl Sealer {
    /// A sealer whose key is HMAC-SHA256(data key, "bosun seal v1"): the data key itself, from
    /// which tokens are derived too, never keys the cipher.
    pub fn new(data_key: &SecretSlice<u8>) -> Self {
        // HMAC takes a key of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(data_key.expose_secret())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
        mac.update(b"bosun seal v1");
        let key = mac.finalize().into_bytes();
        Sealer {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
        }
    }

    /// `value` sealed for `context`.
    pub fn seal(&self, context: &str, value: &str) -> Result<Sealed, CommandError> {
        let mut nonce = [0u8; NONCE];
        getrandom::fill(&mut nonce)
            .map_err(|e| CommandError::Internal(format!("no random bytes for a nonce: {e}")))?;
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| CommandError::Internal("sealing a value failed".into()))?;
        Ok(Sealed::from_stored(format!(
            "{VERSION}.{}.{}",
            URL_SAFE_NO_PAD.encode(nonce),
            URL_SAFE_NO_PAD.encode(sealed)
        )))
    }

    /// The value `sealed` holds, if it was sealed for `context` with this data key.
    pub fn open(&self, context: &str, sealed: &Sealed) -> Result<SecretString, CommandError> {
        let unreadable = || {
            CommandError::Internal(format!(
                "a sealed value of {context} does not open with this data key (another node's data_key_file?)"
            ))
        };
        let mut parts = sealed.as_str().split('.');
        let (Some(VERSION), Some(nonce), Some(body), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(unreadable());
        };
        let nonce = URL_SAFE_NO_PAD.decode(nonce).map_err(|_| unreadable())?;
        let body = URL_SAFE_NO_PAD.decode(body).map_err(|_| unreadable())?;
        if nonce.len() != NONCE {
            return Err(unreadable());
        }
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &body,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| unreadable())?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| unreadable())
    }
}

#[cfg(test)]
mod tests {
    use super::Sealer;
    use secrecy::{ExposeSecret, SecretSlice};

    fn sealer_of(byte: u8) -> Sealer {
        Sealer::new(&SecretSlice::from(vec![byte; 32]))
    }

    #[test]
    fn a_sealed_value_opens_in_its_context_only() {
        let sealer = sealer_of(7);
        let sealed = sealer.seal("app-web/env/DB", "s3cret-value").unwrap();
        assert!(!sealed.as_str().contains("s3cret"), "{}", sealed.as_str());
        assert_eq!(format!("{sealed:?}"), "Sealed(…)");
        assert_eq!(
            sealer
                .open("app-web/env/DB", &sealed)
                .unwrap()
                .expose_secret(),
            "s3cret-value"
        );
        assert!(
            sealer.open("app-api/env/DB", &sealed).is_err(),
            "another place"
        );
        assert!(
            sealer_of(8).open("app-web/env/DB", &sealed).is_err(),
            "another key"
        );
    }

    #[test]
    fn the_same_value_seals_differently_each_time() {
        let sealer = sealer_of(1);
        let a = sealer.seal("c", "v").unwrap();
        let b = sealer.seal("c", "v").unwrap();
        assert_ne!(a, b, "a fresh nonce per value");
    }

    #[test]
    fn a_tampered_value_does_not_open() {
        let sealer = sealer_of(1);
        let sealed = sealer.seal("c", "value").unwrap();
        let mut text = sealed.as_str().to_string();
        let last = text.pop().unwrap();
        text.push(if last == 'A' { 'B' } else { 'A' });
        let tampered = bosun_domain::sealed::Sealed::from_stored(text);
        assert!(sealer.open("c", &tampered).is_err());
        let garbage = bosun_domain::sealed::Sealed::from_stored("v1.x".into());
        assert!(sealer.open("c", &garbage).is_err());
    }
}
