//! Units: an app's long-running processes (`catalog.<app>.<env>.processes.<name>`), run by the
//! worker nodes as supervised units, `units: N` of each.
//!
//! One supervisor per node, every second (a sixth of `runner.lease_seconds` if that is less):
//! the units wanted are every registered app (the `apps` read model: not removed; none while
//! that table does not exist) × the catalog's processes of that app × their `units`; a node
//! claims the wanted units nobody holds (or whose holder's lease ran out), as many as it has
//! room for (`runner.units`: unlimited by default, none on a node with `workers: 0` unless set),
//! stops the units no longer wanted (process or index gone from the catalog; app removed, which
//! the app's own stream must confirm: a read model that lags or is being rebuilt never stops a
//! unit), recorded as such. Leases that ran out on units nobody wants any more (a lost node's,
//! of an app removed meanwhile) are taken and their units recorded stopped there, off the
//! supervisor's loop. Every database call of the loop is bounded by a third of a lease.
//!
//! **Leases** (`renewal`): renewed apart from that loop, every sixth of a lease, on a connection
//! of their own, only those of the units this node runs (any other lease of the node is given
//! up; a claim is one statement, and renewals never wait for it). A lease counts as good
//! until a third of a lease before it could run out, measured from when the renewal that
//! extended it was *sent*; past that, or once another node took it, the unit's group is killed
//! at once, so a node cut off from the database has killed its units before anyone may start
//! them elsewhere. Just before starting a unit's process, the node checks in the database that
//! it holds the unit's lease for a third of a lease more, and records there the unit's port:
//! ports are unique per host across the leases, so two nodes of one host never give the same
//! port to two units.
//!
//! Each unit it holds (`unit`) runs as a process in its own group, with the app's environment,
//! then the catalog's `env` over it (the operator wins, as for jobs), then its port (from
//! `runner.unit_ports`) in `port_env`. Whichever way it ends (on its own, stopped, killed), its
//! whole group is killed before its main process is reaped; it dies with the server, even one
//! killed with SIGKILL, though processes the unit itself started survive that one case
//! (`process`). It is `started` once it accepts connections on its port or has stayed up a
//! little while. One that exits is recorded and started again after a backoff (1 s, doubling to
//! 30 s; a minute up and it starts over). A node that dies leaves its leases to run out: after
//! `lease_seconds` another node claims its units and starts them there.
//!
//! **Rolling restarts.** An app's `restart_generation` (restarts asked for, environment changes
//! that restart) is the generation its units should run: a unit started with another one (an
//! older one, or any of a former app of that name, removed and created again) is stopped and
//! started again with the current environment, but only once every *other* unit of the same app,
//! environment and process is `started` and every one with a lower index runs the new
//! generation (as the `units` read model says, and for the units this node runs, as it knows
//! them: one it just let restart counts as down until it is up again), so of N units at least
//! N − 1 are up throughout, one restart at a time in index order, even when a restart is asked
//! for while another rolls. Units in `error` (failing again and again) with an older generation
//! hold nothing up and count as none down: they start with the current generation at their next
//! try. One in `error` with the generation wanted failed on it: the roll stops there until
//! another release (a bad release does not go through every unit). When the
//! units read model cannot be read, nothing restarts. A single unit just restarts. A restart
//! naming one process bumps the app's one generation, so every process of the app is restarted
//! (one unit at a time each). Whichever nodes run them, one unit of a process restarts at a
//! time: before it stops it takes its process's restart turn (`lease`), and gives it back once
//! it is up again, so a read model that has not seen a stop yet cannot let a second one go.
//!
//! When the runner is stopped (`Workers` dropped or stopped), the node's units are stopped
//! (SIGTERM to their groups at once, SIGKILL after `kill_grace_seconds`), recorded as stopped and
//! their leases given up, so another node can take them at once. A unit's output is not kept.
//!
//! Every event is appended through `Commands` as the actor `runner`, the node as its source.
//!
//! Runnables' runs are supervised units too, claimed by the same supervisor from the same room,
//! their leases (`runnable:<uuid>`) in the same table and renewed by the same renewals, their
//! process groups in the same `Context::groups` (`crate::runnables::run` runs each one).
//!
//! Does not own: the unit's rules (`bosun_domain::units`), its read model
//! (`bosun_projections::read_models::units`), the app's environment (`bosun_commands`).

mod desired;
pub(crate) mod lease;
mod ports;
pub(crate) mod process;
pub(crate) mod renewal;
mod stream;
mod supervisor;
mod unit;

pub use ports::PortRange;
pub(crate) use supervisor::{start, Supervisor};

use crate::settings::RunnerSettings;
use bosun_commands::{Commands, Origin};
use deadpool_postgres::Pool;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// Prepares the unit leases table.
pub(crate) async fn prepare(
    client: &mut tokio_postgres::Client,
) -> Result<(), bosun_eventstore::migrate::MigrationError> {
    lease::prepare(client).await
}

/// What the supervisor and its units share.
pub(crate) struct Context {
    pub commands: Commands,
    /// The pool shared with the API and the job workers: reads, claims, the log's.
    pub pool: Pool,
    /// The renewals' own connection (one): nothing else waits for it, nor it for anything else.
    pub renewal_pool: Pool,
    /// The units' lease calls that must not wait behind a busy `pool` (one connection): ports
    /// and restart turns.
    pub lease_pool: Pool,
    pub settings: RunnerSettings,
    /// The runnables' runs (`crate::runnables::run`): their sandbox, trees and limits.
    pub runnables: crate::runnables::RunnableSettings,
    /// This node, as its leases and its units' events name it.
    pub node: String,
    pub origin: Origin,
    pub lease: Duration,
    /// Between SIGTERM and SIGKILL when a unit is stopped.
    pub grace: Duration,
    /// Set once the node is stopping: an exit then is the stop's, and nothing starts.
    pub stopping: AtomicBool,
    /// The process group of each unit running here, for a stop that cannot wait (a drop) and a
    /// kill that must not (a lease lost).
    pub groups: Arc<process::Groups>,
    /// The leases of the units running here.
    pub leases: Arc<renewal::Leases>,
    /// This node's own folder of the runnables' work dir, locked while it lives.
    pub work_folder: crate::runnables::run::WorkFolder,
}
