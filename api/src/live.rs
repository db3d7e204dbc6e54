//! The live hub: one subscription to the log per process, each event serialized once and fanned
//! out to every WebSocket subscriber through a bounded broadcast buffer. Publishing never waits
//! for a subscriber: one that falls more than the buffer behind loses its place in the buffer and
//! is closed (with the last position it got) instead of slowing the others.

use axum::extract::ws::Utf8Bytes;
use bosun_eventstore::{EventStore, Filter, PgEventStore, RecordedEvent};
use bosun_projections::Freshness;
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

/// One event as live subscribers get it.
#[derive(Debug)]
pub struct LiveEvent {
    pub position: u64,
    pub category: String,
    pub event_type: String,
    /// The envelope as JSON, shared by every subscriber.
    pub json: Utf8Bytes,
}

impl LiveEvent {
    pub fn new(event: &RecordedEvent) -> Self {
        LiveEvent {
            position: event.position,
            category: event.stream_id.category().to_string(),
            event_type: event.event_type.clone(),
            json: Utf8Bytes::from(serde_json::to_string(event).unwrap_or_default()),
        }
    }

    pub fn matches(&self, filter: &Filter) -> bool {
        (filter.categories.is_empty() || filter.categories.contains(&self.category))
            && (filter.event_types.is_empty() || filter.event_types.contains(&self.event_type))
    }
}

#[derive(Clone)]
pub struct Hub {
    sender: broadcast::Sender<Arc<LiveEvent>>,
    buffer: usize,
    _task: Arc<AbortOnDrop>,
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Hub {
    /// Follows the log from the event after `head` on.
    pub fn start(store: PgEventStore, freshness: Freshness, head: u64, buffer: usize) -> Self {
        let (sender, _) = broadcast::channel(buffer.max(1));
        let publisher = sender.clone();
        let task = tokio::spawn(async move {
            let mut events = store.subscribe(head + 1, Filter::all());
            while let Some(event) = events.next().await {
                match event {
                    // No receivers is fine: nobody is watching.
                    Ok(event) => {
                        // Pushed after projection: a subscriber that reacts to an event and
                        // then reads a read model sees its effect.
                        while freshness
                            .wait_for(event.position, Duration::from_secs(5))
                            .await
                            .is_err()
                        {
                            tracing::warn!(
                                position = event.position,
                                "live feed waits for the read models"
                            );
                        }
                        let _ = publisher.send(Arc::new(LiveEvent::new(&event)));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "live feed: reading the log failed; retrying")
                    }
                }
            }
        });
        Hub {
            sender,
            buffer,
            _task: Arc::new(AbortOnDrop(task)),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.sender.subscribe()
    }

    pub fn buffer(&self) -> usize {
        self.buffer
    }

    pub fn subscribers(&self) -> usize {
        self.sender.receiver_count()
    }
}
