//! A worker's writes to the stream of a job it runs (or the reaper finishes): the job's state
//! held between appends, so an append reads nothing, and each logical command appended as one
//! attempt (the same event ids on every try), retried through an outage of the log for at most a
//! third of a lease. Shareable: the instances of a role job, running at once, append through
//! clones of one `JobStream` (one held state, behind a lock, so their appends are decided one
//! after another on it and read nothing).
//!
//! Does not own: what is appended when (the pipeline in `catalog_task`, `orchestration_job`,
//! `reaper`), the job's rules (`domain`), nor how an append is decided and written (`commands`).

use crate::lease;
use crate::workers::Context;
use bosun_commands::{Actor, CommandError, Held, Origin};
use bosun_domain::jobs::{FinalStatus, Job, JobCommand, JobStatus, TaskStatus};
use bosun_domain::{Aggregate, DomainError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use uuid::Uuid;

const ACTOR: Actor = Actor::System("worker");

/// Who appends, as the events' metadata says.
pub(crate) fn origin(worker: &str) -> Origin {
    Origin {
        request_id: Some(Uuid::new_v4().to_string()),
        user_agent: Some(format!("bosun worker {}", env!("CARGO_PKG_VERSION"))),
        source: Some(worker.to_string()),
        ..Origin::default()
    }
}

/// One job's stream as this node writes to it; its clones share its state.
#[derive(Clone)]
pub(crate) struct JobStream {
    pub job_id: Uuid,
    origin: Origin,
    /// Its state after this node's last append; loaded at the next append if there is none yet
    /// (the reaper's case, or a load that failed).
    held: Arc<Mutex<Option<Held<Job>>>>,
}

impl JobStream {
    /// The stream of a job whose state the caller has just loaded.
    pub fn held(held: Held<Job>, job_id: Uuid, origin: Origin) -> Self {
        JobStream {
            job_id,
            origin,
            held: Arc::new(Mutex::new(Some(held))),
        }
    }

    /// The stream of a job whose state is loaded when it is first appended to.
    pub fn unloaded(job_id: Uuid, origin: Origin) -> Self {
        JobStream {
            job_id,
            origin,
            held: Arc::new(Mutex::new(None)),
        }
    }

    /// Appends `command`'s events to the job's stream, retrying an outage of the log (with a
    /// doubling pause, for up to a third of a lease, so the lease renewed before it cannot run
    /// out meanwhile) so that a job's end keeps its true cause instead of being reaped as lost.
    /// Every try is the same attempt (the same event ids): one that did commit unseen is not
    /// written twice.
    pub async fn append(
        &mut self,
        context: &Context,
        command: JobCommand,
    ) -> Result<(), CommandError> {
        let job_id = self.job_id;
        let attempt = Uuid::new_v4();
        let give_up = Instant::now() + lease::length(&context.settings) / 3;
        let mut pause = Duration::from_millis(50);
        loop {
            match self.append_once(context, attempt, &command).await {
                Err(e) if e.is_transient() && Instant::now() + pause < give_up => {
                    tracing::warn!(%job_id, error = %e, "appending to the job failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                result => return result,
            }
        }
    }

    /// One try of `attempt` at `command`, decided on the job's held state (see
    /// `Commands::execute_held`), so it reads nothing.
    pub async fn append_once(
        &mut self,
        context: &Context,
        attempt: Uuid,
        command: &JobCommand,
    ) -> Result<(), CommandError> {
        let mut held = self.held.lock().await;
        let held = match &mut *held {
            Some(held) => held,
            None => held.insert(
                context
                    .commands
                    .hold::<Job>(&self.job_id.to_string())
                    .await?,
            ),
        };
        context
            .commands
            .execute_held(held, &ACTOR, &self.origin, attempt, |state: &Job| {
                state.handle(command.clone())
            })
            .await
            .map(|_| ())
    }

    /// Records the job's start (by `worker`, with a one-task job's process and argv); `false` if
    /// it must not run: cancelled (or taken) between the claim and now.
    pub async fn start(
        &mut self,
        context: &Context,
        worker: &str,
        pid: Option<u32>,
        command: Vec<String>,
    ) -> Result<bool, CommandError> {
        let start = JobCommand::Start {
            worker: worker.to_string(),
            pid,
            command,
        };
        match self.append(context, start).await {
            Ok(()) => Ok(true),
            Err(CommandError::Domain(DomainError::Conflict { .. })) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Appends a step of a started job; `false` if the job is no longer this worker's (finished
    /// by the reaper, or by a kill that raced).
    pub async fn step(
        &mut self,
        context: &Context,
        command: JobCommand,
    ) -> Result<bool, CommandError> {
        match self.append(context, command).await {
            Ok(()) => Ok(true),
            Err(e) if taken_over(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl JobStream {
    /// Whether a kill of the job was asked, as its held state says (none held: false). After a
    /// refused append, the state was read again: it says what the refusal saw.
    pub async fn kill_requested(&self) -> bool {
        self.held
            .lock()
            .await
            .as_ref()
            .is_some_and(|held| held.state.kill_requested)
    }

    /// Finishes the job `status` (its diagnostics `diagnostics`), first ending, for a job whose
    /// tasks run at once (a role job's), each task of its attempt that started and did not end
    /// as an error saying `task_diagnostics`, and skipping each that never started, so none of
    /// its tasks stays `running` after it. `false` if it had finished already.
    pub async fn finish_with_tasks(
        &mut self,
        context: &Context,
        status: FinalStatus,
        diagnostics: Option<String>,
        task_diagnostics: &str,
    ) -> Result<bool, CommandError> {
        let (unended, unstarted) = {
            let mut held = self.held.lock().await;
            let held = match &mut *held {
                Some(held) => held,
                None => held.insert(
                    context
                        .commands
                        .hold::<Job>(&self.job_id.to_string())
                        .await?,
                ),
            };
            let job = &held.state;
            if !job.parallel() || job.status != Some(JobStatus::Processing) {
                (vec![], vec![])
            } else {
                let unended: Vec<u32> = job
                    .started_tasks
                    .difference(&job.ended_tasks)
                    .copied()
                    .collect();
                let unstarted: Vec<u32> = (0..job.task_count)
                    .filter(|i| !job.started_tasks.contains(i) && !job.ended_tasks.contains(i))
                    .collect();
                (unended, unstarted)
            }
        };
        let ends = unended
            .into_iter()
            .map(|index| (index, TaskStatus::Error, task_diagnostics.to_string()))
            .chain(unstarted.into_iter().map(|index| {
                (
                    index,
                    TaskStatus::Skipped,
                    format!("skipped: {task_diagnostics}"),
                )
            }));
        for (index, status, diagnostics) in ends {
            let finish = JobCommand::FinishTask {
                index,
                status,
                exit_code: None,
                diagnostics: Some(diagnostics),
            };
            match self.append(context, finish).await {
                Ok(()) => {}
                // Ended meanwhile (its instance was still writing), or the job finished.
                Err(CommandError::Domain(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let finish = JobCommand::Finish {
            status,
            exit_code: None,
            diagnostics,
        };
        self.step(context, finish).await
    }
}

/// The job changed hands: the reaper (or a kill that raced) finished it.
pub(crate) fn taken_over(e: &CommandError) -> bool {
    matches!(
        e,
        CommandError::Domain(DomainError::Conflict {
            code: "job_finished",
            ..
        })
    )
}
