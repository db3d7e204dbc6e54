//! The shape every aggregate has, after cqrs-es: state, `handle(command) -> events`,
//! `apply(event)`. Both are pure; `commands` loads, decides and appends.

use crate::error::DomainError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// An event of one aggregate: an enum whose variants are the event types, serialized by serde
/// as `{"event_type": …, "data": {…}}` (adjacently tagged).
pub trait DomainEvent: Serialize + DeserializeOwned + Clone + std::fmt::Debug {
    fn event_type(&self) -> &'static str;
}

/// `Clone + Send + Sync + 'static`: a command handler keeps states between loads and hands out
/// copies (`commands`' kept states), on any thread.
pub trait Aggregate: Default + Clone + Send + Sync + 'static {
    type Command;
    type Event: DomainEvent;

    /// The stream category its streams use (`user` for `user-alice`).
    const CATEGORY: &'static str;

    /// The events `command` causes in this state, or why it is refused. No events means the
    /// command changes nothing (it was already so).
    fn handle(&self, command: Self::Command) -> Result<Vec<Self::Event>, DomainError>;

    fn apply(&mut self, event: &Self::Event);

    /// Whether any event has been applied: the stream exists.
    fn exists(&self) -> bool;
}

/// The event type and the data to store for `event`.
pub fn encode<E: DomainEvent>(event: &E) -> Result<(String, Value), serde_json::Error> {
    let mut value = serde_json::to_value(event)?;
    let data = value
        .get_mut("data")
        .map(Value::take)
        .unwrap_or(Value::Object(Default::default()));
    Ok((event.event_type().to_string(), data))
}

/// The event stored as `event_type` with `data`; an unknown type or shape is an error, never a
/// silent default.
pub fn decode<E: DomainEvent>(event_type: &str, data: &Value) -> Result<E, serde_json::Error> {
    serde_json::from_value(serde_json::json!({ "event_type": event_type, "data": data }))
}
