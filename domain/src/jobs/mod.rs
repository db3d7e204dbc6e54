//! Jobs: a task of the catalog run for an app and environment, from submission to its end.

mod catalog;
mod job;
mod variables;

pub use catalog::{Catalog, CatalogEntry, EnvCatalog, ProcessSpec, TaskSpec, TaskSummary};
pub use job::{
    CatalogRun, FinalStatus, Job, JobCommand, JobEvent, JobStatus, OutputStream, Plan, PlannedTask,
    Submission, TaskStatus,
};
pub use variables::{Variables, MAX_VALUE_BYTES};
