//! Content-addressed blobs: the bytes of runnables' files, kept once per content in the log's
//! database (`blobs`, keyed by the SHA-256 of the content, lowercase hex), next to the events
//! that name them by digest.
//!
//! Owns: storing a content under the digest its caller computed (idempotent: the same bytes
//! again write nothing), and reading one back.
//!
//! Does not own: which blobs a runnable uses (its events do, by digest), the limits on a file's
//! size (the command handlers check them before anything is stored), or the digest as a domain
//! value (`bosun_domain::runnables::Digest`; a plain `String` here keeps the log independent of
//! the domain).
//!
//! Blobs are never deleted for now: a later collector may remove those no event names any more.
//! A blob stored for a write whose event was then refused stays, unreferenced, until then.

use crate::error::StoreError;
use crate::postgres::{client, PgEventStore};
use sha2::{Digest, Sha256};

/// The digest a content is stored under: SHA-256, 64 lowercase hex characters.
pub fn digest_of(content: &[u8]) -> String {
    hex::encode(Sha256::digest(content))
}

impl PgEventStore {
    /// Stores `content` under `digest`, which the caller computed ([`digest_of`] it, so the
    /// content is hashed once). The same content again (by anyone, concurrently too) writes
    /// nothing.
    pub async fn put_blob(&self, digest: &str, content: &[u8]) -> Result<(), StoreError> {
        let client = client(self.pool()).await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO blobs (digest, size, content) VALUES ($1, $2, $3) \
                 ON CONFLICT (digest) DO NOTHING",
            )
            .await?;
        client
            .execute(&statement, &[&digest, &(content.len() as i64), &content])
            .await?;
        Ok(())
    }

    /// The content stored under `digest`, if any.
    pub async fn blob(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let client = client(self.pool()).await?;
        let statement = client
            .prepare_cached("SELECT content FROM blobs WHERE digest = $1")
            .await?;
        let row = client.query_opt(&statement, &[&digest]).await?;
        Ok(row.map(|r| r.get(0)))
    }
}
