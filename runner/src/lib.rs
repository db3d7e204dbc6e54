//! Running work: job processes and HTTP tasks, worker leases, the cron scheduler, and reactors
//! (timeouts, notifications, orchestration task sequencing).
//!
//! Does not own: job rules (`domain`), read models (`projections`), HTTP routes (`api`).
