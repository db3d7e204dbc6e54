//! Leases: a row per running job naming its worker and until when it holds the job. The row's
//! primary key makes a claim exclusive; its expiry is how a lost worker is noticed. A running
//! job's `Heartbeat` renews its lease and says when the worker no longer holds it.
//!
//! Does not own: what is done with a job claimed (`claim`), lost (`supervise` abandons it) or
//! whose lease ran out (`reaper`).

use crate::settings::RunnerSettings;
use crate::workers::Context;
use bosun_eventstore::migrate::{migrate, Migration, MigrationError};
use deadpool_postgres::Pool;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long a lease lasts from its claim or its last renewal.
pub fn length(settings: &RunnerSettings) -> Duration {
    Duration::from_secs(settings.lease_seconds.max(1))
}

/// A worker's hold on the job it runs: renews the lease every third of its length, and notices
/// when the job is no longer its own. Its clones are one heartbeat (one time of the last
/// renewal, renewals one at a time): a role job's instances and attempts share the claim's, so
/// the lease is renewed by whichever beats when it is due, however short each attempt is.
#[derive(Clone)]
pub(crate) struct Heartbeat {
    job_id: Uuid,
    worker: String,
    lease: Duration,
    last_renewal: std::sync::Arc<tokio::sync::Mutex<Instant>>,
}

/// The worker no longer holds the job.
pub(crate) struct Lost;

impl Heartbeat {
    /// For the job `worker` has just claimed.
    pub fn new(context: &Context, job_id: Uuid, worker: &str) -> Self {
        Heartbeat {
            job_id,
            worker: worker.to_string(),
            lease: length(&context.settings),
            last_renewal: std::sync::Arc::new(tokio::sync::Mutex::new(Instant::now())),
        }
    }

    /// Renews the lease when it is due; `Lost` if the reaper took the job, or no renewal has
    /// succeeded for a whole lease (others now count the job lost: it must not go on unseen).
    pub async fn beat(&mut self, context: &Context) -> Result<(), Lost> {
        let job_id = self.job_id;
        // Held across the renewal: a clone beating meanwhile waits, then finds it not due.
        let mut last_renewal = self.last_renewal.lock().await;
        if last_renewal.elapsed() < self.lease / 3 {
            return Ok(());
        }
        match renew(&context.pool, job_id, &self.worker, self.lease).await {
            Ok(true) => *last_renewal = Instant::now(),
            Ok(false) => {
                tracing::warn!(%job_id, "lost the job's lease; stopping it");
                return Err(Lost);
            }
            Err(e) => tracing::warn!(%job_id, error = %e, "renewing the lease failed; retrying"),
        }
        if last_renewal.elapsed() >= self.lease {
            tracing::error!(%job_id, "no lease renewed for a whole lease; stopping the job");
            return Err(Lost);
        }
        Ok(())
    }
}

/// A lease operation that failed: no connection, or the database said no.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("no database connection: {0}")]
    Pool(String),
    #[error("database error: {0}")]
    Database(#[from] tokio_postgres::Error),
}

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "job leases",
    sql: "CREATE TABLE job_leases (
              job_id     UUID PRIMARY KEY,
              worker     TEXT NOT NULL,
              expires_at TIMESTAMPTZ NOT NULL);
          CREATE INDEX ON job_leases (expires_at);",
}];

pub async fn prepare(client: &mut tokio_postgres::Client) -> Result<(), MigrationError> {
    migrate(client, "runner", MIGRATIONS).await.map(|_| ())
}

/// Claims the oldest waiting job nobody holds: locks its row (skipping rows others are claiming)
/// and inserts the lease, in one statement (one round trip, its own transaction).
pub async fn claim(pool: &Pool, worker: &str, lease: Duration) -> Result<Option<Uuid>, LeaseError> {
    let client = connection(pool).await?;
    let claim = client
        .prepare_cached(
            "WITH oldest AS (
                 SELECT j.job_id FROM jobs j
                 WHERE j.status = 'waiting'
                   AND NOT EXISTS (SELECT 1 FROM job_leases l WHERE l.job_id = j.job_id)
                 ORDER BY j.created_at LIMIT 1
                 FOR UPDATE OF j SKIP LOCKED)
             INSERT INTO job_leases (job_id, worker, expires_at)
             SELECT job_id, $1, now() + make_interval(secs => $2) FROM oldest
             ON CONFLICT DO NOTHING
             RETURNING job_id",
        )
        .await?;
    let row = client
        .query_opt(&claim, &[&worker, &(lease.as_secs_f64())])
        .await?;
    Ok(row.map(|row| row.get(0)))
}

/// Extends the lease; `false` if it is no longer this worker's (the reaper took the job).
pub async fn renew(
    pool: &Pool,
    job_id: Uuid,
    worker: &str,
    lease: Duration,
) -> Result<bool, LeaseError> {
    let client = connection(pool).await?;
    let updated = client
        .execute(
            "UPDATE job_leases SET expires_at = now() + make_interval(secs => $3)
             WHERE job_id = $1 AND worker = $2",
            &[&job_id, &worker, &(lease.as_secs_f64())],
        )
        .await?;
    Ok(updated == 1)
}

/// Gives the job up; if that fails, the lease simply runs out.
pub async fn release(pool: &Pool, job_id: Uuid, worker: &str) {
    let released = async {
        let client = connection(pool).await?;
        let release = client
            .prepare_cached("DELETE FROM job_leases WHERE job_id = $1 AND worker = $2")
            .await?;
        client.execute(&release, &[&job_id, &worker]).await?;
        Ok::<_, LeaseError>(())
    };
    if let Err(e) = released.await {
        tracing::warn!(%job_id, error = %e, "releasing a job lease failed; it will expire");
    }
}

async fn connection(pool: &Pool) -> Result<deadpool_postgres::Object, LeaseError> {
    pool.get()
        .await
        .map_err(|e| LeaseError::Pool(e.to_string()))
}

/// A lease that ran out: its worker stopped renewing it.
pub struct Expired {
    pub job_id: Uuid,
    pub worker: String,
    pub expired_at: chrono::DateTime<chrono::Utc>,
}

/// Takes (deletes) leases that ran out, a few at a time, skipping any another reaper holds.
pub async fn take_expired(pool: &Pool) -> Result<Vec<Expired>, LeaseError> {
    let client = connection(pool).await?;
    let rows = client
        .query(
            "DELETE FROM job_leases WHERE job_id IN (
                SELECT job_id FROM job_leases WHERE expires_at < now()
                ORDER BY expires_at LIMIT 20 FOR UPDATE SKIP LOCKED)
             RETURNING job_id, worker, expires_at",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Expired {
            job_id: r.get(0),
            worker: r.get(1),
            expired_at: r.get(2),
        })
        .collect())
}

/// Jobs processing with no lease at all for longer than a lease (a reaper that died between
/// taking a lease and finishing its job): they are lost too.
pub async fn orphans(
    pool: &Pool,
    lease: Duration,
) -> Result<Vec<(Uuid, Option<String>)>, LeaseError> {
    let client = connection(pool).await?;
    let rows = client
        .query(
            "SELECT j.job_id, j.worker FROM jobs j
             WHERE j.status = 'processing'
               AND j.started_at < now() - make_interval(secs => $1)
               AND NOT EXISTS (SELECT 1 FROM job_leases l WHERE l.job_id = j.job_id)
             LIMIT 20",
            &[&(lease.as_secs_f64() * 2.0)],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}
