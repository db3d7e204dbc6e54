//! `runner:` in the configuration.

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunnerSettings {
    /// Jobs this node runs at once; 0: it runs none (an API-only node).
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Between SIGTERM and SIGKILL when a job is killed or times out.
    #[serde(default = "default_kill_grace")]
    pub kill_grace_seconds: u64,
    /// A worker renews its lease on a job every third of this; a lease not renewed for this long
    /// means the worker is gone and the job is finished as an error.
    #[serde(default = "default_lease")]
    pub lease_seconds: u64,
    /// Output kept per job; beyond it, output is cut with a marker line.
    #[serde(default = "default_output_limit")]
    pub output_limit_bytes: u64,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        RunnerSettings {
            workers: default_workers(),
            kill_grace_seconds: default_kill_grace(),
            lease_seconds: default_lease(),
            output_limit_bytes: default_output_limit(),
        }
    }
}

fn default_workers() -> usize {
    4
}
fn default_kill_grace() -> u64 {
    5
}
fn default_lease() -> u64 {
    30
}
fn default_output_limit() -> u64 {
    16 * 1024 * 1024
}
