//! The group committer.
//!
//! Every append of the process is a request on one channel. A single task takes whatever is
//! waiting (up to a bound) as a batch, and commits it in a task of its own, at most two at once.
//! The exact path writes a batch in one transaction: lock the counter row, check expected
//! versions and earlier event ids, insert all rows, move the counter, notify once, commit. Each
//! request is decided on its own, so one conflicting append does not fail its batch-mates, and
//! a transaction the database refuses is split until only the appends that caused it fail.
//!
//! A request is one call: a single append is a request of one part, a multi-append a request of
//! all its parts. The parts of a request are decided together (all written, or none) and never
//! apart: the split of a refused batch splits between requests, so a multi-append stays whole.
//!
//! Holding the counter row from assigning positions until commit is what makes commits visible in
//! position order, across every process sharing the database.
//!
//! A batch is first tried as one autocommit statement ([`APPEND`], one round trip): it reads
//! each stream's version, checks every expectation, moves the counter and inserts, or changes
//! nothing when an expectation fails. Its reads come from a snapshot taken before it waits for the
//! counter row, so a writer that committed meanwhile (another process, or the other batch in
//! flight) is not seen by them — but
//! whatever it wrote collides with this batch's rows on `(stream_id, version)` or `event_id`,
//! which the unique indexes check against committed rows whatever the snapshot. Any failure (an
//! expectation, a collision, a retried event id, a refused value) sends the batch down the exact
//! path: lock the counter first, then look up and decide each request on its own (two round
//! trips).

use super::{client, EVENTS_CHANNEL};
use crate::error::{AppendError, StoreError};
use crate::event::{AppendResult, CurrentVersion, ExpectedVersion, StreamAppend};
use crate::idempotency::{earlier_appends, Landed};
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
/// A batch keeps gathering while requests arrive less than GATHER_GAP apart, up to GATHER_MAX:
/// clients answered by the previous commit are sending their next append right now, and a
/// commit shared by all of them costs what a commit for half of them costs.
const GATHER_GAP: std::time::Duration = std::time::Duration::from_micros(100);
const GATHER_MAX: std::time::Duration = std::time::Duration::from_millis(1);

/// One call's appends (one part for a single append), decided together.
pub(crate) struct AppendRequest {
    pub parts: Vec<StreamAppend>,
    pub reply: oneshot::Sender<Outcome>,
}

impl AppendRequest {
    fn events(&self) -> usize {
        self.parts.iter().map(|p| p.events.len()).sum()
    }
}

pub(crate) type Outcome = Result<Vec<AppendResult>, AppendError>;

/// Runs the group committer on a thread of its own, with its own single-threaded runtime and
/// connections: its round trips then never wait for a busy worker thread to poll them (measured
/// on 2 cores: a round trip took 2.6 ms among the callers' tasks, 0.3 ms from pgbench). It ends
/// when the last sender of `requests` is dropped.
///
/// `configs`: the connections of the one-statement path, and those of the exact path.
pub(crate) fn start_committer(
    configs: [tokio_postgres::Config; 2],
    requests: mpsc::Receiver<AppendRequest>,
    head: watch::Sender<u64>,
    appended: Arc<AtomicU64>,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("bosun-committer".into())
        .spawn(move || {
            runtime.block_on(async move {
                let [one_statement, exact] = configs;
                let pools = Pools {
                    one_statement: super::pool_of(one_statement, IN_FLIGHT),
                    exact: super::pool_of(exact, IN_FLIGHT),
                };
                run(pools, requests, head, appended).await
            })
        })?;
    Ok(())
}

/// Batches committing at once. The second is gathered and sent while the first commits: its
/// statement is parsed and its lookups run while the first still holds the counter row, and it
/// takes the row the moment the first commits.
const IN_FLIGHT: usize = 2;

/// The committer's connections: [`APPEND`]'s, planned once (its plan does not depend on the
/// values, and planning it cost more than running it: 0.20 of 0.28 ms), and the exact path's,
/// planned at every execution (see `PgEventStore::open`).
#[derive(Clone)]
struct Pools {
    one_statement: Pool,
    exact: Pool,
}

async fn run(
    pools: Pools,
    mut requests: mpsc::Receiver<AppendRequest>,
    head: watch::Sender<u64>,
    appended: Arc<AtomicU64>,
) {
    let in_flight = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut previous = 0;
    loop {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = requests.recv().await else {
            break;
        };
        let mut events = first.events();
        let mut batch = vec![first];
        let gathering = tokio::time::Instant::now();
        while batch.len() < MAX_REQUESTS && events < MAX_EVENTS {
            let next = match requests.try_recv() {
                Ok(request) => Some(request),
                // Waiting makes sense only for callers the last commit answered: once as many
                // have come back as it held, commit.
                Err(_) if batch.len() < previous && gathering.elapsed() < GATHER_MAX => {
                    tokio::time::timeout(GATHER_GAP, requests.recv())
                        .await
                        .ok()
                        .flatten()
                }
                Err(_) => None,
            };
            let Some(request) = next else { break };
            events += request.events();
            batch.push(request);
        }
        previous = batch.len();
        let (pools, head, appended) = (pools.clone(), head.clone(), appended.clone());
        tokio::spawn(async move {
            commit_isolating(&pools, batch, &head, &appended).await;
            drop(permit);
        });
    }
    // The last senders are gone: let the batches still committing answer before the runtime,
    // and with it their tasks, goes.
    let _ = in_flight.acquire_many(IN_FLIGHT as u32).await;
}

/// Commits `batch` and answers each request. When the transaction fails for a reason the
/// database gives (a value it refuses, a constraint), the halves are committed apart, down to
/// single requests: only an append that cannot be written itself fails, and its batch-mates are
/// written as if it had never come. Without a database error (the connection broke) every
/// request shares the outage and is told so.
async fn commit_isolating(
    pools: &Pools,
    batch: Vec<AppendRequest>,
    head: &watch::Sender<u64>,
    appended: &AtomicU64,
) {
    // A part split off a refused batch goes straight down the exact path: the one statement
    // would fail again.
    let mut parts = vec![(batch, true)];
    while let Some((mut part, try_one_statement)) = parts.pop() {
        let started = std::time::Instant::now();
        match commit(pools, &part, try_one_statement).await {
            Ok((outcomes, new_head, written)) => {
                tracing::debug!(
                    requests = part.len(),
                    written,
                    micros = started.elapsed().as_micros() as u64,
                    "append batch committed"
                );
                appended.fetch_add(written, Ordering::Relaxed);
                head.send_if_modified(|h| {
                    let moved = new_head > *h;
                    if moved {
                        *h = new_head;
                    }
                    moved
                });
                for (request, outcome) in part.into_iter().zip(outcomes) {
                    let _ = request.reply.send(outcome);
                }
            }
            Err(e) if part.len() > 1 && refused_by_database(&e).is_some() => {
                tracing::debug!(
                    requests = part.len(),
                    "append batch refused; committing its halves apart"
                );
                // The first half goes first: requests keep their order of arrival.
                let second = part.split_off(part.len() / 2);
                parts.push((second, false));
                parts.push((part, false));
            }
            Err(e) => {
                if let Some(reason) = refused_by_database(&e) {
                    tracing::warn!(
                        reason,
                        "the database refused an append; its batch-mates were written"
                    );
                    for request in part {
                        let _ = request
                            .reply
                            .send(Err(AppendError::Refused(reason.clone())));
                    }
                    continue;
                }
                // The outcome of a failed COMMIT is unknown to us; a caller retrying with the same
                // event ids gets the first result if it did commit.
                tracing::warn!(error = %e, requests = part.len(), "append failed");
                let message = e.to_string();
                for request in part {
                    let _ = request
                        .reply
                        .send(Err(StoreError::Failed(message.clone()).into()));
                }
            }
        }
    }
}

/// Why the database refused a statement for what it held (SQLSTATE classes 22, data
/// exception; 23, integrity constraint; 54, program limit), as `CODE: message`; `None` for any
/// other failure (unreachable, shutting down, out of disk, a timeout), which splitting the batch
/// could not cure and would only repeat. The DETAIL, which may quote the row, is left out.
fn refused_by_database(e: &StoreError) -> Option<String> {
    let StoreError::Database(e) = e else {
        return None;
    };
    let db = e.as_db_error()?;
    let code = db.code().code();
    ["22", "23", "54"]
        .iter()
        .any(|class| code.starts_with(class))
        .then(|| format!("{code}: {}", db.message()))
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
    /// Decides every part of `request` together: written if every stream is where its part
    /// expects, else nothing of it.
    fn decide(&mut self, request: &AppendRequest) -> Outcome {
        if let Some(earlier) = earlier_appends(&request.parts, |id| self.landed.get(id).cloned())? {
            return Ok(earlier);
        }
        let mut first_versions = Vec::with_capacity(request.parts.len());
        for part in &request.parts {
            let current = self
                .versions
                .get(part.stream.as_str())
                .copied()
                .unwrap_or(CurrentVersion::NoStream);
            if !current.satisfies(part.expected) {
                return Err(AppendError::WrongExpectedVersion {
                    stream: part.stream.clone(),
                    expected: part.expected,
                    actual: current,
                });
            }
            first_versions.push(current.next());
        }
        let results = request
            .parts
            .iter()
            .zip(first_versions)
            .map(|(part, first_version)| self.write(part, first_version))
            .collect();
        Ok(results)
    }

    /// Adds the rows of `part`, whose stream was checked to be at `first_version - 1`.
    fn write(&mut self, part: &StreamAppend, first_version: u64) -> AppendResult {
        let stream = &part.stream;
        let first_position = self.position + 1;
        for (offset, event) in part.events.iter().enumerate() {
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
        let last_version = first_version + part.events.len() as u64 - 1;
        self.versions.insert(
            stream.as_str().to_string(),
            CurrentVersion::Current(last_version),
        );
        AppendResult {
            stream_id: stream.clone(),
            first_version,
            last_version,
            first_position,
            last_position: self.position,
        }
    }
}

/// Writes a batch; returns each request's outcome, the new head and how many events were written.
async fn commit(
    pools: &Pools,
    batch: &[AppendRequest],
    try_one_statement: bool,
) -> Result<(Vec<Outcome>, u64, u64), StoreError> {
    if try_one_statement {
        let client = client(&pools.one_statement).await?;
        match write_in_one_statement(&client, batch).await {
            Ok(Some(written)) => return Ok(written),
            // An expectation failed or a row collided: nothing was written; decide exactly.
            Ok(None) => {}
            Err(StoreError::Database(e)) if e.as_db_error().is_some() => {
                tracing::debug!(error = %e, "one-statement append refused; deciding exactly")
            }
            Err(e) => {
                drop(deadpool_postgres::Object::take(client));
                return Err(e);
            }
        }
    }
    let client = client(&pools.exact).await?;
    match write(&client, batch).await {
        Ok(written) => Ok(written),
        Err(e) => {
            // The connection may be inside a transaction or broken: never hand it back to the pool.
            drop(deadpool_postgres::Object::take(client));
            Err(e)
        }
    }
}

/// The whole batch in one statement (see the module's doc). `$1..$3` are the parts (stream,
/// expectation kind as [`expectation`] encodes it, expected version), `$4` the number of events,
/// `$5..$12` the events in batch order (their part's 1-based index, their offset in it, and the
/// columns), `$13` the channel. Answers the first new position less one (NULL when an
/// expectation failed and nothing was written) and each part's version before the batch.
const APPEND: &str = "
WITH parts AS MATERIALIZED (
    SELECT p.part, p.stream, p.kind, p.expected,
           (SELECT e.version FROM events e WHERE e.stream_id = p.stream
            ORDER BY e.version DESC LIMIT 1) AS current
    FROM unnest($1::text[], $2::int[], $3::bigint[]) WITH ORDINALITY AS p(stream, kind, expected, part)
),
checked AS (
    SELECT bool_and(CASE kind WHEN 0 THEN true
                              WHEN 1 THEN current IS NULL
                              WHEN 2 THEN current IS NOT NULL
                              ELSE current IS NOT DISTINCT FROM expected END) AS ok
    FROM parts
),
head AS (
    UPDATE events_head SET position = position + $4
    WHERE (SELECT ok FROM checked)
    RETURNING position - $4 AS base
),
written AS (
    INSERT INTO events (position, stream_id, version, event_id, event_type, schema_version, category, data, metadata)
    SELECT head.base + e.ord, p.stream, coalesce(p.current, -1) + 1 + e.off,
           e.event_id, e.event_type, e.schema_version, e.category, e.data, e.metadata
    FROM head
    CROSS JOIN unnest($5::bigint[], $6::bigint[], $7::uuid[], $8::text[], $9::int[], $10::text[], $11::jsonb[], $12::jsonb[])
         WITH ORDINALITY AS e(part, off, event_id, event_type, schema_version, category, data, metadata, ord)
    JOIN parts p ON p.part = e.part
    RETURNING 1
),
notified AS (
    SELECT pg_notify($13, (base + $4)::text) FROM head
)
-- Reading `notified` is what makes pg_notify run: a plain CTE nobody reads is never evaluated
-- (a data-modifying one, like `written`, runs regardless).
SELECT (SELECT base FROM head),
       (SELECT count(*) FROM written),
       (SELECT count(*) FROM notified),
       (SELECT array_agg(current ORDER BY part) FROM parts)";

/// An expectation as [`APPEND`] reads it: a kind, and the version an exact one names.
fn expectation(expected: ExpectedVersion) -> (i32, Option<i64>) {
    match expected {
        ExpectedVersion::Any => (0, None),
        ExpectedVersion::NoStream => (1, None),
        ExpectedVersion::StreamExists => (2, None),
        ExpectedVersion::Exact(v) => (3, Some(v as i64)),
    }
}

/// Writes `batch` with [`APPEND`], every request assumed to succeed: `None` when an
/// expectation failed, which wrote nothing. A batch with two parts on one stream is not tried
/// (the statement reads each stream's version once) and answers `None` without a round trip.
async fn write_in_one_statement(
    client: &deadpool_postgres::ClientWrapper,
    batch: &[AppendRequest],
) -> Result<Option<(Vec<Outcome>, u64, u64)>, StoreError> {
    let parts: Vec<&StreamAppend> = batch.iter().flat_map(|r| &r.parts).collect();
    let mut seen = std::collections::HashSet::with_capacity(parts.len());
    if !parts.iter().all(|p| seen.insert(p.stream.as_str())) {
        return Ok(None);
    }
    let statement = client.prepare_cached(APPEND).await?;
    let (mut streams, mut kinds, mut expected) = (vec![], vec![], vec![]);
    let (mut part_of, mut offset) = (vec![], vec![]);
    let mut rows = Rows::default();
    for (index, part) in parts.iter().enumerate() {
        let (kind, version) = expectation(part.expected);
        streams.push(part.stream.as_str());
        kinds.push(kind);
        expected.push(version);
        for (i, event) in part.events.iter().enumerate() {
            part_of.push(index as i64 + 1);
            offset.push(i as i64);
            rows.event_id.push(event.event_id);
            rows.event_type.push(event.event_type.clone());
            rows.schema_version.push(event.schema_version as i32);
            rows.category.push(part.stream.category().to_string());
            rows.data.push(event.data.clone());
            rows.metadata.push(event.metadata.clone());
        }
    }
    let count = part_of.len() as i64;
    let params: [&(dyn ToSql + Sync); 13] = [
        &streams,
        &kinds,
        &expected,
        &count,
        &part_of,
        &offset,
        &rows.event_id,
        &rows.event_type,
        &rows.schema_version,
        &rows.category,
        &rows.data,
        &rows.metadata,
        &EVENTS_CHANNEL,
    ];
    let row = client.query_one(&statement, &params).await?;
    let Some(base) = row.get::<_, Option<i64>>(0) else {
        return Ok(None);
    };
    let currents: Vec<Option<i64>> = row.get(3);
    let mut currents = currents.into_iter();
    let mut position = base as u64;
    let outcomes = batch
        .iter()
        .map(|request| {
            let results = request
                .parts
                .iter()
                .map(|part| {
                    let current = currents.next().flatten().map(|v| v as u64);
                    let first_version = CurrentVersion::from_last(current).next();
                    let first_position = position + 1;
                    position += part.events.len() as u64;
                    AppendResult {
                        stream_id: part.stream.clone(),
                        first_version,
                        last_version: first_version + part.events.len() as u64 - 1,
                        first_position,
                        last_position: position,
                    }
                })
                .collect();
            Ok(results)
        })
        .collect();
    Ok(Some((outcomes, position, count as u64)))
}

const LOCK: &str = "SELECT position FROM events_head FOR UPDATE";
const LANDED: &str =
    "SELECT event_id, stream_id, version, position FROM events WHERE event_id = ANY($1)";
const VERSIONS: &str =
    "SELECT s, (SELECT version FROM events WHERE stream_id = s ORDER BY version DESC LIMIT 1)
     FROM unnest($1::text[]) AS s";
const INSERT: &str = "INSERT INTO events (position, stream_id, version, event_id, event_type, schema_version, category, data, metadata)
     SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::uuid[], $5::text[], $6::int[], $7::text[], $8::jsonb[], $9::jsonb[])";
const ADVANCE: &str = "UPDATE events_head SET position = $1";
const NOTIFY: &str = "SELECT pg_notify($1, $2)";

/// Two round trips, each a pipeline of statements sent without waiting for each other's answers
/// (`futures::try_join!` first polls in order, and each statement is sent on its first poll):
/// BEGIN, the counter-row lock and the two lookups; then the writes and COMMIT. PostgreSQL runs a
/// pipeline's statements one after another, and under READ COMMITTED each takes its snapshot when
/// it starts, so the lookups see whatever the previous holder of the lock committed. A COMMIT
/// after a failed statement rolls back.
async fn write(
    client: &deadpool_postgres::ClientWrapper,
    batch: &[AppendRequest],
) -> Result<(Vec<Outcome>, u64, u64), StoreError> {
    let (lock, landed, versions, insert, advance, notify) = futures::try_join!(
        client.prepare_cached(LOCK),
        client.prepare_cached(LANDED),
        client.prepare_cached(VERSIONS),
        client.prepare_cached(INSERT),
        client.prepare_cached(ADVANCE),
        client.prepare_cached(NOTIFY),
    )?;
    let ids: Vec<Uuid> = batch
        .iter()
        .flat_map(|r| &r.parts)
        .flat_map(|p| p.events.iter().map(|e| e.event_id))
        .collect();
    let mut streams: Vec<&str> = batch
        .iter()
        .flat_map(|r| &r.parts)
        .map(|p| p.stream.as_str())
        .collect();
    streams.sort_unstable();
    streams.dedup();
    let (landed_params, version_params): ([&(dyn ToSql + Sync); 1], [&(dyn ToSql + Sync); 1]) =
        ([&ids], [&streams]);
    let ((), head, landed_rows, version_rows) = futures::try_join!(
        client.batch_execute("BEGIN"),
        client.query_one(&lock, &[]),
        client.query(&landed, &landed_params),
        client.query(&versions, &version_params),
    )?;
    let head = head.get::<_, i64>(0) as u64;
    let mut decisions = Decisions {
        versions: HashMap::new(),
        landed: HashMap::new(),
        position: head,
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
    if new_head == head {
        client.batch_execute("COMMIT").await?;
        return Ok((outcomes, new_head, 0));
    }
    let r = &decisions.rows;
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
    let (new_head_sql, payload) = (new_head as i64, new_head.to_string());
    let advance_params: [&(dyn ToSql + Sync); 1] = [&new_head_sql];
    let notify_params: [&(dyn ToSql + Sync); 2] = [&EVENTS_CHANNEL, &payload];
    futures::try_join!(
        client.execute(&insert, &insert_params),
        client.execute(&advance, &advance_params),
        client.execute(&notify, &notify_params),
        client.batch_execute("COMMIT"),
    )?;
    Ok((outcomes, new_head, new_head - head))
}
