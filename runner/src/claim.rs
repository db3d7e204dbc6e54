//! The work loop of each worker: claim the oldest waiting job (its lease), load its stream, run
//! what its submission planned (a job of one catalog task, an orchestration's tasks, or a role
//! job's instances), give
//! the lease up, and claim the next; idle, wait for the read models to move (or a poll).
//!
//! Does not own: the lease table (`lease`), running the job (`catalog_task`,
//! `orchestration_job`, `parallel_job`), nor jobs whose worker was lost (`reaper`).

use crate::job_stream::{origin, JobStream};
use crate::lease::{self, Heartbeat};
use crate::output::Output;
use crate::workers::Context;
use bosun_commands::CommandError;
use bosun_domain::jobs::{Job, JobStatus, Plan};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// How long an idle worker waits for the read models to move before looking again anyway.
const IDLE_POLL: Duration = Duration::from_millis(500);

/// A job this worker claimed and runs: what it appends with (the job's held state), its lease,
/// and its output on the way to the log. Owned by the run and dropped with it.
pub(crate) struct Run<'a> {
    pub context: &'a Context,
    pub worker: &'a str,
    pub stream: JobStream,
    pub heartbeat: Heartbeat,
    pub output: Output,
    /// What the job tells its processes when several run at once (a role job's instances);
    /// `None`: each process asks the read model whether a kill was requested.
    pub halt: Option<tokio::sync::watch::Receiver<crate::supervise::Halt>>,
}

pub(crate) async fn work(context: Arc<Context>, worker: String) {
    let lease = lease::length(&context.settings);
    loop {
        let seen = context.commands.freshness.position();
        match lease::claim(&context.pool, &worker, lease).await {
            Ok(Some(job_id)) => {
                let ran = run(&context, &worker, job_id).await;
                lease::release(&context.pool, job_id, &worker).await;
                match ran {
                    Ok(true) => {}
                    // The read model still showed a job that had moved on: wait for it to catch
                    // up rather than claim the same row again at once.
                    Ok(false) => {
                        let _ = context
                            .commands
                            .freshness
                            .wait_for(seen + 1, IDLE_POLL)
                            .await;
                    }
                    Err(e) => {
                        tracing::error!(%job_id, worker, error = %e, "running a job failed");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
            Ok(None) => {
                // Woken when the read models move (a job submitted or finished), or by the poll.
                let _ = context
                    .commands
                    .freshness
                    .wait_for(seen + 1, IDLE_POLL)
                    .await;
            }
            Err(e) => {
                tracing::warn!(worker, error = %e, "claiming a job failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Runs the claimed job as its stream says; `false` if there was nothing to run (the read model
/// was behind: the job is no longer waiting).
async fn run(context: &Context, worker: &str, job_id: Uuid) -> Result<bool, CommandError> {
    let held = context.commands.hold::<Job>(&job_id.to_string()).await?;
    if held.state.status != Some(JobStatus::Waiting) {
        return Ok(false);
    }
    let Some(plan) = held.state.plan.clone() else {
        return Ok(false);
    };
    let mut run = Run {
        context,
        worker,
        stream: JobStream::held(held, job_id, origin(worker)),
        heartbeat: Heartbeat::new(context, job_id, worker),
        output: Output::new(context.settings.output_limit_bytes),
        halt: None,
    };
    match &plan {
        Plan::Task(task) => crate::catalog_task::run_job(&mut run, task).await?,
        Plan::Orchestration {
            orchestration_id,
            tasks,
        } => crate::orchestration_job::run(&mut run, orchestration_id, tasks).await?,
        Plan::Roles(role_run) => crate::parallel_job::run(&mut run, role_run).await?,
    }
    Ok(true)
}
