//! A secret as events store it: sealed with the server's data key, so the log, its readers and
//! its backups never hold the value in clear. The domain only carries it; sealing and opening
//! need the key and live in `commands` (`Sealer`).

use serde::{Deserialize, Serialize};
use std::fmt;

/// A value sealed with the data key: `v1.<nonce>.<ciphertext and tag>`, both base64url. Its
/// Debug shows nothing of it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sealed(String);

impl Sealed {
    /// What `Sealer::seal` made, or what an event holds.
    pub fn from_stored(text: String) -> Self {
        Sealed(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealed(…)")
    }
}
