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
    /// An append with no events, or a multi-append with no parts or with a part of no events.
    #[error("an append needs at least one event")]
    NoEvents,
    /// A multi-append names the same stream in two parts: each part is decided against its own
    /// expected version, so one stream can appear once. Put all its events in one part.
    #[error("stream {stream} appears in more than one part of one append")]
    DuplicateStream { stream: StreamId },
    /// The same event id twice in one append (in one part or across parts).
    #[error("event id {event_id} appears more than once in one append")]
    DuplicateEventId { event_id: Uuid },
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
