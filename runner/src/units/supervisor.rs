//! The node's supervisor of units, every [`TICK`]: renews its leases (every third of a lease),
//! works out the units wanted, tells each unit it holds what is wanted of it (run, restart in
//! turn, stop, or die: its lease is lost), claims wanted units nobody holds, and takes the
//! run-out leases of units nobody wants. On shutdown, it stops every unit and gives its leases
//! up.
//!
//! Does not own: a unit's own run (`unit`), the wanted set and restart turns (`desired`), the
//! lease table (`lease`).

use super::desired::{self, Processes};
use super::stream::{Recorded, UnitStream};
use super::unit::{self, Want};
use super::{lease, Context};
use crate::process::signal_group;
use crate::settings::RunnerSettings;
use bosun_commands::{Commands, Origin};
use bosun_domain::jobs::Catalog;
use bosun_domain::units::{StopReason, UnitId};
use deadpool_postgres::Pool;
use nix::sys::signal::Signal;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// How often the supervisor looks.
const TICK: Duration = Duration::from_secs(1);

/// The node's running supervisor. Dropping it stops its units (SIGTERM to their groups at once;
/// the rest, recording them stopped and giving their leases up, as long as the runtime runs);
/// [`Supervisor::stop`] waits for all of it.
pub(crate) struct Supervisor {
    context: Arc<Context>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

/// Starts the supervisor of `node`'s units.
pub(crate) fn start(
    commands: Commands,
    pool: Pool,
    catalog: &Catalog,
    settings: RunnerSettings,
    node: String,
) -> Supervisor {
    let context = Arc::new(Context {
        commands,
        pool,
        lease: crate::lease::length(&settings),
        grace: Duration::from_secs(settings.kill_grace_seconds),
        origin: Origin {
            request_id: Some(Uuid::new_v4().to_string()),
            user_agent: Some(format!("bosun runner {}", env!("CARGO_PKG_VERSION"))),
            source: Some(node.clone()),
            ..Origin::default()
        },
        settings,
        node,
        stopping: AtomicBool::new(false),
        groups: Mutex::new(BTreeMap::new()),
    });
    let (shutdown, stopped) = watch::channel(false);
    let processes = Processes::of(catalog);
    let task = tokio::spawn(supervise(context.clone(), processes, stopped));
    Supervisor {
        context,
        shutdown,
        task: Some(task),
    }
}

impl Supervisor {
    /// Stops every unit of this node, records them stopped and gives their leases up; waits for
    /// it (at most the kill grace period and a few seconds more).
    pub async fn stop(mut self) {
        self.signal_stop();
        if let Some(task) = self.task.take() {
            let bound = self.context.grace + Duration::from_secs(5);
            if tokio::time::timeout(bound, task).await.is_err() {
                tracing::warn!("the units did not all stop in time");
            }
        }
    }

    fn signal_stop(&self) {
        self.context.stopping.store(true, Ordering::SeqCst);
        self.shutdown.send_replace(true);
        if let Ok(groups) = self.context.groups.lock() {
            for pid in groups.values() {
                signal_group(*pid, Signal::SIGTERM);
            }
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if self.task.is_some() {
            self.signal_stop();
        }
    }
}

/// A unit this node holds: what it is told, and its run.
struct Held {
    id: UnitId,
    want: watch::Sender<Want>,
    task: JoinHandle<()>,
    /// Its lease is lost: it is being killed, whatever else is wanted.
    doomed: bool,
}

impl Held {
    fn tell(&mut self, wanted: Want) {
        if self.doomed {
            return;
        }
        if matches!(wanted, Want::Kill(_)) {
            self.doomed = true;
        }
        self.want.send_if_modified(|current| {
            if *current == wanted {
                false
            } else {
                *current = wanted;
                true
            }
        });
    }
}

async fn supervise(
    context: Arc<Context>,
    processes: Processes,
    mut shutdown: watch::Receiver<bool>,
) {
    // An API-only node (no job workers) runs no units either, unless told how many.
    let capacity = context
        .settings
        .units
        .unwrap_or(if context.settings.workers == 0 {
            0
        } else {
            usize::MAX
        });
    let mut held: BTreeMap<String, Held> = BTreeMap::new();
    let mut last_renewal = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            break;
        }
        held.retain(|_, h| !h.task.is_finished());
        if processes.is_empty() {
            continue;
        }
        renew(&context, &mut held, &mut last_renewal).await;
        let desired = match desired::desired(&context.pool, &processes).await {
            Ok(desired) => desired,
            Err(e) => {
                tracing::warn!(error = %e, "reading the units wanted failed; retrying");
                continue;
            }
        };
        // Units no longer wanted stop.
        for (key, h) in held.iter_mut() {
            if !desired.units.contains_key(key) {
                let reason = if desired.apps.contains(&h.id.app) {
                    StopReason::NotInCatalog
                } else {
                    StopReason::AppRemoved
                };
                h.tell(Want::Stop(reason));
            }
        }
        // Wanted ones run; one of an older generation restarts when its turn has come.
        let mut apps: Vec<String> = held
            .values()
            .filter(|h| desired.apps.contains(&h.id.app))
            .map(|h| h.id.app.clone())
            .collect();
        apps.sort();
        apps.dedup();
        let standings = desired::standings(&context.pool, &apps)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "reading the units read model failed; no restarts now");
                BTreeMap::new()
            });
        for (key, h) in held.iter_mut() {
            let Some(wanted) = desired.units.get(key) else {
                continue;
            };
            let group = (
                wanted.id.app.clone(),
                wanted.id.env.clone(),
                wanted.id.process.clone(),
            );
            let group = standings.get(&group).map(Vec::as_slice).unwrap_or(&[]);
            h.tell(Want::Run {
                spec: wanted.spec.clone(),
                generation: wanted.generation,
                may_restart: desired::may_restart(&wanted.id, wanted.generation, group),
            });
        }
        // Claim what nobody runs, as room allows.
        let room = capacity.saturating_sub(held.len());
        let free: Vec<String> = desired
            .units
            .keys()
            .filter(|key| !held.contains_key(*key))
            .cloned()
            .collect();
        match lease::claim(&context.pool, &context.node, &free, room, context.lease).await {
            Ok(claimed) => {
                for key in claimed {
                    let Some(wanted) = desired.units.get(&key) else {
                        continue;
                    };
                    tracing::info!(unit = key, node = context.node, "claimed a unit");
                    let (want, told) = watch::channel(Want::Run {
                        spec: wanted.spec.clone(),
                        generation: wanted.generation,
                        may_restart: false,
                    });
                    let task = tokio::spawn(unit::run(context.clone(), wanted.id.clone(), told));
                    held.insert(
                        key,
                        Held {
                            id: wanted.id.clone(),
                            want,
                            task,
                            doomed: false,
                        },
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "claiming units failed; retrying"),
        }
        // Run-out leases of units nobody wants: their node was lost.
        let wanted: Vec<String> = desired.units.keys().cloned().collect();
        match lease::take_expired(&context.pool, &wanted).await {
            Ok(expired) => {
                for (key, node) in expired {
                    let Ok(id) = UnitId::parse(&key) else {
                        continue;
                    };
                    let mut stream = UnitStream::new(id);
                    match stream.lost(&context, &node).await {
                        Ok(Recorded::Done | Recorded::Moved) => {
                            tracing::warn!(
                                unit = key,
                                lost = node,
                                "a lost node's unit is recorded stopped"
                            )
                        }
                        Err(e) => {
                            tracing::warn!(unit = key, error = %e, "recording a lost node's unit failed")
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading run-out unit leases failed"),
        }
    }
    // The node is stopping: every unit stops, then every lease goes.
    for h in held.values_mut() {
        h.tell(Want::Stop(StopReason::NodeStopped));
    }
    for h in held.values_mut() {
        let _ = (&mut h.task).await;
    }
    lease::release_all(&context.pool, &context.node).await;
}

/// Renews the node's leases when due; a unit whose lease another node took is killed, and all
/// are when no renewal has succeeded for a whole lease (others count them lost by now).
async fn renew(context: &Context, held: &mut BTreeMap<String, Held>, last_renewal: &mut Instant) {
    if last_renewal.elapsed() < context.lease / 3 {
        return;
    }
    match lease::renew(&context.pool, &context.node, context.lease).await {
        Ok(still) => {
            *last_renewal = Instant::now();
            for (key, h) in held.iter_mut() {
                if !still.contains(key) {
                    h.tell(Want::Kill(StopReason::LeaseLost));
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "renewing the unit leases failed; retrying");
            if last_renewal.elapsed() >= context.lease {
                tracing::error!(
                    "no unit lease renewed for a whole lease: killing this node's units"
                );
                for h in held.values_mut() {
                    h.tell(Want::Kill(StopReason::LeaseLost));
                }
            }
        }
    }
}
