//! Orchestrations (Keboola's Orchestrator): a named, ordered list of tasks with a cron schedule
//! and notifications; the jobs that run them are jobs (`crate::jobs`) with a task list. Their
//! URLs that hold secrets are sealed in events and shown redacted (`url`).

mod crontab;
mod orchestration;
mod task;
mod url;

pub use crontab::Crontab;
pub use orchestration::{
    check_name, due_slot, scheduled_job_id, Changes, Definition, Orchestration,
    OrchestrationCommand, OrchestrationEvent, ScheduledRun, CATCH_UP_AFTER_SECONDS,
};
pub use task::{
    Channel, Notification, NotificationInput, Task, TaskInput, TaskRules, TaskTarget,
    DEFAULT_TOLERANCE_PERCENT, MAX_TIMEOUT_MINUTES,
};
pub use url::{redacted, StoredUrl, UrlField};

#[cfg(test)]
mod tests;
