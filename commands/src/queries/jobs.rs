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
use bosun_projections::read_models::jobs::{
    self as model, JobCursor, JobKind, JobOrder, JobQuery, JobReaders, JobView,
};
use serde_json::Value;
use std::collections::HashMap;
use tokio_postgres::GenericClient;
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
    /// Submitted by this actor (a user's name).
    pub created_by: Option<String>,
    /// Named so (a role job's name, or any job's `name`).
    pub name: Option<String>,
    /// Of this kind only (`JobKind::Roles`: role jobs).
    pub kind: Option<JobKind>,
    /// Submitted by any of these users (none: by anyone; with `created_by`, both must hold).
    pub created_by_any: Vec<String>,
    /// In any of these statuses (none: in any; with `status`, both must hold).
    pub statuses: Vec<String>,
    /// Holding its name now (`true`: a role job whose name is not released), or not.
    pub name_held: Option<bool>,
    /// Its name or its submitter's name contains this text (case-sensitive).
    pub name_or_creator_contains: Option<String>,
    /// The order (default: newest first).
    pub order: JobOrder,
    /// Only the jobs after this one, in the default order.
    pub after: Option<JobCursor>,
}

/// Who submitted a job, as the metadata of its `JobSubmitted` event recorded the call: the
/// token, its holder, the user agent (`None` where the call had none, as a scheduled run).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubmissionMeta {
    pub token_id: Option<Uuid>,
    pub actor: Option<String>,
    pub user_agent: Option<String>,
}

impl SubmissionMeta {
    fn of(metadata: &Value) -> Self {
        let text = |name: &str| metadata[name].as_str().map(str::to_string);
        SubmissionMeta {
            token_id: metadata["token_id"]
                .as_str()
                .and_then(|t| Uuid::parse_str(t).ok()),
            actor: text("actor"),
            user_agent: text("user_agent"),
        }
    }
}

/// A job as `actor` may read it: 404 if there is none, 403 if it is not theirs to read. Also
/// what a command on a job that needs its reader asks (a restart).
pub(crate) async fn readable_job(
    client: &impl GenericClient,
    actor: &Actor,
    job_id: Uuid,
) -> Result<JobView, CommandError> {
    let readers = job_readers(actor)?;
    let (job, admitted) = model::get_for(client, job_id, &readers)
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

impl Queries {
    /// The jobs `actor` may read that match `filter`, newest first, and how many in all,
    /// counted up to [`COUNT_CAP`](bosun_projections::read_models::COUNT_CAP) (above it: more).
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
            created_by: filter.created_by,
            created_by_any: filter.created_by_any,
            name: filter.name,
            kind: filter.kind,
            statuses: filter.statuses,
            name_held: filter.name_held,
            name_or_creator_contains: filter.name_or_creator_contains,
            order: filter.order,
            after: filter.after,
            limit: page.limit,
            offset: page.offset,
        };
        Ok(model::list(&**self.client().await?, &query).await?)
    }

    /// The role job of `owner`'s that holds the name `name` now, if `actor` may read it under
    /// the rule of [`Queries::job`]. None if no job does (never submitted, or its name
    /// released) and none if it is not `actor`'s to read: names are guessable, so whether
    /// another's name is taken is not told (unlike a job's id, which is not).
    pub async fn named_job(
        &self,
        actor: &Actor,
        owner: &str,
        name: &str,
    ) -> Result<Option<JobView>, CommandError> {
        job_readers(actor)?;
        let client = self.client().await?;
        let Some(job_id) = model::named(&**client, owner, name).await? else {
            return Ok(None);
        };
        match readable_job(&**client, actor, job_id).await {
            Ok(job) => Ok(Some(job)),
            // Not the actor's to read, or released between the two reads.
            Err(CommandError::Forbidden(_) | CommandError::Domain(DomainError::NotFound(_))) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// A job as `actor` may read it: 404 if there is none, 403 if it is not theirs to read.
    pub async fn job(&self, actor: &Actor, job_id: Uuid) -> Result<JobView, CommandError> {
        readable_job(&**self.client().await?, actor, job_id).await
    }

    /// Who submitted each of `job_ids` that `actor` may read (by the rule of [`Queries::jobs`],
    /// in the same statement: a page of jobs costs one query, not one per job); a job `actor`
    /// may not read, or that does not exist, is left out.
    pub async fn job_submissions(
        &self,
        actor: &Actor,
        job_ids: &[Uuid],
    ) -> Result<HashMap<Uuid, SubmissionMeta>, CommandError> {
        let readers = job_readers(actor)?;
        if job_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = model::submissions_for(&**self.client().await?, job_ids, &readers).await?;
        Ok(rows
            .into_iter()
            .map(|(id, metadata)| (id, SubmissionMeta::of(&metadata)))
            .collect())
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

    /// A catalog job of `shop/production/build` submitted by `actor` from `user_agent`.
    async fn submitted(
        commands: &crate::Commands<bosun_eventstore::PgEventStore>,
        actor: &Actor,
        user_agent: &str,
    ) -> Uuid {
        let catalog: bosun_domain::jobs::Catalog = serde_json::from_value(
            serde_json::json!({"shop": {"production": {"build": {"command": ["true"]}}}}),
        )
        .unwrap();
        let origin = crate::Origin {
            user_agent: Some(user_agent.into()),
            ..crate::Origin::default()
        };
        let request = crate::jobs::SubmitJob {
            app: "shop".into(),
            env: "production".into(),
            task: "build".into(),
            variables: Default::default(),
            name: None,
            timeout_seconds: None,
            notification_emails: vec![],
            idempotency_key: None,
        };
        match commands
            .submit_job(actor, &origin, &catalog, request)
            .await
            .unwrap()
        {
            crate::jobs::Submitted::Created(job, _) => job.id,
            crate::jobs::Submitted::Existing(job) => job.id,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_submissions_of_a_page_of_jobs_are_read_for_those_the_reader_may_read() {
        let config = bosun_eventstore::testing::fresh_database().await;
        let store = bosun_eventstore::PgEventStore::open(&config).await.unwrap();
        let projections = bosun_projections::Projections::new(bosun_projections::all());
        projections.prepare(&config).await.unwrap();
        let running = projections.start(store.clone(), &config).await.unwrap();
        let commands = crate::Commands::new(store.clone(), running.freshness());
        let queries = Queries::new(store);
        let (ann_token, bob_token) = (Uuid::new_v4(), Uuid::new_v4());
        let ann = Actor::User {
            username: "ann".into(),
            admin: false,
            teams: vec![],
            token_id: ann_token,
            scopes: Scopes::all(),
        };
        let bob = Actor::User {
            username: "bob".into(),
            admin: false,
            teams: vec![],
            token_id: bob_token,
            scopes: Scopes::all(),
        };
        let anns = submitted(&commands, &ann, "ann's agent").await;
        let bobs = submitted(&commands, &bob, "bob's agent").await;
        let unknown = Uuid::new_v4();
        let ids = [anns, bobs, unknown];

        let seen = queries
            .job_submissions(&user("root", true), &ids)
            .await
            .unwrap();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(
            seen[&anns],
            SubmissionMeta {
                token_id: Some(ann_token),
                actor: Some("ann".into()),
                user_agent: Some("ann's agent".into()),
            }
        );
        assert_eq!(seen[&bobs].actor.as_deref(), Some("bob"));
        // Ann reads her own job's submission, not bob's (a job she may not read).
        let seen = queries.job_submissions(&ann, &ids).await.unwrap();
        assert_eq!(seen.keys().collect::<Vec<_>>(), [&anns]);
        assert!(queries.job_submissions(&ann, &[]).await.unwrap().is_empty());
        assert!(matches!(
            queries.job_submissions(&Actor::Anonymous, &ids).await,
            Err(CommandError::Unauthenticated)
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_named_job_is_the_role_job_holding_its_owners_name_for_its_readers() {
        let config = bosun_eventstore::testing::fresh_database().await;
        let store = bosun_eventstore::PgEventStore::open(&config).await.unwrap();
        let projections = bosun_projections::Projections::new(bosun_projections::all());
        projections.prepare(&config).await.unwrap();
        let running = projections.start(store.clone(), &config).await.unwrap();
        let commands = crate::Commands::new(store.clone(), running.freshness());
        let queries = Queries::new(store);
        let catalog: bosun_domain::jobs::Catalog = serde_json::from_value(
            serde_json::json!({"ml": {"production": {"train": {"command": ["true"]}}}}),
        )
        .unwrap();
        let (ann, bob) = (user("ann", false), user("bob", false));
        let request = crate::SubmitRoleJob {
            name: "train".into(),
            roles: vec![crate::RoleRequest {
                name: "w".into(),
                instances: 1,
                target: crate::RoleTarget::Task("ml/production/train".into()),
            }],
            image: None,
            retry_count: 0,
            variables: Default::default(),
            timeout_seconds: None,
            idempotency_key: None,
        };
        let origin = crate::Origin::default();
        let crate::jobs::Submitted::Created(job, _) = commands
            .submit_role_job(&ann, &origin, &catalog, Default::default(), request)
            .await
            .unwrap()
        else {
            panic!("a new job")
        };
        let named = queries.named_job(&ann, "ann", "train").await.unwrap();
        assert_eq!(named.map(|j| j.id), Some(job.id));
        assert_eq!(queries.named_job(&ann, "ann", "other").await.unwrap(), None);
        assert_eq!(queries.named_job(&ann, "bob", "train").await.unwrap(), None);
        // Under the rule of a job's read: not bob's, and not told to him that it exists.
        assert_eq!(queries.named_job(&bob, "ann", "train").await.unwrap(), None);
        commands
            .release_job_name(&ann, &origin, job.id)
            .await
            .unwrap();
        assert_eq!(queries.named_job(&ann, "ann", "train").await.unwrap(), None);
        // The job itself stays.
        assert_eq!(
            queries.job(&ann, job.id).await.unwrap().status.as_str(),
            "cancelled"
        );
    }

    #[test]
    fn an_app_token_reads_its_apps_jobs_only() {
        let token = Actor::App(crate::actor::AppActor::new("shop", Uuid::nil(), "ann"));
        assert_eq!(job_readers(&token).unwrap(), JobReaders::App("shop".into()));
    }
}
