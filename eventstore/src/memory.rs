//! The in-memory store: the same contract as PostgreSQL, for unit tests and tools. Nothing
//! survives the process.

use crate::error::{AppendError, StoreError};
use crate::event::{AppendResult, CurrentVersion, Filter, Page, RecordedEvent, StreamAppend};
use crate::idempotency::{earlier_appends, Landed};
use crate::store::{EventStore, Subscription};
use crate::stream_id::StreamId;
use crate::subscription::catch_up_then_live;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;
use uuid::Uuid;

#[derive(Clone)]
pub struct InMemoryEventStore {
    inner: Arc<Mutex<Log>>,
    head: watch::Sender<u64>,
}

#[derive(Default)]
struct Log {
    /// `events[i]` has position `i + 1`.
    events: Vec<RecordedEvent>,
    streams: HashMap<StreamId, Vec<usize>>,
    by_event_id: HashMap<Uuid, usize>,
}

impl Default for InMemoryEventStore {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryEventStore {
    pub fn new() -> Self {
        InMemoryEventStore {
            inner: Arc::default(),
            head: watch::Sender::new(0),
        }
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        // A panic while holding the lock cannot leave the log half-written: every append checks
        // everything before it pushes.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Log {
    fn current(&self, stream: &StreamId) -> CurrentVersion {
        CurrentVersion::from_last(
            self.streams
                .get(stream)
                .and_then(|v| v.len().checked_sub(1))
                .map(|v| v as u64),
        )
    }
}

#[async_trait]
impl EventStore for InMemoryEventStore {
    async fn append_many(
        &self,
        appends: Vec<StreamAppend>,
    ) -> Result<Vec<AppendResult>, AppendError> {
        crate::storable::check_appends(&appends)?;
        let results = {
            let mut log = self.log();
            let lookup = |id: &Uuid| {
                log.by_event_id.get(id).map(|&i| {
                    let e = &log.events[i];
                    Landed {
                        stream_id: e.stream_id.clone(),
                        version: e.version,
                        position: e.position,
                    }
                })
            };
            if let Some(earlier) = earlier_appends(&appends, lookup)? {
                return Ok(earlier);
            }
            // Every part checked before any is written: all or nothing.
            let mut first_versions = Vec::with_capacity(appends.len());
            for part in &appends {
                let current = log.current(&part.stream);
                if !current.satisfies(part.expected) {
                    return Err(AppendError::WrongExpectedVersion {
                        stream: part.stream.clone(),
                        expected: part.expected,
                        actual: current,
                    });
                }
                first_versions.push(current.next());
            }
            let now = chrono::Utc::now();
            let mut results = Vec::with_capacity(appends.len());
            for (part, first_version) in appends.into_iter().zip(first_versions) {
                let stream = part.stream;
                let first_position = log.events.len() as u64 + 1;
                for (offset, event) in part.events.into_iter().enumerate() {
                    let index = log.events.len();
                    log.by_event_id.insert(event.event_id, index);
                    log.streams.entry(stream.clone()).or_default().push(index);
                    log.events.push(RecordedEvent {
                        position: index as u64 + 1,
                        stream_id: stream.clone(),
                        version: first_version + offset as u64,
                        event_id: event.event_id,
                        event_type: event.event_type,
                        schema_version: event.schema_version,
                        data: event.data,
                        metadata: event.metadata,
                        recorded_at: now,
                    });
                }
                let last_position = log.events.len() as u64;
                results.push(AppendResult {
                    stream_id: stream,
                    first_version,
                    last_version: first_version + (last_position - first_position),
                    first_position,
                    last_position,
                });
            }
            results
        };
        if let Some(last) = results.last() {
            self.head.send_replace(last.last_position);
        }
        Ok(results)
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let log = self.log();
        Ok(log
            .streams
            .get(stream)
            .map(|indexes| {
                indexes
                    .iter()
                    .skip(from_version as usize)
                    .take(max)
                    .map(|&i| log.events[i].clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn read_page(
        &self,
        from_position: u64,
        max: usize,
        filter: &Filter,
    ) -> Result<Page, StoreError> {
        let log = self.log();
        let start = from_position.max(1) as usize - 1;
        let events = log
            .events
            .iter()
            .skip(start)
            .filter(|e| filter.matches(e))
            .take(max)
            .cloned()
            .collect();
        Ok(Page {
            events,
            head: log.events.len() as u64,
        })
    }

    async fn head(&self) -> Result<u64, StoreError> {
        Ok(self.log().events.len() as u64)
    }

    fn head_changes(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }

    fn subscribe(&self, from_position: u64, filter: Filter) -> Subscription {
        catch_up_then_live(self.clone(), from_position, filter)
    }
}
