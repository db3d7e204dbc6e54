//! Jobs: a task of the catalog run for an app and environment, from submission to its end; an
//! orchestration's tasks run in order as one job; a role job's instances run at once as one job
//! (`roles`), under a name unique among its submitter's role jobs (`name`).

mod catalog;
mod job;
mod name;
mod roles;
mod variables;

pub use catalog::{Catalog, CatalogEntry, EnvCatalog, ProcessSpec, TaskSpec, TaskSummary};
pub use job::{
    CatalogRun, FinalStatus, Job, JobCommand, JobEvent, JobStatus, OutputStream, Plan, PlannedTask,
    Submission, TaskStatus,
};
pub use name::{job_name_key, JobName, JobNameCommand, JobNameEvent};
pub use roles::{
    check_image, check_job_name, check_retry_count, check_role_name, check_roles, task_parts,
    PlannedRole, Role, RoleJob, RoleRun, RoleTarget, RoleTask, MAX_COMMAND_BYTES, MAX_IMAGE_CHARS,
    MAX_INSTANCES, MAX_NAME_CHARS, MAX_RETRY_COUNT, MAX_ROLES, MAX_TOTAL_INSTANCES,
};
pub use variables::{Variables, MAX_VALUE_BYTES};
