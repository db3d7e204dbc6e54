//! The job aggregate, stream `job-<uuid>`.
//!
//! Lifecycle: `waiting → processing → success | error | warning | killed`, or
//! `waiting → cancelled`. Only a waiting job can be cancelled or started, only a processing job
//! can be killed, get output or finish, and a finished job never changes again.
//!
//! Its tasks: an orchestration job's run one by one, in order; a role job's (the instances of
//! its roles, see `roles`) in any order and several at once, each started and ended once per
//! attempt, and a failed attempt of a role job may run again (`JobRetried`, up to its
//! `retry_count`), every task waiting again.

use super::roles::{RoleJob, RoleRun};
use super::variables::Variables;
use crate::aggregate::{Aggregate, DomainEvent};
use crate::error::DomainError;
use crate::orchestrations::Task;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Waiting,
    Processing,
    Success,
    Error,
    Warning,
    Killed,
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Waiting => "waiting",
            JobStatus::Processing => "processing",
            JobStatus::Success => "success",
            JobStatus::Error => "error",
            JobStatus::Warning => "warning",
            JobStatus::Killed => "killed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// The status named `text` (as [`as_str`](Self::as_str) writes it).
    pub fn parse(text: &str) -> Option<Self> {
        [
            JobStatus::Waiting,
            JobStatus::Processing,
            JobStatus::Success,
            JobStatus::Error,
            JobStatus::Warning,
            JobStatus::Killed,
            JobStatus::Cancelled,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }

    pub fn is_finished(self) -> bool {
        !matches!(self, JobStatus::Waiting | JobStatus::Processing)
    }
}

/// How a started job can end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinalStatus {
    Success,
    Error,
    Warning,
    Killed,
}

impl From<FinalStatus> for JobStatus {
    fn from(s: FinalStatus) -> Self {
        match s {
            FinalStatus::Success => JobStatus::Success,
            FinalStatus::Error => JobStatus::Error,
            FinalStatus::Warning => JobStatus::Warning,
            FinalStatus::Killed => JobStatus::Killed,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// What a client asked to run, resolved against the catalog by the caller.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    pub job_id: Uuid,
    pub name: Option<String>,
    pub app: String,
    pub env: String,
    pub task: String,
    pub variables: Variables,
    /// The catalog's argv for the task, recorded so the log says what was meant to run.
    pub command: Vec<String>,
    pub timeout_seconds: Option<u64>,
    #[serde(default)]
    pub notification_emails: Vec<String>,
    pub orchestration_id: Option<String>,
    /// `manual`, `scheduler`…
    pub initialized_by: String,
    pub created_by: String,
    /// With an `Idempotency-Key`: the SHA-256 of the request, so a retry with the same key can
    /// be told from a different request reusing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_digest: Option<String>,
    /// An orchestration job's tasks, run in order (its `app`, `env`, `task` and `command` are
    /// empty); none for a job of one catalog task.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<PlannedTask>,
    /// A scheduled run's cron slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_for: Option<DateTime<Utc>>,
    /// The job this one runs again (`restart`), if it is a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarted_from: Option<Uuid>,
    /// A role job's roles, image and retries (its `name` is its name, unique among its
    /// submitter's role jobs; its `app`, `env`, `task` and `command` are empty); none for any
    /// other job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_job: Option<Box<RoleJob>>,
}

/// What a job runs, as its submission planned it: what a worker reads to run it.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// A job of one catalog task.
    Task(CatalogRun),
    /// An orchestration's job: its tasks, run in order.
    Orchestration {
        orchestration_id: String,
        tasks: Vec<PlannedTask>,
    },
    /// A role job: every instance of its roles at once.
    Roles(RoleRun),
}

/// The catalog task of a job of one task, with the job's variables and timeout.
#[derive(Clone, Debug, PartialEq)]
pub struct CatalogRun {
    pub app: String,
    pub env: String,
    pub task: String,
    /// The catalog's argv when the job was submitted.
    pub command: Vec<String>,
    /// Environment variables of its process.
    pub variables: Variables,
    pub timeout_seconds: Option<u64>,
}

impl Plan {
    /// A job with an orchestration runs its tasks; any other its catalog task.
    pub fn of(submission: &Submission) -> Plan {
        if let Some(role_job) = &submission.role_job {
            return Plan::Roles(RoleRun {
                name: submission.name.clone().unwrap_or_default(),
                tasks: role_job.tasks(),
                variables: submission.variables.clone(),
                timeout_seconds: submission.timeout_seconds,
                retry_count: role_job.retry_count,
            });
        }
        match &submission.orchestration_id {
            Some(id) => Plan::Orchestration {
                orchestration_id: id.clone(),
                tasks: submission.tasks.clone(),
            },
            None => Plan::Task(CatalogRun {
                app: submission.app.clone(),
                env: submission.env.clone(),
                task: submission.task.clone(),
                command: submission.command.clone(),
                variables: submission.variables.clone(),
                timeout_seconds: submission.timeout_seconds,
            }),
        }
    }
}

/// A task of an orchestration job, with the catalog's argv for a catalog task as it was when the
/// job was created.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedTask {
    #[serde(flatten)]
    pub task: Task,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
}

/// How a task of an orchestration job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Success,
    Error,
    Killed,
    /// Not run: an earlier task failed without `continue_on_failure`, or the job was killed.
    Skipped,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Success => "success",
            TaskStatus::Error => "error",
            TaskStatus::Killed => "killed",
            TaskStatus::Skipped => "skipped",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event_type", content = "data")]
pub enum JobEvent {
    JobSubmitted(Box<Submission>),
    JobStarted {
        job_id: Uuid,
        worker: String,
        /// The process of a one-task job; none for an orchestration job (its tasks have theirs).
        pid: Option<u32>,
        command: Vec<String>,
    },
    /// Task `index` of an orchestration job began (with its process, for a catalog task).
    JobTaskStarted {
        job_id: Uuid,
        index: u32,
        pid: Option<u32>,
    },
    JobTaskFinished {
        job_id: Uuid,
        index: u32,
        status: TaskStatus,
        exit_code: Option<i32>,
        diagnostics: Option<String>,
    },
    /// A role job's failed attempt runs again: every task waits again. `retry` counts from 1.
    JobRetried {
        job_id: Uuid,
        retry: u32,
    },
    JobOutputAppended {
        job_id: Uuid,
        stream: OutputStream,
        /// Byte offset of `text` in its stream.
        offset: u64,
        text: String,
        /// The orchestration task that wrote it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        task: Option<u32>,
    },
    JobCancelled {
        job_id: Uuid,
        reason: Option<String>,
    },
    JobKillRequested {
        job_id: Uuid,
        reason: Option<String>,
    },
    JobFinished {
        job_id: Uuid,
        status: FinalStatus,
        exit_code: Option<i32>,
        diagnostics: Option<String>,
    },
}

impl DomainEvent for JobEvent {
    fn event_type(&self) -> &'static str {
        match self {
            JobEvent::JobSubmitted(_) => "JobSubmitted",
            JobEvent::JobStarted { .. } => "JobStarted",
            JobEvent::JobOutputAppended { .. } => "JobOutputAppended",
            JobEvent::JobTaskStarted { .. } => "JobTaskStarted",
            JobEvent::JobTaskFinished { .. } => "JobTaskFinished",
            JobEvent::JobRetried { .. } => "JobRetried",
            JobEvent::JobCancelled { .. } => "JobCancelled",
            JobEvent::JobKillRequested { .. } => "JobKillRequested",
            JobEvent::JobFinished { .. } => "JobFinished",
        }
    }
}

#[derive(Clone, Debug)]
pub enum JobCommand {
    Submit(Box<Submission>),
    Start {
        worker: String,
        pid: Option<u32>,
        command: Vec<String>,
    },
    StartTask {
        index: u32,
        pid: Option<u32>,
    },
    FinishTask {
        index: u32,
        status: TaskStatus,
        exit_code: Option<i32>,
        diagnostics: Option<String>,
    },
    /// A role job's attempt failed: run every task again.
    Retry,
    AppendOutput {
        stream: OutputStream,
        text: String,
        task: Option<u32>,
    },
    Cancel {
        reason: Option<String>,
    },
    Kill {
        reason: Option<String>,
    },
    Finish {
        status: FinalStatus,
        exit_code: Option<i32>,
        diagnostics: Option<String>,
    },
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Job {
    pub job_id: Option<Uuid>,
    /// Who submitted it (for a scheduled run, the orchestration's creator): who may stop it.
    pub created_by: Option<String>,
    pub request_digest: Option<String>,
    pub status: Option<JobStatus>,
    pub kill_requested: bool,
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    /// An orchestration job's task count, the task running, and the tasks that ended.
    pub task_count: u32,
    pub running_task: Option<u32>,
    pub tasks_ended: u32,
    /// A role job's tasks started and ended in this attempt.
    pub started_tasks: BTreeSet<u32>,
    pub ended_tasks: BTreeSet<u32>,
    /// A role job's attempts run again so far.
    pub retries: u32,
    /// What it runs, from its submission.
    pub plan: Option<Plan>,
}

impl Job {
    /// Its tasks run at once (a role job's), rather than one by one in order.
    pub fn parallel(&self) -> bool {
        matches!(self.plan, Some(Plan::Roles(_)))
    }

    fn require(&self, wanted: JobStatus, code: &'static str) -> Result<Uuid, DomainError> {
        let (Some(job_id), Some(status)) = (self.job_id, self.status) else {
            return Err(DomainError::NotFound("no such job".into()));
        };
        if status.is_finished() {
            return Err(DomainError::conflict(
                "job_finished",
                format!(
                    "the job has finished ({}) and cannot change",
                    status.as_str()
                ),
            ));
        }
        if status != wanted {
            return Err(DomainError::conflict(
                code,
                format!(
                    "the job is {}; this needs it {}",
                    status.as_str(),
                    wanted.as_str()
                ),
            ));
        }
        Ok(job_id)
    }
}

impl Aggregate for Job {
    type Command = JobCommand;
    type Event = JobEvent;
    const CATEGORY: &'static str = "job";

    fn handle(&self, command: JobCommand) -> Result<Vec<JobEvent>, DomainError> {
        match command {
            JobCommand::Submit(submission) => {
                if self.job_id.is_some() {
                    return Err(DomainError::conflict("job_exists", "the job exists"));
                }
                Ok(vec![JobEvent::JobSubmitted(submission)])
            }
            JobCommand::Start {
                worker,
                pid,
                command,
            } => {
                let job_id = self.require(JobStatus::Waiting, "job_not_waiting")?;
                Ok(vec![JobEvent::JobStarted {
                    job_id,
                    worker,
                    pid,
                    command,
                }])
            }
            JobCommand::StartTask { index, pid } => {
                let job_id = self.require(JobStatus::Processing, "job_not_processing")?;
                if self.parallel() {
                    if index >= self.task_count
                        || self.started_tasks.contains(&index)
                        || self.ended_tasks.contains(&index)
                    {
                        return Err(DomainError::conflict(
                            "task_out_of_order",
                            format!("task {index} cannot start now: it has started already in this attempt, or there is no such task"),
                        ));
                    }
                } else if self.running_task.is_some()
                    || index != self.tasks_ended
                    || index >= self.task_count
                {
                    return Err(DomainError::conflict(
                        "task_out_of_order",
                        format!("task {index} cannot start now: tasks run one by one, in order"),
                    ));
                }
                Ok(vec![JobEvent::JobTaskStarted { job_id, index, pid }])
            }
            JobCommand::FinishTask {
                index,
                status,
                exit_code,
                diagnostics,
            } => {
                let job_id = self.require(JobStatus::Processing, "job_not_processing")?;
                let started = self.started_tasks.contains(&index);
                let ended = self.ended_tasks.contains(&index);
                let in_order = match status {
                    // A skipped task never started.
                    TaskStatus::Skipped if self.parallel() => !started && !ended,
                    _ if self.parallel() => started && !ended,
                    TaskStatus::Skipped => self.running_task.is_none() && index == self.tasks_ended,
                    _ => self.running_task == Some(index),
                };
                if !in_order || index >= self.task_count {
                    return Err(DomainError::conflict(
                        "task_out_of_order",
                        format!("task {index} is not the task that can end now"),
                    ));
                }
                Ok(vec![JobEvent::JobTaskFinished {
                    job_id,
                    index,
                    status,
                    exit_code,
                    diagnostics: diagnostics.map(storable),
                }])
            }
            JobCommand::Retry => {
                let job_id = self.require(JobStatus::Processing, "job_not_processing")?;
                let Some(Plan::Roles(run)) = &self.plan else {
                    return Err(DomainError::conflict(
                        "job_not_retryable",
                        "only a role job's attempt runs again",
                    ));
                };
                if self.kill_requested {
                    return Err(DomainError::conflict(
                        "job_not_retryable",
                        "a kill was requested: the job ends killed",
                    ));
                }
                if self.ended_tasks.len() as u32 != self.task_count {
                    return Err(DomainError::conflict(
                        "job_not_retryable",
                        "the attempt has tasks that have not ended",
                    ));
                }
                if self.retries >= run.retry_count {
                    return Err(DomainError::conflict(
                        "job_not_retryable",
                        format!(
                            "the job has run again {} times, all its retry_count allows",
                            self.retries
                        ),
                    ));
                }
                Ok(vec![JobEvent::JobRetried {
                    job_id,
                    retry: self.retries + 1,
                }])
            }
            JobCommand::AppendOutput { stream, text, task } => {
                let job_id = self.require(JobStatus::Processing, "job_not_processing")?;
                if text.is_empty() {
                    return Ok(vec![]);
                }
                let text = storable(text);
                let offset = match stream {
                    OutputStream::Stdout => self.stdout_bytes,
                    OutputStream::Stderr => self.stderr_bytes,
                };
                Ok(vec![JobEvent::JobOutputAppended {
                    job_id,
                    stream,
                    offset,
                    text,
                    task,
                }])
            }
            JobCommand::Cancel { reason } => {
                let job_id = self.require(JobStatus::Waiting, "job_not_waiting")?;
                Ok(vec![JobEvent::JobCancelled { job_id, reason }])
            }
            JobCommand::Kill { reason } => {
                let job_id = self.require(JobStatus::Processing, "job_not_processing")?;
                if self.kill_requested {
                    return Ok(vec![]);
                }
                Ok(vec![JobEvent::JobKillRequested { job_id, reason }])
            }
            JobCommand::Finish {
                status,
                exit_code,
                diagnostics,
            } => {
                let job_id = self.require(JobStatus::Processing, "job_not_processing")?;
                Ok(vec![JobEvent::JobFinished {
                    job_id,
                    status,
                    exit_code,
                    diagnostics: diagnostics.map(storable),
                }])
            }
        }
    }

    fn apply(&mut self, event: &JobEvent) {
        match event {
            JobEvent::JobSubmitted(s) => {
                self.job_id = Some(s.job_id);
                self.created_by = Some(s.created_by.clone());
                self.request_digest = s.request_digest.clone();
                self.status = Some(JobStatus::Waiting);
                let plan = Plan::of(s);
                self.task_count = match &plan {
                    Plan::Roles(run) => run.tasks.len() as u32,
                    _ => s.tasks.len() as u32,
                };
                self.plan = Some(plan);
            }
            JobEvent::JobTaskStarted { index, .. } => {
                if self.parallel() {
                    self.started_tasks.insert(*index);
                } else {
                    self.running_task = Some(*index);
                }
            }
            JobEvent::JobTaskFinished { index, .. } => {
                if self.parallel() {
                    self.ended_tasks.insert(*index);
                } else {
                    self.running_task = None;
                }
                self.tasks_ended += 1;
            }
            JobEvent::JobRetried { retry, .. } => {
                self.started_tasks.clear();
                self.ended_tasks.clear();
                self.tasks_ended = 0;
                self.retries = *retry;
            }
            JobEvent::JobStarted { .. } => self.status = Some(JobStatus::Processing),
            JobEvent::JobOutputAppended { stream, text, .. } => match stream {
                OutputStream::Stdout => self.stdout_bytes += text.len() as u64,
                OutputStream::Stderr => self.stderr_bytes += text.len() as u64,
            },
            JobEvent::JobCancelled { .. } => self.status = Some(JobStatus::Cancelled),
            JobEvent::JobKillRequested { .. } => self.kill_requested = true,
            JobEvent::JobFinished { status, .. } => self.status = Some((*status).into()),
        }
    }

    fn exists(&self) -> bool {
        self.job_id.is_some()
    }
}

/// Text from outside (a process's output, an HTTP answer in diagnostics) as the log can store
/// it: a NUL, which it cannot, is kept as U+FFFD, as invalid UTF-8 already is.
fn storable(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;

    fn submitted() -> JobEvent {
        JobEvent::JobSubmitted(Box::new(Submission {
            job_id: Uuid::nil(),
            name: None,
            app: "example".into(),
            env: "production".into(),
            task: "deploy".into(),
            variables: Variables::default(),
            command: vec!["true".into()],
            timeout_seconds: None,
            notification_emails: vec![],
            orchestration_id: None,
            initialized_by: "manual".into(),
            created_by: "ann".into(),
            request_digest: None,
            tasks: vec![],
            scheduled_for: None,
            restarted_from: None,
            role_job: None,
        }))
    }

    fn started() -> JobEvent {
        JobEvent::JobStarted {
            job_id: Uuid::nil(),
            worker: "w1".into(),
            pid: Some(42),
            command: vec!["true".into()],
        }
    }

    fn finished(status: FinalStatus) -> JobEvent {
        JobEvent::JobFinished {
            job_id: Uuid::nil(),
            status,
            exit_code: Some(0),
            diagnostics: None,
        }
    }

    /// The refusal of a command that needs the job `needs` while it `is`.
    fn not_in(code: &'static str, is: &str, needs: &str) -> DomainError {
        DomainError::conflict(code, format!("the job is {is}; this needs it {needs}"))
    }

    fn has_finished(status: &str) -> DomainError {
        DomainError::conflict(
            "job_finished",
            format!("the job has finished ({status}) and cannot change"),
        )
    }

    fn no_such_job() -> DomainError {
        DomainError::NotFound("no such job".into())
    }

    fn out_of_order_start(index: u32) -> DomainError {
        DomainError::conflict(
            "task_out_of_order",
            format!("task {index} cannot start now: tasks run one by one, in order"),
        )
    }

    fn out_of_order_end(index: u32) -> DomainError {
        DomainError::conflict(
            "task_out_of_order",
            format!("task {index} is not the task that can end now"),
        )
    }

    fn output(stream: OutputStream, offset: u64, text: &str) -> JobEvent {
        JobEvent::JobOutputAppended {
            job_id: Uuid::nil(),
            stream,
            offset,
            text: text.into(),
            task: None,
        }
    }

    fn append(stream: OutputStream, text: &str) -> JobCommand {
        JobCommand::AppendOutput {
            stream,
            text: text.into(),
            task: None,
        }
    }

    fn cancel() -> JobCommand {
        JobCommand::Cancel { reason: None }
    }

    fn kill() -> JobCommand {
        JobCommand::Kill {
            reason: Some("stop".into()),
        }
    }

    #[test]
    fn output_keeps_a_nul_byte_as_the_replacement_character() {
        let output = JobCommand::AppendOutput {
            stream: OutputStream::Stdout,
            text: "a\0b".into(),
            task: None,
        };
        given::<Job>(&[submitted(), started()])
            .when(output)
            .then(vec![JobEvent::JobOutputAppended {
                job_id: Uuid::nil(),
                stream: OutputStream::Stdout,
                offset: 0,
                text: "a\u{FFFD}b".into(),
                task: None,
            }]);
        given::<Job>(&[submitted(), started()])
            .when(append(OutputStream::Stdout, ""))
            .then_nothing();
    }

    #[test]
    fn only_a_waiting_job_can_be_cancelled() {
        given::<Job>(&[submitted()])
            .when(cancel())
            .then(vec![JobEvent::JobCancelled {
                job_id: Uuid::nil(),
                reason: None,
            }]);
        given::<Job>(&[submitted(), started()])
            .when(cancel())
            .refused(not_in("job_not_waiting", "processing", "waiting"));
        given::<Job>(&[]).when(cancel()).refused(no_such_job());
    }

    #[test]
    fn only_a_processing_job_can_be_killed() {
        given::<Job>(&[submitted()]).when(kill()).refused(not_in(
            "job_not_processing",
            "waiting",
            "processing",
        ));
        given::<Job>(&[submitted(), started()])
            .when(kill())
            .then(vec![JobEvent::JobKillRequested {
                job_id: Uuid::nil(),
                reason: Some("stop".into()),
            }]);
        let requested = JobEvent::JobKillRequested {
            job_id: Uuid::nil(),
            reason: None,
        };
        given::<Job>(&[submitted(), started(), requested])
            .when(kill())
            .then_nothing();
        given::<Job>(&[]).when(kill()).refused(no_such_job());
    }

    #[test]
    fn a_finished_job_never_changes_again() {
        let cancelled = JobEvent::JobCancelled {
            job_id: Uuid::nil(),
            reason: None,
        };
        for (end, status) in [
            (finished(FinalStatus::Success), "success"),
            (finished(FinalStatus::Killed), "killed"),
        ] {
            let past = [submitted(), started(), end];
            for command in [
                cancel(),
                kill(),
                JobCommand::Start {
                    worker: "w".into(),
                    pid: Some(1),
                    command: vec![],
                },
                JobCommand::AppendOutput {
                    stream: OutputStream::Stdout,
                    text: "x".into(),
                    task: None,
                },
                JobCommand::Finish {
                    status: FinalStatus::Error,
                    exit_code: None,
                    diagnostics: None,
                },
            ] {
                given::<Job>(&past)
                    .when(command)
                    .refused(has_finished(status));
            }
        }
        let past = [submitted(), cancelled];
        let start = JobCommand::Start {
            worker: "w".into(),
            pid: Some(1),
            command: vec![],
        };
        given::<Job>(&past)
            .when(start)
            .refused(has_finished("cancelled"));
    }

    #[test]
    fn a_job_starts_once() {
        let start = JobCommand::Start {
            worker: "w2".into(),
            pid: Some(7),
            command: vec![],
        };
        given::<Job>(&[submitted()])
            .when(start.clone())
            .then(vec![JobEvent::JobStarted {
                job_id: Uuid::nil(),
                worker: "w2".into(),
                pid: Some(7),
                command: vec![],
            }]);
        given::<Job>(&[submitted(), started()])
            .when(start)
            .refused(not_in("job_not_waiting", "processing", "waiting"));
    }

    #[test]
    fn output_offsets_count_bytes_per_stream() {
        let past = [
            submitted(),
            started(),
            output(OutputStream::Stdout, 0, "héllo\n"),
        ];
        given::<Job>(&past)
            .when(append(OutputStream::Stdout, "x"))
            .then(vec![output(OutputStream::Stdout, 7, "x")]);
        given::<Job>(&past)
            .when(append(OutputStream::Stderr, "x"))
            .then(vec![output(OutputStream::Stderr, 0, "x")]);
        given::<Job>(&[submitted()])
            .when(append(OutputStream::Stdout, "x"))
            .refused(not_in("job_not_processing", "waiting", "processing"));
    }

    #[test]
    fn submitting_twice_is_refused() {
        let JobEvent::JobSubmitted(s) = submitted() else {
            unreachable!()
        };
        given::<Job>(&[])
            .when(JobCommand::Submit(s.clone()))
            .then(vec![submitted()]);
        given::<Job>(&[submitted()])
            .when(JobCommand::Submit(s))
            .refused(DomainError::conflict("job_exists", "the job exists"));
    }

    #[test]
    fn a_job_knows_who_submitted_it() {
        assert_eq!(
            given::<Job>(&[submitted(), started()]).state().created_by,
            Some("ann".to_string())
        );
        assert_eq!(given::<Job>(&[]).state().created_by, None);
    }

    fn orchestration_job(tasks: usize) -> JobEvent {
        let JobEvent::JobSubmitted(mut s) = submitted() else {
            unreachable!()
        };
        let task = crate::orchestrations::Task {
            target: crate::orchestrations::TaskTarget::Component(
                "example/production/deploy".into(),
            ),
            action: None,
            parameters: serde_json::json!({}),
            continue_on_failure: false,
            timeout_minutes: None,
            active: true,
        };
        s.tasks = vec![
            PlannedTask {
                task,
                command: vec!["true".into()]
            };
            tasks
        ];
        s.orchestration_id = Some("nightly".into());
        JobEvent::JobSubmitted(s)
    }

    fn state(events: &[JobEvent]) -> Job {
        given::<Job>(events).state().clone()
    }

    #[test]
    fn a_job_of_one_task_plans_its_catalog_task_with_its_variables_and_timeout() {
        let JobEvent::JobSubmitted(mut s) = submitted() else {
            unreachable!()
        };
        s.variables =
            Variables::parse([("VERSION".to_string(), "1.2".to_string())].into()).unwrap();
        s.timeout_seconds = Some(30);
        let job = state(&[JobEvent::JobSubmitted(s.clone()), started()]);
        assert_eq!(
            job.plan,
            Some(Plan::Task(CatalogRun {
                app: "example".into(),
                env: "production".into(),
                task: "deploy".into(),
                command: vec!["true".into()],
                variables: s.variables,
                timeout_seconds: Some(30),
            }))
        );
        assert_eq!(Job::default().plan, None, "nothing before its submission");
    }

    #[test]
    fn an_orchestration_job_plans_its_tasks_in_order() {
        let JobEvent::JobSubmitted(s) = orchestration_job(2) else {
            unreachable!()
        };
        let job = state(&[orchestration_job(2), started(), task_started(0)]);
        assert_eq!(
            job.plan,
            Some(Plan::Orchestration {
                orchestration_id: "nightly".into(),
                tasks: s.tasks,
            })
        );
        // An orchestration without tasks is still an orchestration's job.
        let JobEvent::JobSubmitted(mut empty) = orchestration_job(0) else {
            unreachable!()
        };
        empty.tasks.clear();
        assert_eq!(
            state(&[JobEvent::JobSubmitted(empty)]).plan,
            Some(Plan::Orchestration {
                orchestration_id: "nightly".into(),
                tasks: vec![],
            })
        );
    }

    #[test]
    fn a_stored_submission_loads_its_plan_and_is_written_back_as_it_was() {
        // An orchestration job's `JobSubmitted` as stored: each task flattened with its argv.
        let data = serde_json::json!({
            "job_id": Uuid::nil(), "name": null, "app": "", "env": "", "task": "",
            "variables": {}, "command": [], "timeout_seconds": null,
            "notification_emails": ["ops@example.com"], "orchestration_id": "nightly",
            "initialized_by": "scheduler", "created_by": "ann",
            "tasks": [
                {"component": "shop/production/build", "component_url": null, "action": null,
                 "parameters": {"level": 1}, "continue_on_failure": false,
                 "timeout_minutes": 5, "active": true, "command": ["make", "build"]},
                {"component": null, "component_url": "https://example.com/run",
                 "action": "announce", "parameters": {}, "continue_on_failure": true,
                 "timeout_minutes": null, "active": true}
            ],
            "scheduled_for": "2024-05-01T03:00:00Z"
        });
        let event: JobEvent = crate::decode("JobSubmitted", &data).unwrap();
        assert_eq!(
            crate::encode(&event).unwrap(),
            ("JobSubmitted".to_string(), data)
        );
        let Some(Plan::Orchestration { tasks, .. }) = state(&[event]).plan else {
            panic!("an orchestration job")
        };
        use crate::orchestrations::TaskTarget;
        assert_eq!(
            tasks[0].task.target,
            TaskTarget::Component("shop/production/build".into())
        );
        assert_eq!(tasks[0].command, ["make", "build"]);
        assert_eq!(
            tasks[1].task.target,
            TaskTarget::Url("https://example.com/run".into())
        );
        assert!(tasks[1].command.is_empty());
    }

    fn task_started(index: u32) -> JobEvent {
        JobEvent::JobTaskStarted {
            job_id: Uuid::nil(),
            index,
            pid: Some(9),
        }
    }

    fn finish_task(index: u32, status: TaskStatus) -> JobCommand {
        JobCommand::FinishTask {
            index,
            status,
            exit_code: None,
            diagnostics: None,
        }
    }

    #[test]
    fn an_orchestration_jobs_tasks_run_one_by_one_in_order() {
        let base = [orchestration_job(2), started()];
        let start = |index| JobCommand::StartTask { index, pid: None };
        given::<Job>(&base)
            .when(start(0))
            .then(vec![JobEvent::JobTaskStarted {
                job_id: Uuid::nil(),
                index: 0,
                pid: None,
            }]);
        given::<Job>(&base)
            .when(start(1))
            .refused(out_of_order_start(1));
        let running = [orchestration_job(2), started(), task_started(0)];
        // One at a time.
        given::<Job>(&running)
            .when(start(1))
            .refused(out_of_order_start(1));
        given::<Job>(&running)
            .when(finish_task(1, TaskStatus::Success))
            .refused(out_of_order_end(1));
        let first_failed = JobEvent::JobTaskFinished {
            job_id: Uuid::nil(),
            index: 0,
            status: TaskStatus::Error,
            exit_code: None,
            diagnostics: None,
        };
        given::<Job>(&running)
            .when(finish_task(0, TaskStatus::Error))
            .then(vec![first_failed.clone()]);
        let after_first = [
            orchestration_job(2),
            started(),
            task_started(0),
            first_failed,
        ];
        // A skipped task never started; nothing runs before it is skipped.
        given::<Job>(&after_first)
            .when(finish_task(1, TaskStatus::Skipped))
            .then(vec![JobEvent::JobTaskFinished {
                job_id: Uuid::nil(),
                index: 1,
                status: TaskStatus::Skipped,
                exit_code: None,
                diagnostics: None,
            }]);
        given::<Job>(&running)
            .when(finish_task(0, TaskStatus::Skipped))
            .refused(out_of_order_end(0));
        // No task 2.
        given::<Job>(&after_first)
            .when(start(2))
            .refused(out_of_order_start(2));
        // A waiting job runs no task.
        given::<Job>(&[orchestration_job(2)])
            .when(start(0))
            .refused(not_in("job_not_processing", "waiting", "processing"));
    }

    /// A role job of roles `w` (`workers` instances of a catalog task) and `ps` (one command),
    /// that may run again `retry_count` times.
    fn role_job(workers: u32, retry_count: u32) -> JobEvent {
        use crate::jobs::roles::{PlannedRole, Role, RoleTarget};
        let JobEvent::JobSubmitted(mut s) = submitted() else {
            unreachable!()
        };
        s.app.clear();
        s.env.clear();
        s.task.clear();
        s.command.clear();
        s.name = Some("train".into());
        s.role_job = Some(Box::new(RoleJob {
            roles: vec![
                PlannedRole {
                    role: Role {
                        name: "w".into(),
                        instances: workers,
                        target: RoleTarget::Task("example/production/deploy".into()),
                    },
                    catalog_command: vec!["true".into()],
                },
                PlannedRole {
                    role: Role {
                        name: "ps".into(),
                        instances: 1,
                        target: RoleTarget::Command("echo hi".into()),
                    },
                    catalog_command: vec![],
                },
            ],
            image: Some("ubuntu".into()),
            retry_count,
        }));
        JobEvent::JobSubmitted(s)
    }

    fn task_finished(index: u32, status: TaskStatus) -> JobEvent {
        JobEvent::JobTaskFinished {
            job_id: Uuid::nil(),
            index,
            status,
            exit_code: None,
            diagnostics: None,
        }
    }

    fn start_task(index: u32) -> JobCommand {
        JobCommand::StartTask {
            index,
            pid: Some(9),
        }
    }

    fn started_twice(index: u32) -> DomainError {
        DomainError::conflict(
            "task_out_of_order",
            format!("task {index} cannot start now: it has started already in this attempt, or there is no such task"),
        )
    }

    #[test]
    fn a_role_job_plans_every_instance_of_its_roles_in_role_order() {
        let job = state(&[role_job(2, 1)]);
        assert_eq!(job.task_count, 3);
        assert!(job.parallel());
        let Some(Plan::Roles(run)) = job.plan else {
            panic!("a role job's plan")
        };
        assert_eq!(run.name, "train");
        assert_eq!(run.retry_count, 1);
        let roles: Vec<_> = run
            .tasks
            .iter()
            .map(|t| (t.index, t.role.as_str(), t.role_index, t.role_count))
            .collect();
        assert_eq!(roles, [(0, "w", 0, 2), (1, "w", 1, 2), (2, "ps", 0, 1)]);
        assert!(!state(&[orchestration_job(2)]).parallel());
        assert!(!state(&[submitted()]).parallel());
    }

    #[test]
    fn a_role_jobs_tasks_start_in_any_order_and_several_at_once() {
        let base = [role_job(2, 0), started()];
        // The last first.
        given::<Job>(&base)
            .when(start_task(2))
            .then(vec![task_started(2)]);
        // While 2 and 0 run, 1 starts too.
        let running = [role_job(2, 0), started(), task_started(2), task_started(0)];
        given::<Job>(&running)
            .when(start_task(1))
            .then(vec![task_started(1)]);
        // Any running one may end first; one that did not start may not end, but may be skipped.
        given::<Job>(&running)
            .when(finish_task(0, TaskStatus::Success))
            .then(vec![task_finished(0, TaskStatus::Success)]);
        given::<Job>(&running)
            .when(finish_task(1, TaskStatus::Error))
            .refused(out_of_order_end(1));
        given::<Job>(&running)
            .when(finish_task(1, TaskStatus::Skipped))
            .then(vec![task_finished(1, TaskStatus::Skipped)]);
        given::<Job>(&running)
            .when(finish_task(0, TaskStatus::Skipped))
            .refused(out_of_order_end(0));
        // A waiting job runs no task.
        given::<Job>(&[role_job(2, 0)])
            .when(start_task(0))
            .refused(not_in("job_not_processing", "waiting", "processing"));
    }

    #[test]
    fn a_role_jobs_task_starts_and_ends_once_per_attempt() {
        let ended = [
            role_job(2, 0),
            started(),
            task_started(0),
            task_finished(0, TaskStatus::Success),
        ];
        given::<Job>(&[role_job(2, 0), started(), task_started(0)])
            .when(start_task(0))
            .refused(started_twice(0));
        given::<Job>(&ended)
            .when(start_task(0))
            .refused(started_twice(0));
        given::<Job>(&ended)
            .when(finish_task(0, TaskStatus::Success))
            .refused(out_of_order_end(0));
        // No task 3.
        given::<Job>(&[role_job(2, 0), started()])
            .when(start_task(3))
            .refused(started_twice(3));
    }

    /// A role job of 1 worker and `ps` whose attempt ended: `w` failed, `ps` succeeded.
    fn failed_attempt(retry_count: u32) -> Vec<JobEvent> {
        vec![
            role_job(1, retry_count),
            started(),
            task_started(0),
            task_started(1),
            task_finished(1, TaskStatus::Success),
            task_finished(0, TaskStatus::Error),
        ]
    }

    fn not_retryable(message: &str) -> DomainError {
        DomainError::conflict("job_not_retryable", message.to_string())
    }

    #[test]
    fn a_failed_attempt_runs_again_every_task_up_to_the_retry_count() {
        let retried = JobEvent::JobRetried {
            job_id: Uuid::nil(),
            retry: 1,
        };
        given::<Job>(&failed_attempt(1))
            .when(JobCommand::Retry)
            .then(vec![retried.clone()]);
        // Every task may start again.
        let mut again = failed_attempt(1);
        again.push(retried.clone());
        assert_eq!(state(&again).retries, 1);
        given::<Job>(&again)
            .when(start_task(1))
            .then(vec![task_started(1)]);
        // Its second attempt failed too: no retry left.
        again.extend([
            task_started(0),
            task_started(1),
            task_finished(0, TaskStatus::Error),
            task_finished(1, TaskStatus::Success),
        ]);
        given::<Job>(&again)
            .when(JobCommand::Retry)
            .refused(not_retryable(
                "the job has run again 1 times, all its retry_count allows",
            ));
        given::<Job>(&failed_attempt(0))
            .when(JobCommand::Retry)
            .refused(not_retryable(
                "the job has run again 0 times, all its retry_count allows",
            ));
    }

    #[test]
    fn an_attempt_runs_again_only_once_it_ended_and_no_kill_was_asked() {
        let mut running = failed_attempt(3);
        running.pop();
        given::<Job>(&running)
            .when(JobCommand::Retry)
            .refused(not_retryable("the attempt has tasks that have not ended"));
        let mut killed = failed_attempt(3);
        killed.push(JobEvent::JobKillRequested {
            job_id: Uuid::nil(),
            reason: None,
        });
        given::<Job>(&killed)
            .when(JobCommand::Retry)
            .refused(not_retryable("a kill was requested: the job ends killed"));
        // Only a role job retries.
        given::<Job>(&[orchestration_job(0), started()])
            .when(JobCommand::Retry)
            .refused(not_retryable("only a role job's attempt runs again"));
        let mut finished = failed_attempt(3);
        finished.push(self::finished(FinalStatus::Error));
        given::<Job>(&finished)
            .when(JobCommand::Retry)
            .refused(has_finished("error"));
    }

    #[test]
    fn a_stored_role_submission_loads_and_is_written_back_as_it_was() {
        let data = serde_json::json!({
            "job_id": Uuid::nil(), "name": "train", "app": "", "env": "", "task": "",
            "variables": {"A": "1"}, "command": [], "timeout_seconds": 60,
            "notification_emails": [], "orchestration_id": null,
            "initialized_by": "manual", "created_by": "ann",
            "role_job": {
                "roles": [
                    {"name": "w", "instances": 2, "task": "example/production/deploy",
                     "catalog_command": ["true"]},
                    {"name": "ps", "instances": 1, "command": "echo hi"}
                ],
                "image": "ubuntu:22.04",
                "retry_count": 2
            }
        });
        let event: JobEvent = crate::decode("JobSubmitted", &data).unwrap();
        assert_eq!(
            crate::encode(&event).unwrap(),
            ("JobSubmitted".to_string(), data)
        );
        let Some(Plan::Roles(run)) = state(&[event]).plan else {
            panic!("a role job")
        };
        assert_eq!(run.tasks.len(), 3);
        assert_eq!(run.timeout_seconds, Some(60));
        assert_eq!(run.tasks[0].command, ["true"]);
    }

    #[test]
    fn old_events_without_the_new_fields_still_load() {
        // JobStarted from before pids were optional, output from before tasks.
        let started: JobEvent = crate::decode(
            "JobStarted",
            &serde_json::json!({"job_id": Uuid::nil(), "worker": "w", "pid": 5, "command": []}),
        )
        .unwrap();
        assert_eq!(
            started,
            JobEvent::JobStarted {
                job_id: Uuid::nil(),
                worker: "w".into(),
                pid: Some(5),
                command: vec![],
            }
        );
        let output: JobEvent = crate::decode(
            "JobOutputAppended",
            &serde_json::json!({"job_id": Uuid::nil(), "stream": "stdout", "offset": 0, "text": "x"}),
        )
        .unwrap();
        assert_eq!(output, self::output(OutputStream::Stdout, 0, "x"));
    }
}
