//! The node's supervisor of units, every [`tick`]: works out the units wanted, tells each unit
//! it holds what is wanted of it (run, restart in turn, stop), claims wanted units nobody holds,
//! and takes the run-out leases of units nobody wants (recording those apart, so the log's pace
//! never holds the loop). Its leases are kept by `renewal`, beside it. Every database call here
//! is bounded by a third of a lease. On shutdown, it stops every unit and gives its leases up.
//! The runnables' runs are claimed here too, from the same room and in the same lease table
//! (`crate::runnables::run`: the runs wanted, each run's own end), also on a node whose catalog
//! has no processes (which takes only the runs' run-out leases, as it takes no unit's); at its
//! start, the trees a crash left are removed and the runs' leases an earlier node of its name
//! left are left to run out.
//!
//! Does not own: a unit's own run (`unit`), the wanted set and restart turns (`desired`), the
//! lease table (`lease`), renewing the leases (`renewal`), a runnable's run.

use super::desired::{self, Processes, Standing};
use super::lease::{self, bounded};
use super::process::Groups;
use super::renewal::{self, call_limit, Leases, UnitLease};
use super::stream::{Recorded, UnitStream};
use super::unit::{self, Local, Want};
use super::Context;
use crate::runnables::run::{self as runnable_run, Runs};
use crate::runnables::RunnableSettings;
use crate::settings::RunnerSettings;
use bosun_commands::{Commands, Origin};
use bosun_domain::jobs::Catalog;
use bosun_domain::units::{StopReason, UnitId};
use deadpool_postgres::Pool;
use nix::sys::signal::Signal;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// How often the supervisor looks: every second, or six times a lease if that is shorter.
fn tick(lease: Duration) -> Duration {
    Duration::from_secs(1).min(lease / 6)
}

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
    config: &tokio_postgres::Config,
    catalog: &Catalog,
    settings: RunnerSettings,
    runnables: RunnableSettings,
    node: String,
) -> Supervisor {
    let context = Arc::new(Context {
        commands,
        pool,
        // Made from the same config as `pool`, two connections of their own in all.
        renewal_pool: bosun_eventstore::postgres::connect_pool(config, 1),
        lease_pool: bosun_eventstore::postgres::connect_pool(config, 1),
        lease: crate::lease::length(&settings),
        grace: Duration::from_secs(settings.kill_grace_seconds),
        origin: Origin {
            request_id: Some(Uuid::new_v4().to_string()),
            user_agent: Some(format!("bosun runner {}", env!("CARGO_PKG_VERSION"))),
            source: Some(node.clone()),
            ..Origin::default()
        },
        settings,
        runnables,
        node,
        stopping: AtomicBool::new(false),
        groups: Arc::new(Groups::default()),
        leases: Arc::new(Leases::new()),
        work_folder: Default::default(),
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
    /// it (at most the kill grace period, a runnable's drain and a lease, the longest a run's
    /// stop takes, and a few seconds more).
    pub async fn stop(mut self) {
        self.signal_stop();
        if let Some(task) = self.task.take() {
            let bound = runnable_run::stop_bound(&self.context) + Duration::from_secs(5);
            if tokio::time::timeout(bound, task).await.is_err() {
                tracing::warn!("the units did not all stop in time");
            }
        }
    }

    fn signal_stop(&self) {
        self.context.stopping.store(true, Ordering::SeqCst);
        self.shutdown.send_replace(true);
        // Not the runnables' sandboxes: SIGTERM to bwrap itself would end its sandbox at once;
        // their runs stop their processes inside it, with the grace period, when told to.
        self.context
            .groups
            .signal_all_but(crate::runnables::desired::PREFIX, Signal::SIGTERM);
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if self.task.is_some() {
            self.signal_stop();
        }
    }
}

/// A unit this node holds: what it is told, how it stands, and its run.
struct Held {
    id: UnitId,
    want: watch::Sender<Want>,
    local: watch::Receiver<Local>,
    task: JoinHandle<()>,
    /// It holds its process's restart turn, taken while it ran this generation: it counts as
    /// down until it is up with another one (or in error).
    turn: Option<u64>,
    /// Its lease, which says to the renewals whether it holds the turn.
    lease: Arc<UnitLease>,
}

impl Held {
    fn tell(&mut self, wanted: Want) {
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

/// `(app, env, process)`: the units of one process.
type Group = (String, String, String);

fn group_of(id: &UnitId) -> Group {
    (id.app.clone(), id.env.clone(), id.process.clone())
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
    // Before the first renewal gives them up: the runs' leases an earlier node of this name
    // left (restarted with the same pid) run out, for their runs to be recorded lost.
    runnable_run::leave_earlier(&context).await;
    let (renewals_stop, renewals_stopped) = watch::channel(false);
    let mut renewals = tokio::spawn(renewal::keep(
        context.leases.clone(),
        context.groups.clone(),
        context.renewal_pool.clone(),
        context.node.clone(),
        context.lease,
        renewals_stopped,
    ));
    let limit = call_limit(context.lease);
    let mut held: BTreeMap<String, Held> = BTreeMap::new();
    let mut runs = Runs::default();
    // This node's folder, then the trees a crash left (never in it): apart, not to hold this
    // loop up.
    tokio::spawn(runnable_run::clean_work_dir(context.clone()));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick(context.lease)) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            break;
        }
        held.retain(|_, h| !h.task.is_finished());
        runs.reap();
        // Each run ends by its own stream's word: the read model only starts them.
        let wanted_runs = match bounded(limit, runs.wanted(&context.pool)).await {
            Ok(wanted) => Some(wanted),
            Err(e) => {
                tracing::warn!(error = %e, "reading the runnables wanted failed; retrying");
                None
            }
        };
        // With no processes in the catalog, `desired` reads nothing: no units.
        let desired = match bounded(limit, desired::desired(&context.pool, &processes)).await {
            Ok(desired) => desired,
            Err(e) => {
                tracing::warn!(error = %e, "reading the units wanted failed; retrying");
                continue;
            }
        };
        // Units no longer wanted stop: gone from the catalog (this node's own word), or their
        // app removed, as its stream says (the read model may lag, or be rebuilt).
        let mut removed: BTreeMap<String, bool> = BTreeMap::new();
        for (key, h) in held.iter_mut() {
            if desired.units.contains_key(key) {
                continue;
            }
            let reason = if !processes.has(&h.id) {
                StopReason::NotInCatalog
            } else {
                let app = &h.id.app;
                let gone = match removed.get(app) {
                    Some(gone) => *gone,
                    None => {
                        let gone = app_removed(&context, app).await;
                        removed.insert(app.clone(), gone);
                        gone
                    }
                };
                if !gone {
                    continue;
                }
                StopReason::AppRemoved
            };
            h.tell(Want::Stop(reason));
        }
        restarts(&context, &mut held, &desired).await;
        // Claim what nobody runs, as room allows: units, then runnables' runs.
        let room = capacity.saturating_sub(held.len() + runs.len());
        let mut free: Vec<String> = desired
            .units
            .keys()
            .filter(|key| !held.contains_key(*key))
            .cloned()
            .collect();
        if let Some(wanted) = &wanted_runs {
            free.extend(runs.free(wanted, &context.leases.left_lately(context.lease)));
        }
        match context
            .leases
            .claim(&context.pool, &context.node, &free, room, context.lease)
            .await
        {
            Ok(claimed) => {
                for unit_lease in claimed {
                    let key = unit_lease.key.clone();
                    if runnable_run::is_runnable(&key) {
                        runs.start(&context, unit_lease);
                        continue;
                    }
                    let Some(wanted) = desired.units.get(&key) else {
                        context.leases.forget(&unit_lease);
                        continue;
                    };
                    tracing::info!(unit = key, node = context.node, "claimed a unit");
                    let (want, told) = watch::channel(Want::Run {
                        spec: wanted.spec.clone(),
                        generation: wanted.generation,
                        may_restart: false,
                    });
                    let (local_tx, local) = watch::channel(Local::Down);
                    let task = tokio::spawn(unit::run(
                        context.clone(),
                        wanted.id.clone(),
                        unit_lease.clone(),
                        told,
                        local_tx,
                    ));
                    held.insert(
                        key,
                        Held {
                            id: wanted.id.clone(),
                            want,
                            local,
                            task,
                            turn: None,
                            lease: unit_lease,
                        },
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "claiming units failed; retrying"),
        }
        // Run-out leases of units and runs nobody wants: their node was lost. Recorded apart:
        // the log's retries must not hold this loop up.
        let Some(taking) = expired_taking(!processes.is_empty(), wanted_runs.is_some()) else {
            continue;
        };
        let wanted: Vec<String> = desired
            .units
            .keys()
            .chain(wanted_runs.iter().flat_map(|w| w.keys()))
            .cloned()
            .collect();
        match bounded(limit, lease::take_expired(&context.pool, &wanted, taking)).await {
            Ok(expired) => {
                for (key, node) in expired {
                    if runnable_run::is_runnable(&key) {
                        tokio::spawn(runnable_run::record_lost(context.clone(), key, node));
                    } else {
                        tokio::spawn(record_lost(context.clone(), key, node));
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading run-out unit leases failed"),
        }
    }
    // The node is stopping: every unit and run stops, then every lease goes.
    for h in held.values_mut() {
        h.tell(Want::Stop(StopReason::NodeStopped));
    }
    runs.stop_all();
    for h in held.values_mut() {
        let _ = (&mut h.task).await;
    }
    runs.join_all().await;
    // The renewals end (their watchdog with them), then every lease goes.
    renewals_stop.send_replace(true);
    if tokio::time::timeout(limit, &mut renewals).await.is_err() {
        renewals.abort();
    }
    // Not the runs': each gave its own up, or left it to run out (its end unrecorded).
    let runs = crate::runnables::desired::PREFIX;
    lease::release_all(&context.pool, &context.node, runs, limit).await;
}

/// Which run-out leases to take: with processes in the catalog, the units' (as ever) and, when
/// the runs wanted are known, the runs'; without, only the runs'. Never a run's while the runs
/// wanted are unknown (its lease would be taken for an unwanted one's).
fn expired_taking(has_processes: bool, runs_known: bool) -> Option<lease::Taking<'static>> {
    let runs = crate::runnables::desired::PREFIX;
    match (has_processes, runs_known) {
        (true, true) => Some(lease::Taking::All),
        (true, false) => Some(lease::Taking::AllBut(runs)),
        (false, true) => Some(lease::Taking::Only(runs)),
        (false, false) => None,
    }
}

/// Whether `app`'s own stream says it is removed (or never was): `false` when it exists, or
/// when it cannot be read now.
async fn app_removed(context: &Context, app: &str) -> bool {
    match tokio::time::timeout(
        call_limit(context.lease),
        context.commands.app_environment(app),
    )
    .await
    {
        Ok(Ok(None)) => true,
        Ok(Ok(Some(_))) => {
            tracing::info!(
                app,
                "the apps read model does not show the app its stream has: its units keep running"
            );
            false
        }
        Ok(Err(e)) => {
            tracing::warn!(app, error = %e, "reading the app failed; its units keep running");
            false
        }
        Err(_) => {
            tracing::warn!(app, "reading the app took too long; its units keep running");
            false
        }
    }
}

/// Tells each wanted unit held here to run, and the one whose turn it is to restart into its
/// app's generation that it may.
async fn restarts(
    context: &Context,
    held: &mut BTreeMap<String, Held>,
    desired: &desired::Desired,
) {
    let limit = call_limit(context.lease);
    let mut apps: Vec<String> = held
        .iter()
        .filter(|(key, _)| desired.units.contains_key(*key))
        .map(|(_, h)| h.id.app.clone())
        .collect();
    apps.sort();
    apps.dedup();
    let mut standings = if apps.is_empty() {
        Some(BTreeMap::new())
    } else {
        match bounded(limit, desired::standings(&context.pool, &apps)).await {
            Ok(standings) => Some(standings),
            Err(e) => {
                tracing::warn!(error = %e, "reading the units read model failed; no restarts now");
                None
            }
        }
    };
    // In index order (not the ids' text order: 10 after 9).
    let mut order: Vec<(UnitId, String)> = held
        .iter()
        .map(|(key, h)| (h.id.clone(), key.clone()))
        .collect();
    order.sort();
    // What this node knows of its own units, ahead of the read model.
    if let Some(standings) = standings.as_mut() {
        for (_, key) in &order {
            if let Some(h) = held.get_mut(key) {
                end_turn(context, key, h, desired).await;
                if counts_down(h) {
                    mark_down(standings, &h.id);
                }
            }
        }
    }
    for (id, key) in order {
        let Some(wanted) = desired.units.get(&key) else {
            continue;
        };
        let Some(h) = held.get_mut(&key) else {
            continue;
        };
        let may_restart = match standings.as_mut() {
            // The read model unread: nothing restarts.
            None => false,
            Some(_) if h.turn.is_some() => true,
            Some(standings) => {
                let running = match *h.local.borrow() {
                    Local::Up(generation) => Some(generation),
                    _ => None,
                };
                let group = standings
                    .get(&group_of(&id))
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                let due = running.is_some_and(|g| g != wanted.generation)
                    && desired::may_restart(&id, wanted.generation, wanted.spec.units, group);
                match running {
                    Some(from) if due => {
                        let prefix = format!("{}.{}.{}.", id.app, id.env, id.process);
                        // Before asking: a renewal meanwhile must not take back a turn taken.
                        h.lease.hold_turn(true);
                        let taken = bounded(
                            limit,
                            lease::take_restart_turn(
                                &context.lease_pool,
                                &context.node,
                                &key,
                                &prefix,
                            ),
                        )
                        .await;
                        match taken {
                            Ok(true) => {
                                h.turn = Some(from);
                                mark_down(standings, &id);
                                true
                            }
                            Ok(false) => {
                                h.lease.hold_turn(false);
                                false
                            }
                            Err(e) => {
                                // It may have been taken, its answer lost: given back now if
                                // that can be, else by the next renewal (it is not held here).
                                tracing::warn!(unit = key, error = %e, "taking the restart turn failed");
                                let ended = bounded(
                                    limit,
                                    lease::end_restart_turn(
                                        &context.lease_pool,
                                        &context.node,
                                        &key,
                                    ),
                                )
                                .await;
                                if let Err(e) = ended {
                                    tracing::warn!(unit = key, error = %e, "giving back a restart turn maybe taken failed; the renewals will");
                                }
                                h.lease.hold_turn(false);
                                false
                            }
                        }
                    }
                    _ => false,
                }
            }
        };
        h.tell(Want::Run {
            spec: wanted.spec.clone(),
            generation: wanted.generation,
            may_restart,
        });
    }
}

/// Whether `h` counts as down for its process's restarts: it holds the restart turn, or its
/// process is starting, stopping or waiting to start again (not in error).
fn counts_down(h: &Held) -> bool {
    h.turn.is_some() || *h.local.borrow() == Local::Down
}

/// Its restart is over (up with another generation, in error, or no longer needed): its turn
/// goes back.
async fn end_turn(context: &Context, key: &str, h: &mut Held, desired: &desired::Desired) {
    let Some(from) = h.turn else {
        return;
    };
    let over = match *h.local.borrow() {
        Local::Up(generation) => generation != from,
        Local::Error => true,
        Local::Down => false,
    } || desired.units.get(key).is_some_and(|w| w.generation == from);
    if !over {
        return;
    }
    let ended = bounded(
        call_limit(context.lease),
        lease::end_restart_turn(&context.lease_pool, &context.node, key),
    )
    .await;
    match ended {
        Ok(()) => {
            h.turn = None;
            h.lease.hold_turn(false);
        }
        Err(e) => {
            tracing::warn!(unit = key, error = %e, "giving the restart turn back failed; retrying")
        }
    }
}

/// Counts `id` as down in `standings`, whatever the read model says.
fn mark_down(standings: &mut BTreeMap<Group, Vec<Standing>>, id: &UnitId) {
    let group = standings.entry(group_of(id)).or_default();
    match group.iter_mut().find(|s| s.index == id.index) {
        Some(standing) => standing.state = "starting".into(),
        None => group.push(Standing {
            index: id.index,
            state: "starting".into(),
            generation: 0,
        }),
    }
}

/// Records stopped, on `node` (lost), a unit of a run-out lease nobody wants any more.
async fn record_lost(context: Arc<Context>, key: String, node: String) {
    let Ok(id) = UnitId::parse(&key) else {
        return;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_catalog_takes_only_runs_leases_and_units_are_taken_without_the_runs() {
        use lease::Taking;
        let runs = crate::runnables::desired::PREFIX;
        assert_eq!(expired_taking(true, true), Some(Taking::All));
        assert_eq!(expired_taking(true, false), Some(Taking::AllBut(runs)));
        assert_eq!(expired_taking(false, true), Some(Taking::Only(runs)));
        assert_eq!(expired_taking(false, false), None);
    }

    #[test]
    fn short_leases_are_looked_at_more_often() {
        assert_eq!(tick(Duration::from_secs(30)), Duration::from_secs(1));
        assert_eq!(tick(Duration::from_secs(3)), Duration::from_millis(500));
    }

    #[test]
    fn a_unit_of_this_node_counts_down_as_soon_as_it_is() {
        let mut standings: BTreeMap<Group, Vec<Standing>> = BTreeMap::new();
        let id = UnitId::new("web", "prod", "http", 1);
        standings.insert(
            group_of(&id),
            vec![Standing {
                index: 1,
                state: "started".into(),
                generation: 4,
            }],
        );
        mark_down(&mut standings, &id);
        mark_down(&mut standings, &UnitId::new("web", "prod", "http", 2));
        let group = &standings[&group_of(&id)];
        assert_eq!(group.len(), 2);
        assert!(group.iter().all(|s| s.state == "starting"));
        assert_eq!(group[0].generation, 4);
    }
}
