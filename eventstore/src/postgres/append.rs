//! The group committer.
//!
//! Every append of the process is a request on one channel. A single task takes whatever is
//! waiting (up to a bound), and writes it in one transaction: lock the counter row, check expected
//! versions and earlier event ids, insert all rows, move the counter, notify once, commit. Each
//! request is decided on its own, so one conflicting append does not fail its batch-mates.
//!
//! Holding the counter row from assigning positions until commit is what makes commits visible in
//! position order, across every process sharing the database.

use super::{client, EVENTS_CHANNEL};
use crate::error::{AppendError, StoreError};
use crate::event::{AppendResult, CurrentVersion, ExpectedVersion, NewEvent};
use crate::idempotency::{earlier_append, Landed};
use crate::stream_id::StreamId;
use deadpool_postgres::Pool;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

const MAX_REQUESTS: usize = 1000;
const MAX_EVENTS: usize = 10_000;

pub(crate) struct AppendRequest {
    pub stream: StreamId,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
    pub reply: oneshot::Sender<Result<AppendResult, AppendError>>,
}

type Outcome = Result<AppendResult, AppendError>;

pub(crate) async fn run(
    pool: Pool,
    mut requests: mpsc::Receiver<AppendRequest>,
    head: watch::Sender<u64>,
    appended: Arc<AtomicU64>,
) {
    while let Some(first) = requests.recv().await {
        let mut events = first.events.len();
        let mut batch = vec![first];
        while batch.len() < MAX_REQUESTS && events < MAX_EVENTS {
            match requests.try_recv() {
                Ok(request) => {
                    events += request.events.len();
                    batch.push(request);
                }
                Err(_) => break,
            }
        }
        match commit(&pool, &batch).await {
            Ok((outcomes, new_head, written)) => {
                appended.fetch_add(written, Ordering::Relaxed);
                head.send_if_modified(|h| {
                    let moved = new_head > *h;
                    if moved {
                        *h = new_head;
                    }
                    moved
                });
                for (request, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = request.reply.send(outcome);
                }
            }
            Err(e) => {
                // The outcome of a failed COMMIT is unknown to us; a caller retrying with the same
                // event ids gets the first result if it did commit.
                tracing::warn!(error = %e, requests = batch.len(), "append batch failed");
                let message = e.to_string();
                for request in batch {
                    let _ = request
                        .reply
                        .send(Err(StoreError::Failed(message.clone()).into()));
                }
            }
        }
    }
}

/// Column-wise rows for one `INSERT … SELECT FROM unnest(…)`.
#[derive(Default)]
struct Rows {
    position: Vec<i64>,
    stream_id: Vec<String>,
    version: Vec<i64>,
    event_id: Vec<Uuid>,
    event_type: Vec<String>,
    schema_version: Vec<i32>,
    category: Vec<String>,
    data: Vec<serde_json::Value>,
    metadata: Vec<serde_json::Value>,
}

/// What the batch knows while deciding: each stream's version and each event id's place, as in
/// the database plus what earlier requests of this batch wrote.
struct Decisions {
    versions: HashMap<String, CurrentVersion>,
    landed: HashMap<Uuid, Landed>,
    position: u64,
    rows: Rows,
}

impl Decisions {
    fn decide(&mut self, request: &AppendRequest) -> Outcome {
        let stream = &request.stream;
        if let Some(earlier) =
            earlier_append(stream, &request.events, |id| self.landed.get(id).cloned())?
        {
            return Ok(earlier);
        }
        let current = self
            .versions
            .get(stream.as_str())
            .copied()
            .unwrap_or(CurrentVersion::NoStream);
        if !current.satisfies(request.expected) {
            return Err(AppendError::WrongExpectedVersion {
                stream: stream.clone(),
                expected: request.expected,
                actual: current,
            });
        }
        let first_version = current.next();
        let first_position = self.position + 1;
        for (offset, event) in request.events.iter().enumerate() {
            let version = first_version + offset as u64;
            self.position += 1;
            self.landed.insert(
                event.event_id,
                Landed {
                    stream_id: stream.clone(),
                    version,
                    position: self.position,
                },
            );
            let rows = &mut self.rows;
            rows.position.push(self.position as i64);
            rows.stream_id.push(stream.as_str().to_string());
            rows.version.push(version as i64);
            rows.event_id.push(event.event_id);
            rows.event_type.push(event.event_type.clone());
            rows.schema_version.push(event.schema_version as i32);
            rows.category.push(stream.category().to_string());
            rows.data.push(event.data.clone());
            rows.metadata.push(event.metadata.clone());
        }
        let last_version = first_version + request.events.len() as u64 - 1;
        self.versions.insert(
            stream.as_str().to_string(),
            CurrentVersion::Current(last_version),
        );
        Ok(AppendResult {
            stream_id: stream.clone(),
            first_version,
            last_version,
            first_position,
            last_position: self.position,
        })
    }
}

/// Writes a batch; returns each request's outcome, the new head and how many events were written.
async fn commit(
    pool: &Pool,
    batch: &[AppendRequest],
) -> Result<(Vec<Outcome>, u64, u64), StoreError> {
    let mut client = client(pool).await?;
    let tx = client.transaction().await?;
    let lock = tx
        .prepare_cached("SELECT position FROM events_head FOR UPDATE")
        .await?;
    let head: i64 = tx.query_one(&lock, &[]).await?.get(0);

    let ids: Vec<Uuid> = batch
        .iter()
        .flat_map(|r| r.events.iter().map(|e| e.event_id))
        .collect();
    let mut streams: Vec<&str> = batch.iter().map(|r| r.stream.as_str()).collect();
    streams.sort_unstable();
    streams.dedup();
    let (landed_sql, versions_sql) = tokio::try_join!(
        tx.prepare_cached("SELECT event_id, stream_id, version, position FROM events WHERE event_id = ANY($1)"),
        tx.prepare_cached(
            "SELECT s, (SELECT version FROM events WHERE stream_id = s ORDER BY version DESC LIMIT 1)
             FROM unnest($1::text[]) AS s"
        ),
    )?;
    let (landed_params, version_params): ([&(dyn ToSql + Sync); 1], [&(dyn ToSql + Sync); 1]) =
        ([&ids], [&streams]);
    let (landed_rows, version_rows) = tokio::try_join!(
        tx.query(&landed_sql, &landed_params),
        tx.query(&versions_sql, &version_params)
    )?;

    let mut decisions = Decisions {
        versions: HashMap::new(),
        landed: HashMap::new(),
        position: head as u64,
        rows: Rows::default(),
    };
    for row in &version_rows {
        let version: Option<i64> = row.get(1);
        decisions.versions.insert(
            row.get(0),
            CurrentVersion::from_last(version.map(|v| v as u64)),
        );
    }
    for row in &landed_rows {
        let stream_id: String = row.get(1);
        let stream_id =
            StreamId::parse(stream_id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let landed = Landed {
            stream_id,
            version: row.get::<_, i64>(2) as u64,
            position: row.get::<_, i64>(3) as u64,
        };
        decisions.landed.insert(row.get(0), landed);
    }
    let outcomes: Vec<Outcome> = batch.iter().map(|r| decisions.decide(r)).collect();

    let new_head = decisions.position;
    if new_head > head as u64 {
        let r = &decisions.rows;
        let (insert, advance, notify) = tokio::try_join!(
            tx.prepare_cached(
                "INSERT INTO events (position, stream_id, version, event_id, event_type, schema_version, category, data, metadata)
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::uuid[], $5::text[], $6::int[], $7::text[], $8::jsonb[], $9::jsonb[])"
            ),
            tx.prepare_cached("UPDATE events_head SET position = $1"),
            tx.prepare_cached("SELECT pg_notify($1, $2)"),
        )?;
        let new_head_sql = new_head as i64;
        let payload = new_head.to_string();
        let insert_params: [&(dyn ToSql + Sync); 9] = [
            &r.position,
            &r.stream_id,
            &r.version,
            &r.event_id,
            &r.event_type,
            &r.schema_version,
            &r.category,
            &r.data,
            &r.metadata,
        ];
        let advance_params: [&(dyn ToSql + Sync); 1] = [&new_head_sql];
        let notify_params: [&(dyn ToSql + Sync); 2] = [&EVENTS_CHANNEL, &payload];
        tokio::try_join!(
            tx.execute(&insert, &insert_params),
            tx.execute(&advance, &advance_params),
            tx.execute(&notify, &notify_params),
        )?;
    }
    tx.commit().await?;
    Ok((outcomes, new_head, new_head - head as u64))
}
