//! Running work: job processes and HTTP tasks, orchestration jobs' task sequencing, worker
//! leases and the reaper of lost jobs, the cron scheduler, and the notifications reactor.
//!
//! Owns: claiming waiting jobs (`FOR UPDATE SKIP LOCKED`, then an exclusive lease row), running
//! each as a process in its own process group with its variables as environment variables,
//! capturing its output into `JobOutputAppended` events in batches, killing it (SIGTERM to the
//! group, SIGKILL after a grace period) on request or timeout, and finishing jobs whose worker
//! stopped renewing its lease; running an orchestration job's tasks in order (processes, or HTTP
//! POSTs for `component_url` tasks); running a role job's instances all at once (catalog tasks,
//! or commands in the runnables' sandbox), again while its retries last; the cron scheduler and the notifications reactor, each
//! active on one node at a time (a PostgreSQL advisory lock); and apps' long-running catalog
//! processes as supervised units (`units`: leased per unit, restarted with backoff, rolled one at
//! a time on a restart, taken over from a lost node, stopped with their app); and the calls to
//! service APIs that create, bind, unbind and remove service instances (`services`: made for the
//! request that recorded the intent, tried again by a reactor active on one node at a time); and
//! runnables (`runnables`): their runs as supervised units in the sandbox (bubblewrap), their
//! output as logs and their files synced back, and the reaper of idle runnables without an image
//! (one node at a time).
//!
//! Does not own: job rules (`domain`), appending (`commands`), read models (`projections`), HTTP
//! routes (`api`).

mod catalog_task;
mod claim;
mod http_task;
mod job_stream;
mod leader;
mod lease;
mod mail;
mod notify;
mod orchestration_job;
mod output;
mod parallel_job;
mod process;
mod reaper;
pub mod runnables;
mod scheduler;
mod services;
mod settings;
mod supervise;
mod units;
mod workers;

pub use http_task::orchestration_token;
pub use mail::send_mail;
pub use notify::LOCK_KEY as NOTIFIER_LOCK_KEY;
pub use runnables::{
    Limits, RunnableSettings, Sandbox, SandboxError, Sandboxed,
    LOCK_KEY as RUNNABLE_REAPER_LOCK_KEY,
};
pub use scheduler::LOCK_KEY as SCHEDULER_LOCK_KEY;
pub use services::{
    AppRemoval, Finished, Health, InstanceStatus, ServiceCalls, ServiceSettings,
    LOCK_KEY as SERVICE_CALLS_LOCK_KEY,
};
pub use settings::{NotificationSettings, RunnerSettings, SmtpSettings};
pub use units::PortRange;
pub use workers::{start, Setup, StartError, Workers};
