//! A worker's writes to the stream of a job it runs (or the reaper finishes): the job's state
//! held between appends, so an append reads nothing, and each logical command appended as one
//! attempt (the same event ids on every try), retried through an outage of the log for at most a
//! third of a lease.
//!
//! Does not own: what is appended when (the pipeline in `catalog_task`, `orchestration_job`,
//! `reaper`), the job's rules (`domain`), nor how an append is decided and written (`commands`).

use crate::lease;
use crate::workers::Context;
use bosun_commands::{Actor, CommandError, Held, Origin};
use bosun_domain::jobs::{Job, JobCommand};
use bosun_domain::{Aggregate, DomainError};
use std::time::{Duration, Instant};
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

/// One job's stream as this node writes to it.
pub(crate) struct JobStream {
    pub job_id: Uuid,
    origin: Origin,
    /// Its state after this node's last append; loaded at the next append if there is none yet
    /// (the reaper's case, or a load that failed).
    held: Option<Held<Job>>,
}

impl JobStream {
    /// The stream of a job whose state the caller has just loaded.
    pub fn held(held: Held<Job>, job_id: Uuid, origin: Origin) -> Self {
        JobStream {
            job_id,
            origin,
            held: Some(held),
        }
    }

    /// The stream of a job whose state is loaded when it is first appended to.
    pub fn unloaded(job_id: Uuid, origin: Origin) -> Self {
        JobStream {
            job_id,
            origin,
            held: None,
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
        let held = match &mut self.held {
            Some(held) => held,
            None => self.held.insert(
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
