//! Units: an app's long-running processes (`catalog.<app>.<env>.processes.<name>`), run by the
//! worker nodes as supervised units, `units: N` of each.
//!
//! One supervisor per node, every second: the units wanted are every registered app (the `apps`
//! read model: not removed; none while that table does not exist) × the catalog's processes of
//! that app × their `units`; a node claims the wanted units nobody holds (or whose holder's lease
//! ran out), as many as it has room for (`runner.units`: unlimited by default, none on a node
//! with `workers: 0` unless set), renews its leases every third of `runner.lease_seconds`, stops
//! the units no longer wanted (app removed, process or index gone from the catalog: recorded as
//! such), and kills at once a unit whose lease another node took. Leases that ran out on units
//! nobody wants any more (a lost node's, of an app removed meanwhile) are taken and their units
//! recorded stopped there.
//!
//! Each unit it holds (`unit`) runs as a process in its own group, with the catalog's `env`,
//! then the app's environment, then its port (from `runner.unit_ports`) in `port_env`; it dies
//! with the server, even one killed with SIGKILL (`process`). It is `started` once it accepts
//! connections on its port or has stayed up a little while. One that exits is recorded and started
//! again after a backoff (1 s, doubling to 30 s; a minute up and it starts over). A node that
//! dies leaves its leases to run out: after `lease_seconds` another node claims its units and
//! starts them there.
//!
//! **Rolling restarts.** An app's `restart_generation` (restarts asked for, environment changes
//! that restart) is the generation its units should run: a unit started with an older one is
//! stopped and started again with the current environment, but only once every unit of the same
//! app, environment and process with a lower index runs the new generation and is `started` (as
//! the `units` read model says), so of N units at least N − 1 are up throughout, one restart at
//! a time in index order; a single unit just restarts. A restart naming one process bumps the
//! app's one generation, so every process of the app is restarted (one unit at a time each).
//!
//! When the runner is stopped (`Workers` dropped or stopped), the node's units are stopped
//! (SIGTERM to their groups at once, SIGKILL after `kill_grace_seconds`), recorded as stopped and
//! their leases given up, so another node can take them at once. A unit's output is not kept.
//!
//! Every event is appended through `Commands` as the actor `runner`, the node as its source.
//!
//! Does not own: the unit's rules (`bosun_domain::units`), its read model
//! (`bosun_projections::read_models::units`), the app's environment (`bosun_commands`).

mod desired;
mod lease;
mod ports;
mod process;
mod stream;
mod supervisor;
mod unit;

pub use ports::PortRange;
pub(crate) use supervisor::{start, Supervisor};

use crate::settings::RunnerSettings;
use bosun_commands::{Commands, Origin};
use deadpool_postgres::Pool;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
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
    pub pool: Pool,
    pub settings: RunnerSettings,
    /// This node, as its leases and its units' events name it.
    pub node: String,
    pub origin: Origin,
    pub lease: Duration,
    /// Between SIGTERM and SIGKILL when a unit is stopped.
    pub grace: Duration,
    /// Set once the node is stopping: an exit then is the stop's, and nothing starts.
    pub stopping: AtomicBool,
    /// The process group of each unit running here, for a stop that cannot wait (a drop).
    pub groups: Mutex<BTreeMap<String, u32>>,
}
