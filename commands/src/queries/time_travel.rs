//! Time travel: a read run against the read models as a resource's stream alone makes them
//! up to its version N (the version of its event N + 1, as `ETag` counts), folded from the log (not read from the read models).
//!
//! The fold fills scratch copies of the tables the stream's events concern, in a transaction
//! of a connection taken out of the pool for good (its copies shadow the live tables; it is
//! closed, never committed, when the read ends, however it ends); the read then runs as usual,
//! its queries sent on that connection. What other streams add to an answer is therefore not
//! in it when it lives in the same tables (a quota's apps in use), and is as it is now when it
//! lives in tables of its own (an app's units).

use super::Queries;
use crate::actor::Actor;
use crate::error::CommandError;
use bosun_domain::DomainError;
use bosun_eventstore::{EventStore, StreamId};
use deadpool_postgres::ClientWrapper;
use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;

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
        let max = usize::try_from(version)
            .ok()
            .and_then(|v| v.checked_add(1))
            .ok_or_else(not_found)?;
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
