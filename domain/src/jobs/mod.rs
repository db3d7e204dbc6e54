//! Jobs: a task of the catalog run for an app and environment, from submission to its end.

mod job;
mod variables;

pub use job::{FinalStatus, Job, JobCommand, JobEvent, JobStatus, OutputStream, Submission};
pub use variables::{Variables, MAX_VALUE_BYTES};
