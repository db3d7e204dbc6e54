//! Watching a running process to its end: its output flushed as it comes, the lease kept, and
//! the process stopped on a kill request or at its timeout (SIGTERM to its group, SIGKILL after
//! the grace period); when the job is no longer this worker's, the process is killed and the run
//! abandoned. Also how a process's exit reads, and whether a job should stop.
//!
//! Does not own: starting the process (`process`, `catalog_task`), recording its start or end
//! (`catalog_task`), the output buffer (`output`), nor the lease (`lease`).

use crate::claim::Run;
use crate::job_stream::taken_over;
use crate::output::{FLUSH_BYTES, FLUSH_EVERY};
use crate::process::{self, signal_group};
use crate::workers::Context;
use bosun_commands::CommandError;
use nix::sys::signal::Signal;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// After the process exits, how long its output pipes may stay open (held by something it left
/// behind) before the job is finished without the rest.
const DRAIN_WAIT: Duration = Duration::from_secs(2);

/// Why a job was stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    Killed,
    TimedOut,
    /// Its job stopped it (a role job's other instance failed: the attempt stops at once).
    Cancelled,
}

/// What a job tells all the processes it runs at once (a role job's instances): one kill poll
/// per job rather than one per process, and the job's own stop (fail-fast).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Halt {
    /// Go on.
    Go,
    /// A kill of the job was asked.
    Kill,
    /// The job stops this attempt (another instance failed, or the job cannot go on).
    Cancel,
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
    run: &mut Run<'_>,
    mut running: process::Running,
    timeout: Option<Duration>,
) -> Result<Supervised, CommandError> {
    let context = run.context;
    let job_id = run.stream.job_id;
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
                    run.output.push(stream, &bytes);
                    if run.output.pending() >= FLUSH_BYTES && !run.output.paced {
                        if let Err(e) = run.output.flush(context, &mut run.stream, false).await {
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
                if let Err(e) = run.output.flush(context, &mut run.stream, false).await {
                    if taken_over(&e) {
                        abandon(&mut running);
                        let _ = running.child.wait().await;
                        return Ok(Supervised::Abandoned);
                    }
                    tracing::warn!(%job_id, error = %e, "appending output failed; retrying");
                }
                if run.heartbeat.beat(context).await.is_err() {
                    abandon(&mut running);
                    let _ = running.child.wait().await;
                    return Ok(Supervised::Abandoned);
                }
                match stopping {
                    None => {
                        let wanted = match &run.halt {
                            Some(halt) => halted(*halt.borrow(), began, timeout),
                            None => stop_wanted(context, job_id, began, timeout).await,
                        };
                        if let Some(stop) = wanted {
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
                Some((stream, bytes)) => run.output.push(stream, &bytes),
                None => output_open = false,
            },
            _ = &mut drain => break,
        }
    }
    // Anything of its group still alive goes with it.
    signal_group(running.pid, Signal::SIGKILL);
    if let Err(e) = run.output.flush(context, &mut run.stream, true).await {
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

/// Whether the job should stop now: a kill was requested, or it ran past `timeout` since
/// `began`.
pub(crate) async fn stop_wanted(
    context: &Context,
    job_id: Uuid,
    began: Instant,
    timeout: Option<Duration>,
) -> Option<Stop> {
    if kill_requested(context, job_id).await {
        Some(Stop::Killed)
    } else if timeout.is_some_and(|t| began.elapsed() >= t) {
        Some(Stop::TimedOut)
    } else {
        None
    }
}

/// Whether a process of a job told `halt` should stop now, or it ran past `timeout` since
/// `began`.
fn halted(halt: Halt, began: Instant, timeout: Option<Duration>) -> Option<Stop> {
    match halt {
        Halt::Kill => Some(Stop::Killed),
        Halt::Cancel => Some(Stop::Cancelled),
        Halt::Go if timeout.is_some_and(|t| began.elapsed() >= t) => Some(Stop::TimedOut),
        Halt::Go => None,
    }
}

/// Whether a kill of the job was requested, as the jobs read model says (false if it cannot be
/// read now: the next check asks again).
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

/// How a process's exit reads in diagnostics.
pub(crate) fn describe(exit: &std::process::ExitStatus) -> String {
    match (exit.code(), exit.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => "ended".to_string(),
    }
}
