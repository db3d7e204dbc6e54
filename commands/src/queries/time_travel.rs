//! Time travel: a read run against the read models as a resource's stream alone makes them
//! up to its version N (the version of its event N + 1, as `ETag` counts), folded from the log (not read from the read models).
//!
//! The fold fills scratch copies of the tables the stream's events write, in a transaction of a
//! connection taken out of the pool for good (its copies shadow the live tables; it is closed,
//! never committed, when the read ends, however it ends); the read then runs as usual, its
//! queries sent on that connection. What other streams write to those tables is therefore not
//! in the answer (a user's teams, which their team streams add), and what they write to tables
//! of their own is as it is now (an app's units). At most [`AT_ONCE`] folds run at a time, each
//! on a connection beside the pool's; another waits up to [`WAIT`] for its turn, then is a 503.

use super::Queries;
use crate::actor::Actor;
use crate::error::CommandError;
use bosun_domain::DomainError;
use bosun_eventstore::{EventStore, StreamId};
use deadpool_postgres::ClientWrapper;
use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

/// How many time travels run at once.
pub(super) const AT_ONCE: usize = 4;
/// How long one waits for its turn.
const WAIT: Duration = Duration::from_secs(5);

tokio::task_local! {
    /// The connection holding the scratch read models of the read in progress.
    static SCRATCH: Arc<ClientWrapper>;
}

/// A connection to read the read models on.
// The pooled one is every read but time travel's: kept unboxed, as it was before there were two.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Reader {
    Pooled(deadpool_postgres::Object),
    Scratch(Arc<ClientWrapper>),
}

impl Deref for Reader {
    type Target = ClientWrapper;

    fn deref(&self) -> &ClientWrapper {
        match self {
            Reader::Pooled(object) => object,
            Reader::Scratch(client) => client,
        }
    }
}

/// The scratch connection, inside [`Queries::as_of`].
pub(super) fn scratch() -> Option<Reader> {
    SCRATCH.try_with(|c| Reader::Scratch(c.clone())).ok()
}

impl Queries {
    /// What `read` answers when the read models are as `stream`'s events up to version
    /// `version` (its first, 0, to that one) alone make them. The caller must be able to read
    /// the stream now; a version past the stream's last is a 404, as is a stream the caller may
    /// not read.
    pub async fn as_of<F: Future>(
        &self,
        actor: &Actor,
        stream: &StreamId,
        version: u64,
        read: F,
    ) -> Result<F::Output, CommandError> {
        let not_found = || {
            CommandError::from(DomainError::NotFound(format!(
                "{stream} has no version {version} you may read"
            )))
        };
        if !self.may_read_stream(actor, stream).await? {
            return Err(not_found());
        }
        match self.store.version_at(stream, None).await? {
            Some((last, _)) if version <= last => {}
            _ => return Err(not_found()),
        }
        let _turn = tokio::time::timeout(WAIT, self.folds.acquire())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| CommandError::Unavailable {
                code: "busy",
                message: format!(
                    "{AT_ONCE} reads of past versions are under way; retry in a moment"
                ),
            })?;
        // The version exists, so the count fits: it is at most the stream's length.
        let max = usize::try_from(version).map_or(usize::MAX, |v| v.saturating_add(1));
        let events = self.store.read_stream(stream, 0, max).await?;
        if events.len() < max {
            return Err(not_found());
        }
        // Out of the pool for good: dropped, it closes, and its transaction ends with it.
        let client = deadpool_postgres::Object::take(self.store.pool().get().await?);
        client.batch_execute("BEGIN").await?;
        bosun_projections::scratch::fold(&*client, stream.category(), &events).await?;
        Ok(SCRATCH.scope(Arc::new(client), read).await)
    }
}
