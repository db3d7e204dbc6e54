//! `audit`: one row per event: who (actor) did what (the event type) to which target (the
//! stream), when, from where (source address and user agent), under which request id.

use crate::projection::{Projection, Tables, Writes};
use bosun_eventstore::RecordedEvent;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::GenericClient;

pub struct Audit;

const TABLE: &str = "audit";

impl Projection for Audit {
    fn name(&self) -> &'static str {
        "audit"
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &[TABLE]
    }

    fn create(&self, tables: &Tables) -> String {
        format!(
            "CREATE TABLE {} (
                position   BIGINT PRIMARY KEY,
                at         TIMESTAMPTZ NOT NULL,
                actor      TEXT NOT NULL,
                action     TEXT NOT NULL,
                target     TEXT NOT NULL,
                request_id TEXT,
                source     TEXT,
                user_agent TEXT)",
            tables.name(TABLE)
        )
    }

    fn indexes(&self, tables: &Tables) -> String {
        let t = tables.name(TABLE);
        format!("CREATE INDEX ON {t} (actor, position); CREATE INDEX ON {t} (at);")
    }

    fn apply(&self, event: &RecordedEvent, tables: &Tables, writes: &mut Writes) {
        let meta = |key: &str| {
            event
                .metadata
                .get(key)
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        writes.push(
            format!(
                "INSERT INTO {} (position, at, actor, action, target, request_id, source, user_agent)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                tables.name(TABLE)
            ),
            vec![
                Box::new(event.position as i64),
                Box::new(event.recorded_at),
                Box::new(meta("actor").unwrap_or_else(|| "unknown".into())),
                Box::new(event.event_type.clone()),
                Box::new(event.stream_id.as_str().to_string()),
                Box::new(meta("request_id")),
                Box::new(meta("source")),
                Box::new(meta("user_agent")),
            ],
        );
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub position: u64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub request_id: Option<String>,
    pub source: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Only entries after this position: a page that costs the same however deep in the
    /// audit it is, where `offset` costs what it skips.
    pub after: Option<u64>,
    pub limit: i64,
    pub offset: i64,
}

/// Entries matching `query` in position order, and how many match in all, counted up to
/// [`COUNT_CAP`](super::COUNT_CAP) (above it: more than that).
pub async fn list(
    client: &impl GenericClient,
    query: &AuditQuery,
) -> Result<(Vec<AuditEntry>, i64), tokio_postgres::Error> {
    let filter = "($1::text IS NULL OR actor = $1) AND ($2::timestamptz IS NULL OR at >= $2)
                  AND ($3::timestamptz IS NULL OR at < $3)";
    let after = query.after.map(|p| i64::try_from(p).unwrap_or(i64::MAX));
    let rows = client
        .query(
            &format!(
                "SELECT position, at, actor, action, target, request_id, source, user_agent
                 FROM audit WHERE {filter} AND ($6::bigint IS NULL OR position > $6)
                 ORDER BY position LIMIT $4 OFFSET $5"
            ),
            &[
                &query.actor,
                &query.since,
                &query.until,
                &query.limit,
                &query.offset,
                &after,
            ],
        )
        .await?;
    let total: i64 = client
        .query_one(
            &super::capped_count(&format!("audit WHERE {filter}")),
            &[&query.actor, &query.since, &query.until],
        )
        .await?
        .get(0);
    let entries = rows
        .iter()
        .map(|r| AuditEntry {
            position: r.get::<_, i64>(0) as u64,
            at: r.get(1),
            actor: r.get(2),
            action: r.get(3),
            target: r.get(4),
            request_id: r.get(5),
            source: r.get(6),
            user_agent: r.get(7),
        })
        .collect();
    Ok((entries, total))
}
