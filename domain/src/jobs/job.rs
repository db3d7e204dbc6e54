//! The job aggregate, stream `job-<uuid>`.
//!
//! Lifecycle: `waiting → processing → success | error | warning | killed`, or
//! `waiting → cancelled`. Only a waiting job can be cancelled or started, only a processing job
//! can be killed, get output or finish, and a finished job never changes again.

use super::variables::Variables;
use crate::aggregate::{Aggregate, DomainEvent};
use crate::error::DomainError;
use crate::orchestrations::Task;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
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
    /// What it runs, from its submission.
    pub plan: Option<Plan>,
}

impl Job {
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
                if self.running_task.is_some()
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
                let in_order = match status {
                    // A skipped task never started.
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
                self.task_count = s.tasks.len() as u32;
                self.plan = Some(Plan::of(s));
            }
            JobEvent::JobTaskStarted { index, .. } => self.running_task = Some(*index),
            JobEvent::JobTaskFinished { .. } => {
                self.running_task = None;
                self.tasks_ended += 1;
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
