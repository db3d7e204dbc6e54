//! Errors of the event store: typed, so callers can tell a concurrency conflict from an outage.

use crate::event::{CurrentVersion, ExpectedVersion};
use crate::stream_id::StreamId;
use uuid::Uuid;

/// The store could not be reached or failed; nothing about the caller's input.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error("no database connection: {0}")]
    Connection(String),
    #[error("the event store has shut down")]
    Closed,
    /// A batch of appends failed together; each caller gets the message.
    #[error("append failed: {0}")]
    Failed(String),
    #[error("the log holds a value this code cannot read: {0}")]
    Corrupt(String),
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The stream is not at the version the caller expected. Carries the actual version so a
    /// caller can reload and retry, and an adapter for KurrentDB can map it one to one.
    #[error("wrong expected version for stream {stream}: expected {expected}, actual {actual}")]
    WrongExpectedVersion {
        stream: StreamId,
        expected: ExpectedVersion,
        actual: CurrentVersion,
    },
    /// Some of the event ids were appended before, but not as exactly this append.
    #[error("event id {event_id} was already appended as part of a different append")]
    EventIdConflict { event_id: Uuid },
    #[error("an append needs at least one event")]
    NoEvents,
    /// A value the log cannot store (a NUL character); nothing was written, and no other
    /// append was affected.
    #[error("{field} cannot be stored: {reason}")]
    Unstorable { field: String, reason: String },
    /// The database refused to store this append itself (a value it cannot hold, a constraint);
    /// its batch-mates were written without it. Retrying it cannot help.
    #[error("the database refused the append: {0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}
