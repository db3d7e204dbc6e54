//! Runnables on the runner's side: the reaper of idle runnables without an image (`reaper`, one
//! active node at a time), and the sandbox their start commands will run in (`sandbox`; nothing
//! starts one yet).
//!
//! Does not own: the runnable rules and what reaping records (`domain`, `commands`), the read
//! model the reaper reads (`projections`), the files put in a sandbox's tree.

mod reaper;
pub mod sandbox;

pub use reaper::LOCK_KEY;
pub use sandbox::{Limits, Sandbox, SandboxError, Sandboxed};

use bosun_commands::Commands;
use std::time::Duration;
use tokio::task::JoinHandle;

/// `runnables:` in the configuration, as the runner uses it.
#[derive(Clone, Debug)]
pub struct RunnableSettings {
    /// An idle runnable without an image is reaped once its last access is this old.
    pub reap_after: Duration,
    /// How often the reaper looks.
    pub reap_interval: Duration,
    /// What runnables' processes run in (with bwrap, whether they share the host's network).
    pub sandbox: Sandbox,
}

impl Default for RunnableSettings {
    fn default() -> Self {
        RunnableSettings {
            reap_after: Duration::from_secs(7 * 24 * 3600),
            reap_interval: Duration::from_secs(60),
            sandbox: Sandbox::Bwrap { network: false },
        }
    }
}

/// Starts the reaper. The sandbox is not checked here: nothing runs in it yet
/// ([`Sandbox::check`] is for when something does).
pub(crate) fn start(
    commands: Commands,
    settings: RunnableSettings,
    config: tokio_postgres::Config,
) -> Vec<JoinHandle<()>> {
    vec![tokio::spawn(reaper::run(commands, settings, config))]
}
