//! The contract every event store implementation meets.

use crate::error::{AppendError, StoreError};
use crate::event::{
    AppendResult, ExpectedVersion, Filter, NewEvent, Page, RecordedEvent, StreamAppend,
};
use crate::stream_id::StreamId;
use async_trait::async_trait;
use futures::stream::BoxStream;
use tokio::sync::watch;

/// Events from a position on: first those already in the log, then new ones as they commit, in
/// position order, each once. It never ends by itself; a store error is yielded and the
/// subscription retries after a pause.
pub type Subscription = BoxStream<'static, Result<RecordedEvent, StoreError>>;

#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends `events` to `stream` atomically if the stream is at `expected`.
    ///
    /// Appending events whose ids were all appended before, as one append to the same stream,
    /// returns that first result and writes nothing.
    ///
    /// A one-part [`append_many`](EventStore::append_many), which is how the stores implement it.
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, AppendError> {
        let part = StreamAppend::new(stream.clone(), expected, events);
        self.append_many(vec![part]).await?.pop().ok_or_else(|| {
            StoreError::Failed("the store answered an append with no result".into()).into()
        })
    }

    /// Appends every part, each to its own stream, atomically: all of them if every stream is at
    /// its part's expected version, else none. Returns one result per part, in order; the events
    /// of one call get consecutive positions, in the order of the parts.
    ///
    /// A conflict is [`AppendError::WrongExpectedVersion`] naming the first part's stream that
    /// was not where it was expected, and writes nothing. Refused up front, with nothing
    /// written: no parts or a part with no events ([`AppendError::NoEvents`]), one stream in two
    /// parts ([`AppendError::DuplicateStream`]), an event id twice
    /// ([`AppendError::DuplicateEventId`]), a value the log cannot hold in any part
    /// ([`AppendError::Unstorable`]).
    ///
    /// A retry, whose event ids were all appended before as exactly this multi-append, returns
    /// the first results and writes nothing; if only some were, it is
    /// [`AppendError::EventIdConflict`].
    async fn append_many(
        &self,
        appends: Vec<StreamAppend>,
    ) -> Result<Vec<AppendResult>, AppendError>;

    /// Up to `max` events of `stream` from version `from_version` on.
    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Up to `max` events matching `filter` at positions `from_position` and later, with the head
    /// as of the same snapshot.
    async fn read_page(
        &self,
        from_position: u64,
        max: usize,
        filter: &Filter,
    ) -> Result<Page, StoreError>;

    /// Up to `max` events matching `filter` at positions `from_position` and later.
    async fn read_all(
        &self,
        from_position: u64,
        max: usize,
        filter: &Filter,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        Ok(self.read_page(from_position, max, filter).await?.events)
    }

    /// The position of the last committed event; 0 for an empty log.
    async fn head(&self) -> Result<u64, StoreError>;

    /// Wakes up when the head may have moved. A hint only: readers always re-read the log.
    fn head_changes(&self) -> watch::Receiver<u64>;

    /// Catch-up from `from_position` (inclusive), then live.
    fn subscribe(&self, from_position: u64, filter: Filter) -> Subscription;
}
