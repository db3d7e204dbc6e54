//! Workers: each claims a waiting job, runs it to its end, and claims the next. A reaper on every
//! node finishes the jobs of workers that stopped renewing their leases.

use crate::lease;
use crate::process::{self, signal_group};
use crate::settings::{NotificationSettings, RunnerSettings};
use bosun_commands::{Actor, CommandError, Commands, Held, Origin};
use bosun_domain::jobs::{Catalog, FinalStatus, Job, JobCommand, JobStatus, OutputStream};
use bosun_domain::{Aggregate, DomainError};
use deadpool_postgres::Pool;
use nix::sys::signal::Signal;
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Output is appended at least this often while a job runs…
const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// …or as soon as this much has gathered. Each append costs a commit, and a very large event
/// costs more per byte (`bosun bench output`, 30 MB: 2.6 s in 64 KiB events, 0.86 s in 256 KiB,
/// 1.4 s in 1 MiB); the live feed's buffer also holds each event.
const FLUSH_BYTES: usize = 256 * 1024;
/// How long an idle worker waits for the read models to move before looking again anyway.
const IDLE_POLL: Duration = Duration::from_millis(500);
const REAP_EVERY: Duration = Duration::from_secs(2);
/// After the process exits, how long its output pipes may stay open (held by something it left
/// behind) before the job is finished without the rest.
const DRAIN_WAIT: Duration = Duration::from_secs(2);

/// Running workers and the reaper; dropping it stops them (a job's process is killed with its
/// worker, and its lease runs out for the reaper).
pub struct Workers {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Workers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

pub(crate) struct Context {
    pub commands: Commands,
    pub pool: Pool,
    pub catalog: Arc<Catalog>,
    pub settings: RunnerSettings,
    /// Orchestration tokens are derived from it.
    pub data_key: Arc<[u8]>,
    /// For HTTP tasks.
    pub http: reqwest::Client,
    /// The state of each job this node is writing to, kept between its appends.
    pub held: std::sync::Mutex<std::collections::HashMap<Uuid, Held<Job>>>,
}

/// Why the runner could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Migration(#[from] bosun_eventstore::migrate::MigrationError),
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// What the runner runs with, from the configuration.
pub struct Setup {
    pub catalog: Arc<Catalog>,
    pub settings: RunnerSettings,
    pub notifications: NotificationSettings,
    /// The server's secret key: orchestration tokens are derived from it.
    pub data_key: Arc<[u8]>,
}

/// Prepares the runner's tables and starts `settings.workers` workers, one reaper, and the
/// scheduler and notifications reactor (each active on one node at a time).
pub async fn start(
    commands: Commands,
    setup: Setup,
    config: &tokio_postgres::Config,
) -> Result<Workers, StartError> {
    let Setup {
        catalog,
        settings,
        notifications,
        data_key,
    } = setup;
    let (mut client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(bosun_eventstore::migrate::MigrationError::from)?;
    let driver = tokio::spawn(connection);
    lease::prepare(&mut client).await?;
    crate::notify::prepare(&mut client).await?;
    drop(client);
    let _ = driver.await;
    let pool = commands.store.pool().clone();
    let node = format!(
        "{}:{}",
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "host".into()),
        std::process::id()
    );
    // No redirects: a redirect would carry the orchestration's token to another host, and
    // past the https rule.
    let http = reqwest::Client::builder()
        .user_agent(format!("bosun/{}", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| StartError::Http(e.to_string()))?;
    let context = Arc::new(Context {
        commands: commands.clone(),
        pool,
        catalog: catalog.clone(),
        settings: settings.clone(),
        data_key,
        http: http.clone(),
        held: Default::default(),
    });
    let notifier = Arc::new(crate::notify::Notifier {
        commands: commands.clone(),
        settings: notifications,
        http,
    });
    let mut tasks = vec![
        tokio::spawn(reap(context.clone())),
        tokio::spawn(crate::scheduler::run(commands, catalog, config.clone())),
        tokio::spawn(crate::notify::run(notifier, config.clone())),
    ];
    for slot in 0..settings.workers {
        let worker = format!("{node}/{slot}");
        tasks.push(tokio::spawn(work(context.clone(), worker)));
    }
    Ok(Workers { tasks })
}

fn lease_length(settings: &RunnerSettings) -> Duration {
    Duration::from_secs(settings.lease_seconds.max(1))
}

async fn work(context: Arc<Context>, worker: String) {
    let lease = lease_length(&context.settings);
    loop {
        let seen = context.commands.freshness.position();
        match lease::claim(&context.pool, &worker, lease).await {
            Ok(Some(job_id)) => {
                let ran = run(&context, &worker, job_id).await;
                forget(&context, job_id);
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

pub(crate) fn origin(worker: &str) -> Origin {
    Origin {
        request_id: Some(Uuid::new_v4().to_string()),
        user_agent: Some(format!("bosun worker {}", env!("CARGO_PKG_VERSION"))),
        source: Some(worker.to_string()),
        ..Origin::default()
    }
}

const ACTOR: Actor = Actor::System("worker");

/// Appends `command`'s events to the job's stream, retrying an outage of the log (with a
/// doubling pause, for up to a third of a lease, so the lease renewed before it cannot run out
/// meanwhile) so that a job's end keeps its true cause instead of being reaped as lost. Every try
/// is the same attempt (the same event ids): one that did commit unseen is not written twice.
pub(crate) async fn append(
    context: &Context,
    job_id: Uuid,
    origin: &Origin,
    command: JobCommand,
) -> Result<(), CommandError> {
    let attempt = Uuid::new_v4();
    let give_up = Instant::now() + lease_length(&context.settings) / 3;
    let mut pause = Duration::from_millis(50);
    loop {
        match append_once(context, job_id, origin, attempt, &command).await {
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
pub(crate) async fn append_once(
    context: &Context,
    job_id: Uuid,
    origin: &Origin,
    attempt: Uuid,
    command: &JobCommand,
) -> Result<(), CommandError> {
    let taken = context
        .held
        .lock()
        .ok()
        .and_then(|mut held| held.remove(&job_id));
    let mut held = match taken {
        Some(held) => held,
        None => context.commands.hold::<Job>(&job_id.to_string()).await?,
    };
    let written = context
        .commands
        .execute_held(&mut held, &ACTOR, origin, attempt, |state: &Job| {
            state.handle(command.clone())
        })
        .await;
    if let Ok(mut all) = context.held.lock() {
        all.insert(job_id, held);
    }
    written.map(|_| ())
}

/// Forgets the state held for a job this node no longer runs.
fn forget(context: &Context, job_id: Uuid) {
    if let Ok(mut held) = context.held.lock() {
        held.remove(&job_id);
    }
}

/// Runs the claimed job; `false` if there was nothing to run (the read model was behind).
async fn run(context: &Context, worker: &str, job_id: Uuid) -> Result<bool, CommandError> {
    let origin = origin(worker);
    let held = context.commands.hold::<Job>(&job_id.to_string()).await?;
    if held.state.status != Some(JobStatus::Waiting) {
        return Ok(false);
    }
    if let Ok(mut all) = context.held.lock() {
        all.insert(job_id, held);
    }
    let job = context.commands.job_view(job_id).await?;
    if job.orchestration_id.is_some() {
        return crate::orchestration_job::run(context, worker, &origin, job).await;
    }
    let variables: BTreeMap<String, String> =
        serde_json::from_value(job.variables.clone()).unwrap_or_default();
    let (app, env, task) = (
        job.app.as_deref().unwrap_or_default(),
        job.env.as_deref().unwrap_or_default(),
        job.task.as_deref().unwrap_or_default(),
    );
    let spec = match context.catalog.task(app, env, task) {
        Ok(spec) => spec.clone(),
        Err(e) => {
            return fail_to_start(
                context,
                job_id,
                worker,
                &origin,
                format!("{e} (the catalog changed since it was submitted)"),
            )
            .await
        }
    };
    let mut running = match process::spawn(&spec, &variables) {
        Ok(running) => running,
        Err(e) => {
            let message = format!(
                "cannot start {:?}: {e}",
                spec.command.first().map(String::as_str).unwrap_or("")
            );
            return fail_to_start(context, job_id, worker, &origin, message).await;
        }
    };
    let started = append(
        context,
        job_id,
        &origin,
        JobCommand::Start {
            worker: worker.to_string(),
            pid: Some(running.pid),
            command: spec.command.clone(),
        },
    )
    .await;
    if let Err(e) = started {
        // Cancelled (or taken) between the claim and now: it must not run.
        signal_group(running.pid, Signal::SIGKILL);
        let _ = running.child.wait().await;
        return match e {
            CommandError::Domain(DomainError::Conflict { .. }) => Ok(true),
            other => Err(other),
        };
    }
    tracing::info!(%job_id, worker, pid = running.pid, "job started");

    let timeout = job
        .timeout_seconds
        .map(|s| Duration::from_secs(s.max(1) as u64));
    let mut output = Output::new(context.settings.output_limit_bytes, None);
    let mut heartbeat = Heartbeat::new(context, job_id, worker);
    let Supervised::Ended { exit, stop } = supervise(
        context,
        &origin,
        &mut heartbeat,
        running,
        timeout,
        &mut output,
    )
    .await?
    else {
        return Ok(true);
    };
    let described = describe(&exit);
    let (status, diagnostics) = match stop {
        Some(Stop::Killed) => (
            FinalStatus::Killed,
            Some(format!("killed on request; {described}")),
        ),
        Some(Stop::TimedOut) => (
            FinalStatus::Error,
            Some(format!(
                "timed out after {} s and was killed; {described}",
                timeout.map_or(0, |t| t.as_secs())
            )),
        ),
        None if exit.success() => (FinalStatus::Success, None),
        None => (FinalStatus::Error, Some(described)),
    };
    append(
        context,
        job_id,
        &origin,
        JobCommand::Finish {
            status,
            exit_code: exit.code(),
            diagnostics,
        },
    )
    .await?;
    tracing::info!(%job_id, ?status, "job finished");
    Ok(true)
}

/// How a process's exit reads in diagnostics.
pub(crate) fn describe(exit: &std::process::ExitStatus) -> String {
    match (exit.code(), exit.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => "ended".to_string(),
    }
}

/// How supervising a process ended.
pub(crate) enum Supervised {
    /// It exited (on its own, or stopped on request or timeout); its output is appended.
    Ended {
        exit: std::process::ExitStatus,
        stop: Option<Stop>,
    },
    /// The job is no longer this worker's (the reaper finished it, or the lease was lost); the
    /// process is gone and nothing more may be appended.
    Abandoned,
}

/// Runs `running` to its end: appends its output as it comes, keeps the lease, and stops it on
/// a kill request or at `timeout` (SIGTERM to its group, SIGKILL after the grace period).
pub(crate) async fn supervise(
    context: &Context,
    origin: &Origin,
    heartbeat: &mut Heartbeat,
    mut running: process::Running,
    timeout: Option<Duration>,
    output: &mut Output,
) -> Result<Supervised, CommandError> {
    let job_id = heartbeat.job_id;
    let grace = Duration::from_secs(context.settings.kill_grace_seconds);
    let began = Instant::now();
    // The first tick a period from now: a process that ends at once costs no checks.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + FLUSH_EVERY, FLUSH_EVERY);
    let mut stopping: Option<(Stop, Instant)> = None;
    let mut output_open = true;
    let abandon = |running: &mut process::Running| {
        signal_group(running.pid, Signal::SIGKILL);
    };
    let exit = loop {
        tokio::select! {
            chunk = running.output.recv(), if output_open => match chunk {
                Some((stream, bytes)) => {
                    output.push(stream, &bytes);
                    if output.pending() >= FLUSH_BYTES {
                        if let Err(e) = output.flush(context, job_id, origin, false).await {
                            if taken_over(&e) {
                                abandon(&mut running);
                                let _ = running.child.wait().await;
                                return Ok(Supervised::Abandoned);
                            }
                            tracing::warn!(%job_id, error = %e, "appending output failed; retrying");
                        }
                    }
                }
                None => output_open = false,
            },
            status = running.child.wait() => break status,
            _ = tick.tick() => {
                if let Err(e) = output.flush(context, job_id, origin, false).await {
                    if taken_over(&e) {
                        abandon(&mut running);
                        let _ = running.child.wait().await;
                        return Ok(Supervised::Abandoned);
                    }
                    tracing::warn!(%job_id, error = %e, "appending output failed; retrying");
                }
                if heartbeat.beat(context).await.is_err() {
                    abandon(&mut running);
                    let _ = running.child.wait().await;
                    return Ok(Supervised::Abandoned);
                }
                match stopping {
                    None => {
                        if let Some(stop) = heartbeat.stop_wanted(context, began, timeout).await {
                            tracing::info!(%job_id, ?stop, "stopping: SIGTERM to its process group");
                            signal_group(running.pid, Signal::SIGTERM);
                            stopping = Some((stop, Instant::now()));
                        }
                    }
                    Some((_, since)) if since.elapsed() >= grace => {
                        signal_group(running.pid, Signal::SIGKILL);
                    }
                    Some(_) => {}
                }
            }
        }
    };
    // Whatever is still in the pipes, unless something the process left behind holds them open.
    let drain = tokio::time::sleep(DRAIN_WAIT);
    tokio::pin!(drain);
    while output_open {
        tokio::select! {
            chunk = running.output.recv() => match chunk {
                Some((stream, bytes)) => output.push(stream, &bytes),
                None => output_open = false,
            },
            _ = &mut drain => break,
        }
    }
    // Anything of its group still alive goes with it.
    signal_group(running.pid, Signal::SIGKILL);
    if let Err(e) = output.flush(context, job_id, origin, true).await {
        if taken_over(&e) {
            return Ok(Supervised::Abandoned);
        }
        tracing::warn!(%job_id, error = %e, "appending the last output failed");
    }
    let exit = exit.map_err(|e| CommandError::Internal(format!("waiting for the process: {e}")))?;
    Ok(Supervised::Ended {
        exit,
        stop: stopping.map(|(stop, _)| stop),
    })
}

/// A worker's hold on the job it runs: renews the lease every third of its length, and notices
/// when the job is no longer its own or should stop.
pub(crate) struct Heartbeat {
    pub job_id: Uuid,
    worker: String,
    lease: Duration,
    last_renewal: Instant,
}

/// The worker no longer holds the job.
pub(crate) struct Lost;

impl Heartbeat {
    pub fn new(context: &Context, job_id: Uuid, worker: &str) -> Self {
        Heartbeat {
            job_id,
            worker: worker.to_string(),
            lease: lease_length(&context.settings),
            last_renewal: Instant::now(),
        }
    }

    /// Renews the lease when it is due; `Lost` if the reaper took the job, or no renewal has
    /// succeeded for a whole lease (others now count the job lost: it must not go on unseen).
    pub async fn beat(&mut self, context: &Context) -> Result<(), Lost> {
        let job_id = self.job_id;
        if self.last_renewal.elapsed() < self.lease / 3 {
            return Ok(());
        }
        match lease::renew(&context.pool, job_id, &self.worker, self.lease).await {
            Ok(true) => self.last_renewal = Instant::now(),
            Ok(false) => {
                tracing::warn!(%job_id, "lost the job's lease; stopping it");
                return Err(Lost);
            }
            Err(e) => tracing::warn!(%job_id, error = %e, "renewing the lease failed; retrying"),
        }
        if self.last_renewal.elapsed() >= self.lease {
            tracing::error!(%job_id, "no lease renewed for a whole lease; stopping the job");
            return Err(Lost);
        }
        Ok(())
    }

    /// Whether the job should stop now: a kill was requested, or it ran past `timeout`.
    pub async fn stop_wanted(
        &self,
        context: &Context,
        began: Instant,
        timeout: Option<Duration>,
    ) -> Option<Stop> {
        if kill_requested(context, self.job_id).await {
            Some(Stop::Killed)
        } else if timeout.is_some_and(|t| began.elapsed() >= t) {
            Some(Stop::TimedOut)
        } else {
            None
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    Killed,
    TimedOut,
}

/// A job that cannot start still starts and ends, as an error saying why: the log shows it was
/// picked up and what went wrong.
async fn fail_to_start(
    context: &Context,
    job_id: Uuid,
    worker: &str,
    origin: &Origin,
    diagnostics: String,
) -> Result<bool, CommandError> {
    tracing::warn!(%job_id, diagnostics, "job cannot start");
    append(
        context,
        job_id,
        origin,
        JobCommand::Start {
            worker: worker.to_string(),
            pid: None,
            command: vec![],
        },
    )
    .await?;
    append(
        context,
        job_id,
        origin,
        JobCommand::Finish {
            status: FinalStatus::Error,
            exit_code: None,
            diagnostics: Some(diagnostics),
        },
    )
    .await
    .map(|()| true)
}

pub(crate) async fn kill_requested(context: &Context, job_id: Uuid) -> bool {
    let Ok(client) = context.pool.get().await else {
        return false;
    };
    client
        .query_opt(
            "SELECT kill_requested FROM jobs WHERE job_id = $1",
            &[&job_id],
        )
        .await
        .ok()
        .flatten()
        .is_some_and(|r| r.get::<_, bool>(0))
}

/// Output waiting to be appended, in the order it came (runs of one stream), and the cap on all
/// of it.
pub(crate) struct Output {
    pending: Vec<(OutputStream, Vec<u8>)>,
    kept: u64,
    limit: u64,
    cut: bool,
    /// The chunk whose append failed with an unknown outcome: its attempt and length, retried
    /// exactly so (more output may have come after it since).
    unsettled: Option<(Uuid, usize)>,
    /// The orchestration task whose output this is now.
    pub task: Option<u32>,
}

impl Output {
    pub fn new(limit: u64, task: Option<u32>) -> Self {
        Output {
            pending: Vec::new(),
            kept: 0,
            limit,
            cut: false,
            unsettled: None,
            task,
        }
    }

    pub fn pending(&self) -> usize {
        self.pending.iter().map(|(_, b)| b.len()).sum()
    }

    pub fn push(&mut self, stream: OutputStream, bytes: &[u8]) {
        if self.cut {
            return;
        }
        let room = self.limit.saturating_sub(self.kept + self.pending() as u64) as usize;
        let mut run = bytes[..bytes.len().min(room)].to_vec();
        if bytes.len() > room {
            run.extend_from_slice(
                format!(
                    "\n[bosun: output cut here: more than {} bytes]\n",
                    self.limit
                )
                .as_bytes(),
            );
            self.cut = true;
        }
        match self.pending.last_mut() {
            Some((last, buffer)) if *last == stream => buffer.extend_from_slice(&run),
            _ => self.pending.push((stream, run)),
        }
    }

    /// Appends what is pending, a run per event, in order. A character split across reads at
    /// the very end waits for its rest, unless this is the last flush. What fails to append stays
    /// pending for the next flush.
    pub async fn flush(
        &mut self,
        context: &Context,
        job_id: Uuid,
        origin: &Origin,
        last: bool,
    ) -> Result<(), CommandError> {
        while !self.pending.is_empty() {
            let only = self.pending.len() == 1;
            let (stream, bytes) = &self.pending[0];
            let (attempt, complete) = match self.unsettled {
                Some(unsettled) => unsettled,
                None => (Uuid::new_v4(), chunk_length(bytes, last || !only)),
            };
            if complete == 0 {
                return Ok(());
            }
            let text = String::from_utf8_lossy(&bytes[..complete]).into_owned();
            let stream = *stream;
            // Not retried here: what fails stays pending for the next flush, while supervision
            // goes on (renewing the lease, watching for a kill).
            let command = JobCommand::AppendOutput {
                stream,
                text,
                task: self.task,
            };
            self.unsettled = Some((attempt, complete));
            append_once(context, job_id, origin, attempt, &command).await?;
            self.unsettled = None;
            self.kept += complete as u64;
            let bytes = &mut self.pending[0].1;
            bytes.drain(..complete);
            if bytes.is_empty() {
                self.pending.remove(0);
            }
        }
        Ok(())
    }
}

/// How much of a run of output goes into one event: at most `FLUSH_BYTES` (after an outage a
/// run may have grown far beyond), never ending inside a character unless the run is `whole`
/// (nothing more will come for it).
fn chunk_length(bytes: &[u8], whole: bool) -> usize {
    if bytes.len() <= FLUSH_BYTES {
        return if whole {
            bytes.len()
        } else {
            bytes.len() - incomplete_tail(bytes)
        };
    }
    let cut = &bytes[..FLUSH_BYTES];
    cut.len() - incomplete_tail(cut)
}

/// How many bytes at the end of `bytes` begin a UTF-8 character whose rest has not come yet.
fn incomplete_tail(bytes: &[u8]) -> usize {
    for back in 1..=bytes.len().min(3) {
        let byte = bytes[bytes.len() - back];
        if byte & 0b1100_0000 == 0b1000_0000 {
            continue; // a continuation byte: its lead is further back
        }
        let needed = match byte {
            b if b & 0b1110_0000 == 0b1100_0000 => 2,
            b if b & 0b1111_0000 == 0b1110_0000 => 3,
            b if b & 0b1111_1000 == 0b1111_0000 => 4,
            _ => return 0,
        };
        return if back < needed { back } else { 0 };
    }
    0
}

/// Finishes the jobs of workers that stopped renewing their leases.
async fn reap(context: Arc<Context>) {
    let lease = lease_length(&context.settings);
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
            let finished = append(
                &context,
                job_id,
                &origin,
                JobCommand::Finish {
                    status: FinalStatus::Error,
                    exit_code: None,
                    diagnostics: Some(diagnostics.clone()),
                },
            )
            .await;
            forget(&context, job_id);
            match finished {
                Ok(()) => tracing::warn!(%job_id, diagnostics, "finished a lost job as an error"),
                // Still waiting (its worker died before starting it) or already finished.
                Err(CommandError::Domain(_)) => {}
                Err(e) => tracing::warn!(%job_id, error = %e, "finishing a lost job failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{chunk_length, incomplete_tail, FLUSH_BYTES};

    #[test]
    fn an_event_holds_at_most_flush_bytes_and_whole_characters() {
        let euro = "€".as_bytes();
        assert_eq!(chunk_length(b"abc", true), 3);
        assert_eq!(chunk_length(&[b'a', euro[0]], false), 1);
        assert_eq!(chunk_length(&[b'a', euro[0]], true), 2);
        let mut long = vec![b'x'; FLUSH_BYTES - 1];
        long.extend_from_slice(euro);
        assert_eq!(
            chunk_length(&long, true),
            FLUSH_BYTES - 1,
            "the euro sign waits"
        );
        assert_eq!(
            chunk_length(&vec![b'x'; 3 * FLUSH_BYTES], true),
            FLUSH_BYTES
        );
    }

    #[test]
    fn holds_back_only_a_character_cut_at_the_end() {
        let e_acute = "é".as_bytes(); // 2 bytes
        let euro = "€".as_bytes(); // 3 bytes
        assert_eq!(incomplete_tail(b"abc"), 0);
        assert_eq!(incomplete_tail(&[b'a', e_acute[0]]), 1);
        assert_eq!(incomplete_tail(&[b'a', e_acute[0], e_acute[1]]), 0);
        assert_eq!(incomplete_tail(&[b'a', euro[0], euro[1]]), 2);
        assert_eq!(
            incomplete_tail(&[0xff, b'a', euro[0]]),
            1,
            "an invalid byte earlier does not matter"
        );
        assert_eq!(incomplete_tail(euro), 0);
    }
}
