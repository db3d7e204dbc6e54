//! The reaper, one on every node: finishes, as an error saying so, the jobs of workers that
//! stopped renewing their leases (the lease expired) and the processing jobs left with no lease
//! at all (a reaper that died between taking a lease and finishing its job), so nothing stays
//! `processing` forever; a role job's tasks its worker had started end with it, as errors (and
//! those it had not started, skipped), so none stays `running` either.
//!
//! Does not own: the lease table (`lease`), nor stopping a process whose worker lost its lease
//! (`supervise`, on that worker's side).

use crate::job_stream::{origin, JobStream};
use crate::lease;
use crate::workers::Context;
use bosun_commands::CommandError;
use bosun_domain::jobs::FinalStatus;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

const REAP_EVERY: Duration = Duration::from_secs(2);

/// Finishes the jobs of workers that stopped renewing their leases.
pub(crate) async fn reap(context: Arc<Context>) {
    let lease = lease::length(&context.settings);
    let origin = origin("reaper");
    loop {
        tokio::time::sleep(REAP_EVERY).await;
        let mut lost: Vec<(Uuid, String)> = Vec::new();
        match lease::take_expired(&context.pool).await {
            Ok(expired) => lost.extend(expired.into_iter().map(|e| {
                (
                    e.job_id,
                    format!(
                        "worker {} was lost: it stopped renewing its lease, which expired at {}",
                        e.worker,
                        e.expired_at.to_rfc3339()
                    ),
                )
            })),
            Err(e) => tracing::warn!(error = %e, "reading expired leases failed"),
        }
        match lease::orphans(&context.pool, lease).await {
            Ok(orphans) => lost.extend(orphans.into_iter().map(|(job_id, worker)| {
                (
                    job_id,
                    format!(
                        "worker {} was lost: the job has had no lease for longer than {} s",
                        worker.unwrap_or_default(),
                        lease.as_secs() * 2
                    ),
                )
            })),
            Err(e) => tracing::warn!(error = %e, "reading unleased jobs failed"),
        }
        for (job_id, diagnostics) in lost {
            // Loaded at its first try: the reaper holds no job's state between rounds.
            let mut stream = JobStream::unloaded(job_id, origin.clone());
            // A role job's tasks running when its worker was lost end with it, as errors.
            let finished = stream
                .finish_with_tasks(
                    &context,
                    FinalStatus::Error,
                    Some(diagnostics.clone()),
                    "worker lost: its worker stopped renewing the job's lease",
                )
                .await;
            match finished {
                Ok(true) => tracing::warn!(%job_id, diagnostics, "finished a lost job as an error"),
                // Still waiting (its worker died before starting it) or already finished.
                Ok(false) | Err(CommandError::Domain(_)) => {}
                Err(e) => tracing::warn!(%job_id, error = %e, "finishing a lost job failed"),
            }
        }
    }
}
