//! An orchestration job: its tasks one by one, in order. A catalog task runs as a process (as a
//! one-task job does, its output tagged with the task); a `component_url` task is an HTTP POST.
//! A failed task ends the job `error` and skips the rest, unless it may fail
//! (`continue_on_failure`): the job then ends `warning`. Each task's start and end is an event
//! on the job's stream.

use crate::http_task;
use crate::process;
use crate::worker::{
    append, describe, kill_requested, Context, Heartbeat, Output, Stop, Supervised,
};
use bosun_commands::{CommandError, Origin};
use bosun_domain::jobs::{FinalStatus, JobCommand, OutputStream, PlannedTask, TaskStatus};
use bosun_domain::DomainError;
use bosun_projections::read_models::jobs::JobView;
use std::collections::BTreeMap;
use std::time::Duration;

/// How one task went.
pub(crate) struct TaskEnd {
    pub status: TaskStatus,
    pub exit_code: Option<i32>,
    pub diagnostics: Option<String>,
}

impl TaskEnd {
    fn error(diagnostics: String) -> Self {
        TaskEnd {
            status: TaskStatus::Error,
            exit_code: None,
            diagnostics: Some(diagnostics),
        }
    }
}

pub(crate) async fn run(
    context: &Context,
    worker: &str,
    origin: &Origin,
    job: JobView,
) -> Result<bool, CommandError> {
    let job_id = job.id;
    // The job's view lists each task with every field of its plan but the argv, which comes
    // from the catalog again when the task runs.
    let tasks: Vec<PlannedTask> = match serde_json::from_value(job.tasks.clone()) {
        Ok(tasks) => tasks,
        Err(e) => {
            return Err(CommandError::Internal(format!(
                "job {job_id}: its tasks cannot be read: {e}"
            )))
        }
    };
    let started = append(
        context,
        job_id,
        origin,
        JobCommand::Start {
            worker: worker.to_string(),
            pid: None,
            command: vec![],
        },
    )
    .await;
    match started {
        Ok(()) => {}
        // Cancelled (or taken) between the claim and now.
        Err(CommandError::Domain(DomainError::Conflict { .. })) => return Ok(true),
        Err(e) => return Err(e),
    }
    tracing::info!(%job_id, worker, tasks = tasks.len(), "orchestration job started");
    let mut heartbeat = Heartbeat::new(context, job_id, worker);
    let mut output = Output::new(context.settings.output_limit_bytes, None);
    let mut failed: Option<String> = None;
    let mut tolerated: Vec<String> = Vec::new();
    let mut killed = false;
    for (index, planned) in tasks.iter().enumerate() {
        let index = index as u32;
        let name = planned
            .task
            .component
            .clone()
            .or(planned.task.component_url.clone())
            .unwrap_or_default();
        // A kill requested between tasks stops the job before the next one.
        killed = killed
            || (planned.task.active && failed.is_none() && kill_requested(context, job_id).await);
        let skip = if killed {
            Some("skipped: the job was killed".to_string())
        } else if let Some(why) = &failed {
            Some(format!("skipped: {why}"))
        } else if !planned.task.active {
            Some("skipped: inactive".to_string())
        } else {
            None
        };
        if let Some(diagnostics) = skip {
            let finish = JobCommand::FinishTask {
                index,
                status: TaskStatus::Skipped,
                exit_code: None,
                diagnostics: Some(diagnostics),
            };
            if !step(context, job_id, origin, finish).await? {
                return Ok(true);
            }
            continue;
        }
        output.task = Some(index);
        let timeout = planned
            .task
            .timeout_minutes
            .map(|m| Duration::from_secs(m * 60));
        let end = if planned.task.component_url.is_some() {
            if !step(
                context,
                job_id,
                origin,
                JobCommand::StartTask { index, pid: None },
            )
            .await?
            {
                return Ok(true);
            }
            match http_task::run(
                context,
                origin,
                &mut heartbeat,
                &job,
                planned,
                timeout,
                &mut output,
            )
            .await?
            {
                Some(end) => end,
                None => return Ok(true),
            }
        } else {
            match run_process(
                context,
                origin,
                &mut heartbeat,
                &job,
                index,
                planned,
                timeout,
                &mut output,
            )
            .await?
            {
                Some(end) => end,
                None => return Ok(true),
            }
        };
        tracing::info!(%job_id, index, status = end.status.as_str(), "task finished");
        match end.status {
            TaskStatus::Success | TaskStatus::Skipped => {}
            TaskStatus::Killed => killed = true,
            TaskStatus::Error if planned.task.continue_on_failure => {
                tolerated.push(format!("task {index} ({name}) failed"))
            }
            TaskStatus::Error => {
                failed = Some(format!(
                    "task {index} ({name}) failed: {}",
                    end.diagnostics.as_deref().unwrap_or("error")
                ))
            }
        }
        let finish = JobCommand::FinishTask {
            index,
            status: end.status,
            exit_code: end.exit_code,
            diagnostics: end.diagnostics,
        };
        if !step(context, job_id, origin, finish).await? {
            return Ok(true);
        }
    }
    let (status, diagnostics) = if killed {
        (FinalStatus::Killed, Some("killed on request".to_string()))
    } else if let Some(why) = failed {
        (FinalStatus::Error, Some(why))
    } else if !tolerated.is_empty() {
        (
            FinalStatus::Warning,
            Some(format!("{} (continue_on_failure)", tolerated.join("; "))),
        )
    } else {
        (FinalStatus::Success, None)
    };
    append(
        context,
        job_id,
        origin,
        JobCommand::Finish {
            status,
            exit_code: None,
            diagnostics,
        },
    )
    .await?;
    tracing::info!(%job_id, ?status, "orchestration job finished");
    Ok(true)
}

/// Appends a step of the job; `false` if the job is no longer this worker's (finished by the
/// reaper, or by a kill that raced).
async fn step(
    context: &Context,
    job_id: uuid::Uuid,
    origin: &Origin,
    command: JobCommand,
) -> Result<bool, CommandError> {
    match append(context, job_id, origin, command).await {
        Ok(()) => Ok(true),
        Err(e) if crate::worker::taken_over(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A catalog task as a process; `None` if the job was taken from this worker.
#[allow(clippy::too_many_arguments)]
async fn run_process(
    context: &Context,
    origin: &Origin,
    heartbeat: &mut Heartbeat,
    job: &JobView,
    index: u32,
    planned: &PlannedTask,
    timeout: Option<Duration>,
    output: &mut Output,
) -> Result<Option<TaskEnd>, CommandError> {
    let job_id = job.id;
    let component = planned.task.component.as_deref().unwrap_or_default();
    let spec = match planned
        .task
        .catalog_task()
        .map(|(app, env, task)| context.catalog.task(app, env, task))
    {
        Some(Ok(spec)) => spec.clone(),
        Some(Err(e)) => {
            return start_failed(
                context,
                origin,
                job_id,
                index,
                format!("{component}: {e} (the catalog changed since the job was created)"),
            )
            .await
        }
        None => {
            return start_failed(
                context,
                origin,
                job_id,
                index,
                format!("{component:?} is not app/env/task"),
            )
            .await
        }
    };
    let mut variables = BTreeMap::new();
    variables.insert(
        "BOSUN_TASK_PARAMETERS".to_string(),
        planned.task.parameters.to_string(),
    );
    if let Some(action) = &planned.task.action {
        variables.insert("BOSUN_TASK_ACTION".to_string(), action.clone());
    }
    variables.insert("BOSUN_JOB_ID".to_string(), job_id.to_string());
    if let Some(id) = &job.orchestration_id {
        variables.insert("BOSUN_ORCHESTRATION_ID".to_string(), id.clone());
    }
    let running = match process::spawn(&spec, &variables) {
        Ok(running) => running,
        Err(e) => {
            let program = spec.command.first().map(String::as_str).unwrap_or("");
            return start_failed(
                context,
                origin,
                job_id,
                index,
                format!("cannot start {program:?}: {e}"),
            )
            .await;
        }
    };
    let mut running = running;
    let pid = running.pid;
    let started = step(
        context,
        job_id,
        origin,
        JobCommand::StartTask {
            index,
            pid: Some(pid),
        },
    )
    .await;
    if !matches!(started, Ok(true)) {
        // Not recorded as started: it must not run unwatched.
        process::signal_group(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = running.child.wait().await;
        return started.map(|_| None);
    }
    let supervised =
        crate::worker::supervise(context, origin, heartbeat, running, timeout, output).await?;
    let Supervised::Ended { exit, stop } = supervised else {
        return Ok(None);
    };
    let described = describe(&exit);
    Ok(Some(match stop {
        Some(Stop::Killed) => TaskEnd {
            status: TaskStatus::Killed,
            exit_code: exit.code(),
            diagnostics: Some(format!("killed on request; {described}")),
        },
        Some(Stop::TimedOut) => TaskEnd {
            status: TaskStatus::Error,
            exit_code: exit.code(),
            diagnostics: Some(format!(
                "timed out after {} min and was killed; {described}",
                timeout.map_or(0, |t| t.as_secs() / 60)
            )),
        },
        None if exit.success() => TaskEnd {
            status: TaskStatus::Success,
            exit_code: exit.code(),
            diagnostics: None,
        },
        None => TaskEnd {
            status: TaskStatus::Error,
            exit_code: exit.code(),
            diagnostics: Some(described),
        },
    }))
}

/// A task that could not start still starts and ends, as an error saying why.
async fn start_failed(
    context: &Context,
    origin: &Origin,
    job_id: uuid::Uuid,
    index: u32,
    diagnostics: String,
) -> Result<Option<TaskEnd>, CommandError> {
    tracing::warn!(%job_id, index, diagnostics, "task cannot start");
    if !step(
        context,
        job_id,
        origin,
        JobCommand::StartTask { index, pid: None },
    )
    .await?
    {
        return Ok(None);
    }
    let mut line = diagnostics.clone();
    line.push('\n');
    let _ = append(
        context,
        job_id,
        origin,
        JobCommand::AppendOutput {
            stream: OutputStream::Stderr,
            text: line,
            task: Some(index),
        },
    )
    .await;
    Ok(Some(TaskEnd::error(diagnostics)))
}
