//! A role job: every instance of every role at once, each task `index` of the one job. A catalog
//! task's instance runs through the same pipeline as any catalog task (`catalog_task::run` at
//! `Place::Task(index)`); a command's instance is `sh -c <command>` in the runnables' sandbox
//! (bubblewrap, `runnables.sandbox`; never with `none`), started from the units' spawner thread
//! as a runnable's is, in a work folder of its own under this node's folder of
//! `<runnables.work_dir>/jobs` (removed after; the folders of a node that crashed are removed at
//! the next start), through the same start → supervise → end path (`catalog_task::watch`). Each
//! instance has its own output buffer (its output tagged with its index, the job's output limit
//! shared out between them, and kept across attempts: a retry adds to what was kept, it does not
//! start afresh; paced: one event per instance per tick while it runs, so a kill gets in between),
//! and all append through clones of the one `JobStream`. The job has one
//! heartbeat (the claim's, shared by its instances and attempts, so however short each attempt
//! is the lease is renewed) and one watcher that asks the read model whether a kill was
//! requested and tells every instance through a `watch` channel (`Halt`). Every instance gets
//! the job's variables, then `PAI_JOB_NAME`, `PAI_TASK_ROLE_NAME`, `PAI_TASK_INDEX` (its number
//! in its role), `PAI_TASK_ROLE_COUNT` (its role's instances) and `BOSUN_JOB_ID` over them (a
//! catalog task's `env` over all, as always).
//!
//! The job ends `success` if every instance succeeded; `killed` if a kill was asked (every
//! instance's supervision sees it and stops its process). Fail-fast, as OpenPAI's default
//! (`minFailedInstances: 1`): the first instance to fail stops the others (SIGTERM, recorded
//! `killed`, "stopped: another instance of the job failed"; those not started yet are skipped);
//! then, while its retries last, the attempt runs again after a pause (`JobRetried`, every
//! instance anew), unless the failure is one a retry cannot mend (the runner refused the
//! command, the catalog task is gone); else it ends `error`, its diagnostics naming the
//! instances that failed. When the job cannot go on (an error of the log), it is finished
//! `error` saying why, its unended tasks with it.
//!
//! Does not own: the rule that a role job's tasks may run at once (`domain`), spawning and
//! watching a process (`process`, `supervise`, `catalog_task`), the sandbox (`runnables::sandbox`).

use crate::catalog_task::{
    self, cannot_start, watch, CatalogTask, Outcome, Place, TaskEnd, Timeout,
};
use crate::claim::Run;
use crate::job_stream::{taken_over, JobStream};
use crate::lease::Heartbeat;
use crate::output::{Output, FLUSH_EVERY};
use crate::process;
use crate::runnables::tree::NodeFolder;
use crate::supervise::{kill_requested, Halt};
use crate::workers::Context;
use bosun_commands::CommandError;
use bosun_domain::jobs::{FinalStatus, JobCommand, RoleRun, RoleTarget, RoleTask, TaskStatus};
use bosun_domain::DomainError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch as channel;
use uuid::Uuid;

/// The least output an instance may keep, however many share the job's limit.
const MIN_OUTPUT_BYTES: u64 = 1024;
/// Between a failed attempt and the next.
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// The folder of `runnables.work_dir` that holds role jobs' work folders (a folder per node).
const JOBS_FOLDER: &str = "jobs";

/// What a role job's instances share: the worker, the job's stream and heartbeat, and what the
/// job tells them.
struct Shared<'a> {
    context: &'a Context,
    worker: &'a str,
    stream: JobStream,
    heartbeat: Heartbeat,
    halt: channel::Sender<Halt>,
    plan: &'a RoleRun,
}

/// How one instance's attempt ended.
struct InstanceEnd {
    end: TaskEnd,
    /// It failed in a way another attempt cannot mend (the runner refused its command, its
    /// catalog task is gone): the job is not retried.
    refused: bool,
}

/// Runs role job `plan`: starts it, runs every instance at once, again while it fails and its
/// retries last, and records its end.
pub(crate) async fn run(run: &mut Run<'_>, plan: &RoleRun) -> Result<(), CommandError> {
    let (context, worker, job_id) = (run.context, run.worker, run.stream.job_id);
    if !run.stream.start(context, worker, None, vec![]).await? {
        return Ok(());
    }
    let instances = plan.tasks.len().max(1) as u64;
    let output_limit = (context.settings.output_limit_bytes / instances).max(MIN_OUTPUT_BYTES);
    tracing::info!(%job_id, worker, name = plan.name, instances, "role job started");
    let shared = Shared {
        context,
        worker,
        stream: run.stream.clone(),
        heartbeat: run.heartbeat.clone(),
        halt: channel::channel(Halt::Go).0,
        plan,
    };
    // Each instance's output, kept across attempts (its limit counts them all).
    let mut outputs: Vec<Output> = plan
        .tasks
        .iter()
        .map(|_| Output::new(output_limit))
        .collect();
    let mut retries = 0;
    loop {
        let attempts = plan
            .tasks
            .iter()
            .zip(outputs.iter_mut())
            .map(|(task, output)| instance(&shared, task, output));
        let all = futures::future::join_all(attempts);
        let ends = tokio::select! {
            ends = all => ends,
            never = watch_job(&shared) => match never {},
        };
        let mut failed = Vec::new();
        let mut refused = false;
        let mut gone = false;
        let mut error = None;
        for (task, end) in plan.tasks.iter().zip(ends) {
            match end {
                Err(e) => error = error.or(Some(e)),
                // No longer this worker's job (finished by the reaper, or its lease lost).
                Ok(None) => gone = true,
                Ok(Some(ended)) => {
                    refused |= ended.refused;
                    if ended.end.outcome == Outcome::Error {
                        failed.push(format!(
                            "task {} ({}[{}]): {}",
                            task.index,
                            task.role,
                            task.role_index,
                            ended.end.diagnostics.as_deref().unwrap_or("error")
                        ));
                    }
                }
            }
        }
        if gone {
            return Ok(());
        }
        if let Some(e) = error {
            return cannot_go_on(&shared, e).await;
        }
        let killed = || async {
            *shared.halt.borrow() == Halt::Kill || kill_requested(context, job_id).await
        };
        let (status, diagnostics) = if failed.is_empty() && *shared.halt.borrow() == Halt::Go {
            (FinalStatus::Success, None)
        } else if killed().await {
            (FinalStatus::Killed, Some("killed on request".to_string()))
        } else if retries < plan.retry_count && !refused {
            tokio::time::sleep(RETRY_PAUSE).await;
            if run.heartbeat.beat(context).await.is_err() {
                return Ok(());
            }
            let mut stream = shared.stream.clone();
            match stream.append(context, JobCommand::Retry).await {
                Ok(()) => {
                    retries += 1;
                    shared.halt.send_replace(Halt::Go);
                    tracing::info!(%job_id, retries, failed = failed.len(), "role job runs again");
                    continue;
                }
                Err(e) if taken_over(&e) => return Ok(()),
                // A kill asked meanwhile (the held state, read again, says so): killed.
                Err(CommandError::Domain(DomainError::Conflict {
                    code: "job_not_retryable",
                    message,
                })) => {
                    if stream.kill_requested().await {
                        (FinalStatus::Killed, Some("killed on request".to_string()))
                    } else {
                        (
                            FinalStatus::Error,
                            Some(failure(&failed, plan, retries, Some(&message))),
                        )
                    }
                }
                Err(e) => return cannot_go_on(&shared, e).await,
            }
        } else {
            (
                FinalStatus::Error,
                Some(failure(&failed, plan, retries, None)),
            )
        };
        let finish = JobCommand::Finish {
            status,
            exit_code: None,
            diagnostics,
        };
        // The reaper may have finished it meanwhile: then nothing more is written.
        if run.stream.step(context, finish).await? {
            tracing::info!(%job_id, ?status, "role job finished");
        }
        return Ok(());
    }
}

/// The diagnostics of a role job whose instances `failed`.
fn failure(failed: &[String], plan: &RoleRun, retries: u32, not_again: Option<&str>) -> String {
    let attempts = match retries {
        0 => String::new(),
        n => format!(" (after {n} retries)"),
    };
    let not_again = not_again
        .map(|why| format!("; not run again: {why}"))
        .unwrap_or_default();
    format!(
        "{} of {} instances failed{attempts}: {}{not_again}",
        failed.len(),
        plan.tasks.len(),
        failed.join("; ")
    )
}

/// The job cannot go on (`e`, an error of the log): finished as an error saying so, its
/// unended tasks with it, if the log lets it; `e` for the worker to report.
async fn cannot_go_on(shared: &Shared<'_>, e: CommandError) -> Result<(), CommandError> {
    let job_id = shared.stream.job_id;
    let diagnostics = format!("the job could not go on: {e}");
    let mut stream = shared.stream.clone();
    if let Err(also) = stream
        .finish_with_tasks(
            shared.context,
            FinalStatus::Error,
            Some(diagnostics),
            "the job could not go on",
        )
        .await
    {
        tracing::warn!(%job_id, error = %also, "finishing a role job that could not go on failed");
    }
    Err(e)
}

/// The job's one watcher while an attempt runs: every `FLUSH_EVERY`, renews the lease when due
/// and asks the read model whether a kill was requested, telling every instance (`Halt::Kill`);
/// a lease lost stops the attempt (each instance's own beat then finds it lost too).
async fn watch_job(shared: &Shared<'_>) -> std::convert::Infallible {
    let (context, job_id) = (shared.context, shared.stream.job_id);
    let mut heartbeat = shared.heartbeat.clone();
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    loop {
        tick.tick().await;
        if *shared.halt.borrow() != Halt::Kill && kill_requested(context, job_id).await {
            shared.halt.send_replace(Halt::Kill);
        }
        if heartbeat.beat(context).await.is_err() {
            cancel(&shared.halt);
        }
    }
}

/// Stops the attempt's other instances, unless a kill is stopping them already.
fn cancel(halt: &channel::Sender<Halt>) {
    halt.send_if_modified(|halt| match halt {
        Halt::Go => {
            *halt = Halt::Cancel;
            true
        }
        _ => false,
    });
}

/// Runs one instance, `task`, to its end, with its `output` (kept across attempts), the job's
/// stream, heartbeat and halt; fail-fast: its failure stops the others. `None` if the job is no
/// longer this worker's.
async fn instance(
    shared: &Shared<'_>,
    task: &RoleTask,
    output: &mut Output,
) -> Result<Option<InstanceEnd>, CommandError> {
    let ended = attempt(shared, task, output).await;
    if !matches!(&ended, Ok(Some(e)) if e.end.outcome != Outcome::Error) {
        cancel(&shared.halt);
    }
    ended
}

async fn attempt(
    shared: &Shared<'_>,
    task: &RoleTask,
    output: &mut Output,
) -> Result<Option<InstanceEnd>, CommandError> {
    let (context, plan) = (shared.context, shared.plan);
    let job_id = shared.stream.job_id;
    let halt = *shared.halt.borrow();
    if halt != Halt::Go {
        // Stopped before it started: skipped.
        let why = match halt {
            Halt::Kill => "skipped: the job was killed",
            _ => "skipped: another instance of the job failed",
        };
        let skip = JobCommand::FinishTask {
            index: task.index,
            status: TaskStatus::Skipped,
            exit_code: None,
            diagnostics: Some(why.to_string()),
        };
        let mut stream = shared.stream.clone();
        if !stream.step(context, skip).await? {
            return Ok(None);
        }
        let end = TaskEnd {
            outcome: Outcome::Killed,
            exit_code: None,
            diagnostics: Some(why.to_string()),
        };
        return Ok(Some(InstanceEnd {
            end,
            refused: false,
        }));
    }
    let mut run = Run {
        context,
        worker: shared.worker,
        stream: shared.stream.clone(),
        heartbeat: shared.heartbeat.clone(),
        output: std::mem::replace(output, Output::new(0)),
        halt: Some(shared.halt.subscribe()),
    };
    run.output.task = Some(task.index);
    run.output.paced = true;
    let place = Place::Task(task.index);
    let variables = variables(plan, task, &job_id.to_string());
    let (ended, refused) = match &task.target {
        RoleTarget::Task(component) => {
            let spec = match task.target.catalog_task() {
                Some((app, env, name)) => context.catalog.task(app, env, name).map_err(|e| {
                    format!("{component}: {e} (the catalog changed since the job was submitted)")
                }),
                None => Err(format!("{component:?} is not app/env/task")),
            };
            let refused = spec.is_err();
            let timeout = plan
                .timeout_seconds
                .or_else(|| spec.as_ref().ok().and_then(|s| s.timeout_seconds))
                .map(|s| Timeout::Seconds(s.max(1)));
            let app = task
                .target
                .catalog_task()
                .map(|(app, _, _)| app.to_string());
            let task = CatalogTask {
                spec,
                app,
                variables,
                timeout,
            };
            (catalog_task::run(&mut run, place, task).await, refused)
        }
        RoleTarget::Command(command) => {
            let timeout = plan.timeout_seconds.map(|s| Timeout::Seconds(s.max(1)));
            sandboxed(&mut run, task.index, command, &variables, timeout).await
        }
    };
    *output = run.output;
    Ok(ended?.map(|end| InstanceEnd { end, refused }))
}

/// An instance's environment: the job's variables, then its own (see the module's doc).
fn variables(plan: &RoleRun, task: &RoleTask, job_id: &str) -> BTreeMap<String, String> {
    let mut variables: BTreeMap<String, String> = plan
        .variables
        .iter()
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    for (name, value) in [
        ("PAI_JOB_NAME", plan.name.clone()),
        ("PAI_TASK_ROLE_NAME", task.role.clone()),
        ("PAI_TASK_INDEX", task.role_index.to_string()),
        ("PAI_TASK_ROLE_COUNT", task.role_count.to_string()),
        ("BOSUN_JOB_ID", job_id.to_string()),
    ] {
        variables.insert(name.to_string(), value);
    }
    variables
}

/// Runs `sh -c <command>` in the sandbox, in a work folder of its own (removed after), with
/// `variables` in its environment; a sandbox that cannot start ends the instance as an error
/// saying why (bubblewrap missing: how to install it). With it, whether the runner refused the
/// command (commands off, or no sandbox to run it in: no other attempt will run it).
async fn sandboxed(
    run: &mut Run<'_>,
    index: u32,
    command: &str,
    variables: &BTreeMap<String, String>,
    timeout: Option<Timeout>,
) -> (Result<Option<TaskEnd>, CommandError>, bool) {
    let place = Place::Task(index);
    if let Some(refusal) = refusal(run.context) {
        return (cannot_start(run, place, refusal).await, true);
    }
    let Some(base) = run.context.job_folders.as_deref() else {
        let diagnostics = "this node has no folder for role jobs' work folders (see its log)";
        return (cannot_start(run, place, diagnostics.into()).await, false);
    };
    let folder = match WorkFolder::new(base.path(), &run.stream.job_id, index) {
        Ok(folder) => folder,
        Err(e) => {
            let diagnostics = format!("cannot make the instance's work folder: {e}");
            return (cannot_start(run, place, diagnostics).await, false);
        }
    };
    let sandbox = run.context.sandbox;
    let made = sandbox
        .give_tree(folder.path())
        .map_err(|e| e.to_string())
        .and_then(|()| {
            sandbox
                .command(folder.path(), command)
                .map_err(|e| e.to_string())
        });
    let mut sandboxed = match made {
        Ok(sandboxed) => sandboxed,
        Err(e) => {
            let diagnostics = format!("cannot run the command: {e}");
            return (cannot_start(run, place, diagnostics).await, false);
        }
    };
    sandboxed.envs(variables);
    let running = match process::spawn_command_from_spawner(sandboxed).await {
        Ok(running) => running,
        Err(e) => {
            let diagnostics = match e.kind() {
                std::io::ErrorKind::NotFound => program_missing(sandbox),
                _ => format!("cannot start the sandbox: {e}"),
            };
            return (cannot_start(run, place, diagnostics).await, false);
        }
    };
    let argv = ["sh", "-c", command].map(String::from);
    let end = watch(run, place, running, &argv, timeout).await;
    drop(folder);
    (end, false)
}

/// Why this runner refuses to run a role's command, if it does: commands are off
/// (`compat.openpai.commands`), or there is no sandbox to run them in (`runnables.sandbox:
/// none`, which the configuration refuses with commands on; checked here too).
fn refusal(context: &Context) -> Option<String> {
    if !context.settings.role_commands.allowed() {
        return Some("a role's command runs only where the server allows it (compat.openpai.commands: sandbox), and this one does not now".to_string());
    }
    if matches!(context.sandbox, crate::runnables::Sandbox::None) {
        return Some("a role's command runs only in the bubblewrap sandbox, and this server has none (runnables.sandbox: none)".to_string());
    }
    None
}

/// Makes (and locks) this node's folder of `<work_dir>/jobs`, where its role jobs' commands get
/// their work folders, and removes the folders that nodes of this host which are gone left there
/// (a crash's). `None`, logged, if it cannot be made: commands then cannot start, saying so.
pub(crate) async fn prepare_work_folders(work_dir: &Path, node: &str) -> Option<Arc<NodeFolder>> {
    let (work_dir, node) = (work_dir.to_path_buf(), node.to_string());
    let prepared = tokio::task::spawn_blocking(move || {
        let jobs = work_dir.join(JOBS_FOLDER);
        let folder = crate::runnables::tree::prepare_work_dir(&work_dir)
            .and_then(|()| crate::runnables::tree::lock_node_folder(&jobs, &node));
        let removed = crate::runnables::tree::clean_work_dir(&jobs, &node);
        (folder, removed)
    })
    .await;
    match prepared {
        Ok((folder, removed)) => {
            for folder in removed {
                tracing::info!(folder = %folder.display(), "removed a gone node's role job work folders");
            }
            match folder {
                Ok(folder) => Some(Arc::new(folder)),
                Err(e) => {
                    tracing::error!(error = %e, "making this node's folder for role jobs failed");
                    None
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "making this node's folder for role jobs failed");
            None
        }
    }
}

/// Why a sandbox's program was not found: bubblewrap missing (with how to install it), or the
/// shell itself without one.
fn program_missing(sandbox: crate::runnables::Sandbox) -> String {
    match sandbox {
        crate::runnables::Sandbox::Bwrap { .. } => {
            crate::runnables::SandboxError::NotInstalled.to_string()
        }
        crate::runnables::Sandbox::None => "sh was not found".to_string(),
    }
}

/// An instance's work folder in this node's folder of `<runnables.work_dir>/jobs`, owner-only,
/// removed with all it holds when dropped.
struct WorkFolder(PathBuf);

impl WorkFolder {
    fn new(base: &Path, job_id: &Uuid, index: u32) -> std::io::Result<WorkFolder> {
        use std::os::unix::fs::DirBuilderExt;
        let path = base.join(format!(
            "job-{}-{index}-{}",
            job_id.simple(),
            &Uuid::new_v4().simple().to_string()[..12]
        ));
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(WorkFolder(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for WorkFolder {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            tracing::warn!(folder = %self.0.display(), error = %e, "removing an instance's work folder failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bosun_domain::jobs::Variables;

    #[test]
    fn an_instance_gets_the_jobs_variables_under_its_own() {
        let plan = RoleRun {
            name: "train".into(),
            tasks: vec![],
            variables: Variables::parse(BTreeMap::from([
                ("A".to_string(), "1".to_string()),
                ("PAI_TASK_INDEX".to_string(), "mine".to_string()),
            ]))
            .unwrap(),
            timeout_seconds: None,
            retry_count: 0,
        };
        let task = RoleTask {
            index: 3,
            role: "worker".into(),
            role_index: 1,
            role_count: 2,
            target: RoleTarget::Command("true".into()),
            command: vec![],
        };
        let variables = variables(&plan, &task, "j1");
        let get = |name: &str| variables.get(name).map(String::as_str);
        assert_eq!(get("A"), Some("1"));
        assert_eq!(get("PAI_JOB_NAME"), Some("train"));
        assert_eq!(get("PAI_TASK_ROLE_NAME"), Some("worker"));
        assert_eq!(get("PAI_TASK_INDEX"), Some("1"), "its own over the job's");
        assert_eq!(get("PAI_TASK_ROLE_COUNT"), Some("2"));
        assert_eq!(get("BOSUN_JOB_ID"), Some("j1"));
    }

    #[test]
    fn a_work_folder_is_removed_with_what_it_holds() {
        let base = std::env::temp_dir();
        let folder = WorkFolder::new(&base, &Uuid::new_v4(), 0).unwrap();
        let path = folder.path().to_path_buf();
        std::fs::write(path.join("file"), "x").unwrap();
        drop(folder);
        assert!(!path.exists());
    }
}
