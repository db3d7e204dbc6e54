//! Running work: job processes, worker leases and the reaper of lost jobs; later HTTP tasks, the
//! cron scheduler and reactors (timeouts, notifications, orchestration task sequencing).
//!
//! Owns: claiming waiting jobs (`FOR UPDATE SKIP LOCKED`, then an exclusive lease row), running
//! each as a process in its own process group with its variables as environment variables,
//! capturing its output into `JobOutputAppended` events in batches, killing it (SIGTERM to the
//! group, SIGKILL after a grace period) on request or timeout, and finishing jobs whose worker
//! stopped renewing its lease.
//!
//! Does not own: job rules (`domain`), appending (`commands`), read models (`projections`), HTTP
//! routes (`api`).

mod lease;
mod process;
mod settings;
mod worker;

pub use settings::RunnerSettings;
pub use worker::{start, Workers};
