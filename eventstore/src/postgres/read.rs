//! Reads. Each is one statement, so it sees one snapshot.

use super::client;
use crate::error::StoreError;
use crate::event::{Filter, Page, RecordedEvent};
use crate::stream_id::StreamId;
use deadpool_postgres::Pool;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

const COLUMNS: &str =
    "position, stream_id, version, event_id, event_type, schema_version, data, metadata, recorded_at";

pub(crate) async fn head(pool: &Pool) -> Result<u64, StoreError> {
    let client = client(pool).await?;
    let row = client
        .query_one("SELECT position FROM events_head", &[])
        .await?;
    Ok(row.get::<_, i64>(0) as u64)
}

pub(crate) async fn stream(
    pool: &Pool,
    stream: &StreamId,
    from_version: u64,
    max: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let client = client(pool).await?;
    let sql = format!("SELECT {COLUMNS} FROM events WHERE stream_id = $1 AND version >= $2 ORDER BY version LIMIT $3");
    let statement = client.prepare_cached(&sql).await?;
    let rows = client
        .query(
            &statement,
            &[&stream.as_str(), &to_i64(from_version), &to_i64(max as u64)],
        )
        .await?;
    rows.iter().map(|r| event(r, 0)).collect()
}

pub(crate) async fn version_at(
    pool: &Pool,
    stream: &StreamId,
    at_most: Option<u64>,
) -> Result<Option<(u64, u64)>, StoreError> {
    let client = client(pool).await?;
    // Down the (stream_id, version) index from the top: a write's own event is near it.
    let statement = client
        .prepare_cached(
            "SELECT version, position FROM events WHERE stream_id = $1 AND position <= $2 \
             ORDER BY version DESC LIMIT 1",
        )
        .await?;
    let at_most = at_most.map_or(i64::MAX, to_i64);
    let row = client
        .query_opt(&statement, &[&stream.as_str(), &at_most])
        .await?;
    Ok(row.map(|r| (r.get::<_, i64>(0) as u64, r.get::<_, i64>(1) as u64)))
}

pub(crate) async fn page(
    pool: &Pool,
    from_position: u64,
    max: usize,
    filter: &Filter,
) -> Result<Page, StoreError> {
    let client = client(pool).await?;
    let from = to_i64(from_position.max(1));
    let limit = to_i64(max as u64);
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&from, &limit];
    let mut conditions = String::new();
    if !filter.categories.is_empty() {
        params.push(&filter.categories);
        conditions.push_str(&format!(" AND category = ANY(${})", params.len()));
    }
    if !filter.event_types.is_empty() {
        params.push(&filter.event_types);
        conditions.push_str(&format!(" AND event_type = ANY(${})", params.len()));
    }
    if !filter.actors.is_empty() {
        params.push(&filter.actors);
        conditions.push_str(&format!(" AND metadata->>'actor' = ANY(${})", params.len()));
    }
    // The head and the events come from one statement, hence one snapshot.
    let sql = format!(
        "SELECT h.position AS head, e.* FROM events_head h LEFT JOIN LATERAL (
            SELECT {COLUMNS} FROM events WHERE position >= $1{conditions} ORDER BY position LIMIT $2
         ) e ON true"
    );
    let statement = client.prepare_cached(&sql).await?;
    let rows = client.query(&statement, &params).await?;
    let head = rows.first().map_or(0, |r| r.get::<_, i64>(0) as u64);
    let events = rows
        .iter()
        .filter(|r| r.get::<_, Option<i64>>(1).is_some())
        .map(|r| event(r, 1))
        .collect::<Result<_, _>>()?;
    Ok(Page { events, head })
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Reads an event from `row`, whose event columns start at `at`.
fn event(row: &Row, at: usize) -> Result<RecordedEvent, StoreError> {
    let stream_id: String = row.get(at + 1);
    Ok(RecordedEvent {
        position: row.get::<_, i64>(at) as u64,
        stream_id: StreamId::parse(stream_id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        version: row.get::<_, i64>(at + 2) as u64,
        event_id: row.get(at + 3),
        event_type: row.get(at + 4),
        schema_version: row.get::<_, i32>(at + 5) as u32,
        data: row.get(at + 6),
        metadata: row.get(at + 7),
        recorded_at: row.get(at + 8),
    })
}
