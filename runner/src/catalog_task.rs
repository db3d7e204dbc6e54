//! Running a catalog task as a process, the one pipeline for a job of one task and for an
//! orchestration's catalog task: spawn it → record its start → supervise it → record its end.
//! A task that cannot start (gone from the catalog, its program missing) still starts and ends,
//! as an error saying why. Where the run is recorded is its `Place`: the job itself (`JobStarted`
//! with the pid and argv, `JobFinished`), or task `index` of an orchestration's job
//! (`JobTaskStarted`, `JobTaskFinished`).
//!
//! The process's environment, one rule for every job: the app's variables if the app is
//! registered (private ones opened only here, on their way into the process), then the job's
//! variables over them, then the catalog's `env` over both (an operator's value wins, as it
//! always has);
//! and only if whoever the job runs for may act on the app now (see
//! `Commands::job_may_run_on_app`): otherwise it cannot start, saying why.
//!
//! Does not own: the process itself (`process`), watching it and stopping it (`supervise`), its
//! output (`output`), nor an orchestration's sequencing, skips and HTTP tasks
//! (`orchestration_job`, `http_task`).

use crate::claim::Run;
use crate::process::{self, signal_group, Environment};
use crate::supervise::{describe, supervise, Stop, Supervised};
use bosun_commands::CommandError;
use bosun_domain::jobs::{CatalogRun, FinalStatus, JobCommand, OutputStream, TaskSpec, TaskStatus};
use nix::sys::signal::Signal;
use std::collections::BTreeMap;
use std::time::Duration;

/// Where a run is recorded in the job's stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    /// The job is this one task.
    Job,
    /// Task `index` of an orchestration's job.
    Task(u32),
}

/// How a task (or a job of one task) ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    Error,
    Killed,
}

impl From<Outcome> for TaskStatus {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Success => TaskStatus::Success,
            Outcome::Error => TaskStatus::Error,
            Outcome::Killed => TaskStatus::Killed,
        }
    }
}

impl From<Outcome> for FinalStatus {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Success => FinalStatus::Success,
            Outcome::Error => FinalStatus::Error,
            Outcome::Killed => FinalStatus::Killed,
        }
    }
}

/// How one run went.
pub(crate) struct TaskEnd {
    pub outcome: Outcome,
    pub exit_code: Option<i32>,
    pub diagnostics: Option<String>,
}

impl TaskEnd {
    pub fn error(diagnostics: String) -> Self {
        TaskEnd {
            outcome: Outcome::Error,
            exit_code: None,
            diagnostics: Some(diagnostics),
        }
    }
}

/// How long a run may take, in the unit it was given in (and its diagnostics say).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timeout {
    /// A job's `timeout_seconds`.
    Seconds(u64),
    /// An orchestration task's `timeout_minutes`.
    Minutes(u64),
}

impl Timeout {
    pub fn duration(self) -> Duration {
        match self {
            Timeout::Seconds(s) => Duration::from_secs(s),
            Timeout::Minutes(m) => Duration::from_secs(m * 60),
        }
    }
}

impl std::fmt::Display for Timeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Timeout::Seconds(s) => write!(f, "{s} s"),
            Timeout::Minutes(m) => write!(f, "{m} min"),
        }
    }
}

/// A catalog task to run.
pub(crate) struct CatalogTask<'a> {
    /// How the catalog says to run it, or why it cannot run.
    pub spec: Result<&'a TaskSpec, String>,
    /// The catalog app whose task it is: if it is a registered app, the task runs with its
    /// environment, for those who may act on it only.
    pub app: Option<String>,
    /// Environment variables of its process (under the catalog's `env`).
    pub variables: BTreeMap<String, String>,
    pub timeout: Option<Timeout>,
}

/// Runs a job of one catalog task, as its submission planned it: the catalog's task as it is
/// now (it must still exist), with the job's variables and timeout.
pub(crate) async fn run_job(run: &mut Run<'_>, plan: &CatalogRun) -> Result<(), CommandError> {
    let context = run.context;
    let spec = context
        .catalog
        .task(&plan.app, &plan.env, &plan.task)
        .map_err(|e| format!("{e} (the catalog changed since it was submitted)"));
    let task = CatalogTask {
        spec,
        app: Some(plan.app.clone()),
        variables: plan
            .variables
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect(),
        timeout: plan.timeout_seconds.map(|s| Timeout::Seconds(s.max(1))),
    };
    self::run(run, Place::Job, task).await.map(|_| ())
}

/// Runs `task` at `place`: spawn → record its start → supervise → record its end. `None` if
/// the job is no longer this worker's (cancelled before it started, or finished by another).
pub(crate) async fn run(
    run: &mut Run<'_>,
    place: Place,
    task: CatalogTask<'_>,
) -> Result<Option<TaskEnd>, CommandError> {
    let spec = match task.spec {
        Ok(spec) => spec,
        Err(diagnostics) => return cannot_start(run, place, diagnostics).await,
    };
    let environment = match environment(run, spec, &task).await {
        Ok(Ok(environment)) => environment,
        Ok(Err(diagnostics)) => return cannot_start(run, place, diagnostics).await,
        // An outage: the job waits for another try.
        Err(e) if e.is_transient() => return Err(e),
        // One no retry mends (a private value sealed under another data key): it ends saying so.
        Err(e) => {
            let diagnostics = format!("cannot build the app's environment: {e}");
            return cannot_start(run, place, diagnostics).await;
        }
    };
    let running = match process::spawn(spec, &environment).await {
        Ok(running) => running,
        Err(e) => {
            let program = spec.command.first().map(String::as_str).unwrap_or("");
            let diagnostics = format!("cannot start {program:?}: {e}");
            return cannot_start(run, place, diagnostics).await;
        }
    };
    watch(run, place, running, &spec.command, task.timeout).await
}

/// The rest of the pipeline for a process started at `place` (`command` its argv as the log
/// records it): record its start → supervise it (stopped past `timeout`) → record its end.
/// `None` if the job is no longer this worker's.
pub(crate) async fn watch(
    run: &mut Run<'_>,
    place: Place,
    mut running: process::Running,
    command: &[String],
    timeout: Option<Timeout>,
) -> Result<Option<TaskEnd>, CommandError> {
    let job_id = run.stream.job_id;
    let started = record_start(run, place, Some(running.pid), command).await;
    if !matches!(started, Ok(true)) {
        // Not recorded as started (cancelled, or taken, between the claim and now): it must not
        // run unwatched.
        signal_group(running.pid, Signal::SIGKILL);
        let _ = running.child.wait().await;
        return started.map(|_| None);
    }
    tracing::info!(%job_id, ?place, worker = run.worker, pid = running.pid, "process started");
    let Supervised::Ended { exit, stop } =
        supervise(run, running, timeout.map(Timeout::duration)).await?
    else {
        return Ok(None);
    };
    let described = describe(&exit);
    let (outcome, diagnostics) = match stop {
        Some(Stop::Killed) => (
            Outcome::Killed,
            Some(format!("killed on request; {described}")),
        ),
        Some(Stop::Cancelled) => (
            Outcome::Killed,
            Some(format!(
                "stopped: another instance of the job failed; {described}"
            )),
        ),
        Some(Stop::TimedOut) => (
            Outcome::Error,
            Some(format!(
                "timed out after {} and was killed; {described}",
                timeout.unwrap_or(Timeout::Seconds(0))
            )),
        ),
        None if exit.success() => (Outcome::Success, None),
        None => (Outcome::Error, Some(described)),
    };
    let end = TaskEnd {
        outcome,
        exit_code: exit.code(),
        diagnostics,
    };
    Ok(record_end(run, place, &end).await?.then_some(end))
}

/// The environment of `task`'s process (see the module's doc), or why it may not run.
async fn environment(
    run: &Run<'_>,
    spec: &TaskSpec,
    task: &CatalogTask<'_>,
) -> Result<Result<Environment, String>, CommandError> {
    let commands = &run.context.commands;
    let registered = match &task.app {
        Some(app) => commands
            .registered_app_teams(app)
            .await?
            .map(|teams| (app, teams)),
        None => None,
    };
    let Some((app, teams)) = registered else {
        return Ok(Ok(layered(spec, None, &task.variables)));
    };
    match commands
        .job_may_run_on_app(run.stream.job_id, app, &teams)
        .await
    {
        Ok(()) => {}
        Err(CommandError::Forbidden(why)) => return Ok(Err(why)),
        Err(e) => return Err(e),
    }
    // Removed since it was found: none (an empty layer: no secrets).
    let app_env = commands.app_environment(app).await?.unwrap_or_default();
    Ok(Ok(layered(spec, Some(app_env), &task.variables)))
}

/// The environment of a process, each layer over the one before: the registered app's
/// variables (none for a catalog app no one registered), the job's `variables`, the catalog's
/// `env`. The operator's catalog value wins over everything a client set.
fn layered(
    spec: &TaskSpec,
    app: Option<Vec<(String, secrecy::SecretString)>>,
    variables: &BTreeMap<String, String>,
) -> Environment {
    let mut environment = Environment::default();
    if let Some(app) = app {
        environment.set_secrets(app);
    }
    environment.set_all(variables);
    environment.set_all(&spec.env);
    environment
}
/// Records a run at `place` that could not start: started and ended at once, an error saying
/// why (also in its output, for a task of a job of several).
pub(crate) async fn cannot_start(
    run: &mut Run<'_>,
    place: Place,
    diagnostics: String,
) -> Result<Option<TaskEnd>, CommandError> {
    let job_id = run.stream.job_id;
    tracing::warn!(%job_id, ?place, diagnostics, "cannot start");
    if !record_start(run, place, None, &[]).await? {
        return Ok(None);
    }
    if let Place::Task(index) = place {
        let mut line = diagnostics.clone();
        line.push('\n');
        let output = JobCommand::AppendOutput {
            stream: OutputStream::Stderr,
            text: line,
            task: Some(index),
        };
        let _ = run.stream.append(run.context, output).await;
    }
    let end = TaskEnd::error(diagnostics);
    Ok(record_end(run, place, &end).await?.then_some(end))
}

/// Records the start of the run at `place`, with its process and argv if it has one; `false` if
/// the job is no longer this worker's.
pub(crate) async fn record_start(
    run: &mut Run<'_>,
    place: Place,
    pid: Option<u32>,
    command: &[String],
) -> Result<bool, CommandError> {
    match place {
        Place::Job => {
            let (context, worker) = (run.context, run.worker);
            run.stream
                .start(context, worker, pid, command.to_vec())
                .await
        }
        Place::Task(index) => {
            let start = JobCommand::StartTask { index, pid };
            run.stream.step(run.context, start).await
        }
    }
}

/// Records how the run at `place` ended; `false` if the job is no longer this worker's.
pub(crate) async fn record_end(
    run: &mut Run<'_>,
    place: Place,
    end: &TaskEnd,
) -> Result<bool, CommandError> {
    let job_id = run.stream.job_id;
    match place {
        Place::Job => {
            let status = FinalStatus::from(end.outcome);
            let finish = JobCommand::Finish {
                status,
                exit_code: end.exit_code,
                diagnostics: end.diagnostics.clone(),
            };
            run.stream.append(run.context, finish).await?;
            tracing::info!(%job_id, ?status, "job finished");
            Ok(true)
        }
        Place::Task(index) => {
            let status = TaskStatus::from(end.outcome);
            let finish = JobCommand::FinishTask {
                index,
                status,
                exit_code: end.exit_code,
                diagnostics: end.diagnostics.clone(),
            };
            tracing::info!(%job_id, index, status = status.as_str(), "task finished");
            run.stream.step(run.context, finish).await
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn spec() -> TaskSpec {
        serde_json::from_value(serde_json::json!({
            "command": ["true"],
            "env": {"A": "catalog", "B": "catalog", "C": "catalog"}
        }))
        .unwrap()
    }

    fn variables() -> BTreeMap<String, String> {
        BTreeMap::from([("A".to_string(), "job".to_string())])
    }

    #[test]
    fn a_registered_apps_job_gets_its_apps_env_then_its_variables_then_the_catalogs() {
        let app = vec![
            ("A".to_string(), SecretString::from("app")),
            ("B".to_string(), SecretString::from("app")),
            ("D".to_string(), SecretString::from("app")),
            ("E".to_string(), SecretString::from("app")),
        ];
        let variables = BTreeMap::from([
            ("A".to_string(), "job".to_string()),
            ("E".to_string(), "job".to_string()),
        ]);
        let environment = layered(&spec(), Some(app), &variables);
        assert_eq!(
            environment.get("A"),
            Some("catalog"),
            "the operator's value wins"
        );
        assert_eq!(environment.get("B"), Some("catalog"));
        assert_eq!(environment.get("D"), Some("app"));
        assert_eq!(
            environment.get("E"),
            Some("job"),
            "the job's variable over the app's"
        );
    }

    #[test]
    fn any_other_job_gets_its_variables_under_the_catalogs_env_as_always() {
        let environment = layered(&spec(), None, &variables());
        assert_eq!(environment.get("A"), Some("catalog"));
    }
}
