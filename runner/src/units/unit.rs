//! One unit this node holds, from its claim to its end: start its process (a port recorded in
//! its lease, the app's environment), record it started and, once it accepts connections on its
//! port or has stayed up [`READY_AFTER`], ready; on an exit, record it and start it again after
//! the backoff the unit's stream says; on another restart generation the supervisor allows, stop
//! it and start it again; when it is no longer wanted, stop it (SIGTERM to its group, SIGKILL
//! after the grace period), record why and give its lease up; when its lease is lost, kill it at
//! once. It tells the supervisor how it stands here ([`Local`]) for the rolling restarts.
//!
//! Does not own: what is wanted of it (the supervisor), the lease table (`lease`), keeping its
//! lease (`renewal`), the process itself (`process`), its port (`ports`).

use super::lease::{self, bounded, PortTaken};
use super::ports::{self, Port};
use super::process::{self, UnitProcess};
use super::renewal::{call_limit, UnitLease};
use super::stream::{Recorded, UnitStream};
use super::Context;
use bosun_domain::jobs::ProcessSpec;
use bosun_domain::units::{StopReason, UnitId, ERROR_AFTER};
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
/// Ports tried in a row that another node of the host took meanwhile, before trying later.
const PORT_TRIES: usize = 8;

/// What the supervisor wants of a unit.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Want {
    /// Run it; started (or started again) with the app's `generation`. One running another
    /// generation is restarted only when `may_restart` (the rolling restart's turn is its).
    Run {
        spec: Arc<ProcessSpec>,
        generation: u64,
        may_restart: bool,
    },
    /// Stop it (SIGTERM, then SIGKILL after the grace period), record why, give its lease up.
    Stop(StopReason),
}

/// How a unit stands on this node, as its run knows it (ahead of the read model).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Local {
    /// Its process runs and is ready, started with this generation.
    Up(u64),
    /// Its process is starting or stopping, or it waits to start again.
    Down,
    /// It failed [`ERROR_AFTER`] times in a row and waits to be tried again.
    Error,
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

/// The unit's lease, no longer renewed once its run ends.
struct Forget {
    context: Arc<Context>,
    lease: Arc<UnitLease>,
}

impl Drop for Forget {
    fn drop(&mut self) {
        self.context.leases.forget(&self.lease);
    }
}

pub(crate) async fn run(
    context: Arc<Context>,
    id: UnitId,
    lease: Arc<UnitLease>,
    mut want: watch::Receiver<Want>,
    local: watch::Sender<Local>,
) {
    let key = id.to_string();
    // Declared before its process, so dropped after it: however the run ends, its group is
    // killed first, then its lease forgotten.
    let _forget = Forget {
        context: context.clone(),
        lease: lease.clone(),
    };
    let mut stream = UnitStream::new(id.clone());
    take_over(&context, &mut stream).await;
    let mut running: Option<Running> = None;
    let mut next_start = Instant::now();
    let mut last_port: Option<u16> = None;
    loop {
        if lease.is_lost() {
            local.send_replace(Local::Down);
            if let Some(mut r) = running.take() {
                tracing::warn!(unit = key, "the unit's lease is lost: killing it");
                let _ = r.process.kill().await;
            }
            // Refused if another node has taken it over: it is that node's to record.
            record_stop(&context, &mut stream, StopReason::LeaseLost).await;
            give_up(&context, &lease).await;
            return;
        }
        let wanted = want.borrow_and_update().clone();
        match wanted {
            Want::Stop(reason) => {
                local.send_replace(Local::Down);
                if let Some(r) = running.take() {
                    stop(&context, &key, r).await;
                }
                record_stop(&context, &mut stream, reason).await;
                give_up(&context, &lease).await;
                return;
            }
            Want::Run {
                spec,
                generation,
                may_restart,
            } => {
                // Another generation: a newer one, or any one of a former app of that name.
                if may_restart && running.as_ref().is_some_and(|r| r.generation != generation) {
                    local.send_replace(Local::Down);
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
                    && !lease.is_lost()
                {
                    match start(&context, &lease, &mut stream, &spec, generation, last_port).await {
                        Start::Running(r) => {
                            last_port = Some(r.port.number());
                            running = Some(*r);
                            local.send_replace(Local::Down);
                        }
                        Start::Later(wait) => {
                            next_start = Instant::now() + wait;
                            local.send_replace(waiting(&stream));
                        }
                        Start::Moved => return,
                    }
                }
            }
        }
        let stopping = context.stopping.load(Ordering::SeqCst);
        let wake = match &running {
            Some(r) if !r.ready => Instant::now() + READY_CHECK,
            None if !stopping => next_start,
            // Woken by what the supervisor wants next, the process's end, or the lease lost.
            _ => Instant::now() + Duration::from_secs(3600),
        };
        tokio::select! {
            _ = lease.lost() => {}
            changed = want.changed() => {
                if changed.is_err() {
                    // The supervisor is gone (the runner stopped without saying so): stop.
                    local.send_replace(Local::Down);
                    if let Some(r) = running.take() {
                        stop(&context, &key, r).await;
                    }
                    record_stop(&context, &mut stream, StopReason::NodeStopped).await;
                    give_up(&context, &lease).await;
                    return;
                }
            }
            _ = ended(&mut running) => {
                let Some(mut r) = running.take() else { continue };
                local.send_replace(Local::Down);
                if context.stopping.load(Ordering::SeqCst) {
                    // The node stopping signalled it: its group gets the grace period, then
                    // the stop the supervisor sends says so.
                    let _ = r.process.settle(context.grace).await;
                    continue;
                }
                // Whatever of its group is left is killed before it is reaped.
                let status = r.process.finish().await;
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
                local.send_replace(waiting(&stream));
            }
            _ = tokio::time::sleep_until(wake) => {
                if let Some(r) = running.as_mut() {
                    if !r.ready && is_ready(r).await {
                        match stream.ready(&context, r.process.pid).await {
                            Ok(Recorded::Done) => {
                                r.ready = true;
                                local.send_replace(Local::Up(r.generation));
                            }
                            Ok(Recorded::Moved) => return,
                            Err(e) => tracing::warn!(unit = key, error = %e, "recording the unit ready failed; retrying"),
                        }
                    }
                }
            }
        }
    }
}

/// How a unit waiting to start again stands: in error after repeated failures.
fn waiting(stream: &UnitStream) -> Local {
    match stream.state() {
        Some(state) if state.failures >= ERROR_AFTER => Local::Error,
        _ => Local::Down,
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
/// failed and tried again after the unit's backoff. Just before the process starts, the lease
/// must still be this node's for a good while (in the database, not only as this node counts)
/// and hold the unit's port.
async fn start(
    context: &Context,
    lease: &UnitLease,
    stream: &mut UnitStream,
    spec: &ProcessSpec,
    generation: u64,
    last_port: Option<u16>,
) -> Start {
    let id = stream.id.clone();
    let key = id.to_string();
    let limit = call_limit(context.lease);
    let app_env = match tokio::time::timeout(limit, context.commands.app_environment(&id.app)).await
    {
        Ok(Ok(Some(env))) => env,
        // Not (or no longer) a registered app: the supervisor stops it shortly.
        Ok(Ok(None)) => return Start::Later(RETRY),
        Ok(Err(e)) => {
            tracing::warn!(unit = key, error = %e, "reading the app's environment failed; retrying");
            return Start::Later(RETRY);
        }
        Err(_) => {
            tracing::warn!(
                unit = key,
                "reading the app's environment took too long; retrying"
            );
            return Start::Later(RETRY);
        }
    };
    let margin = call_limit(context.lease);
    if !lease.good_for(margin) {
        return Start::Later(RETRY);
    }
    let port = match port_for(context, &key, last_port, margin).await {
        Ok(Some(port)) => port,
        Ok(None) => {
            let diagnostics = format!(
                "no free port in runner.unit_ports ({}) on node {}",
                context.settings.unit_ports, context.node
            );
            return failed(context, stream, generation, diagnostics).await;
        }
        Err(wait) => return Start::Later(wait),
    };
    let env = process::environment(spec, &app_env, port.number());
    let mut process = match process::spawn(spec, &env, &context.groups, &key).await {
        Ok(process) => process,
        Err(e) => {
            let program = spec.command.first().map(String::as_str).unwrap_or("");
            let diagnostics = format!("cannot start {program:?}: {e}");
            return failed(context, stream, generation, diagnostics).await;
        }
    };
    if lease.is_lost() {
        // Lost while it started (the kill may have missed its group): it must not run.
        let _ = process.kill().await;
        return Start::Later(RETRY);
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
            let _ = process.kill().await;
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

/// A port for the unit that no other unit of this host holds, recorded in its lease (which must
/// be this node's for `margin` more). `None`: no port of the range is free; `Err`: try again
/// after this long.
async fn port_for(
    context: &Context,
    key: &str,
    last_port: Option<u16>,
    margin: Duration,
) -> Result<Option<Port>, Duration> {
    let limit = call_limit(context.lease);
    let host = lease::host_of(&context.node);
    let busy = match bounded(limit, lease::ports_in_use(&context.pool, host, key)).await {
        Ok(busy) => busy,
        Err(e) => {
            tracing::warn!(unit = key, error = %e, "reading the ports in use failed; retrying");
            return Err(RETRY);
        }
    };
    // Ports another node of the host took meanwhile: held aside while picking another.
    let mut refused = Vec::new();
    loop {
        let Some(port) = ports::pick(context.settings.unit_ports, last_port, &busy) else {
            return if refused.is_empty() {
                Ok(None)
            } else {
                Err(RETRY)
            };
        };
        let taken = bounded(
            limit,
            lease::take_port(
                &context.lease_pool,
                &context.node,
                key,
                port.number(),
                margin,
            ),
        )
        .await;
        match taken {
            Ok(PortTaken::Taken) => return Ok(Some(port)),
            Ok(PortTaken::InUse) if refused.len() + 1 < PORT_TRIES => refused.push(port),
            Ok(PortTaken::InUse) => return Err(RETRY),
            Ok(PortTaken::NotHeld) => {
                // Running out, or taken: the renewal says which soon.
                tracing::warn!(
                    unit = key,
                    "the unit's lease is not this node's for long enough to start it"
                );
                return Err(RETRY);
            }
            Err(e) => {
                tracing::warn!(unit = key, error = %e, "recording the unit's port failed; retrying");
                return Err(RETRY);
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
    // Recorded with the generation it was started for: once it runs, it runs that one.
    match stream.fail_start(context, generation, diagnostics).await {
        Ok(Recorded::Done) => Start::Later(stream.state().map(|s| s.backoff()).unwrap_or(RETRY)),
        Ok(Recorded::Moved) => Start::Moved,
        Err(e) => {
            tracing::warn!(unit = %stream.id, error = %e, "recording the failed start failed");
            Start::Later(RETRY)
        }
    }
}

/// Stops its process: SIGTERM to its group, SIGKILL to what is left once its main process and
/// the rest of its group ended, or after the grace period.
async fn stop(context: &Context, key: &str, mut running: Running) {
    let began = Instant::now();
    let _ = running.process.stop(context.grace).await;
    if began.elapsed() >= context.grace {
        tracing::warn!(
            unit = key,
            "the unit did not stop within the grace period: SIGKILL"
        );
    }
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

/// Waits for the running process's main process to end (not reaping it); never, when none runs.
async fn ended(running: &mut Option<Running>) {
    match running {
        Some(r) => r.process.ended().await,
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
