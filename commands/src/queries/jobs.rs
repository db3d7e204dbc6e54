//! Reading jobs, by one rule for the list, a job, its output and its stream (the live feed is an
//! admin's): its submitter, whoever may read its orchestration (every reader), and admins; but a
//! job of a registered app (or an orchestration job running one of its tasks) submitted while
//! that app existed only by members of one of the app's teams (as they are when it is read),
//! admins, and, for a job of its task, that app's token. A job submitted before the app was
//! registered (a catalog app's job from before anyone took its name) or after it was removed
//! keeps the plain rule: registering a name takes over no one's earlier jobs.

use super::{Page, Queries};
use crate::actor::Actor;
use crate::error::CommandError;
use bosun_domain::DomainError;
use bosun_projections::read_models::jobs::{self as model, JobQuery, JobReaders, JobView};
use uuid::Uuid;

/// Which jobs `actor` may read: an admin every job; a user the jobs they submitted and the jobs
/// of orchestrations, and the jobs of the registered apps of their teams, but no job of a
/// registered app of none of their teams (jobs submitted while the app existed); an app token
/// its app's jobs (since it was created).
pub fn job_readers(actor: &Actor) -> Result<JobReaders, CommandError> {
    if let Some(token) = actor.app_token() {
        return Ok(JobReaders::App(token.app().to_string()));
    }
    actor.require_reader()?;
    if actor.is_admin() {
        return Ok(JobReaders::All);
    }
    match actor {
        Actor::User {
            username, teams, ..
        } => Ok(JobReaders::User {
            username: username.clone(),
            teams: teams.clone(),
        }),
        _ => Err(CommandError::Unauthenticated),
    }
}

/// What a job list is narrowed to, besides what its reader may see.
#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    pub status: Option<String>,
    pub app: Option<String>,
    pub env: Option<String>,
    pub orchestration_id: Option<String>,
}

impl Queries {
    /// The jobs `actor` may read that match `filter`, newest first, and how many in all.
    pub async fn jobs(
        &self,
        actor: &Actor,
        filter: JobFilter,
        page: Page,
    ) -> Result<(Vec<JobView>, i64), CommandError> {
        let query = JobQuery {
            readers: job_readers(actor)?,
            status: filter.status,
            app: filter.app,
            env: filter.env,
            orchestration_id: filter.orchestration_id,
            limit: page.limit,
            offset: page.offset,
        };
        Ok(model::list(&**self.client().await?, &query).await?)
    }

    /// A job as `actor` may read it: 404 if there is none, 403 if it is not theirs to read.
    pub async fn job(&self, actor: &Actor, job_id: Uuid) -> Result<JobView, CommandError> {
        let readers = job_readers(actor)?;
        let (job, admitted) = model::get_for(&**self.client().await?, job_id, &readers)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("no job {job_id}")))?;
        if admitted {
            Ok(job)
        } else {
            Err(CommandError::Forbidden(format!(
                "job {job_id} is not yours to read: only its submitter, the readers of its orchestration and admins may, and a job submitted while its app was registered only members of one of the app's teams, admins and the app's token"
            )))
        }
    }

    /// Whether `actor` may read job `job_id` (false, not an error, for a job that does not
    /// exist: the caller answers as for any unreadable stream).
    pub async fn may_read_job(&self, actor: &Actor, job_id: Uuid) -> Result<bool, CommandError> {
        match self.job(actor, job_id).await {
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
            teams: vec!["ops".into()],
            token_id: Uuid::nil(),
            scopes: Scopes::all(),
        }
    }

    #[test]
    fn an_admin_reads_every_job_and_a_user_by_their_name_and_teams() {
        assert_eq!(job_readers(&user("root", true)).unwrap(), JobReaders::All);
        assert_eq!(
            job_readers(&user("ann", false)).unwrap(),
            JobReaders::User {
                username: "ann".into(),
                teams: vec!["ops".into()]
            }
        );
        assert!(matches!(
            job_readers(&Actor::Anonymous),
            Err(CommandError::Unauthenticated)
        ));
    }

    #[test]
    fn an_app_token_reads_its_apps_jobs_only() {
        let token = Actor::App(crate::actor::AppActor::new("shop", Uuid::nil(), "ann"));
        assert_eq!(job_readers(&token).unwrap(), JobReaders::App("shop".into()));
    }
}
