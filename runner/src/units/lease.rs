//! Unit leases: a row per unit naming the node that runs it, until when, the port its process
//! was given on its host, and whether it holds its process's restart turn. The primary key makes
//! a claim exclusive; a lease not renewed runs out, and then another node may claim the unit (and
//! start it there). A unique index on (host, port) keeps two nodes of one host from handing the
//! same port to two units. One unit of a process at a time holds the restart turn (taken under
//! an advisory lock of the process), whichever nodes run them. Like the job leases
//! (`crate::lease`), in a table of their own.
//!
//! Every call here is bounded ([`bounded`]) by its caller, so a database that hangs cannot stall
//! a node's renewals nor its kills.
//!
//! Does not own: which units are wanted (`desired`), nor what a node does with those it holds
//! (`supervisor`, `renewal`, `unit`).

use bosun_eventstore::migrate::{migrate, Migration, MigrationError};
use deadpool_postgres::Pool;
use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;
use tokio_postgres::error::SqlState;

pub use crate::lease::LeaseError;

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "unit leases",
        sql: "CREATE TABLE unit_leases (
              unit_id    TEXT PRIMARY KEY,
              node       TEXT NOT NULL,
              expires_at TIMESTAMPTZ NOT NULL);
          CREATE INDEX ON unit_leases (node);
          CREATE INDEX ON unit_leases (expires_at);",
    },
    Migration {
        version: 2,
        name: "unit ports held in their leases, one unit per port and host; restart turns",
        sql: "ALTER TABLE unit_leases ADD COLUMN host TEXT, ADD COLUMN port INT,
              ADD COLUMN restarting BOOLEAN NOT NULL DEFAULT false;
          CREATE UNIQUE INDEX unit_leases_host_port ON unit_leases (host, port);",
    },
];

pub async fn prepare(client: &mut tokio_postgres::Client) -> Result<(), MigrationError> {
    migrate(client, "units", MIGRATIONS).await.map(|_| ())
}

/// `call`, given up after `limit` (as a pool error: no answer in time).
pub async fn bounded<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, LeaseError>>,
) -> Result<T, LeaseError> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result,
        Err(_) => Err(LeaseError::Pool(format!(
            "no answer from the database within {limit:?}"
        ))),
    }
}

/// The host part of a node's name (`<host>:<pid>`): nodes of one host share its ports.
pub fn host_of(node: &str) -> &str {
    node.rsplit_once(':').map_or(node, |(host, _)| host)
}

async fn connection(pool: &Pool) -> Result<deadpool_postgres::Object, LeaseError> {
    pool.get()
        .await
        .map_err(|e| LeaseError::Pool(e.to_string()))
}

/// Claims for `node` those of `units` that nobody holds or whose lease ran out, at most `room`
/// of them, in the order given; returns those claimed. One statement, so a claim costs one round
/// trip however many units it tries, and either commits whole or not at all. Only the free ones
/// are tried, so a node with little room does not spend it on units held elsewhere. Two nodes
/// claiming the same unit at once: the row's lock makes one wait, and it then finds the lease
/// taken. A lease `node` holds already is claimed again (the caller runs nothing of that unit:
/// its run ended unexpectedly). A claimed lease holds no port yet, nor the restart turn.
pub async fn claim(
    pool: &Pool,
    node: &str,
    units: &[String],
    room: usize,
    lease: Duration,
) -> Result<Vec<String>, LeaseError> {
    if units.is_empty() || room == 0 {
        return Ok(Vec::new());
    }
    // A unit twice in one INSERT … ON CONFLICT DO UPDATE is an error: once each.
    let mut seen = BTreeSet::new();
    let units: Vec<String> = units.iter().filter(|u| seen.insert(*u)).cloned().collect();
    let room = i64::try_from(room).unwrap_or(i64::MAX);
    let client = connection(pool).await?;
    let rows = client
        .query(
            "INSERT INTO unit_leases AS l (unit_id, node, expires_at)
             SELECT w.u, $2, now() + make_interval(secs => $3)
             FROM unnest($1::text[]) WITH ORDINALITY AS w(u, n)
             WHERE NOT EXISTS (SELECT 1 FROM unit_leases o
                               WHERE o.unit_id = w.u AND o.expires_at >= now() AND o.node <> $2)
             ORDER BY w.n
             LIMIT $4
             ON CONFLICT (unit_id) DO UPDATE
                SET node = EXCLUDED.node, expires_at = EXCLUDED.expires_at,
                    host = NULL, port = NULL, restarting = false
                WHERE l.expires_at < now() OR l.node = EXCLUDED.node
             RETURNING unit_id",
            &[&units, &node, &lease.as_secs_f64(), &room],
        )
        .await?;
    let claimed: BTreeSet<String> = rows.iter().map(|r| r.get(0)).collect();
    // In the order given.
    Ok(units.into_iter().filter(|u| claimed.contains(u)).collect())
}

/// Extends the leases of `held` (the units `node` runs, and those a claim of which the answer is
/// awaited) and gives up any other lease `node` holds (a claim whose answer was lost, a unit
/// whose run ended), but never a runnable's run's (keys starting with `runs`): only its run
/// gives that up, or [`take_expired`] takes it once it ran out, so a run whose end went
/// unrecorded is recorded lost. The restart turn stays only with the units of `turns` (those
/// that know they hold it: a turn taken whose answer was lost goes back here). Returns the units
/// of `held` it still holds (one missing was taken by another node after its lease ran out).
pub async fn renew(
    pool: &Pool,
    node: &str,
    held: &[String],
    turns: &[String],
    runs: &str,
    lease: Duration,
) -> Result<Vec<String>, LeaseError> {
    let client = connection(pool).await?;
    let rows = client
        .query(
            "WITH released AS (
                DELETE FROM unit_leases
                WHERE node = $1 AND NOT (unit_id = ANY($2))
                  AND left(unit_id, length($5)) <> $5)
             UPDATE unit_leases SET expires_at = now() + make_interval(secs => $3),
                restarting = restarting AND unit_id = ANY($4)
             WHERE node = $1 AND unit_id = ANY($2) RETURNING unit_id",
            &[&node, &held, &lease.as_secs_f64(), &turns, &runs],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The ports live leases of other units hold on `host`.
pub async fn ports_in_use(
    pool: &Pool,
    host: &str,
    unit: &str,
) -> Result<BTreeSet<u16>, LeaseError> {
    let client = connection(pool).await?;
    let rows = client
        .query(
            "SELECT port FROM unit_leases
             WHERE host = $1 AND port IS NOT NULL AND unit_id <> $2 AND expires_at >= now()",
            &[&host, &unit],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| u16::try_from(r.get::<_, i32>(0)).ok())
        .collect())
}

/// What came of [`take_port`].
#[derive(Debug, PartialEq, Eq)]
pub enum PortTaken {
    /// The port is the unit's now, and its lease `node`'s for at least the margin asked for.
    Taken,
    /// Another unit of the host holds that port.
    InUse,
    /// `node` does not hold the unit's lease for that long (any more).
    NotHeld,
}

/// Just before a unit's process starts: checks that `node` holds its lease for at least
/// `margin` more, and records `port` of `host` in it (taken from leases of the host that ran
/// out; refused while a live one holds it).
pub async fn take_port(
    pool: &Pool,
    node: &str,
    unit: &str,
    port: u16,
    margin: Duration,
) -> Result<PortTaken, LeaseError> {
    let host = host_of(node);
    let port = i32::from(port);
    let mut client = connection(pool).await?;
    let tx = client.transaction().await?;
    tx.execute(
        "UPDATE unit_leases SET port = NULL
         WHERE host = $1 AND port = $2 AND unit_id <> $3 AND expires_at < now()",
        &[&host, &port, &unit],
    )
    .await?;
    let taken = tx
        .execute(
            "UPDATE unit_leases SET host = $3, port = $4
             WHERE unit_id = $1 AND node = $2
               AND expires_at > now() + make_interval(secs => $5)",
            &[&unit, &node, &host, &port, &margin.as_secs_f64()],
        )
        .await;
    match taken {
        Ok(0) => Ok(PortTaken::NotHeld),
        Ok(_) => {
            tx.commit().await?;
            Ok(PortTaken::Taken)
        }
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Ok(PortTaken::InUse),
        Err(e) => Err(e.into()),
    }
}

/// Takes the restart turn of the process whose units' ids start with `group`
/// (`<app>.<env>.<process>.`) for `unit`, whose lease `node` holds: `false` while another live
/// lease of that process holds it. One at a time, whichever nodes ask (an advisory lock of the
/// process).
pub async fn take_restart_turn(
    pool: &Pool,
    node: &str,
    unit: &str,
    group: &str,
) -> Result<bool, LeaseError> {
    let mut client = connection(pool).await?;
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('bosun.unit_restart'), hashtext($1))",
        &[&group],
    )
    .await?;
    let taken = tx
        .execute(
            "UPDATE unit_leases SET restarting = true
             WHERE unit_id = $1 AND node = $2 AND expires_at > now()
               AND NOT EXISTS (
                   SELECT 1 FROM unit_leases o
                   WHERE left(o.unit_id, length($3)) = $3 AND o.unit_id <> $1
                     AND o.restarting AND o.expires_at >= now())",
            &[&unit, &node, &group],
        )
        .await?;
    tx.commit().await?;
    Ok(taken == 1)
}

/// Gives the restart turn `unit` holds back (its restart is over).
pub async fn end_restart_turn(pool: &Pool, node: &str, unit: &str) -> Result<(), LeaseError> {
    connection(pool)
        .await?
        .execute(
            "UPDATE unit_leases SET restarting = false WHERE unit_id = $1 AND node = $2",
            &[&unit, &node],
        )
        .await?;
    Ok(())
}

/// Gives `unit` up, if `node` holds it; if that fails, the lease simply runs out.
pub async fn release(pool: &Pool, node: &str, unit: &str, limit: Duration) {
    let released = bounded(limit, async {
        connection(pool)
            .await?
            .execute(
                "DELETE FROM unit_leases WHERE unit_id = $1 AND node = $2",
                &[&unit, &node],
            )
            .await?;
        Ok::<_, LeaseError>(())
    });
    if let Err(e) = released.await {
        tracing::warn!(unit, error = %e, "releasing a unit lease failed; it will expire");
    }
}

/// The leases `node` holds whose key starts with `prefix`.
pub async fn held_by(pool: &Pool, node: &str, prefix: &str) -> Result<Vec<String>, LeaseError> {
    let rows = connection(pool)
        .await?
        .query(
            "SELECT unit_id FROM unit_leases WHERE node = $1 AND left(unit_id, length($2)) = $2",
            &[&node, &prefix],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Gives up every unit `node` holds but the runnables' runs' (keys starting with `runs`: each
/// run gives its own up, or leaves it to run out, see [`renew`]).
pub async fn release_all(pool: &Pool, node: &str, runs: &str, limit: Duration) {
    let released = bounded(limit, async {
        connection(pool)
            .await?
            .execute(
                "DELETE FROM unit_leases WHERE node = $1 AND left(unit_id, length($2)) <> $2",
                &[&node, &runs],
            )
            .await?;
        Ok::<_, LeaseError>(())
    });
    if let Err(e) = released.await {
        tracing::warn!(node, error = %e, "releasing the unit leases failed; they will expire");
    }
}

/// Hands the lease of `unit` that `node` holds back to `lost` (the node of a run on record not
/// recorded lost yet), run out: whoever takes it then (`take_expired`, or a claim) records that
/// run lost. `false` if `node` does not hold it (any more).
pub async fn hand_back(
    pool: &Pool,
    node: &str,
    unit: &str,
    lost: &str,
) -> Result<bool, LeaseError> {
    let changed = connection(pool)
        .await?
        .execute(
            "UPDATE unit_leases SET node = $3, expires_at = now() - interval '1 second',
                host = NULL, port = NULL, restarting = false
             WHERE unit_id = $1 AND node = $2",
            &[&unit, &node, &lost],
        )
        .await?;
    Ok(changed == 1)
}

/// Puts back, run out, the lease of `unit` [`take_expired`] took from `lost` when its loss
/// could not be recorded, for whoever takes it next to try again; nothing if the unit was
/// claimed meanwhile (its claimer records it lost).
pub async fn put_back(pool: &Pool, unit: &str, lost: &str) -> Result<(), LeaseError> {
    connection(pool)
        .await?
        .execute(
            "INSERT INTO unit_leases (unit_id, node, expires_at)
             VALUES ($1, $2, now() - interval '1 second')
             ON CONFLICT (unit_id) DO NOTHING",
            &[&unit, &lost],
        )
        .await?;
    Ok(())
}

/// Which run-out leases [`take_expired`] takes, by how their key starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Taking<'a> {
    All,
    Only(&'a str),
    AllBut(&'a str),
}

/// Takes (deletes) leases that ran out of units not in `wanted` (those are claimed instead), a
/// few at a time, those `taking` says: `(unit, node that held it)`. Their node was lost while it
/// ran units nobody wants any more (their app removed meanwhile).
pub async fn take_expired(
    pool: &Pool,
    wanted: &[String],
    taking: Taking<'_>,
) -> Result<Vec<(String, String)>, LeaseError> {
    let (mode, prefix): (i32, &str) = match taking {
        Taking::All => (0, ""),
        Taking::Only(prefix) => (1, prefix),
        Taking::AllBut(prefix) => (2, prefix),
    };
    let client = connection(pool).await?;
    let rows = client
        .query(
            "DELETE FROM unit_leases WHERE unit_id IN (
                SELECT unit_id FROM unit_leases
                WHERE expires_at < now() AND NOT (unit_id = ANY($1))
                  AND ($2 = 0 OR ($2 = 1) = (left(unit_id, length($3)) = $3))
                ORDER BY expires_at LIMIT 20 FOR UPDATE SKIP LOCKED)
             RETURNING unit_id, node",
            &[&wanted, &mode, &prefix],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_of_one_host_share_its_ports() {
        assert_eq!(host_of("box-1:4242"), "box-1");
        assert_eq!(host_of("a:b:7"), "a:b");
        assert_eq!(host_of("plain"), "plain");
    }
}
