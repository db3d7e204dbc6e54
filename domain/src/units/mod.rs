//! Units: the running copies of an app's long-running processes (the catalog's
//! `catalog.<app>.<env>.processes.<name>`), each a process that a worker node runs and watches.
//!
//! A unit is one stream, `unit-<app>.<env>.<process>.<index>`: where it runs (node, pid,
//! address), which restart generation of its app it runs, whether it is ready, how it ended and
//! how often it was restarted. Leases (the runner's) decide which node runs it; the stream only
//! records what that node did, and refuses what a node that no longer runs it says.

mod unit;

pub use unit::{
    backoff, StopReason, Unit, UnitCommand, UnitEvent, UnitId, UnitPhase, UnitStart, ERROR_AFTER,
    MAX_BACKOFF, STEADY_AFTER,
};
