//! Runnables on the runner's side: their runs on the worker nodes, supervised units beside the
//! apps' units (`run`; the runs wanted, `desired`; each run's tree, `tree`; its output, `log`;
//! its stream, `stream`), in the sandbox (`sandbox`); and the reaper of idle runnables without
//! an image (`reaper`, one active node at a time).
//!
//! Does not own: the runnable rules and what a run or reaping records (`domain`, `commands`),
//! the read model the reaper and the supervisor read (`projections`), the lease table and its
//! renewals (`units`).

pub(crate) mod desired;
mod log;
mod reaper;
pub(crate) mod run;
pub mod sandbox;
mod stream;
pub(crate) mod tree;

pub use reaper::LOCK_KEY;
pub use sandbox::{Limits, Sandbox, SandboxError, Sandboxed};

use bosun_commands::Commands;
use bosun_domain::runnables::FileLimits;
use std::path::PathBuf;
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
    /// Where each run's tree is made: a fresh folder per run (removed once it ended) in a
    /// folder of each node's (the work dir may be shared by the nodes of a host; the folders of
    /// its dead nodes are removed when a node starts).
    pub work_dir: PathBuf,
    /// The output kept of one run; beyond it, output is cut with a marker line.
    pub max_log_bytes: u64,
    /// The limits of a runnable's files, which a sync back keeps too.
    pub limits: FileLimits,
}

/// The default `runnables.work_dir`: `bosun-runnables` in the system's temporary folder.
pub fn default_work_dir() -> PathBuf {
    std::env::temp_dir().join("bosun-runnables")
}

/// The default `runnables.max_log_bytes`: 1 MiB a run.
pub const DEFAULT_MAX_LOG_BYTES: u64 = 1024 * 1024;

impl Default for RunnableSettings {
    fn default() -> Self {
        RunnableSettings {
            reap_after: Duration::from_secs(7 * 24 * 3600),
            reap_interval: Duration::from_secs(60),
            sandbox: Sandbox::Bwrap { network: false },
            work_dir: default_work_dir(),
            max_log_bytes: DEFAULT_MAX_LOG_BYTES,
            limits: FileLimits::default(),
        }
    }
}

/// Starts the reaper. The sandbox is not checked here: a run that cannot start in it records
/// why (`RunFailed`). The runs themselves are the units' supervisor's (`run`).
pub(crate) fn start(
    commands: Commands,
    settings: RunnableSettings,
    config: tokio_postgres::Config,
) -> Vec<JoinHandle<()>> {
    vec![tokio::spawn(reaper::run(commands, settings, config))]
}
