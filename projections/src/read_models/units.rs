//! `units`: one row per unit of an app's long-running processes (stream
//! `unit-<app>.<env>.<process>.<index>`): where it runs, its process and address while one runs,
//! its state, how often it was restarted and which restart generation of its app it runs.
//!
//! `state`: `starting` (its process runs, not ready yet; or it exited and waits to start again),
//! `started` (ready), `error` (it failed [`ERROR_AFTER`] times in a row, or could not start, and
//! waits to be tried again), `stopped` (on purpose). Every column comes from the events alone
//! (their `at`, not the time they were projected), so a replay rebuilds the same rows.

use crate::projection::{Param, Projection, Tables, Writes};
use bosun_domain::units::{UnitEvent, ERROR_AFTER};
use bosun_eventstore::{Filter, RecordedEvent};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::GenericClient;

pub struct Units;

const TABLE: &str = "units";

impl Projection for Units {
    fn name(&self) -> &'static str {
        "units"
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &[TABLE]
    }

    fn filter(&self) -> Filter {
        Filter::category("unit")
    }

    fn create(&self, tables: &Tables) -> String {
        format!(
            "CREATE TABLE {u} (
                id         TEXT PRIMARY KEY,
                app        TEXT NOT NULL,
                env        TEXT NOT NULL,
                process    TEXT NOT NULL,
                idx        INT NOT NULL,
                node       TEXT NOT NULL,
                pid        BIGINT,
                address    TEXT,
                state      TEXT NOT NULL,
                restarts   INT NOT NULL,
                generation BIGINT NOT NULL,
                since      TIMESTAMPTZ NOT NULL,
                version    BIGINT NOT NULL);",
            u = tables.name(TABLE),
        )
    }

    fn indexes(&self, tables: &Tables) -> String {
        format!(
            "CREATE INDEX ON {} (app, env, process, idx);",
            tables.name(TABLE)
        )
    }

    fn apply(&self, event: &RecordedEvent, tables: &Tables, writes: &mut Writes) {
        let decoded: UnitEvent = match bosun_domain::decode(&event.event_type, &event.data) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(position = event.position, error = %e, "units projection cannot read this event; skipped");
                return;
            }
        };
        let u = tables.name(TABLE);
        let id = event.stream_id.id().to_string();
        let version = event.version as i64;
        let (sql, params): (String, Vec<Param>) = match decoded {
            UnitEvent::UnitStarted {
                app,
                env,
                process,
                index,
                node,
                pid,
                address,
                generation,
                at,
                ..
            } => (
                // Its restarts count on from the last run on this node, unless it was stopped or
                // ran elsewhere (as the aggregate counts them).
                format!(
                    "INSERT INTO {u} AS u (id, app, env, process, idx, node, pid, address, state,
                        restarts, generation, since, version)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'starting', 0, $9, $10, $11)
                     ON CONFLICT (id) DO UPDATE SET
                        app = EXCLUDED.app, env = EXCLUDED.env, process = EXCLUDED.process,
                        idx = EXCLUDED.idx, node = EXCLUDED.node, pid = EXCLUDED.pid,
                        address = EXCLUDED.address, state = 'starting',
                        restarts = CASE WHEN u.state = 'stopped' OR u.node <> EXCLUDED.node
                                   THEN 0 ELSE u.restarts END,
                        generation = EXCLUDED.generation, since = EXCLUDED.since,
                        version = EXCLUDED.version"
                ),
                vec![
                    Box::new(id),
                    Box::new(app),
                    Box::new(env),
                    Box::new(process),
                    Box::new(index as i32),
                    Box::new(node),
                    Box::new(pid as i64),
                    Box::new(address),
                    Box::new(generation as i64),
                    Box::new(at),
                    Box::new(version),
                ],
            ),
            UnitEvent::UnitReady { at, .. } => (
                format!("UPDATE {u} SET state = 'started', since = $2, version = $3 WHERE id = $1"),
                vec![Box::new(id), Box::new(at), Box::new(version)],
            ),
            UnitEvent::UnitExited {
                restarts,
                failures,
                at,
                ..
            } => (
                format!(
                    "UPDATE {u} SET state = $2, restarts = $3, pid = NULL, address = NULL,
                        since = $4, version = $5 WHERE id = $1"
                ),
                vec![
                    Box::new(id),
                    Box::new(waiting_state(failures)),
                    Box::new(restarts as i32),
                    Box::new(at),
                    Box::new(version),
                ],
            ),
            UnitEvent::UnitStartFailed {
                app,
                env,
                process,
                index,
                node,
                generation,
                restarts,
                at,
                ..
            } => (
                format!(
                    "INSERT INTO {u} (id, app, env, process, idx, node, pid, address, state,
                        restarts, generation, since, version)
                     VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, 'error', $7, $8, $9, $10)
                     ON CONFLICT (id) DO UPDATE SET
                        node = EXCLUDED.node, pid = NULL, address = NULL, state = 'error',
                        restarts = EXCLUDED.restarts, generation = EXCLUDED.generation,
                        since = EXCLUDED.since, version = EXCLUDED.version"
                ),
                vec![
                    Box::new(id),
                    Box::new(app),
                    Box::new(env),
                    Box::new(process),
                    Box::new(index as i32),
                    Box::new(node),
                    Box::new(restarts as i32),
                    Box::new(generation as i64),
                    Box::new(at),
                    Box::new(version),
                ],
            ),
            UnitEvent::UnitStopped { at, .. } => (
                format!(
                    "UPDATE {u} SET state = 'stopped', pid = NULL, address = NULL, since = $2,
                        version = $3 WHERE id = $1"
                ),
                vec![Box::new(id), Box::new(at), Box::new(version)],
            ),
        };
        writes.push(sql, params);
    }
}

/// The state of a unit that exited after `failures` failures in a row and waits to start again.
fn waiting_state(failures: u32) -> &'static str {
    if failures >= ERROR_AFTER {
        "error"
    } else {
        "starting"
    }
}

/// A unit as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UnitView {
    /// `<app>.<env>.<process>.<index>`.
    pub id: String,
    pub process: String,
    pub env: String,
    /// Its number among its process's units, from 0.
    pub index: u32,
    /// The node it runs on (or last ran on).
    pub node: String,
    /// Its process, while one runs.
    pub pid: Option<u32>,
    /// `127.0.0.1:<port>` on its node, while its process runs.
    pub address: Option<String>,
    /// `starting`, `started`, `stopped` or `error`.
    pub state: String,
    /// Times it was started again after it exited or failed to start.
    pub restarts: u32,
    /// Its app's restart generation when it was started.
    pub generation: u64,
    /// When it entered its state.
    pub since: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, process, env, idx, node, pid, address, state, restarts, generation, since";

fn view(r: &tokio_postgres::Row) -> UnitView {
    UnitView {
        id: r.get(0),
        process: r.get(1),
        env: r.get(2),
        index: r.get::<_, i32>(3).max(0) as u32,
        node: r.get(4),
        pid: r.get::<_, Option<i64>>(5).map(|p| p.max(0) as u32),
        address: r.get(6),
        state: r.get(7),
        restarts: r.get::<_, i32>(8).max(0) as u32,
        generation: r.get::<_, i64>(9).max(0) as u64,
        since: r.get(10),
    }
}

/// The units of `app`, by environment, process and index (stopped ones too).
pub async fn of_app(
    client: &impl GenericClient,
    app: &str,
) -> Result<Vec<UnitView>, tokio_postgres::Error> {
    let sql = format!("SELECT {COLUMNS} FROM {TABLE} WHERE app = $1 ORDER BY env, process, idx");
    Ok(client
        .query(&sql, &[&app])
        .await?
        .iter()
        .map(view)
        .collect())
}

pub async fn get(
    client: &impl GenericClient,
    id: &str,
) -> Result<Option<UnitView>, tokio_postgres::Error> {
    let sql = format!("SELECT {COLUMNS} FROM {TABLE} WHERE id = $1");
    Ok(client.query_opt(&sql, &[&id]).await?.map(|r| view(&r)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_waiting_after_repeated_failures_is_in_error() {
        assert_eq!(waiting_state(1), "starting");
        assert_eq!(waiting_state(ERROR_AFTER - 1), "starting");
        assert_eq!(waiting_state(ERROR_AFTER), "error");
    }
}
