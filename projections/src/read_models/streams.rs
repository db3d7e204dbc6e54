//! `stream_index`: one row per stream (its category, version, event count, first and last
//! position, last event type). Backs stream listings and existence checks without scanning the log.

use crate::projection::{Projection, Tables, Writes};
use bosun_eventstore::RecordedEvent;
use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;

pub struct StreamIndex;

const TABLE: &str = "stream_index";

impl Projection for StreamIndex {
    fn name(&self) -> &'static str {
        "streams"
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &[TABLE]
    }

    fn create(&self, tables: &Tables) -> String {
        let t = tables.name(TABLE);
        format!(
            "CREATE TABLE {t} (
                stream_id       TEXT PRIMARY KEY,
                category        TEXT NOT NULL,
                version         BIGINT NOT NULL,
                event_count     BIGINT NOT NULL,
                first_position  BIGINT NOT NULL,
                last_position   BIGINT NOT NULL,
                last_event_type TEXT NOT NULL,
                created_at      TIMESTAMPTZ NOT NULL,
                updated_at      TIMESTAMPTZ NOT NULL)"
        )
    }

    fn indexes(&self, tables: &Tables) -> String {
        format!(
            "CREATE INDEX ON {} (category, stream_id)",
            tables.name(TABLE)
        )
    }

    fn apply(&self, event: &RecordedEvent, tables: &Tables, writes: &mut Writes) {
        // event_count counts applications: it equals version + 1 only if every event took effect
        // exactly once, which the crash tests check.
        let sql = format!(
            "INSERT INTO {t} AS s (stream_id, category, version, event_count, first_position, last_position, last_event_type, created_at, updated_at)
             VALUES ($1, $2, $3, 1, $4, $4, $5, $6, $6)
             ON CONFLICT (stream_id) DO UPDATE SET
                version = EXCLUDED.version, event_count = s.event_count + 1, last_position = EXCLUDED.last_position,
                last_event_type = EXCLUDED.last_event_type, updated_at = EXCLUDED.updated_at",
            t = tables.name(TABLE)
        );
        writes.push(
            sql,
            vec![
                Box::new(event.stream_id.as_str().to_string()),
                Box::new(event.stream_id.category().to_string()),
                Box::new(event.version as i64),
                Box::new(event.position as i64),
                Box::new(event.event_type.clone()),
                Box::new(event.recorded_at),
            ],
        );
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct StreamSummary {
    pub stream_id: String,
    pub category: String,
    pub version: u64,
    pub event_count: u64,
    pub first_position: u64,
    pub last_position: u64,
    pub last_event_type: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub async fn get(
    client: &impl GenericClient,
    stream_id: &str,
) -> Result<Option<StreamSummary>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT stream_id, category, version, event_count, first_position, last_position, last_event_type, created_at, updated_at
             FROM stream_index WHERE stream_id = $1",
            &[&stream_id],
        )
        .await?;
    Ok(row.map(|r| StreamSummary {
        stream_id: r.get(0),
        category: r.get(1),
        version: r.get::<_, i64>(2) as u64,
        event_count: r.get::<_, i64>(3) as u64,
        first_position: r.get::<_, i64>(4) as u64,
        last_position: r.get::<_, i64>(5) as u64,
        last_event_type: r.get(6),
        created_at: r.get(7),
        updated_at: r.get(8),
    }))
}
