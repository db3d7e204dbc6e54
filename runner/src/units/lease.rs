//! Unit leases: a row per unit naming the node that runs it and until when. The primary key
//! makes a claim exclusive; a lease not renewed runs out, and then another node may claim the
//! unit (and start it there). Like the job leases (`crate::lease`), in a table of their own.
//!
//! Does not own: which units are wanted (`desired`), nor what a node does with those it holds
//! (`supervisor`, `unit`).

use bosun_eventstore::migrate::{migrate, Migration, MigrationError};
use deadpool_postgres::Pool;
use std::time::Duration;

pub use crate::lease::LeaseError;

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "unit leases",
    sql: "CREATE TABLE unit_leases (
              unit_id    TEXT PRIMARY KEY,
              node       TEXT NOT NULL,
              expires_at TIMESTAMPTZ NOT NULL);
          CREATE INDEX ON unit_leases (node);
          CREATE INDEX ON unit_leases (expires_at);",
}];

pub async fn prepare(client: &mut tokio_postgres::Client) -> Result<(), MigrationError> {
    migrate(client, "units", MIGRATIONS).await.map(|_| ())
}

async fn connection(pool: &Pool) -> Result<deadpool_postgres::Object, LeaseError> {
    pool.get()
        .await
        .map_err(|e| LeaseError::Pool(e.to_string()))
}

/// Claims for `node` those of `units` that nobody holds or whose lease ran out, at most `room`
/// of them, in the order given; returns those claimed. Two nodes claiming the same unit at once:
/// the row's lock makes one wait, and it then finds the lease taken. A lease `node` holds
/// already is claimed again (the caller runs nothing of that unit: its run ended unexpectedly).
pub async fn claim(
    pool: &Pool,
    node: &str,
    units: &[String],
    room: usize,
    lease: Duration,
) -> Result<Vec<String>, LeaseError> {
    let mut claimed = Vec::new();
    if units.is_empty() || room == 0 {
        return Ok(claimed);
    }
    let client = connection(pool).await?;
    // Only the free ones are tried, so a node with little room does not spend it on units held
    // elsewhere.
    let free: Vec<String> = client
        .query(
            "SELECT u FROM unnest($1::text[]) WITH ORDINALITY AS w(u, n)
             WHERE NOT EXISTS (SELECT 1 FROM unit_leases l
                               WHERE l.unit_id = w.u AND l.expires_at >= now() AND l.node <> $2)
             ORDER BY n",
            &[&units, &node],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for unit in free {
        if claimed.len() >= room {
            break;
        }
        let taken = client
            .execute(
                "INSERT INTO unit_leases AS l (unit_id, node, expires_at)
                 VALUES ($1, $2, now() + make_interval(secs => $3))
                 ON CONFLICT (unit_id) DO UPDATE
                    SET node = EXCLUDED.node, expires_at = EXCLUDED.expires_at
                    WHERE l.expires_at < now() OR l.node = EXCLUDED.node",
                &[&unit, &node, &lease.as_secs_f64()],
            )
            .await?;
        if taken == 1 {
            claimed.push(unit);
        }
    }
    Ok(claimed)
}

/// Extends every lease `node` holds; returns the units it still holds (a unit missing from it
/// was taken by another node after its lease ran out).
pub async fn renew(pool: &Pool, node: &str, lease: Duration) -> Result<Vec<String>, LeaseError> {
    let client = connection(pool).await?;
    let rows = client
        .query(
            "UPDATE unit_leases SET expires_at = now() + make_interval(secs => $2)
             WHERE node = $1 RETURNING unit_id",
            &[&node, &lease.as_secs_f64()],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Gives `unit` up, if `node` holds it; if that fails, the lease simply runs out.
pub async fn release(pool: &Pool, node: &str, unit: &str) {
    let released = async {
        connection(pool)
            .await?
            .execute(
                "DELETE FROM unit_leases WHERE unit_id = $1 AND node = $2",
                &[&unit, &node],
            )
            .await?;
        Ok::<_, LeaseError>(())
    };
    if let Err(e) = released.await {
        tracing::warn!(unit, error = %e, "releasing a unit lease failed; it will expire");
    }
}

/// Gives up every unit `node` holds.
pub async fn release_all(pool: &Pool, node: &str) {
    let released = async {
        connection(pool)
            .await?
            .execute("DELETE FROM unit_leases WHERE node = $1", &[&node])
            .await?;
        Ok::<_, LeaseError>(())
    };
    if let Err(e) = released.await {
        tracing::warn!(node, error = %e, "releasing the unit leases failed; they will expire");
    }
}

/// Takes (deletes) leases that ran out of units not in `wanted` (those are claimed instead), a
/// few at a time: `(unit, node that held it)`. Their node was lost while it ran units nobody
/// wants any more (their app removed meanwhile).
pub async fn take_expired(
    pool: &Pool,
    wanted: &[String],
) -> Result<Vec<(String, String)>, LeaseError> {
    let client = connection(pool).await?;
    let rows = client
        .query(
            "DELETE FROM unit_leases WHERE unit_id IN (
                SELECT unit_id FROM unit_leases
                WHERE expires_at < now() AND NOT (unit_id = ANY($1))
                ORDER BY expires_at LIMIT 20 FOR UPDATE SKIP LOCKED)
             RETURNING unit_id, node",
            &[&wanted],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}
