//! What goes into the log and what comes out of it.

use crate::stream_id::StreamId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use uuid::Uuid;

/// The version a writer expects its stream to be at, after KurrentDB's `ExpectedRevision`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must have at least one event.
    StreamExists,
    /// The stream's last event must have this version (0-based).
    Exact(u64),
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::StreamExists => f.write_str("stream exists"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
        }
    }
}

/// Where a stream actually is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CurrentVersion {
    NoStream,
    Current(u64),
}

impl CurrentVersion {
    pub fn from_last(last: Option<u64>) -> Self {
        last.map_or(CurrentVersion::NoStream, CurrentVersion::Current)
    }

    /// Whether a writer expecting `expected` may append to a stream at this version.
    pub fn satisfies(self, expected: ExpectedVersion) -> bool {
        match (expected, self) {
            (ExpectedVersion::Any, _) => true,
            (ExpectedVersion::NoStream, CurrentVersion::NoStream) => true,
            (ExpectedVersion::StreamExists, CurrentVersion::Current(_)) => true,
            (ExpectedVersion::Exact(e), CurrentVersion::Current(v)) => e == v,
            _ => false,
        }
    }

    /// The version the next appended event gets.
    pub fn next(self) -> u64 {
        match self {
            CurrentVersion::NoStream => 0,
            CurrentVersion::Current(v) => v + 1,
        }
    }
}

impl fmt::Display for CurrentVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CurrentVersion::NoStream => f.write_str("no stream"),
            CurrentVersion::Current(v) => write!(f, "version {v}"),
        }
    }
}

/// An event to append. Its `event_id` makes a retried append idempotent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub data: Value,
    pub metadata: Value,
}

impl NewEvent {
    /// A new event with a random id, schema version 1 and empty metadata.
    pub fn new(event_type: impl Into<String>, data: Value) -> Self {
        NewEvent {
            event_id: Uuid::new_v4(),
            event_type: event_type.into(),
            schema_version: 1,
            data,
            metadata: Value::Object(Default::default()),
        }
    }

    pub fn with_metadata(mut self, metadata: Value) -> Self {
        self.metadata = metadata;
        self
    }

    pub fn with_id(mut self, event_id: Uuid) -> Self {
        self.event_id = event_id;
        self
    }

    pub fn with_schema_version(mut self, schema_version: u32) -> Self {
        self.schema_version = schema_version;
        self
    }
}

/// One part of an atomic append to several streams ([`EventStore::append_many`]): events for one
/// stream, appended only if that stream is at `expected`.
///
/// [`EventStore::append_many`]: crate::EventStore::append_many
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamAppend {
    pub stream: StreamId,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
}

impl StreamAppend {
    pub fn new(stream: StreamId, expected: ExpectedVersion, events: Vec<NewEvent>) -> Self {
        StreamAppend {
            stream,
            expected,
            events,
        }
    }
}

/// An event as the log holds it: the envelope of DESIGN.md.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// Global, gap-free, in commit order, starting at 1.
    pub position: u64,
    pub stream_id: StreamId,
    /// 0-based within its stream.
    pub version: u64,
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub data: Value,
    pub metadata: Value,
    pub recorded_at: DateTime<Utc>,
}

/// What an append wrote (or, for an idempotent retry, what the first attempt wrote).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendResult {
    pub stream_id: StreamId,
    /// Version of the first and last event written.
    pub first_version: u64,
    pub last_version: u64,
    /// Position of the first and last event written.
    pub first_position: u64,
    pub last_position: u64,
}

/// Which events a global read or a subscription wants. Empty lists mean "all".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub categories: Vec<String>,
    pub event_types: Vec<String>,
    /// Events whose metadata names one of these as `actor`.
    pub actors: Vec<String>,
}

impl Filter {
    pub fn all() -> Self {
        Filter::default()
    }

    pub fn category(category: impl Into<String>) -> Self {
        Filter {
            categories: vec![category.into()],
            ..Filter::default()
        }
    }

    pub fn matches(&self, event: &RecordedEvent) -> bool {
        (self.categories.is_empty()
            || self
                .categories
                .iter()
                .any(|c| c == event.stream_id.category()))
            && (self.event_types.is_empty() || self.event_types.contains(&event.event_type))
            && (self.actors.is_empty()
                || event
                    .metadata
                    .get("actor")
                    .and_then(|a| a.as_str())
                    .is_some_and(|a| self.actors.iter().any(|x| x == a)))
    }
}

/// One page of a global read, with the head of the log as the same snapshot saw it.
///
/// `head` lets a reader skip ahead past events its filter did not match without rereading them:
/// when fewer than `max` events came back, nothing else matching exists up to `head`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    pub events: Vec<RecordedEvent>,
    pub head: u64,
}
