//! An orchestration's job: its tasks one by one, in order. A catalog task runs through the same
//! pipeline as a job of one task (`catalog_task`, recorded as task `index`, its output tagged
//! with the task) with the task's parameters, action and ids as its variables; a `component_url`
//! task is an HTTP POST (`http_task`, which opens its URL if it is sealed). A failed task ends
//! the job `error` and skips the rest, unless it may fail (`continue_on_failure`): the job then
//! ends `warning`. A kill requested between tasks skips the rest.
//!
//! Does not own: running a process (`catalog_task`, `supervise`), the HTTP call (`http_task`),
//! nor the order rules of tasks (`domain`: one at a time, in order).

use crate::catalog_task::{self, record_end, record_start, CatalogTask, Outcome, Place, Timeout};
use crate::claim::Run;
use crate::http_task;
use crate::supervise::kill_requested;
use crate::workers::Context;
use bosun_commands::CommandError;
use bosun_domain::jobs::{FinalStatus, JobCommand, PlannedTask, TaskStatus};
use bosun_domain::orchestrations::TaskTarget;
use std::collections::BTreeMap;

/// Runs the job of orchestration `orchestration_id`, its `tasks` as they were planned when the
/// job was created.
pub(crate) async fn run(
    run: &mut Run<'_>,
    orchestration_id: &str,
    tasks: &[PlannedTask],
) -> Result<(), CommandError> {
    let (context, worker, job_id) = (run.context, run.worker, run.stream.job_id);
    if !run.stream.start(context, worker, None, vec![]).await? {
        return Ok(());
    }
    tracing::info!(%job_id, worker, tasks = tasks.len(), "orchestration job started");
    let mut failed: Option<String> = None;
    let mut tolerated: Vec<String> = Vec::new();
    let mut killed = false;
    for (index, planned) in tasks.iter().enumerate() {
        let index = index as u32;
        let name = planned.task.name();
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
            if !run.stream.step(context, finish).await? {
                return Ok(());
            }
            continue;
        }
        run.output.task = Some(index);
        let place = Place::Task(index);
        let timeout = planned.task.timeout_minutes.map(Timeout::Minutes);
        let end = match &planned.task.target {
            TaskTarget::Url(url) => {
                if !record_start(run, place, None, &[]).await? {
                    return Ok(());
                }
                let Some(end) =
                    http_task::run(run, orchestration_id, url, planned, timeout).await?
                else {
                    return Ok(());
                };
                record_end(run, place, &end).await?.then_some(end)
            }
            TaskTarget::Component(component) => {
                let task = catalog_task(run, orchestration_id, component, planned, timeout);
                catalog_task::run(run, place, task).await?
            }
        };
        let Some(end) = end else {
            return Ok(());
        };
        match end.outcome {
            Outcome::Success => {}
            Outcome::Killed => killed = true,
            Outcome::Error if planned.task.continue_on_failure => {
                tolerated.push(format!("task {index} ({name}) failed"))
            }
            Outcome::Error => {
                failed = Some(format!(
                    "task {index} ({name}) failed: {}",
                    end.diagnostics.as_deref().unwrap_or("error")
                ))
            }
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
    let finish = JobCommand::Finish {
        status,
        exit_code: None,
        diagnostics,
    };
    run.stream.append(context, finish).await?;
    tracing::info!(%job_id, ?status, "orchestration job finished");
    Ok(())
}

/// The catalog task `component` of the job as it runs now: the catalog's (which must still have
/// it), with the task's parameters, action and ids as variables.
fn catalog_task<'a>(
    run: &Run<'a>,
    orchestration_id: &str,
    component: &str,
    planned: &PlannedTask,
    timeout: Option<Timeout>,
) -> CatalogTask<'a> {
    let context: &'a Context = run.context;
    let spec = match planned.task.catalog_task() {
        Some((app, env, task)) => context.catalog.task(app, env, task).map_err(|e| {
            format!("{component}: {e} (the catalog changed since the job was created)")
        }),
        None => Err(format!("{component:?} is not app/env/task")),
    };
    let mut variables = BTreeMap::new();
    variables.insert(
        "BOSUN_TASK_PARAMETERS".to_string(),
        planned.task.parameters.to_string(),
    );
    if let Some(action) = &planned.task.action {
        variables.insert("BOSUN_TASK_ACTION".to_string(), action.clone());
    }
    variables.insert("BOSUN_JOB_ID".to_string(), run.stream.job_id.to_string());
    variables.insert(
        "BOSUN_ORCHESTRATION_ID".to_string(),
        orchestration_id.to_string(),
    );
    CatalogTask {
        spec,
        app: planned
            .task
            .catalog_task()
            .map(|(app, _, _)| app.to_string()),
        variables,
        timeout,
    }
}
