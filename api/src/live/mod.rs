//! The live hub: what every live subscriber of this process shares.
//!
//! - One subscription to the log per process, each event redacted and serialized once and fanned
//!   out to every WebSocket subscriber through a bounded broadcast buffer. Publishing never waits
//!   for a subscriber: one that falls more than the buffer behind loses its place in the buffer
//!   and is closed (with the last position it got) instead of slowing the others.
//! - The catch-up pages ([`pages`]): subscribers starting behind the head read the log through
//!   one shared, bounded cache of pages, never each on its own.
//! - The access watchers ([`identity`]): an identity event published here wakes the watchers of
//!   the tokens it concerns, so a revoked token's socket closes at once.
//!
//! Events go out only once every projection has applied them (a subscriber that reacts to an
//! event and then reads a read model sees its effect).

mod event;
pub mod identity;
pub mod pages;

pub use event::LiveEvent;

use bosun_eventstore::{EventStore, Filter, PgEventStore, RecordedEvent};
use bosun_projections::Freshness;
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

#[derive(Clone)]
pub struct Hub {
    sender: broadcast::Sender<Arc<LiveEvent>>,
    buffer: usize,
    pages: Arc<pages::Pages>,
    watchers: Arc<identity::Watchers>,
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
        let watchers = Arc::new(identity::Watchers::default());
        let pages = Arc::new(pages::Pages::new(store.clone()));
        let task = tokio::spawn(follow(
            store,
            freshness,
            head,
            sender.clone(),
            watchers.clone(),
        ));
        Hub {
            sender,
            buffer,
            pages,
            watchers,
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

    /// The shared catch-up pages of the log.
    pub fn pages(&self) -> &pages::Pages {
        &self.pages
    }

    /// Registers an access watcher of `streams` (see [`identity`]).
    pub fn watch_identity(&self, streams: Vec<String>) -> identity::Watch {
        self.watchers.watch(streams)
    }
}

/// The hub's task: each event of the log, once the read models have it, to the subscribers and
/// (for identity events) to the access watchers it concerns.
async fn follow(
    store: PgEventStore,
    freshness: Freshness,
    head: u64,
    publisher: broadcast::Sender<Arc<LiveEvent>>,
    watchers: Arc<identity::Watchers>,
) {
    let mut events = store.subscribe(head + 1, Filter::all());
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                wait_for_read_models(&freshness, &event).await;
                watchers.publish(&event);
                // No receivers is fine: nobody is watching.
                let _ = publisher.send(Arc::new(LiveEvent::new(event)));
            }
            Err(e) => tracing::warn!(error = %e, "live feed: reading the log failed; retrying"),
        }
    }
}

async fn wait_for_read_models(freshness: &Freshness, event: &RecordedEvent) {
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
}
