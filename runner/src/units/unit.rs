//! One unit this node holds, from its claim to its end: start its process (a port, the app's
//! environment), record it started and, once it accepts connections on its port or has stayed up
//! [`READY_AFTER`], ready; on an exit, record it and start it again after the backoff the unit's
//! stream says; on a newer restart generation the supervisor allows, stop it and start it again;
//! when it is no longer wanted, stop it (SIGTERM to its group, SIGKILL after the grace period),
//! record why and give its lease up; when its lease is lost, kill it at once.
//!
//! Does not own: what is wanted of it (the supervisor), the lease table (`lease`), the process
//! itself (`process`), its port (`ports`).

use super::ports::{self, Port};
use super::process::{self, UnitProcess};
use super::stream::{Recorded, UnitStream};
use super::{lease, Context};
use bosun_domain::jobs::ProcessSpec;
use bosun_domain::units::{StopReason, UnitId};
use nix::sys::signal::Signal;
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

/// Up this long, a unit that does not (yet) accept connections on its port counts as ready.
pub(crate) const READY_AFTER: Duration = Duration::from_secs(2);
/// How often a unit not ready yet is checked.
const READY_CHECK: Duration = Duration::from_millis(200);
/// Before trying again what could not be done now (the log or the app's environment
/// unreachable).
const RETRY: Duration = Duration::from_secs(1);

/// What the supervisor wants of a unit.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Want {
    /// Run it; started (or started again) with the app's `generation`. One running an older
    /// generation is restarted only when `may_restart` (the rolling restart's turn is its).
    Run {
        spec: Arc<ProcessSpec>,
        generation: u64,
        may_restart: bool,
    },
    /// Stop it (SIGTERM, then SIGKILL after the grace period), record why, give its lease up.
    Stop(StopReason),
    /// Its lease is lost: kill it now.
    Kill(StopReason),
}

/// Its process while one runs.
struct Running {
    process: UnitProcess,
    port: Port,
    generation: u64,
    since: Instant,
    ready: bool,
}

/// What came of trying to start it.
enum Start {
    Running(Box<Running>),
    /// Not started; try again after this long.
    Later(Duration),
    /// The unit is no longer this node's.
    Moved,
}

pub(crate) async fn run(context: Arc<Context>, id: UnitId, mut want: watch::Receiver<Want>) {
    let key = id.to_string();
    // Declared before its process, so dropped after it: however the run ends, its group is
    // killed first, then forgotten.
    let _registered = Registered {
        context: context.clone(),
        key: key.clone(),
    };
    let mut stream = UnitStream::new(id.clone());
    take_over(&context, &mut stream).await;
    let mut running: Option<Running> = None;
    let mut next_start = Instant::now();
    let mut last_port: Option<u16> = None;
    loop {
        let wanted = want.borrow_and_update().clone();
        match wanted {
            Want::Stop(reason) => {
                if let Some(r) = running.take() {
                    stop(&context, &key, r).await;
                }
                record_stop(&context, &mut stream, reason).await;
                lease::release(&context.pool, &context.node, &key).await;
                return;
            }
            Want::Kill(reason) => {
                if let Some(mut r) = running.take() {
                    tracing::warn!(unit = key, "the unit's lease is lost: killing it");
                    r.process.signal(Signal::SIGKILL);
                    let _ = r.process.wait().await;
                    forget(&context, &key);
                }
                // Refused if another node has taken it over: it is that node's to record.
                record_stop(&context, &mut stream, reason).await;
                return;
            }
            Want::Run {
                spec,
                generation,
                may_restart,
            } => {
                if running
                    .as_ref()
                    .is_some_and(|r| r.generation < generation && may_restart)
                {
                    if let Some(r) = running.take() {
                        tracing::info!(unit = key, generation, "restarting the unit");
                        stop(&context, &key, r).await;
                    }
                    if let Recorded::Moved =
                        record_stop(&context, &mut stream, StopReason::Restart).await
                    {
                        return;
                    }
                    next_start = Instant::now();
                }
                // A node stopping starts nothing more: the supervisor's stop follows.
                if running.is_none()
                    && Instant::now() >= next_start
                    && !context.stopping.load(Ordering::SeqCst)
                {
                    match start(&context, &mut stream, &spec, generation, last_port).await {
                        Start::Running(r) => {
                            last_port = Some(r.port.number());
                            running = Some(*r);
                        }
                        Start::Later(wait) => next_start = Instant::now() + wait,
                        Start::Moved => return,
                    }
                }
            }
        }
        let stopping = context.stopping.load(Ordering::SeqCst);
        let wake = match &running {
            Some(r) if !r.ready => Instant::now() + READY_CHECK,
            None if !stopping => next_start,
            // Woken by what the supervisor wants next, or the process's end.
            _ => Instant::now() + Duration::from_secs(3600),
        };
        tokio::select! {
            changed = want.changed() => {
                if changed.is_err() {
                    // The supervisor is gone (the runner stopped without saying so): stop.
                    if let Some(r) = running.take() {
                        stop(&context, &key, r).await;
                    }
                    record_stop(&context, &mut stream, StopReason::NodeStopped).await;
                    lease::release(&context.pool, &context.node, &key).await;
                    return;
                }
            }
            status = exited(&mut running) => {
                let Some(r) = running.take() else { continue };
                forget(&context, &key);
                if context.stopping.load(Ordering::SeqCst) {
                    // The node stopping signalled it; the stop the supervisor sends says so.
                    continue;
                }
                let described = match &status {
                    Ok(exit) => crate::supervise::describe(exit),
                    Err(e) => format!("cannot be waited for: {e}"),
                };
                tracing::warn!(unit = key, pid = r.process.pid, exit = described, "the unit's process ended");
                let (code, signal) = match &status {
                    Ok(exit) => (exit.code(), exit.signal()),
                    Err(_) => (None, None),
                };
                let recorded = stream.exit(&context, r.process.pid, code, signal).await;
                match recorded {
                    Ok(Recorded::Done) => {
                        let backoff = stream.state().map(|s| s.backoff()).unwrap_or(RETRY);
                        next_start = Instant::now() + backoff;
                    }
                    Ok(Recorded::Moved) => return,
                    Err(e) => {
                        tracing::warn!(unit = key, error = %e, "recording the unit's exit failed");
                        next_start = Instant::now() + RETRY;
                    }
                }
            }
            _ = tokio::time::sleep_until(wake) => {
                if let Some(r) = running.as_mut() {
                    if !r.ready && is_ready(r).await {
                        match stream.ready(&context, r.process.pid).await {
                            Ok(Recorded::Done) => r.ready = true,
                            Ok(Recorded::Moved) => return,
                            Err(e) => tracing::warn!(unit = key, error = %e, "recording the unit ready failed; retrying"),
                        }
                    }
                }
            }
        }
    }
}

/// A unit just claimed that its stream says runs on another node: that node was lost (its
/// lease ran out), which is recorded first.
async fn take_over(context: &Context, stream: &mut UnitStream) {
    let other = match stream.load(context).await {
        Ok(state) => state
            .node
            .clone()
            .filter(|node| *node != context.node && state.held_by(node)),
        Err(e) => {
            tracing::warn!(unit = %stream.id, error = %e, "loading the unit failed");
            None
        }
    };
    if let Some(node) = other {
        tracing::warn!(unit = %stream.id, lost = node, "taking over a unit of a lost node");
        if let Err(e) = stream.lost(context, &node).await {
            tracing::warn!(unit = %stream.id, error = %e, "recording the lost node's unit stopped failed");
        }
    }
}

/// Starts its process and records it started; a start that cannot be made is recorded as
/// failed and tried again after the unit's backoff.
async fn start(
    context: &Context,
    stream: &mut UnitStream,
    spec: &ProcessSpec,
    generation: u64,
    last_port: Option<u16>,
) -> Start {
    let id = stream.id.clone();
    let key = id.to_string();
    let app_env = match context.commands.app_environment(&id.app).await {
        Ok(Some(env)) => env,
        // Not (or no longer) a registered app: the supervisor stops it shortly.
        Ok(None) => return Start::Later(RETRY),
        Err(e) => {
            tracing::warn!(unit = key, error = %e, "reading the app's environment failed; retrying");
            return Start::Later(RETRY);
        }
    };
    let Some(port) = ports::pick(context.settings.unit_ports, last_port) else {
        let diagnostics = format!(
            "no free port in runner.unit_ports ({}) on node {}",
            context.settings.unit_ports, context.node
        );
        return failed(context, stream, generation, diagnostics).await;
    };
    let env = process::environment(spec, &app_env, port.number());
    let mut process = match process::spawn(spec, &env).await {
        Ok(process) => process,
        Err(e) => {
            let program = spec.command.first().map(String::as_str).unwrap_or("");
            let diagnostics = format!("cannot start {program:?}: {e}");
            return failed(context, stream, generation, diagnostics).await;
        }
    };
    if let Ok(mut groups) = context.groups.lock() {
        groups.insert(key.clone(), process.pid);
    }
    match stream
        .start(context, process.pid, port.number(), generation)
        .await
    {
        Ok(Recorded::Done) => {
            tracing::info!(
                unit = key,
                pid = process.pid,
                port = port.number(),
                generation,
                "unit started"
            );
            Start::Running(Box::new(Running {
                process,
                port,
                generation,
                since: Instant::now(),
                ready: false,
            }))
        }
        recorded => {
            // Not recorded: it must not run unseen.
            process.signal(Signal::SIGKILL);
            let _ = process.wait().await;
            forget(context, &key);
            match recorded {
                Ok(_) => Start::Moved,
                Err(e) => {
                    tracing::warn!(unit = key, error = %e, "recording the unit started failed; it was killed");
                    Start::Later(RETRY)
                }
            }
        }
    }
}

async fn failed(
    context: &Context,
    stream: &mut UnitStream,
    generation: u64,
    diagnostics: String,
) -> Start {
    tracing::warn!(unit = %stream.id, diagnostics, "the unit cannot start");
    match stream.fail_start(context, generation, diagnostics).await {
        Ok(Recorded::Done) => Start::Later(stream.state().map(|s| s.backoff()).unwrap_or(RETRY)),
        Ok(Recorded::Moved) => Start::Moved,
        Err(e) => {
            tracing::warn!(unit = %stream.id, error = %e, "recording the failed start failed");
            Start::Later(RETRY)
        }
    }
}

/// Stops its process: SIGTERM to its group, SIGKILL after the grace period, and whatever of
/// its group is left.
async fn stop(context: &Context, key: &str, mut running: Running) {
    running.process.signal(Signal::SIGTERM);
    let ended = tokio::time::timeout(context.grace, running.process.wait()).await;
    if ended.is_err() {
        tracing::warn!(
            unit = key,
            "the unit did not stop within the grace period: SIGKILL"
        );
        running.process.signal(Signal::SIGKILL);
        let _ = running.process.wait().await;
    }
    crate::process::signal_group(running.process.pid, Signal::SIGKILL);
    forget(context, key);
}

async fn record_stop(context: &Context, stream: &mut UnitStream, reason: StopReason) -> Recorded {
    match stream.stop(context, reason).await {
        Ok(recorded) => recorded,
        Err(e) => {
            tracing::warn!(unit = %stream.id, error = %e, "recording the unit stopped failed");
            Recorded::Done
        }
    }
}

/// The unit's place in the registry of groups running here, left when its run ends.
struct Registered {
    context: Arc<Context>,
    key: String,
}

impl Drop for Registered {
    fn drop(&mut self) {
        forget(&self.context, &self.key);
    }
}

/// Its group is no longer running here.
fn forget(context: &Context, key: &str) {
    if let Ok(mut groups) = context.groups.lock() {
        groups.remove(key);
    }
}

/// Waits for the running process to end; never, when none runs.
async fn exited(running: &mut Option<Running>) -> std::io::Result<std::process::ExitStatus> {
    match running {
        Some(r) => r.process.wait().await,
        None => std::future::pending().await,
    }
}

/// Whether it accepts connections on its port, or has been up long enough to count as ready.
async fn is_ready(running: &Running) -> bool {
    if running.since.elapsed() >= READY_AFTER {
        return true;
    }
    let connect = TcpStream::connect(("127.0.0.1", running.port.number()));
    matches!(
        tokio::time::timeout(Duration::from_millis(100), connect).await,
        Ok(Ok(_))
    )
}
