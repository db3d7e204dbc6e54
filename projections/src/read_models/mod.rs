//! The read models, one module each: its projection and its queries.

pub mod apps;
pub mod audit;
pub mod identity;
pub mod jobs;
pub mod keys;
pub mod orchestrations;
pub mod runnables;
pub mod services;
pub mod streams;
pub mod units;

/// What the read models' tests write: domain events, appended as they are.
#[cfg(test)]
pub(crate) mod test_events {
    use bosun_domain::{encode, DomainEvent};
    use bosun_eventstore::{EventStore, ExpectedVersion, NewEvent, PgEventStore, StreamId};

    pub fn new_event<E: DomainEvent>(event: &E) -> NewEvent {
        let (event_type, data) = encode(event).unwrap();
        NewEvent::new(event_type, data)
    }

    /// Appends `events` to `stream` (its full id, e.g. `app-shop`).
    pub async fn write<E: DomainEvent>(store: &PgEventStore, stream: &str, events: &[E]) {
        store
            .append(
                &StreamId::parse(stream).unwrap(),
                ExpectedVersion::Any,
                events.iter().map(new_event).collect(),
            )
            .await
            .unwrap();
    }
}
