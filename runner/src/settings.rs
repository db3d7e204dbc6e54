//! `runner:` in the configuration.

use secrecy::SecretString;
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
    /// The ports this node gives its units (each unit gets a free one in its `port_env`):
    /// `"20000-20999"` by default, from 1024 up.
    #[serde(default)]
    pub unit_ports: crate::units::PortRange,
    /// The most units this node runs at once (0: none); when not set, unlimited, or none on a
    /// node with `workers: 0` (an API-only node). Units beyond every node's room wait until one
    /// has room.
    #[serde(default)]
    pub units: Option<usize>,
    /// Whether a role job's command may run (in the runnables' sandbox): not a `runner:` key,
    /// but `compat.openpai.commands`, which the configuration copies here. A command submitted
    /// while it was allowed does not run once it is not: its instance fails saying so.
    #[serde(skip)]
    pub role_commands: bosun_commands::RoleCommands,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        RunnerSettings {
            workers: default_workers(),
            kill_grace_seconds: default_kill_grace(),
            lease_seconds: default_lease(),
            output_limit_bytes: default_output_limit(),
            unit_ports: Default::default(),
            units: None,
            role_commands: Default::default(),
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

/// `notifications:` in the configuration: how notifications are delivered.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationSettings {
    /// Where email goes; without it, email notifications fail (recorded) and webhooks still work.
    pub smtp: Option<SmtpSettings>,
    /// Signs each webhook's body: `X-Bosun-Signature: sha256=<hex HMAC-SHA256>`. Its Debug
    /// shows nothing of it.
    pub webhook_secret: Option<SecretString>,
    /// Attempts per notification before it is given up (recorded as `NotificationFailed`).
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Wait before the second attempt; doubled for each next one.
    #[serde(default = "default_backoff_ms")]
    pub backoff_ms: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    pub from: String,
}

fn default_attempts() -> u32 {
    4
}
fn default_backoff_ms() -> u64 {
    1000
}
fn default_smtp_port() -> u16 {
    25
}
