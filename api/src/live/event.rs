//! One event as live subscribers get it: redacted and serialized once, then shared by every
//! subscriber (the hub's feed and the catch-up pages both hold these).

use axum::extract::ws::Utf8Bytes;
use bosun_domain::identity::redact;
use bosun_eventstore::{Filter, RecordedEvent, StreamId};

#[derive(Debug)]
pub struct LiveEvent {
    pub position: u64,
    /// Whose stream: a subscriber sees it if it may read that stream.
    pub stream_id: StreamId,
    pub category: String,
    pub event_type: String,
    /// The envelope as JSON, its hashes redacted.
    pub json: Utf8Bytes,
}

impl LiveEvent {
    /// Takes the event by value: redaction edits its data in place, with no copy of it.
    pub fn new(mut event: RecordedEvent) -> Self {
        let category = event.stream_id.category().to_string();
        let stream_id = event.stream_id.clone();
        // The log keeps the hashes for the aggregates; no reader of the feed may see them.
        redact(&category, &mut event.data);
        let json = match serde_json::to_string(&event) {
            Ok(json) => json,
            Err(e) => {
                // Cannot happen for an envelope of JSON values; sending it without its data
                // keeps the feed's order intact rather than leaving a hole in it.
                tracing::error!(position = event.position, error = %e, "cannot serialize an event");
                event.data = serde_json::Value::Null;
                serde_json::to_string(&event).unwrap_or_default()
            }
        };
        LiveEvent {
            position: event.position,
            stream_id,
            category,
            event_type: event.event_type,
            json: Utf8Bytes::from(json),
        }
    }

    pub fn matches(&self, filter: &Filter) -> bool {
        (filter.categories.is_empty() || filter.categories.contains(&self.category))
            && (filter.event_types.is_empty() || filter.event_types.contains(&self.event_type))
    }

    /// Roughly what it holds in memory, for the page cache's budget.
    pub fn size(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.json.len()
            + self.category.len()
            + self.event_type.len()
            + self.stream_id.as_str().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bosun_eventstore::StreamId;
    use serde_json::json;

    fn recorded(stream: &str, data: serde_json::Value) -> RecordedEvent {
        RecordedEvent {
            position: 7,
            stream_id: StreamId::parse(stream).unwrap(),
            version: 0,
            event_id: uuid::Uuid::new_v4(),
            event_type: "TokenIssued".into(),
            schema_version: 1,
            data,
            metadata: json!({}),
            recorded_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn the_json_has_the_hashes_redacted() {
        let event = LiveEvent::new(recorded(
            "token-1",
            json!({"digest": "ab12cd", "description": "ci"}),
        ));
        let sent: serde_json::Value = serde_json::from_str(&event.json).unwrap();
        assert_eq!(sent["data"]["digest"], bosun_domain::identity::REDACTED);
        assert_eq!(sent["data"]["description"], "ci");
        assert_eq!(sent["position"], 7);
        assert_eq!(event.category, "token");
    }

    #[test]
    fn other_categories_go_out_as_they_are() {
        let event = LiveEvent::new(recorded("job-1", json!({"digest": "not a secret"})));
        assert!(event.json.as_str().contains("not a secret"));
    }
}
