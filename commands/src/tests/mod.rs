//! The command layer on the in-memory log: load, decide, append, retry, idempotent attempts,
//! authorization decided on the aggregate, and the set-wide identity rules, with no database.
//!
//! [`Racing`] stands for another writer: it appends its events to a stream just before one of
//! ours, so a test sets up exactly the interleaving it is about instead of hoping for it.

mod apps;
mod authorization;
mod batch;
mod execute;
mod identity;
mod runnable_owners;
mod runnables;
mod services;

use crate::{Actor, Commands, Origin};
use async_trait::async_trait;
use bosun_domain::identity::{Scope, Scopes};
use bosun_domain::{encode, DomainEvent};
use bosun_eventstore::{
    AppendError, AppendResult, EventStore, ExpectedVersion, Filter, InMemoryEventStore, NewEvent,
    Page, RecordedEvent, StoreError, StreamAppend, StreamId, Subscription,
};
use bosun_projections::Freshness;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use uuid::Uuid;

/// The in-memory log, and another writer who appends just before some of our appends.
#[derive(Clone, Default)]
pub(crate) struct Racing {
    pub log: InMemoryEventStore,
    /// Before the next append to a stream: these events, appended to these streams.
    before: Arc<Mutex<Vec<Interleaving>>>,
    /// Events handed out by `read_stream` so far.
    pub streamed: Arc<std::sync::atomic::AtomicUsize>,
}

type Interleaving = (String, Vec<(String, Vec<NewEvent>)>);

impl Racing {
    /// Just before the next append to `trigger`, another writer appends `events` to `stream`
    /// (once; set it up again for each time).
    pub fn before_append_to(&self, trigger: &str, stream: &str, events: Vec<NewEvent>) {
        self.before_append_to_all(trigger, vec![(stream, events)]);
    }

    /// Just before the next append to `trigger`, another writer appends each of `writes`.
    pub fn before_append_to_all(&self, trigger: &str, writes: Vec<(&str, Vec<NewEvent>)>) {
        let writes = writes
            .into_iter()
            .map(|(s, e)| (s.to_string(), e))
            .collect();
        self.before.lock().unwrap().push((trigger.into(), writes));
    }

    /// Interleavings set up and not come to pass.
    pub fn pending(&self) -> usize {
        self.before.lock().unwrap().len()
    }

    /// The other writer's appends due before an append to any of `streams`.
    async fn interlope(&self, streams: &[&StreamId]) {
        let interloper = {
            let mut before = self.before.lock().unwrap();
            before
                .iter()
                .position(|(trigger, _)| streams.iter().any(|s| trigger == s.as_str()))
                .map(|i| before.remove(i))
        };
        for (other, events) in interloper.map(|(_, writes)| writes).unwrap_or_default() {
            let other = StreamId::parse(other).unwrap();
            self.log
                .append(&other, ExpectedVersion::Any, events)
                .await
                .expect("the other writer appends");
        }
    }
}

#[async_trait]
impl EventStore for Racing {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, AppendError> {
        self.interlope(&[stream]).await;
        self.log.append(stream, expected, events).await
    }

    /// Before an append to several streams, the other writer's appends due before any of them.
    async fn append_many(
        &self,
        appends: Vec<StreamAppend>,
    ) -> Result<Vec<AppendResult>, AppendError> {
        let streams: Vec<&StreamId> = appends.iter().map(|p| &p.stream).collect();
        self.interlope(&streams).await;
        self.log.append_many(appends).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let events = self.log.read_stream(stream, from_version, max).await?;
        self.streamed
            .fetch_add(events.len(), std::sync::atomic::Ordering::Relaxed);
        Ok(events)
    }

    async fn read_page(
        &self,
        from_position: u64,
        max: usize,
        filter: &Filter,
    ) -> Result<Page, StoreError> {
        self.log.read_page(from_position, max, filter).await
    }

    async fn head(&self) -> Result<u64, StoreError> {
        self.log.head().await
    }

    fn head_changes(&self) -> watch::Receiver<u64> {
        self.log.head_changes()
    }

    fn subscribe(&self, from_position: u64, filter: Filter) -> Subscription {
        self.log.subscribe(from_position, filter)
    }
}

/// Commands over a fresh in-memory log, with no read models to wait for or read.
pub(crate) fn commands() -> (Commands<Racing>, Racing) {
    let log = Racing::default();
    (Commands::over(log.clone(), Freshness::none(), None), log)
}

/// Another process's commands over the same log (nothing remembered in memory).
pub(crate) fn another_process(log: &Racing) -> Commands<Racing> {
    Commands::over(log.clone(), Freshness::none(), None)
}

/// A user acting with a token of `scopes`.
pub(crate) fn user_with(name: &str, admin: bool, scopes: &[Scope]) -> Actor {
    Actor::User {
        username: name.into(),
        admin,
        teams: vec![],
        token_id: Uuid::nil(),
        scopes: Scopes::parse(
            &scopes
                .iter()
                .map(|s| s.as_str().to_string())
                .collect::<Vec<_>>(),
        )
        .unwrap(),
    }
}

/// A user acting with a token of every scope.
pub(crate) fn user(name: &str) -> Actor {
    user_with(name, false, &[Scope::Read, Scope::Write, Scope::Admin])
}

pub(crate) fn admin(name: &str) -> Actor {
    user_with(name, true, &[Scope::Read, Scope::Write, Scope::Admin])
}

pub(crate) const SYSTEM: Actor = Actor::System("system");

pub(crate) fn origin() -> Origin {
    Origin {
        request_id: Some("req-1".into()),
        ..Origin::default()
    }
}

/// A domain event as another writer would append it.
pub(crate) fn new_event<E: DomainEvent>(event: &E) -> NewEvent {
    let (event_type, data) = encode(event).unwrap();
    NewEvent::new(event_type, data).with_metadata(serde_json::json!({"actor": "other"}))
}

/// Appends `events` to `stream` as another writer would, with no check.
pub(crate) async fn append<E: DomainEvent>(log: &Racing, stream: &str, events: &[E]) {
    log.log
        .append(
            &StreamId::parse(stream).unwrap(),
            ExpectedVersion::Any,
            events.iter().map(new_event).collect(),
        )
        .await
        .unwrap();
}

/// The events of `stream`, as domain events.
pub(crate) async fn stream<E: DomainEvent>(log: &Racing, stream: &str) -> Vec<E> {
    log.read_stream(&StreamId::parse(stream).unwrap(), 0, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|e| bosun_domain::decode(&e.event_type, &e.data).unwrap())
        .collect()
}

/// Every event of the log: its stream, its type and who it records as its actor.
pub(crate) async fn log_summary(log: &Racing) -> Vec<(String, String, String)> {
    log.read_all(1, 10_000, &Filter::all())
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            let actor = match &e.metadata["actor"] {
                Value::String(a) => a.clone(),
                other => other.to_string(),
            };
            (e.stream_id.to_string(), e.event_type, actor)
        })
        .collect()
}

pub(crate) async fn head(log: &Racing) -> u64 {
    log.head().await.unwrap()
}
