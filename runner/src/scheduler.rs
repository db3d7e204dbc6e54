//! The cron scheduler: one active instance across all nodes (the `scheduler` advisory lock).
//! It fires each active orchestration at its cron times (UTC) with `initialized_by: scheduler`.
//!
//! A slot is claimed by appending `OrchestrationRunScheduled` against the orchestration stream's
//! exact version, then its job is submitted under an id fixed by the slot: a restart, a takeover
//! or two schedulers racing can neither fire a slot twice nor make its job twice. After
//! downtime, the missed slots fire once, as one catch-up run (see `domain::orchestrations`).

use crate::leader::Leader;
use bosun_commands::{Commands, Origin};
use bosun_domain::jobs::Catalog;
use bosun_projections::read_models::orchestrations as model;
use chrono::Utc;
use futures::stream::{self, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// `hashtext('bosun scheduler')`-like constant: any fixed key no other lock uses.
pub const LOCK_KEY: i64 = 0x626f_7375_6e5f_7363;
/// Longest sleep between looks at the schedule (a schedule may change meanwhile).
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// Orchestrations fired at once.
const CONCURRENCY: usize = 32;
const BATCH: i64 = 1000;
/// How often the leader looks for claimed slots without a job.
const RECOVER_EVERY: Duration = Duration::from_secs(30);

fn origin() -> Origin {
    Origin {
        request_id: Some(Uuid::new_v4().to_string()),
        user_agent: Some(format!("bosun scheduler {}", env!("CARGO_PKG_VERSION"))),
        source: Some("scheduler".into()),
        ..Origin::default()
    }
}

pub(crate) async fn run(commands: Commands, catalog: Arc<Catalog>, config: tokio_postgres::Config) {
    loop {
        let leader = Leader::acquire(&config, LOCK_KEY, "scheduler").await;
        lead(&commands, &catalog, &leader).await;
        tracing::warn!("lost the scheduler lock; trying to take it again");
    }
}

/// Schedules while `leader` holds the lock.
async fn lead(commands: &Commands, catalog: &Catalog, leader: &Leader) {
    if let Err(e) = commands.catch_up().await {
        tracing::warn!(error = %e, "read models behind at takeover");
    }
    // What the last holder claimed but did not submit; again now and then, for a submission
    // that failed here.
    submit_missing(commands, catalog).await;
    let mut last_recovery = std::time::Instant::now();
    loop {
        if !leader.holds().await {
            return;
        }
        if last_recovery.elapsed() >= RECOVER_EVERY {
            submit_missing(commands, catalog).await;
            last_recovery = std::time::Instant::now();
        }
        let due = match due(commands).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "reading the schedule failed");
                tokio::time::sleep(LOOK_EVERY).await;
                continue;
            }
        };
        if !due.is_empty() {
            let fired: Vec<_> = stream::iter(due)
                .map(|id| async move {
                    let result = commands
                        .fire_due_run(&origin(), catalog, &id, Utc::now())
                        .await;
                    (id, result)
                })
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
            let mut any = false;
            for (id, result) in fired {
                match result {
                    Ok(Some(job)) => {
                        any = true;
                        tracing::info!(orchestration = id, %job, "scheduled run submitted")
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(orchestration = id, error = %e, "firing a scheduled run failed")
                    }
                }
            }
            // The read model moves the fired ones' next slot; until it has, they look due still.
            let _ = commands.catch_up().await;
            if !any {
                // Due in the read model but not in the log (a change not yet projected).
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            continue;
        }
        let wait = match earliest(commands).await {
            Some(at) => (at - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(LOOK_EVERY),
            None => LOOK_EVERY,
        };
        tokio::time::sleep(wait.max(Duration::from_millis(5))).await;
    }
}

/// Submits the job of every claimed slot that has none.
async fn submit_missing(commands: &Commands, catalog: &Catalog) {
    match missing_jobs(commands).await {
        Ok(ids) => {
            for id in ids {
                match commands
                    .submit_missing_scheduled_job(&origin(), catalog, &id)
                    .await
                {
                    Ok(job) => {
                        tracing::info!(orchestration = id, ?job, "submitted a claimed run's job")
                    }
                    Err(e) => {
                        tracing::warn!(orchestration = id, error = %e, "submitting a claimed run's job failed")
                    }
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "looking for claimed runs without a job failed"),
    }
}

async fn due(commands: &Commands) -> Result<Vec<String>, String> {
    let client = commands
        .store
        .pool()
        .get()
        .await
        .map_err(|e| e.to_string())?;
    model::due(&**client, Utc::now(), BATCH)
        .await
        .map_err(|e| e.to_string())
}

async fn earliest(commands: &Commands) -> Option<chrono::DateTime<Utc>> {
    let client = commands.store.pool().get().await.ok()?;
    model::earliest_due(&**client).await.ok().flatten()
}

async fn missing_jobs(commands: &Commands) -> Result<Vec<String>, String> {
    let client = commands
        .store
        .pool()
        .get()
        .await
        .map_err(|e| e.to_string())?;
    model::runs_without_job(&**client)
        .await
        .map_err(|e| e.to_string())
}
