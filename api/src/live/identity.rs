//! Which live subscribers an identity event concerns, so that a token's revocation (or its user's
//! removal or demotion) closes the sockets it opened at once rather than at the next periodic
//! check.
//!
//! Each subscriber's access watcher registers the streams its token depends on — its own
//! `token-…` stream, its user's `user-…` stream and its teams' `team-…` streams — and the hub,
//! which publishes an event only once the read models have applied it, wakes the watchers of the
//! streams each identity event concerns. Only those: re-authenticating every subscriber on every
//! token issued would put one query per subscriber on the pool for each login.

use bosun_eventstore::RecordedEvent;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use tokio::sync::Notify;

/// The stream categories whose events can change what a token may do.
const IDENTITY: [&str; 3] = ["token", "user", "team"];

/// The access watchers of one process, by the stream ids they watch.
#[derive(Default)]
pub struct Watchers {
    by_stream: Mutex<HashMap<String, Vec<Weak<Notify>>>>,
}

impl Watchers {
    /// Registers a watcher of `streams`; it is woken by [`Watchers::publish`] of any event that
    /// concerns one of them, until dropped.
    pub fn watch(self: &Arc<Self>, streams: Vec<String>) -> Watch {
        let mut watch = Watch {
            notify: Arc::new(Notify::new()),
            streams: Vec::new(),
            watchers: self.clone(),
        };
        watch.set_streams(streams);
        watch
    }

    /// Wakes the watchers `event` concerns, if it is an identity event.
    pub fn publish(&self, event: &RecordedEvent) {
        let streams = concerned(event);
        if streams.is_empty() {
            return;
        }
        let by_stream = self.map();
        for stream in &streams {
            for notify in by_stream.get(stream).into_iter().flatten() {
                if let Some(notify) = notify.upgrade() {
                    // Stored if the watcher is busy re-checking: the change is not lost.
                    notify.notify_one();
                }
            }
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Weak<Notify>>>> {
        // Nothing panics while holding it; were it poisoned, the map is still consistent.
        self.by_stream
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The streams an identity event concerns: its own, and for a team event the user streams of
/// the users it names (a member added or removed, a team's creator). Empty for other events.
fn concerned(event: &RecordedEvent) -> Vec<String> {
    let category = event.stream_id.category();
    if !IDENTITY.contains(&category) {
        return Vec::new();
    }
    let mut streams = vec![event.stream_id.as_str().to_string()];
    if category == "team" {
        for field in ["username", "creator"] {
            if let Some(name) = event.data.get(field).and_then(|v| v.as_str()) {
                streams.push(format!("user-{name}"));
            }
        }
    }
    streams
}

/// One watcher's registration; dropping it unregisters.
pub struct Watch {
    notify: Arc<Notify>,
    streams: Vec<String>,
    watchers: Arc<Watchers>,
}

impl Watch {
    /// Resolves once an event about one of its streams has been published since the last time.
    pub async fn changed(&self) {
        self.notify.notified().await;
    }

    /// Watches `streams` instead (the token's teams may have changed).
    pub fn set_streams(&mut self, mut streams: Vec<String>) {
        streams.sort();
        streams.dedup();
        if streams == self.streams {
            return;
        }
        self.unregister();
        let mut by_stream = self.watchers.map();
        for stream in &streams {
            by_stream
                .entry(stream.clone())
                .or_default()
                .push(Arc::downgrade(&self.notify));
        }
        drop(by_stream);
        self.streams = streams;
    }

    fn unregister(&mut self) {
        let me = Arc::downgrade(&self.notify);
        let mut by_stream = self.watchers.map();
        for stream in self.streams.drain(..) {
            if let Some(watching) = by_stream.get_mut(&stream) {
                watching.retain(|w| w.strong_count() > 0 && !w.ptr_eq(&me));
                if watching.is_empty() {
                    by_stream.remove(&stream);
                }
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.unregister();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bosun_eventstore::StreamId;
    use serde_json::json;
    use std::time::Duration;

    fn event(stream: &str, data: serde_json::Value) -> RecordedEvent {
        RecordedEvent {
            position: 1,
            stream_id: StreamId::parse(stream).unwrap(),
            version: 0,
            event_id: uuid::Uuid::new_v4(),
            event_type: "Something".into(),
            schema_version: 1,
            data,
            metadata: json!({}),
            recorded_at: chrono::Utc::now(),
        }
    }

    async fn woken(watch: &Watch) -> bool {
        tokio::time::timeout(Duration::from_millis(50), watch.changed())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_watcher_is_woken_by_its_streams_only() {
        let watchers = Arc::new(Watchers::default());
        let watch = watchers.watch(vec!["token-a".into(), "user-ann".into()]);
        watchers.publish(&event("token-b", json!({})));
        watchers.publish(&event("job-1", json!({})));
        assert!(!woken(&watch).await);
        watchers.publish(&event("token-a", json!({})));
        assert!(woken(&watch).await);
        watchers.publish(&event("team-ops", json!({"username": "ann"})));
        assert!(woken(&watch).await);
    }

    #[tokio::test]
    async fn a_dropped_watcher_leaves_nothing_behind() {
        let watchers = Arc::new(Watchers::default());
        let mut watch = watchers.watch(vec!["token-a".into()]);
        watch.set_streams(vec!["token-a".into(), "team-ops".into()]);
        watchers.publish(&event("team-ops", json!({})));
        assert!(woken(&watch).await);
        drop(watch);
        assert!(watchers.map().is_empty());
    }
}
