//! The runnables this node runs, each from its claim to its end, as a supervised unit beside
//! the apps' units (their lease table, renewals, capacity and process groups: `units`).
//!
//! **A run.** Claimed under the lease key `runnable:<uuid>`, its stream is read first: a run it
//! does not want (the read model lagged) is given up at once, and the supervisor does not claim
//! it again at that generation for a while. A run still live on record (on another node, lost:
//! its lease ran out; or on this one, by an earlier claim whose end went unrecorded) is recorded
//! stopped first (`RunLost`; not started until that is recorded, and the domain refuses a start
//! while another node's run is live). Then its files are written from their blobs into a fresh
//! folder under this node's folder of `runnables.work_dir`, given to the sandbox's user, and
//! `sh -c <start_command>` runs there in the configured sandbox, started from the units' spawner
//! thread (so it dies with the server), its group registered under the lease key (a lost lease
//! kills it at once). A start that cannot be made (no bwrap, a blob missing, a folder that
//! cannot be written) is `RunFailed` with why, in words for its owner (who may be anonymous:
//! never the server's paths nor its database's errors, which go to the node's log); one made is
//! `RunStarted`. Its stdout and stderr go to its log (`log`), batched as a job's output is.
//!
//! **While it runs**, its stream is looked at every [`LOOK_EVERY`]: a removal, a stop, a newer
//! generation (a restart) ends it — the stream's word, never the read model's — and a sync a
//! save asked for is answered (`SyncFiles` naming it) with what the process changed so far.
//!
//! **Its end.** On its own: its tree synced back, then `RunEnded` with its code or signal. Stopped
//! (a stop, a restart, a removal, the node stopping): SIGTERM (inside a bwrap sandbox, to its
//! session: bwrap itself would end at once; none found yet, SIGKILL at once), SIGKILL to what is
//! left after `kill_grace_seconds`, its tree synced back (not a removed one's), then `RunStopped`
//! with why; a restart then starts the new generation in a fresh folder with the files as
//! synced. Its lease lost (checked first, whatever else happened meanwhile): killed at once,
//! `RunStopped { lease_lost }` if it is still its, nothing synced (another node may run it
//! already). A refusal saying the run moved or is not wanted ends it with its output flushed and
//! no more records. An end that cannot be recorded is retried while the lease is good; if it
//! still cannot be, the lease is left to run out, neither renewed nor given up (so whoever takes
//! it records the run lost), and the run is not claimed here again for a while. Its folder is
//! removed once its processes are gone (waited for a little), however its task ends; its lease
//! is given up — but a run still live on record that this task does not run (its claim took a
//! lost node's lease over) is recorded lost first, and if that fails the lease is handed back,
//! run out, to that node, for whoever takes it to record it (never deleted unrecorded; a
//! renewal never gives a run's lease up either). What a sync back cannot keep (a link, a name that is not a path, a file over the
//! limit) is recorded in the sync's `skipped` (at most
//! [`MAX_SKIPPED`](bosun_domain::runnables::MAX_SKIPPED), then how many more), with
//! the writes the domain's limits refused, and said once in its log, as a `[bosun: not synced:
//! …]` line, within the log's cap.
//!
//! When the node stops, its runs are stopped as above (the supervisor's SIGTERM to the units'
//! groups passes them by: to bwrap itself it would end the sandbox at once, with no grace),
//! within [`stop_bound`]: what is not recorded by then is left to run out as above.
//!
//! **What remains.** A sync while it runs reads a tree its process may be changing (no
//! snapshot). Processes that leave the sandbox's session are not waited for before its tree is
//! removed (they die with its PID namespace, by the kernel's hand); with `sandbox: none`, those
//! that leave its process group outlive it. A run whose end could not be recorded runs again
//! once it is recorded lost, if still wanted. A dead node's folder with no lock file (made before
//! nodes locked theirs) whose pid was given to another process stays until that one ends. A
//! claimed run whose stream cannot be read is left to run out under this node's name: if nobody
//! wants it any more, its loss is recorded for this node, not for the node on record. Memory and CPU are not limited per run (see
//! `sandbox`).
//!
//! Does not own: the lease table and renewals (`units`), the walk of a tree (`tree`), the
//! sandbox (`sandbox`), the run's rules (`bosun_domain::runnables`).

use super::desired::{self, WantedRun};
use super::log::{self, Log};
use super::stream::{Recorded, RunnableStream};
use super::tree::{self, Manifest};
use super::{Sandbox, SandboxError};
use crate::lease::LeaseError;
use crate::output::FLUSH_EVERY;
use crate::process::signal_group;
use crate::units::process::{self, UnitProcess};
use crate::units::renewal::{call_limit, UnitLease};
use crate::units::{lease, Context};
use bosun_domain::jobs::OutputStream;
use bosun_domain::runnables::{
    Digest, FileEntry, RunStopReason, Runnable, RunnableCommand, RunnableId, SkippedFile,
};
use chrono::Utc;
use deadpool_postgres::Pool;
use futures::FutureExt;
use nix::sys::signal::Signal;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

/// How often a running runnable's stream is looked at (a stop, a restart, a sync asked for).
pub(crate) const LOOK_EVERY: Duration = Duration::from_millis(500);
/// Before trying again what could not be done now (the log unreachable, the lease short).
const RETRY: Duration = Duration::from_secs(1);
/// A run its stream did not want (or whose end went unrecorded) is not claimed again at that
/// generation for this long.
const DECLINED_FOR: Duration = Duration::from_secs(10);
/// How long the rest of a run's output is waited for once it ended.
const DRAIN: Duration = Duration::from_secs(2);
/// How long a run's processes are waited for, once it was killed, before its tree goes.
const GONE: Duration = Duration::from_secs(2);
/// How often `/proc` is looked at: for the sandbox's session after a start, for processes left.
const POLL: Duration = Duration::from_millis(50);
/// How long after its start the sandbox's session is looked for that often.
const FIND_SESSION_FOR: Duration = Duration::from_secs(2);
/// How many different things one run's log says were not synced, at most.
const MAX_NOTED: usize = 1000;
/// Bytes read from a pipe at once.
const READ: usize = 64 * 1024;

/// Whether lease key `key` is a runnable's run's (not a unit's).
pub(crate) fn is_runnable(key: &str) -> bool {
    key.starts_with(desired::PREFIX)
}

/// The longest a run's stop takes once the node stops: its grace period, the drain of its
/// output, then its sync and records (a third of a lease) and the node's last lease calls.
pub(crate) fn stop_bound(context: &Context) -> Duration {
    context.grace + DRAIN + context.lease
}

/// How a run's task ended, for the supervisor.
#[derive(Debug)]
pub(crate) enum Outcome {
    Done,
    /// Its stream did not want the run the read model showed, at this generation.
    NotWanted(u64),
    /// The end of its run of this generation could not be recorded: its lease is left to run
    /// out.
    Unrecorded(u64),
    /// Its stream could not be read: its lease is left to run out (the run on record, which its
    /// claim took the lease of, is not known here).
    Unread,
}

/// A run of this node: told to stop when the node stops.
struct HeldRun {
    stop: watch::Sender<bool>,
    task: JoinHandle<Outcome>,
}

/// The supervisor's runs, by lease key.
#[derive(Default)]
pub(crate) struct Runs {
    held: BTreeMap<String, HeldRun>,
    /// Runs not to claim again for a while: the generation then, and since when.
    declined: BTreeMap<String, (u64, Instant)>,
    /// Whether the read model of the runs wanted was found (see `desired::wanted`).
    known: bool,
}

impl Runs {
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// The runs wanted now, by lease key.
    pub async fn wanted(&mut self, pool: &Pool) -> Result<BTreeMap<String, WantedRun>, LeaseError> {
        desired::wanted(pool, &mut self.known).await
    }

    /// Forgets the runs that ended.
    pub fn reap(&mut self) {
        let ended: Vec<String> = self
            .held
            .iter()
            .filter(|(_, h)| h.task.is_finished())
            .map(|(key, _)| key.clone())
            .collect();
        for key in ended {
            if let Some(mut h) = self.held.remove(&key) {
                match (&mut h.task).now_or_never() {
                    Some(Ok(Outcome::NotWanted(generation) | Outcome::Unrecorded(generation))) => {
                        self.declined.insert(key, (generation, Instant::now()));
                    }
                    // Whatever its generation: held off for a while.
                    Some(Ok(Outcome::Unread)) => {
                        self.declined.insert(key, (u64::MAX, Instant::now()));
                    }
                    _ => {}
                }
            }
        }
        self.declined
            .retain(|_, (_, since)| since.elapsed() < DECLINED_FOR);
    }

    /// The runs wanted that nobody here runs (nor declined lately at that generation), but
    /// those whose lease this node left to run out lately (`left`: until it ran out, so that
    /// whoever takes it records its run lost).
    pub fn free(
        &self,
        wanted: &BTreeMap<String, WantedRun>,
        left: &BTreeSet<String>,
    ) -> Vec<String> {
        wanted
            .iter()
            .filter(|(key, _)| !self.held.contains_key(*key) && !left.contains(*key))
            .filter(|(key, w)| {
                self.declined
                    .get(*key)
                    .is_none_or(|(generation, _)| w.generation > *generation)
            })
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Runs the runnable whose lease was just claimed.
    pub fn start(&mut self, context: &Arc<Context>, lease: Arc<UnitLease>) {
        let Some(id) = desired::runnable_of(&lease.key) else {
            context.leases.forget(&lease);
            return;
        };
        tracing::info!(runnable = %id, node = context.node, "claimed a runnable's run");
        let (stop, told) = watch::channel(false);
        let key = lease.key.clone();
        let task = tokio::spawn(run(context.clone(), id, lease, told));
        self.held.insert(key, HeldRun { stop, task });
    }

    /// Tells every run to stop (the node is stopping).
    pub fn stop_all(&self) {
        for h in self.held.values() {
            h.stop.send_replace(true);
        }
    }

    /// Waits for every run to end.
    pub async fn join_all(&mut self) {
        for h in self.held.values_mut() {
            let _ = (&mut h.task).await;
        }
    }
}

/// This node's own folder of the work dir, made fresh and locked at its start (or its first
/// run, if that failed), held for its lifetime (see `tree::lock_node_folder`).
#[derive(Default)]
pub(crate) struct WorkFolder(std::sync::Mutex<Option<tree::NodeFolder>>);

impl WorkFolder {
    fn path(&self, work_dir: &Path, node: &str) -> std::io::Result<PathBuf> {
        let mut held = self
            .0
            .lock()
            .map_err(|_| std::io::Error::other("the node's folder is poisoned"))?;
        if let Some(folder) = held.as_ref() {
            return Ok(folder.path().to_path_buf());
        }
        let folder = tree::lock_node_folder(work_dir, node)?;
        let path = folder.path().to_path_buf();
        *held = Some(folder);
        Ok(path)
    }
}

/// Makes and locks this node's folder, then removes the trees a crash left in the work dir
/// (the folders of the dead nodes of its host: their locks free). Spawned apart: a large tree
/// to remove does not hold the supervisor up, and a run's tree is in this node's folder, which
/// it never touches.
pub(crate) async fn clean_work_dir(context: Arc<Context>) {
    let work_dir = context.runnables.work_dir.clone();
    let node = context.node.clone();
    let cleaned = tokio::task::spawn_blocking(move || {
        if let Err(e) = context.work_folder.path(&work_dir, &node) {
            tracing::warn!(error = %e, "making this node's folder of the runnables' work dir failed");
        }
        tree::clean_work_dir(&work_dir, &node)
    });
    match cleaned.await {
        Ok(removed) => {
            for folder in removed {
                tracing::info!(folder = %folder.display(), "removed a node's runnable trees");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cleaning the runnables' work dir failed"),
    }
}

/// Leaves to run out the runs' leases this node's name holds as it starts: an earlier node of
/// the same name (restarted with the same pid) held them, and nothing here runs them. Whoever
/// takes them then records those runs lost (this node too: a claim here takes over a run on
/// record). If they cannot be read, nothing here runs them either: they run out all the same
/// (renewals never give a run's lease up), and a claim here takes them over.
pub(crate) async fn leave_earlier(context: &Context) {
    let held = lease::bounded(
        call_limit(context.lease),
        lease::held_by(&context.pool, &context.node, desired::PREFIX),
    )
    .await;
    match held {
        Ok(keys) => {
            if !keys.is_empty() {
                tracing::warn!(
                    ?keys,
                    node = context.node,
                    "runs an earlier node of this name left: their leases run out"
                );
            }
            context.leases.leave_keys(keys);
        }
        Err(e) => {
            tracing::warn!(error = %e, "reading the runs' leases an earlier node of this name left failed")
        }
    }
}

/// Records the run of runnable `key` stopped on `node` (lost: its lease ran out, and nobody
/// wants it running any more), unless it moved on already.
pub(crate) async fn record_lost(context: Arc<Context>, key: String, node: String) {
    let Some(id) = desired::runnable_of(&key) else {
        return;
    };
    let mut stream = RunnableStream::new(id);
    let command = RunnableCommand::RunLost {
        node: node.clone(),
        at: Utc::now(),
    };
    match stream.append(&context, command).await {
        Ok(_) => {
            tracing::warn!(runnable = %id, lost = node, "a lost node's run is recorded stopped")
        }
        // Refused (the runnable is gone): nothing to record.
        Err(e @ bosun_commands::CommandError::Domain(_)) => {
            tracing::warn!(runnable = %id, error = %e, "a lost node's run is not recorded stopped")
        }
        Err(e) => {
            // Its lease was taken already: put back, run out, for whoever takes it next.
            tracing::warn!(runnable = %id, error = %e, "recording a lost node's run failed; its lease is put back");
            let put = lease::put_back(&context.pool, &key, &node);
            if let Err(e) = lease::bounded(call_limit(context.lease), put).await {
                tracing::warn!(runnable = %id, error = %e, "putting a lost node's run's lease back failed");
            }
        }
    }
}

/// The run's lease, no longer renewed once its task ends.
struct Forget {
    context: Arc<Context>,
    lease: Arc<UnitLease>,
}

impl Drop for Forget {
    fn drop(&mut self) {
        self.context.leases.forget(&self.lease);
    }
}

/// What of a run's processes is looked for once it was killed: its group, and the sandbox's
/// sessions (each led by a child of bwrap).
#[derive(Clone, Debug, Default)]
struct Traces {
    /// 0 until its process started.
    pgid: u32,
    sessions: Vec<u32>,
}

impl Traces {
    /// Its processes still running (not zombies).
    fn living(&self) -> Vec<u32> {
        if self.pgid == 0 && self.sessions.is_empty() {
            return Vec::new();
        }
        processes()
            .into_iter()
            .filter(|p| !p.ended)
            .filter(|p| {
                (self.pgid != 0 && p.pgrp == self.pgid) || self.sessions.contains(&p.session)
            })
            .map(|p| p.pid)
            .collect()
    }

    fn add_sessions(&mut self, sessions: Vec<u32>) {
        for session in sessions {
            if !self.sessions.contains(&session) {
                self.sessions.push(session);
            }
        }
    }

    /// Waits (at most `bound`) until none of its processes is left.
    fn wait_gone(&self, bound: Duration) {
        let give_up = std::time::Instant::now() + bound;
        loop {
            let living = self.living();
            if living.is_empty() {
                return;
            }
            if std::time::Instant::now() >= give_up {
                tracing::warn!(
                    ?living,
                    "a runnable's processes outlived it; removing its tree anyway"
                );
                return;
            }
            std::thread::sleep(POLL);
        }
    }
}

/// A run's tree: removed once its processes are gone, however its task ends (dropped, from a
/// thread of its own).
struct Tree {
    path: PathBuf,
    traces: Traces,
    removed: bool,
}

impl Tree {
    fn new(path: PathBuf) -> Tree {
        Tree {
            path,
            traces: Traces::default(),
            removed: false,
        }
    }

    /// Removes it once its processes are gone (waited for at most [`GONE`]), off the runtime's
    /// threads.
    async fn remove(mut self) {
        self.removed = true;
        let (path, traces) = (self.path.clone(), self.traces.clone());
        let _ = tokio::task::spawn_blocking(move || {
            traces.wait_gone(GONE);
            tree::remove_tree(&path);
        })
        .await;
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        let (path, traces) = (self.path.clone(), self.traces.clone());
        let spawned = std::thread::Builder::new()
            .name("bosun-tree-removal".into())
            .spawn(move || {
                traces.wait_gone(GONE);
                tree::remove_tree(&path);
            });
        if let Err(e) = spawned {
            tracing::warn!(tree = %self.path.display(), error = %e, "a runnable's tree is left: no thread to remove it");
        }
    }
}

/// A run's process, its tree and what was written there. Dropped, its process is killed first,
/// then its tree removed.
struct Running {
    process: UnitProcess,
    generation: u64,
    tree: Tree,
    manifest: Manifest,
    output: mpsc::Receiver<(OutputStream, Vec<u8>)>,
    /// Whether a pipe is still open.
    open: bool,
    /// What the syncs could not keep, said once each in its log (at most [`MAX_NOTED`]).
    noted: BTreeSet<(String, String)>,
}

/// Why a run ends.
enum End {
    /// Its process ended on its own.
    Ended,
    Stop(RunStopReason),
    LeaseLost,
    /// Its stream says it is not this node's run any more: nothing more is recorded.
    Refused,
}

/// What came of trying to start it.
enum Start {
    Running(Box<Running>),
    /// Not started; try again after a while.
    Later,
    /// Not to be started (it failed, or is not wanted): the task ends.
    Over,
}

/// What came of a run's end.
enum Finished {
    /// Recorded; the next generation is to run (a restart).
    Again,
    /// Recorded (or not this node's to record): the task ends.
    Over,
    /// Not recorded: its lease is left to run out.
    Unrecorded,
}

async fn run(
    context: Arc<Context>,
    id: RunnableId,
    lease: Arc<UnitLease>,
    mut stop: watch::Receiver<bool>,
) -> Outcome {
    // Declared first, so dropped last: however the run ends, its group is killed first.
    let _forget = Forget {
        context: context.clone(),
        lease: lease.clone(),
    };
    let mut stream = RunnableStream::new(id);
    if let Err(e) = stream.load(&context).await {
        // Its claim may have taken over a lost node's lease, whose run only its stream names:
        // not given up but left to run out, so whoever takes it next records that run lost.
        tracing::warn!(runnable = %id, error = %e, "loading the runnable failed; its lease is left to run out");
        context.leases.leave(&lease);
        return Outcome::Unread;
    }
    let mut log = Log::new(id, context.runnables.max_log_bytes);
    loop {
        if lease.is_lost() || context.stopping.load(Ordering::SeqCst) || *stop.borrow() {
            let_go(&context, &lease, &mut stream).await;
            return Outcome::Done;
        }
        let Some(state) = stream.state() else {
            let_go(&context, &lease, &mut stream).await;
            return Outcome::Done;
        };
        let (wanted, generation) = (
            state.is_active() && state.run().wanted,
            state.run().generation,
        );
        if !wanted {
            let_go(&context, &lease, &mut stream).await;
            return Outcome::NotWanted(generation);
        }
        let mut running = match start(&context, &lease, &mut stream, generation).await {
            Start::Running(running) => running,
            Start::Over => {
                give_up(&context, &lease).await;
                return Outcome::Done;
            }
            Start::Later => {
                let gone = tokio::select! {
                    _ = tokio::time::sleep(RETRY) => false,
                    _ = lease.lost() => false,
                    changed = stop.changed() => changed.is_err(),
                };
                if gone {
                    // The supervisor is gone (the runner stopped without saying so).
                    let_go(&context, &lease, &mut stream).await;
                    return Outcome::Done;
                }
                if let Err(e) = stream.look(&context).await {
                    tracing::warn!(runnable = %id, error = %e, "reading the runnable failed");
                }
                continue;
            }
        };
        log.begin(generation);
        let end = supervise(
            &context,
            &lease,
            &mut stream,
            &mut log,
            &mut running,
            &mut stop,
        )
        .await;
        match finish(&context, &lease, &mut stream, &mut log, *running, end).await {
            Finished::Again => {}
            Finished::Over => {
                give_up(&context, &lease).await;
                return Outcome::Done;
            }
            Finished::Unrecorded => {
                tracing::warn!(runnable = %id, generation, "the run's end is not recorded: its lease is left to run out, for the run to be recorded lost");
                context.leases.leave(&lease);
                return Outcome::Unrecorded(generation);
            }
        }
    }
}

/// A run still live on record before this task starts one: on another node (lost: its lease
/// ran out), or on this one (an earlier claim whose end went unrecorded: what this task has
/// not started does not run). Recorded stopped first; whether that is done (else nothing may
/// start now).
async fn take_over(context: &Context, stream: &mut RunnableStream) -> bool {
    let Some(node) = live_node(stream) else {
        return true;
    };
    tracing::warn!(runnable = %stream.id, lost = node, "taking over a lost run");
    let command = RunnableCommand::RunLost {
        node,
        at: Utc::now(),
    };
    match stream.append(context, command).await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(runnable = %stream.id, error = %e, "recording the lost run stopped failed; not starting it yet");
            false
        }
    }
}

/// The node of the run live on record, if any.
fn live_node(stream: &RunnableStream) -> Option<String> {
    stream.state().and_then(|state| {
        let run = state.run();
        run.node.clone().filter(|_| run.is_live())
    })
}

/// Gives its lease up when nothing runs here (before a start, or after a run's end was
/// recorded): a run live on record then is not this task's, and its claim took that run's
/// node's lease over, so it is recorded lost first (nobody else would). If that cannot be
/// recorded, the lease is handed back to that node, run out, for whoever takes it next to
/// record it; if even that fails, it is left to run out under this node's name.
async fn let_go(context: &Context, lease: &Arc<UnitLease>, stream: &mut RunnableStream) {
    let Some(node) = live_node(stream) else {
        give_up(context, lease).await;
        return;
    };
    if within(
        Some(Instant::now() + call_limit(context.lease)),
        take_over(context, stream),
    )
    .await
    .unwrap_or(false)
    {
        give_up(context, lease).await;
        return;
    }
    context.leases.leave(lease);
    let handed = lease::hand_back(&context.pool, &context.node, &lease.key, &node);
    match lease::bounded(call_limit(context.lease), handed).await {
        Ok(_) => {
            tracing::warn!(runnable = %stream.id, lost = node, "the lost run's lease is handed back to its node, run out")
        }
        Err(e) => {
            tracing::warn!(runnable = %stream.id, error = %e, "handing the lost run's lease back failed; it runs out")
        }
    }
}

/// What the owner is told of `what` failing; `detail` (which may name the server's folders, or
/// hold its database's errors) goes to the node's log only.
fn told(id: RunnableId, what: &str, detail: &dyn std::fmt::Display) -> String {
    tracing::warn!(runnable = %id, error = %detail, "{what}");
    what.to_string()
}

/// Writes its files into a fresh tree and starts its command there in the sandbox; records it
/// started (or why it cannot start).
async fn start(
    context: &Context,
    lease: &UnitLease,
    stream: &mut RunnableStream,
    generation: u64,
) -> Start {
    let id = stream.id;
    if !take_over(context, stream).await {
        return Start::Later;
    }
    let Some(state) = stream.state() else {
        return Start::Later;
    };
    let files: Vec<FileEntry> = state.files().values().cloned().collect();
    let Some(start_command) = state.start_command().map(|c| c.as_str().to_string()) else {
        return failed(
            context,
            stream,
            generation,
            "it has no start command".into(),
        )
        .await;
    };
    let made = match context
        .work_folder
        .path(&context.runnables.work_dir, &context.node)
    {
        Ok(folder) => {
            tokio::task::spawn_blocking(move || {
                tree::fresh_tree(&folder, &id.to_string(), generation)
            })
            .await
        }
        Err(e) => Ok(Err(e)),
    };
    let mut tree = match made {
        Ok(Ok(path)) => Tree::new(path),
        Ok(Err(e)) => {
            let detail = format!("under {}: {e}", context.runnables.work_dir.display());
            let diagnostics = told(id, "cannot make its working folder", &detail);
            return failed(context, stream, generation, diagnostics).await;
        }
        Err(e) => {
            let diagnostics = told(id, "cannot make its working folder", &e);
            return failed(context, stream, generation, diagnostics).await;
        }
    };
    let manifest: Manifest = files
        .iter()
        .map(|f| (f.path.clone(), f.digest.clone()))
        .collect();
    let sandbox = context.runnables.sandbox;
    let prepared = prepare(context, id, &tree.path, files, sandbox).await;
    let command = match prepared {
        Prepared::Ready => sandbox.command(&tree.path, &start_command),
        Prepared::Later => {
            tree.remove().await;
            return Start::Later;
        }
        Prepared::Failed(diagnostics) => {
            tree.remove().await;
            return failed(context, stream, generation, diagnostics).await;
        }
    };
    let mut command = match command {
        Ok(command) => command,
        Err(e) => {
            tree.remove().await;
            let diagnostics = match e {
                // Of its own start command: its owner's to mend.
                SandboxError::Command => e.to_string(),
                e => told(id, "cannot start the sandbox", &e),
            };
            return failed(context, stream, generation, diagnostics).await;
        }
    };
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    if !lease.good_for(call_limit(context.lease)) {
        tree.remove().await;
        return Start::Later;
    }
    let key = desired::key(id);
    let mut process = match process::spawn_command(command, &context.groups, &key).await {
        Ok(process) => process,
        Err(e) => {
            tree.remove().await;
            tracing::warn!(runnable = %id, error = %e, "starting the sandbox failed");
            let diagnostics = spawn_failure(sandbox, e);
            return failed(context, stream, generation, diagnostics).await;
        }
    };
    tree.traces.pgid = process.pid;
    if lease.is_lost() {
        // Lost while it started (the kill may have missed its group): it must not run.
        let _ = process.kill().await;
        tree.remove().await;
        return Start::Later;
    }
    let (stdout, stderr) = process.take_output();
    let (sender, output) = mpsc::channel(16);
    if let Some(stdout) = stdout {
        read_into(stdout, OutputStream::Stdout, sender.clone());
    }
    if let Some(stderr) = stderr {
        read_into(stderr, OutputStream::Stderr, sender);
    }
    let command = RunnableCommand::RunStarted {
        generation,
        node: context.node.clone(),
        pid: process.pid,
        at: Utc::now(),
    };
    match stream.append(context, command).await {
        Ok(Recorded::Done) => {
            tracing::info!(runnable = %id, pid = process.pid, generation, "runnable started");
            Start::Running(Box::new(Running {
                process,
                generation,
                tree,
                manifest,
                output,
                open: true,
                noted: BTreeSet::new(),
            }))
        }
        recorded => {
            // Not recorded: it must not run unseen.
            let _ = process.kill().await;
            tree.remove().await;
            match recorded {
                Ok(_) => Start::Over,
                Err(e) => {
                    tracing::warn!(runnable = %id, error = %e, "recording the run started failed; it was killed");
                    Start::Later
                }
            }
        }
    }
}

/// What came of writing a tree's files.
enum Prepared {
    Ready,
    Later,
    Failed(String),
}

/// Writes `files` into `tree` from their blobs and gives it to the sandbox's user.
async fn prepare(
    context: &Context,
    id: RunnableId,
    tree: &Path,
    files: Vec<FileEntry>,
    sandbox: Sandbox,
) -> Prepared {
    for file in files {
        let content = match context.commands.store.blob(file.digest.as_str()).await {
            Ok(Some(content)) => content,
            Ok(None) => {
                return Prepared::Failed(format!(
                    "the blob {} of {} is missing",
                    file.digest, file.path
                ))
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading a runnable's blob failed; retrying");
                return Prepared::Later;
            }
        };
        let tree = tree.to_path_buf();
        let path = file.path.clone();
        let written =
            tokio::task::spawn_blocking(move || tree::write_file(&tree, &path, &content)).await;
        let what = || format!("cannot write {} into its working folder", file.path);
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Prepared::Failed(told(id, &what(), &e)),
            Err(e) => return Prepared::Failed(told(id, &what(), &e)),
        }
    }
    let owned = tree.to_path_buf();
    let what = "cannot give its working folder to the sandbox's user";
    match tokio::task::spawn_blocking(move || sandbox.give_tree(&owned)).await {
        Ok(Ok(())) => Prepared::Ready,
        Ok(Err(e)) => Prepared::Failed(told(id, what, &e)),
        Err(e) => Prepared::Failed(told(id, what, &e)),
    }
}

/// Why the sandbox did not start, as its `RunFailed` says (what to install, or no more).
fn spawn_failure(sandbox: Sandbox, e: std::io::Error) -> String {
    match (sandbox, e.kind()) {
        (Sandbox::Bwrap { .. }, std::io::ErrorKind::NotFound) => {
            SandboxError::NotInstalled.to_string()
        }
        _ => "cannot start the sandbox".to_string(),
    }
}

/// Records that the run of `generation` cannot start: it is not tried again.
async fn failed(
    context: &Context,
    stream: &mut RunnableStream,
    generation: u64,
    diagnostics: String,
) -> Start {
    tracing::warn!(runnable = %stream.id, diagnostics, "the runnable cannot start");
    let command = RunnableCommand::RunFailed {
        generation,
        node: context.node.clone(),
        diagnostics,
        at: Utc::now(),
    };
    match stream.append(context, command).await {
        Ok(_) => Start::Over,
        Err(e) => {
            tracing::warn!(runnable = %stream.id, error = %e, "recording the failed start failed");
            Start::Later
        }
    }
}

/// Sends what `pipe` gives to `sender`, until it closes (or nobody listens).
fn read_into(
    mut pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    stream: OutputStream,
    sender: mpsc::Sender<(OutputStream, Vec<u8>)>,
) {
    tokio::spawn(async move {
        let mut buffer = vec![0u8; READ];
        loop {
            match pipe.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sender.send((stream, buffer[..n].to_vec())).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
}

/// Runs it until something ends it: its lease (first, whatever else happened meanwhile), the
/// node, its process, its stream's word.
async fn supervise(
    context: &Context,
    lease: &UnitLease,
    stream: &mut RunnableStream,
    log: &mut Log,
    running: &mut Running,
    stop: &mut watch::Receiver<bool>,
) -> End {
    let began = Instant::now();
    let mut next_flush = began + FLUSH_EVERY;
    let mut next_look = began + LOOK_EVERY;
    let mut next_find = began + POLL;
    let bwrap = matches!(context.runnables.sandbox, Sandbox::Bwrap { .. });
    loop {
        if lease.is_lost() {
            return End::LeaseLost;
        }
        if *stop.borrow() {
            return End::Stop(RunStopReason::NodeStopped);
        }
        // Its session, to know its processes once it is killed.
        let finding =
            bwrap && running.tree.traces.sessions.is_empty() && began.elapsed() < FIND_SESSION_FOR;
        tokio::select! {
            // In this order: a kill for a lost lease also ends its process (that is the lease's
            // end); the timers before the output, which a chatty process never stops giving.
            biased;
            _ = lease.lost() => return End::LeaseLost,
            changed = stop.changed() => {
                if changed.is_err() {
                    // The supervisor is gone (the runner stopped without saying so): stop.
                    return End::Stop(RunStopReason::NodeStopped);
                }
            }
            _ = running.process.ended() => {
                return if lease.is_lost() {
                    End::LeaseLost
                } else if context.stopping.load(Ordering::SeqCst) {
                    End::Stop(RunStopReason::NodeStopped)
                } else {
                    End::Ended
                };
            }
            _ = tokio::time::sleep_until(next_flush) => {
                flush(context, stream, log).await;
                next_flush = Instant::now() + FLUSH_EVERY;
            }
            _ = tokio::time::sleep_until(next_find), if finding => {
                next_find = Instant::now() + POLL;
                running.tree.traces.add_sessions(sessions_under(running.process.pid));
            }
            _ = tokio::time::sleep_until(next_look) => {
                next_look = Instant::now() + LOOK_EVERY;
                if bwrap {
                    running.tree.traces.add_sessions(sessions_under(running.process.pid));
                }
                let syncs = match stream.look(context).await {
                    Ok(syncs) => syncs,
                    Err(e) => {
                        tracing::warn!(runnable = %stream.id, error = %e, "reading the runnable failed");
                        continue;
                    }
                };
                if let Some(end) = stream.state().and_then(|s| ending(context, s, running.generation)) {
                    return end;
                }
                for sync in syncs {
                    if lease.is_lost() {
                        // Another node may run it already: nothing of this tree is kept.
                        return End::LeaseLost;
                    }
                    // Bounded once the node stops: its stop syncs it all again.
                    let synced = within_stop(context, sync_back(context, stream, log, running, Some(sync)));
                    match synced.await {
                        None => return End::Stop(RunStopReason::NodeStopped),
                        Some(Ok(Recorded::Refused)) => return End::Refused,
                        Some(Ok(Recorded::Done)) => {}
                        Some(Err(e)) => {
                            tracing::warn!(runnable = %stream.id, %sync, error = %e, "a sync asked for failed");
                        }
                    }
                }
            }
            chunk = running.output.recv(), if running.open => match chunk {
                Some((from, bytes)) => {
                    log.push(from, &bytes);
                    if log::full(log) {
                        flush(context, stream, log).await;
                        next_flush = Instant::now() + FLUSH_EVERY;
                    }
                }
                None => running.open = false,
            },
        }
    }
}

/// Flushes its output; what fails stays pending for the next flush.
async fn flush(context: &Context, stream: &RunnableStream, log: &mut Log) {
    if let Err(e) = log.flush(context, false).await {
        tracing::warn!(runnable = %stream.id, error = %e, "appending the runnable's output failed; retrying");
    }
}

/// Whether the runnable's stream (`state`) ends the run of `generation` here, and how.
fn ending(context: &Context, state: &Runnable, generation: u64) -> Option<End> {
    let run = state.run();
    if !state.is_active() {
        return Some(End::Stop(RunStopReason::Removed));
    }
    let ours = run.is_live() && run.is_on(&context.node) && run.run_generation == Some(generation);
    if !ours {
        return Some(End::Refused);
    }
    if !run.wanted {
        return Some(End::Stop(RunStopReason::Stop));
    }
    if run.generation != generation {
        return Some(End::Stop(RunStopReason::Restart));
    }
    None
}

/// When the node stops, by when what follows a run's stop (its sync, its last output, its
/// record) must be done: a third of a lease from now (see [`stop_bound`]). None otherwise.
fn deadline(context: &Context) -> Option<Instant> {
    context
        .stopping
        .load(Ordering::SeqCst)
        .then(|| Instant::now() + call_limit(context.lease))
}

/// `work`, given up a third of a lease after the node began to stop (see [`stop_bound`]),
/// whether that was before it began or while it ran: `None` then.
async fn within_stop<T>(context: &Context, work: impl Future<Output = T>) -> Option<T> {
    tokio::pin!(work);
    loop {
        if let Some(deadline) = deadline(context) {
            return tokio::time::timeout_at(deadline, work).await.ok();
        }
        tokio::select! {
            done = &mut work => return Some(done),
            // The node's stopping is a flag: looked at often enough for its bound.
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// `work`, given up at `deadline` (if any): `None` then.
async fn within<T>(deadline: Option<Instant>, work: impl Future<Output = T>) -> Option<T> {
    match deadline {
        None => Some(work.await),
        Some(deadline) => tokio::time::timeout_at(deadline, work).await.ok(),
    }
}

/// Ends the run as `end` says and records it, then removes its tree.
async fn finish(
    context: &Context,
    lease: &UnitLease,
    stream: &mut RunnableStream,
    log: &mut Log,
    mut running: Running,
    end: End,
) -> Finished {
    let id = stream.id;
    let generation = running.generation;
    let node = context.node.clone();
    let finished = match end {
        End::Ended => {
            // Whatever of its group is left is killed before it is reaped.
            let status = running.process.finish().await;
            let (code, signal) = match &status {
                Ok(exit) => (exit.code(), exit.signal()),
                Err(_) => (None, None),
            };
            tracing::info!(runnable = %id, ?code, ?signal, "the runnable's process ended");
            drain(log, &mut running).await;
            if lease.is_lost() {
                // Killed for it, or lost meanwhile: not this node's to sync.
                lease_lost(context, lease, stream, log, generation).await
            } else {
                let work = async {
                    let synced = synced(context, stream, log, &mut running).await;
                    // Its output before its end, so a reader who sees it ended sees all of it.
                    log.flush_last(context).await;
                    let Some(synced) = synced else {
                        return Finished::Over;
                    };
                    let command = RunnableCommand::RunEnded {
                        generation,
                        node,
                        code,
                        signal,
                        synced,
                        at: Utc::now(),
                    };
                    match record(context, lease, stream, command).await {
                        Some(_) => Finished::Over,
                        None => Finished::Unrecorded,
                    }
                };
                within_stop(context, work)
                    .await
                    .unwrap_or(Finished::Unrecorded)
            }
        }
        End::Stop(reason) => {
            tracing::info!(runnable = %id, reason = reason.as_str(), "stopping the runnable");
            terminate(context, &mut running).await;
            drain(log, &mut running).await;
            if lease.is_lost() {
                lease_lost(context, lease, stream, log, generation).await
            } else {
                let work = async {
                    // A removed one's files are not kept.
                    let synced = if reason == RunStopReason::Removed {
                        Some(false)
                    } else {
                        synced(context, stream, log, &mut running).await
                    };
                    log.flush_last(context).await;
                    let Some(synced) = synced else {
                        return Finished::Over;
                    };
                    let command = RunnableCommand::RunStopped {
                        generation,
                        node,
                        reason,
                        synced,
                        at: Utc::now(),
                    };
                    match record(context, lease, stream, command).await {
                        Some(Recorded::Done) if reason == RunStopReason::Restart => Finished::Again,
                        Some(_) => Finished::Over,
                        None => Finished::Unrecorded,
                    }
                };
                within_stop(context, work)
                    .await
                    .unwrap_or(Finished::Unrecorded)
            }
        }
        End::LeaseLost => {
            tracing::warn!(runnable = %id, "the run's lease is lost: killing it");
            let _ = running.process.kill().await;
            drain(log, &mut running).await;
            lease_lost(context, lease, stream, log, generation).await
        }
        End::Refused => {
            tracing::warn!(runnable = %id, "the run is not this node's any more: killing it");
            let _ = running.process.kill().await;
            // Its output is still its owner's (best effort).
            drain(log, &mut running).await;
            let _ = within_stop(context, log.flush_last(context)).await;
            Finished::Over
        }
    };
    let Running { process, tree, .. } = running;
    drop(process);
    tree.remove().await;
    finished
}

/// Its lease lost, its process killed: its output kept, and `RunStopped { lease_lost }`
/// recorded (refused if another node took it over: it is that node's to record).
async fn lease_lost(
    context: &Context,
    lease: &UnitLease,
    stream: &mut RunnableStream,
    log: &mut Log,
    generation: u64,
) -> Finished {
    let work = async {
        log.flush_last(context).await;
        let command = RunnableCommand::RunStopped {
            generation,
            node: context.node.clone(),
            reason: RunStopReason::LeaseLost,
            synced: false,
            at: Utc::now(),
        };
        match record(context, lease, stream, command).await {
            Some(_) => Finished::Over,
            None => Finished::Unrecorded,
        }
    };
    within_stop(context, work)
        .await
        .unwrap_or(Finished::Unrecorded)
}

/// SIGTERM to its processes, SIGKILL to what is left after the grace period; reaped.
async fn terminate(context: &Context, running: &mut Running) {
    let process = &mut running.process;
    match context.runnables.sandbox {
        // bwrap ends its sandbox at once on SIGTERM: the processes inside get it instead (each
        // child of bwrap leads a session of its own, the sandbox's).
        Sandbox::Bwrap { .. } => {
            let sessions = sessions_under(process.pid);
            if sessions.is_empty() {
                // Nothing runs inside yet (a stop right after its start), or any more.
                let _ = process.kill().await;
                return;
            }
            for session in &sessions {
                signal_group(*session, Signal::SIGTERM);
            }
            running.tree.traces.add_sessions(sessions);
        }
        Sandbox::None => process.signal(Signal::SIGTERM),
    }
    let began = Instant::now();
    let _ = process.settle(context.grace).await;
    if began.elapsed() >= context.grace {
        tracing::warn!(
            pid = process.pid,
            "the runnable did not stop within the grace period: SIGKILL"
        );
    }
}

/// A process as `/proc/<pid>/stat` has it.
struct Stat {
    pid: u32,
    /// A zombie, or dead.
    ended: bool,
    ppid: u32,
    pgrp: u32,
    session: u32,
}

/// Every process `/proc` lists.
fn processes() -> Vec<Stat> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `pid (comm) state ppid pgrp session …`: comm may hold spaces and parentheses.
            let rest = &stat[stat.rfind(')')? + 1..];
            let mut fields = rest.split_whitespace();
            let state = fields.next()?;
            let ppid: u32 = fields.next()?.parse().ok()?;
            let pgrp: u32 = fields.next()?.parse().ok()?;
            let session: u32 = fields.next()?.parse().ok()?;
            Some(Stat {
                pid,
                ended: state == "Z" || state == "X",
                ppid,
                pgrp,
                session,
            })
        })
        .collect()
}

/// The sessions (and process groups) led by the children of `pid` (bwrap's: the sandbox's).
fn sessions_under(pid: u32) -> Vec<u32> {
    processes()
        .into_iter()
        // Only a group and session it leads: never the server's, nor bwrap's own.
        .filter(|p| !p.ended && p.ppid == pid && p.pgrp == p.pid && p.session == p.pid)
        .map(|p| p.pid)
        .collect()
}

/// Takes the rest of its output (for at most [`DRAIN`]) once its process ended.
async fn drain(log: &mut Log, running: &mut Running) {
    let deadline = Instant::now() + DRAIN;
    while running.open {
        match tokio::time::timeout_at(deadline, running.output.recv()).await {
            Ok(Some((from, bytes))) => log.push(from, &bytes),
            Ok(None) | Err(_) => running.open = false,
        }
    }
}

/// Syncs its tree back once its process ended: whether its files are in the log now, or
/// `None` if its stream refused (the run is not this node's: its end is not recorded).
async fn synced(
    context: &Context,
    stream: &mut RunnableStream,
    log: &mut Log,
    running: &mut Running,
) -> Option<bool> {
    match sync_back(context, stream, log, running, None).await {
        Ok(Recorded::Done) => Some(true),
        Ok(Recorded::Refused) => None,
        Err(e) => {
            tracing::warn!(runnable = %stream.id, error = %e, "syncing the runnable's files back failed: what it wrote is lost");
            log.note("its files could not be synced back");
            Some(false)
        }
    }
}

/// Records a run's end, retrying while its lease is good and the node is not stopping: `None`
/// if it could not be (not refused: it may still be this node's on record).
async fn record(
    context: &Context,
    lease: &UnitLease,
    stream: &mut RunnableStream,
    command: RunnableCommand,
) -> Option<Recorded> {
    loop {
        match stream.append(context, command.clone()).await {
            Ok(recorded) => return Some(recorded),
            Err(e)
                if e.is_transient()
                    && lease.good_for(call_limit(context.lease))
                    && !context.stopping.load(Ordering::SeqCst) =>
            {
                tracing::warn!(runnable = %stream.id, error = %e, "recording the run's end failed; retrying");
                tokio::time::sleep(RETRY).await;
            }
            Err(e) => {
                tracing::warn!(runnable = %stream.id, error = %e, "recording the run's end failed");
                return None;
            }
        }
    }
}

/// Why a sync back did not happen.
#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error("walking its tree: {0}")]
    Walk(String),
    #[error("storing a file's blob: {0}")]
    Blob(String),
    #[error("recording the files: {0}")]
    Record(#[from] bosun_commands::CommandError),
}

/// Says in its log, once each, what a sync could not keep: at most [`MAX_NOTED`] different
/// things a run (the count of more, which changes, once).
fn note_skipped(noted: &mut BTreeSet<(String, String)>, log: &mut Log, skipped: &[SkippedFile]) {
    for skip in skipped {
        let key = if skip.is_more() {
            (skip.path.clone(), String::new())
        } else {
            (skip.path.clone(), skip.reason.clone())
        };
        if noted.len() >= MAX_NOTED || noted.contains(&key) {
            continue;
        }
        noted.insert(key);
        log.note(&format!("not synced: {}: {}", skip.path, skip.reason));
    }
}

/// Walks its tree, stores what is new or changed as blobs, then records it all in one
/// `SyncFiles` (answering `sync`, if asked for).
async fn sync_back(
    context: &Context,
    stream: &mut RunnableStream,
    log: &mut Log,
    running: &mut Running,
    sync: Option<Uuid>,
) -> Result<Recorded, SyncError> {
    let tree = running.tree.path.clone();
    let manifest = running.manifest.clone();
    let limits = context.runnables.limits;
    let walked =
        tokio::task::spawn_blocking(move || tree::changes(&tree, &manifest, &limits)).await;
    let changes = match walked {
        Ok(Ok(changes)) => changes,
        Ok(Err(e)) => return Err(SyncError::Walk(e.to_string())),
        Err(e) => return Err(SyncError::Walk(e.to_string())),
    };
    for file in &changes.written {
        put_blob(context, &file.digest, &file.content).await?;
    }
    note_skipped(&mut running.noted, log, &changes.skipped);
    let written: Vec<FileEntry> = changes
        .written
        .iter()
        .map(|f| FileEntry {
            path: f.path.clone(),
            digest: f.digest.clone(),
            size: f.content.len() as u64,
        })
        .collect();
    let command = RunnableCommand::SyncFiles {
        node: context.node.clone(),
        sync,
        written: written.clone(),
        deleted: changes.deleted.clone(),
        skipped: changes.skipped.clone(),
        limits,
        at: Utc::now(),
    };
    let recorded = stream.append(context, command).await?;
    if let Recorded::Done = recorded {
        // What the tree holds now, as compared next time (a write the limits refused is not
        // tried again until it changes).
        for path in &changes.deleted {
            running.manifest.remove(path);
        }
        for file in written {
            running.manifest.insert(file.path, file.digest);
        }
    }
    Ok(recorded)
}

/// Stores a blob, retrying an outage for up to a third of a lease.
async fn put_blob(context: &Context, digest: &Digest, content: &[u8]) -> Result<(), SyncError> {
    let give_up = std::time::Instant::now() + context.lease / 3;
    let mut pause = Duration::from_millis(50);
    loop {
        match context
            .commands
            .store
            .put_blob(digest.as_str(), content)
            .await
        {
            Ok(()) => return Ok(()),
            Err(e) if std::time::Instant::now() + pause < give_up => {
                tracing::warn!(error = %e, "storing a runnable's blob failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(SyncError::Blob(e.to_string())),
        }
    }
}

/// Gives its lease up: no longer renewed (so a renewal does not take it for lost), then released.
async fn give_up(context: &Context, lease: &Arc<UnitLease>) {
    context.leases.forget(lease);
    lease::release(
        &context.pool,
        &context.node,
        &lease.key,
        call_limit(context.lease),
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_bwrap_fails_the_start_saying_how_to_install_it() {
        let missing = || std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(
            spawn_failure(Sandbox::Bwrap { network: false }, missing()),
            SandboxError::NotInstalled.to_string()
        );
        // Nothing of the server's said to the owner.
        let other = spawn_failure(
            Sandbox::None,
            std::io::Error::other("/srv/bosun/runnables: busy"),
        );
        assert_eq!(other, "cannot start the sandbox");
    }

    #[test]
    fn a_declined_run_is_claimed_again_only_at_a_newer_generation() {
        let id = RunnableId::new(Uuid::new_v4());
        let key = desired::key(id);
        let mut runs = Runs::default();
        runs.declined.insert(key.clone(), (2, Instant::now()));
        let wanted = |generation| BTreeMap::from([(key.clone(), WantedRun { id, generation })]);
        let none = BTreeSet::new();
        assert!(
            runs.free(&wanted(2), &none).is_empty(),
            "the read model lags"
        );
        assert_eq!(runs.free(&wanted(3), &none), vec![key.clone()]);
        assert!(
            runs.free(&wanted(3), &BTreeSet::from([key.clone()]))
                .is_empty(),
            "its lease left to run out"
        );
        runs.declined.insert(
            key.clone(),
            (2, Instant::now() - DECLINED_FOR - Duration::from_secs(1)),
        );
        runs.reap();
        assert_eq!(
            runs.free(&wanted(2), &none),
            vec![key],
            "tried again a while later"
        );
    }

    #[tokio::test]
    async fn a_run_whose_end_went_unrecorded_is_not_claimed_again_at_once() {
        let id = RunnableId::new(Uuid::new_v4());
        let key = desired::key(id);
        let mut runs = Runs::default();
        let (stop, _) = watch::channel(false);
        let task = tokio::spawn(async { Outcome::Unrecorded(4) });
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while !task.is_finished() {
                tokio::task::yield_now().await;
            }
        })
        .await;
        runs.held.insert(key.clone(), HeldRun { stop, task });
        runs.reap();
        let wanted = |generation| BTreeMap::from([(key.clone(), WantedRun { id, generation })]);
        let none = BTreeSet::new();
        assert!(runs.free(&wanted(4), &none).is_empty());
        assert_eq!(runs.free(&wanted(5), &none), vec![key.clone()]);
    }

    #[test]
    fn what_a_sync_could_not_keep_is_said_once_each_and_boundedly() {
        let mut log = Log::new(RunnableId::new(Uuid::new_v4()), 1 << 20);
        log.begin(1);
        let mut noted = BTreeSet::new();
        let skip = |path: &str, reason: &str| SkippedFile {
            path: path.into(),
            reason: reason.into(),
        };
        note_skipped(
            &mut noted,
            &mut log,
            &[skip("link", "a symbolic link"), SkippedFile::more(3)],
        );
        let said = log.pending();
        // The same again, and another count of more: nothing new to say.
        note_skipped(
            &mut noted,
            &mut log,
            &[skip("link", "a symbolic link"), SkippedFile::more(9)],
        );
        assert_eq!(log.pending(), said);
        let many: Vec<SkippedFile> = (0..2 * MAX_NOTED)
            .map(|i| skip(&format!("f{i}"), "x"))
            .collect();
        note_skipped(&mut noted, &mut log, &many);
        assert_eq!(noted.len(), MAX_NOTED);
    }

    #[test]
    fn a_sandboxs_traces_are_its_group_and_sessions() {
        // Nothing started yet: nothing to wait for (never group 0: the kernel's threads).
        assert!(Traces::default().living().is_empty());
        let own = processes()
            .into_iter()
            .find(|p| p.pid == std::process::id())
            .expect("this process in /proc");
        let traces = Traces {
            pgid: 0,
            sessions: vec![own.session],
        };
        assert!(traces.living().contains(&own.pid));
    }
}
