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

/// A list's count stops here: counting a million matching rows costs reading a million rows,
/// whatever the page. Past it, a list says it has "more than" this many.
pub const COUNT_CAP: i64 = 10_000;

/// How many rows `from_where` (`<table> <alias> WHERE …`) matches, counted up to one past
/// [`COUNT_CAP`]: a count above the cap means more than the cap.
pub(crate) fn capped_count(from_where: &str) -> String {
    format!(
        "SELECT count(*) FROM (SELECT 1 FROM {from_where} LIMIT {}) matching",
        COUNT_CAP + 1
    )
}

/// What the read models' tests write (domain events, appended as they are) and compare (every row).
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

    /// Every row of `tables` (each with the columns it is ordered by), as JSON: what a rebuild
    /// is compared with, row for row.
    pub async fn rows(store: &PgEventStore, tables: &[(&str, &str)]) -> Vec<serde_json::Value> {
        let client = store.pool().get().await.unwrap();
        let mut all = vec![];
        for (table, key) in tables {
            for row in client
                .query(
                    &format!("SELECT to_jsonb(t) FROM {table} t ORDER BY {key}"),
                    &[],
                )
                .await
                .unwrap()
            {
                all.push(serde_json::json!({ *table: row.get::<_, serde_json::Value>(0) }));
            }
        }
        all
    }
}
