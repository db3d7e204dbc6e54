//! Who may read what: the read rules, decided here once so that `/v1`, every compat surface and
//! the CLI apply the same ones. Writes are authorized by the command handlers beside this.

use crate::actor::Actor;
use crate::error::CommandError;
use crate::execute::Commands;
use bosun_domain::identity::Scope;
use bosun_domain::DomainError;
use bosun_projections::read_models::jobs::{self as model, JobReaders};
use uuid::Uuid;

/// Which jobs `actor` may read: an admin every job; a user the jobs they submitted and the jobs
/// of orchestrations (which every reader may read). The same rule for the job list, a job, its
/// output and its stream (the live feed is an admin's).
pub fn job_readers(actor: &Actor) -> Result<JobReaders, CommandError> {
    actor.require(Scope::Read)?;
    if actor.is_admin() {
        return Ok(JobReaders::All);
    }
    match actor.username() {
        Some(user) => Ok(JobReaders::SubmitterOrOrchestration(user.to_string())),
        None => Err(CommandError::Unauthenticated),
    }
}

impl Commands {
    /// A job as `actor` may read it: 404 if there is none, 403 if it is not theirs to read.
    pub async fn read_job(
        &self,
        actor: &Actor,
        job_id: Uuid,
    ) -> Result<model::JobView, CommandError> {
        let readers = job_readers(actor)?;
        let job = self.job_view(job_id).await?;
        if readers.admits(&job) {
            Ok(job)
        } else {
            Err(CommandError::Forbidden(format!(
                "job {job_id} is not yours to read: only its submitter, the readers of its orchestration and admins may"
            )))
        }
    }

    /// Whether `actor` may read job `job_id`'s stream (false, not an error, for a job that does
    /// not exist: the caller answers as for any unreadable stream).
    pub async fn may_read_job(&self, actor: &Actor, job_id: Uuid) -> Result<bool, CommandError> {
        match self.read_job(actor, job_id).await {
            Ok(_) => Ok(true),
            Err(CommandError::Forbidden(_) | CommandError::Domain(DomainError::NotFound(_))) => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bosun_domain::identity::Scopes;

    fn user(name: &str, admin: bool) -> Actor {
        Actor::User {
            username: name.into(),
            admin,
            teams: vec![],
            token_id: Uuid::nil(),
            scopes: Scopes::all(),
        }
    }

    #[test]
    fn an_admin_reads_every_job_and_a_user_their_own_and_orchestrations() {
        assert_eq!(job_readers(&user("root", true)).unwrap(), JobReaders::All);
        assert_eq!(
            job_readers(&user("ann", false)).unwrap(),
            JobReaders::SubmitterOrOrchestration("ann".into())
        );
        assert!(matches!(
            job_readers(&Actor::Anonymous),
            Err(CommandError::Unauthenticated)
        ));
    }
}
