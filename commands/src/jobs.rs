//! Job commands from clients: submit, restart, cancel, kill, stop (either, as the job's state
//! says). Running them is the runner's; role jobs' submission and names are `named_jobs`'.
//!
//! A job of a registered app (an `app-<name>` stream, created and not removed, named like a
//! catalog app) may be submitted only by a member of one of the app's teams, an admin, or that
//! app's token; it runs with the app's environment. A job of a catalog app no one registered is
//! as it always was.

use crate::actor::app_actor_name;
use crate::actor::{Actor, AppAction, Origin};
use crate::error::CommandError;
use crate::execute::{Commands, Written};
use bosun_domain::apps::{App, AppName};
use bosun_domain::identity::Scope;
use bosun_domain::jobs::{
    Catalog, Job, JobCommand, JobEvent, JobStatus, Plan, Submission, Variables,
};
use bosun_domain::{Aggregate, DomainError};
use bosun_eventstore::{EventStore, RecordedEvent, StreamId};
use bosun_projections::read_models::identity as identity_model;
use bosun_projections::read_models::jobs as model;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use uuid::Uuid;

/// The job id a key stands for, per caller: the same caller and key always name the same job.
pub(crate) fn keyed_id(actor: &str, key: &str) -> Uuid {
    let hash = Sha256::digest(format!("bosun job\n{actor}\n{key}"));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// The id of job `job_id`'s restart: a job restarts as one new job, however often and by whoever
/// it is asked (a retry, or two clients at once, finds that job). To run it once more, one
/// restarts the newest job.
pub fn restart_id(job_id: Uuid) -> Uuid {
    let hash = Sha256::digest(format!("bosun job restart\n{job_id}"));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// The longest timeout a job may ask for: a year, in seconds.
pub const MAX_TIMEOUT_SECONDS: u64 = 365 * 24 * 3600;

/// Addresses a job may notify at most.
pub const MAX_NOTIFICATION_EMAILS: usize = 50;

/// `notification_emails`: valid addresses, at most [`MAX_NOTIFICATION_EMAILS`].
pub fn check_notification_emails(emails: &[String]) -> Result<(), DomainError> {
    if emails.len() > MAX_NOTIFICATION_EMAILS {
        return Err(DomainError::invalid(
            "notification_emails",
            format!("at most {MAX_NOTIFICATION_EMAILS} addresses"),
        ));
    }
    for email in emails {
        bosun_domain::identity::Email::parse(email)
            .map_err(|e| DomainError::invalid("notification_emails", format!("{email:?}: {e}")))?;
    }
    Ok(())
}

/// What a client asks to run.
pub struct SubmitJob {
    pub app: String,
    pub env: String,
    pub task: String,
    pub variables: BTreeMap<String, String>,
    pub name: Option<String>,
    pub timeout_seconds: Option<u64>,
    pub notification_emails: Vec<String>,
    /// `Idempotency-Key`: the same key and request give the same job; another request with the
    /// key is a 409.
    pub idempotency_key: Option<String>,
}

/// What a submission did.
pub enum Submitted {
    Created(model::JobView, Written),
    /// A retry of an earlier submission with the same key and request, or a restart of a job
    /// restarted before: the job that one made.
    Existing(model::JobView),
}

impl<S: EventStore> Commands<S> {
    /// Submits a job for a catalog task: unknown app, environment or task and bad variables are
    /// 400s. The job waits for a worker. Its variables are not recorded in the span: they may
    /// hold secrets.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), app = request.app.as_str(), env = request.env.as_str(), task = request.task.as_str()))]
    pub async fn submit_job(
        &self,
        actor: &Actor,
        origin: &Origin,
        catalog: &Catalog,
        request: SubmitJob,
    ) -> Result<Submitted, CommandError> {
        self.submit(actor, origin, catalog, request, None).await
    }

    /// Runs a finished job again, as a new job of the same task with the same variables, name,
    /// timeout and notification addresses: one that ended killed, error, warning or cancelled
    /// (409 `job_not_restartable` otherwise, and for an orchestration's job, which runs again by
    /// running its orchestration). The caller must be able to read the old job (404/403 as a
    /// read) and to submit its task now (as [`Commands::submit_job`] decides, against the
    /// catalog as it is now). The new job's submission records `restarted_from`.
    ///
    /// The new job's id is [`restart_id`] of the old one: asking again (a retry, or two callers
    /// racing) answers [`Submitted::Existing`] with the job the first restart made, as a retry
    /// with an `Idempotency-Key` does (409 `job_already_restarted` if that job is not the
    /// caller's to read). To run the task once more, one restarts the newest job.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), job_id = %job_id))]
    pub async fn restart_job(
        &self,
        actor: &Actor,
        origin: &Origin,
        catalog: &Catalog,
        job_id: Uuid,
    ) -> Result<Submitted, CommandError> {
        {
            let client = self.read_models().await?;
            crate::queries::readable_job(&**client, actor, job_id).await?;
        }
        // Its status from the log, not the read model, which may not have its end yet.
        let (job, _) = self.load::<Job>(&job_id.to_string()).await?;
        let (Some(status), Some(plan)) = (job.status, &job.plan) else {
            return Err(DomainError::NotFound(format!("no job {job_id}")).into());
        };
        // Who may submit it again, before what state it is in: a reader who may not is told
        // so, whatever the job's state.
        match plan {
            Plan::Task(run) => self.require_submitter(actor, &run.app).await?,
            Plan::Orchestration { .. } | Plan::Roles(_) => actor.require(Scope::Write)?,
        }
        if let Plan::Roles(run) = plan {
            return Err(DomainError::conflict(
                "job_not_restartable",
                format!("job {job_id} is the role job {}: submit it again instead (releasing its name first)", run.name),
            )
            .into());
        }
        if let Plan::Orchestration {
            orchestration_id, ..
        } = plan
        {
            return Err(DomainError::conflict(
                "job_not_restartable",
                format!("job {job_id} is a run of orchestration {orchestration_id}: run the orchestration again instead"),
            )
            .into());
        }
        if !matches!(
            status,
            JobStatus::Killed | JobStatus::Error | JobStatus::Warning | JobStatus::Cancelled
        ) {
            return Err(DomainError::conflict(
                "job_not_restartable",
                format!(
                    "job {job_id} is {}: only a job that ended killed, error, warning or cancelled runs again",
                    status.as_str()
                ),
            )
            .into());
        }
        let (_, old) = self.submission(job_id).await?;
        let request = SubmitJob {
            app: old.app,
            env: old.env,
            task: old.task,
            variables: old
                .variables
                .iter()
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
            name: old.name,
            timeout_seconds: old.timeout_seconds,
            notification_emails: old.notification_emails,
            idempotency_key: None,
        };
        let submitted = self
            .submit(actor, origin, catalog, request, Some(job_id))
            .await?;
        if let Submitted::Existing(again) = &submitted {
            // Someone else restarted it first: their job is not necessarily this caller's to read.
            let client = self.read_models().await?;
            if let Err(CommandError::Forbidden(_)) =
                crate::queries::readable_job(&**client, actor, again.id).await
            {
                return Err(DomainError::conflict(
                    "job_already_restarted",
                    format!("job {job_id} was restarted already, as a job that is not yours to read: submit its task anew instead"),
                )
                .into());
            }
        }
        Ok(submitted)
    }

    /// That `actor` may submit a job of `app`'s tasks: one who may run its jobs if it is a
    /// registered app, else anyone with the write scope; never an anonymous user.
    async fn require_submitter(&self, actor: &Actor, app: &str) -> Result<(), CommandError> {
        actor.require_registered()?;
        match self.registered_app_teams(app).await? {
            Some(teams) => actor.require_on_app(app, &teams, AppAction::Jobs),
            None => actor.require(Scope::Write),
        }
    }

    /// A submission by `actor`: its rules, and the job it records (see [`Commands::submit_job`]).
    async fn submit(
        &self,
        actor: &Actor,
        origin: &Origin,
        catalog: &Catalog,
        request: SubmitJob,
        restarted_from: Option<Uuid>,
    ) -> Result<Submitted, CommandError> {
        self.require_submitter(actor, &request.app).await?;
        let spec = catalog.task(&request.app, &request.env, &request.task)?;
        let variables = Variables::parse(request.variables)?;
        check_notification_emails(&request.notification_emails)?;
        if let Some(name) = &request.name {
            if name.chars().count() > 256 {
                return Err(DomainError::invalid("name", "must be at most 256 characters").into());
            }
        }
        if request
            .timeout_seconds
            .is_some_and(|t| !(1..=MAX_TIMEOUT_SECONDS).contains(&t))
        {
            return Err(DomainError::invalid(
                "timeout_seconds",
                format!("must be 1 to {MAX_TIMEOUT_SECONDS} (a year)"),
            )
            .into());
        }
        let (job_id, request_digest) = match (&request.idempotency_key, restarted_from) {
            // A restart has no key of its own: its job is the old one's restart.
            (_, Some(old)) => (restart_id(old), None),
            (None, None) => (Uuid::new_v4(), None),
            (Some(key), None) => {
                if key.is_empty() || key.len() > 256 {
                    return Err(DomainError::invalid(
                        "Idempotency-Key",
                        "must be 1 to 256 characters",
                    )
                    .into());
                }
                let digest = hex::encode(Sha256::digest(
                    serde_json::json!([
                        request.app,
                        request.env,
                        request.task,
                        variables,
                        request.name,
                        request.timeout_seconds,
                        request.notification_emails,
                    ])
                    .to_string(),
                ));
                (keyed_id(actor.name(), key), Some(digest))
            }
        };
        if request_digest.is_some() || restarted_from.is_some() {
            if let Some(existing) = self.earlier_submission(job_id, &request_digest).await? {
                return Ok(existing);
            }
        }
        let submission = Submission {
            job_id,
            name: request.name,
            app: request.app,
            env: request.env,
            task: request.task,
            variables,
            command: spec.command.clone(),
            timeout_seconds: request.timeout_seconds.or(spec.timeout_seconds),
            notification_emails: request.notification_emails,
            orchestration_id: None,
            initialized_by: "manual".into(),
            created_by: actor.name().to_string(),
            request_digest,
            tasks: vec![],
            scheduled_for: None,
            restarted_from,
            role_job: None,
        };
        let result = self
            .execute::<Job>(&job_id.to_string(), actor, origin, |state| {
                state.handle(JobCommand::Submit(Box::new(submission.clone())))
            })
            .await;
        match result {
            Ok((_, written)) => Ok(Submitted::Created(self.job_view(job_id).await?, written)),
            // Two retries (or restarts) raced: the other one created it; it is the same request
            // or a 409.
            Err(CommandError::Domain(DomainError::Conflict {
                code: "job_exists", ..
            })) => self
                .earlier_submission(job_id, &submission.request_digest)
                .await?
                .ok_or_else(|| CommandError::Contended(format!("job-{job_id}"))),
            Err(e) => Err(e),
        }
    }

    /// The job an earlier request with the same key (or restart of the same job) made, if there
    /// is one: the same request gets it back, another is a 409.
    pub(crate) async fn earlier_submission(
        &self,
        job_id: Uuid,
        request_digest: &Option<String>,
    ) -> Result<Option<Submitted>, CommandError> {
        let (existing, _) = self.load::<Job>(&job_id.to_string()).await?;
        if !existing.exists() {
            return Ok(None);
        }
        if &existing.request_digest != request_digest {
            return Err(DomainError::conflict(
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different request",
            )
            .into());
        }
        // The first request may still be on its way to the read models (two retries racing):
        // wait for its submission, so the retry answers with the first result, not a 404.
        self.settle_stream::<Job>(&job_id.to_string()).await?;
        Ok(Some(Submitted::Existing(self.job_view(job_id).await?)))
    }

    /// Cancels a waiting job (409 otherwise): its submitter or an admin may, and an app's token
    /// a job of its app (see `may_stop`).
    #[tracing::instrument(skip_all, fields(actor = actor.name(), job_id = %job_id))]
    pub async fn cancel_job(
        &self,
        actor: &Actor,
        origin: &Origin,
        job_id: Uuid,
        reason: Option<String>,
    ) -> Result<(model::JobView, Written), CommandError> {
        self.stop_and_view(actor, origin, job_id, JobCommand::Cancel { reason })
            .await
    }

    /// Asks the worker running a job to kill it (409 unless the job is processing); the job ends
    /// `killed` when the process is gone. Its submitter or an admin may, and an app's token a
    /// job of its app (see `may_stop`).
    #[tracing::instrument(skip_all, fields(actor = actor.name(), job_id = %job_id))]
    pub async fn kill_job(
        &self,
        actor: &Actor,
        origin: &Origin,
        job_id: Uuid,
        reason: Option<String>,
    ) -> Result<(model::JobView, Written), CommandError> {
        self.stop_and_view(actor, origin, job_id, JobCommand::Kill { reason })
            .await
    }

    /// Stops a job whatever it is doing: cancels it if it is waiting, asks its worker to kill it
    /// if it is processing (it ends `killed` once its processes are gone: every instance of a
    /// role job), decided on the job's state as the log has it (a job that started meanwhile is
    /// killed). 409 `job_finished` if it has finished. Who may: as for a cancel or a kill.
    /// Answered with the job's view (once the read models have the write) and what it wrote.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), job_id = %job_id))]
    pub async fn stop_job(
        &self,
        actor: &Actor,
        origin: &Origin,
        job_id: Uuid,
        reason: Option<String>,
    ) -> Result<(model::JobView, Written), CommandError> {
        let (_, written) = self
            .stop_with(actor, origin, job_id, |job| stop_command(job, &reason))
            .await?;
        Ok((self.job_view(job_id).await?, written))
    }

    /// Cancel or kill, as the job's submitter or an admin; answered with the job's view.
    async fn stop_and_view(
        &self,
        actor: &Actor,
        origin: &Origin,
        job_id: Uuid,
        command: JobCommand,
    ) -> Result<(model::JobView, Written), CommandError> {
        let (_, written) = self.stop(actor, origin, job_id, command).await?;
        Ok((self.job_view(job_id).await?, written))
    }

    /// Cancel or kill, decided on the job itself: who may is its submitter or an admin (with the
    /// write scope), or an app's token for a job of its app (see `may_stop`).
    pub(crate) async fn stop(
        &self,
        actor: &Actor,
        origin: &Origin,
        job_id: Uuid,
        command: JobCommand,
    ) -> Result<(Job, Written), CommandError> {
        self.stop_with(actor, origin, job_id, |_| command.clone())
            .await
    }

    /// [`Commands::stop`] with the command chosen on each state decided on.
    async fn stop_with(
        &self,
        actor: &Actor,
        origin: &Origin,
        job_id: Uuid,
        command: impl Fn(&Job) -> JobCommand,
    ) -> Result<(Job, Written), CommandError> {
        let since_its_app = match actor.app_token() {
            None => {
                actor.require_writer()?;
                false
            }
            Some(token) => self.submitted_since_app(job_id, token.app()).await?,
        };
        self.execute_guarded::<Job>(
            &job_id.to_string(),
            actor,
            origin,
            |job| may_stop(actor, job_id, job, since_its_app),
            |job| job.handle(command(job)),
        )
        .await
    }

    /// Whether job `job_id` was submitted while registered app `app` existed (not before its
    /// creation: a job of an earlier app of that name is not this app's), as the job reads
    /// allow an app token its app's jobs; `false` for no such job or app. As there, "not
    /// before" compares the times the log recorded the app's latest `AppCreated` and the job's
    /// `JobSubmitted` at (both the database's clock), not the API node's `at`.
    async fn submitted_since_app(&self, job_id: Uuid, app: &str) -> Result<bool, CommandError> {
        if AppName::parse(app).is_err() {
            return Ok(false);
        }
        let (state, _) = self.load::<App>(app).await?;
        if !state.is_active() {
            return Ok(false);
        }
        // When the log recorded the app's latest `AppCreated` (its current incarnation).
        let app_stream =
            StreamId::new(App::CATEGORY, app).map_err(|e| CommandError::Internal(e.to_string()))?;
        let (mut registered_at, mut next) = (None, 0);
        loop {
            let events = self.store.read_stream(&app_stream, next, 500).await?;
            for recorded in &events {
                if recorded.event_type == "AppCreated" {
                    registered_at = Some(recorded.recorded_at);
                }
                next = recorded.version + 1;
            }
            if events.len() < 500 {
                break;
            }
        }
        let Some(registered_at) = registered_at else {
            return Ok(false);
        };
        let stream = StreamId::new(Job::CATEGORY, job_id)
            .map_err(|e| CommandError::Internal(e.to_string()))?;
        Ok(self
            .store
            .read_stream(&stream, 0, 1)
            .await?
            .first()
            .is_some_and(|submitted| submitted.recorded_at >= registered_at))
    }

    /// The teams of `app` if it is a registered app (its stream says it was created and is not
    /// removed), `None` if it is not: a catalog app no one registered, or a name no app can have.
    pub async fn registered_app_teams(
        &self,
        app: &str,
    ) -> Result<Option<Vec<String>>, CommandError> {
        if AppName::parse(app).is_err() {
            return Ok(None);
        }
        let (state, _) = self.load::<App>(app).await?;
        Ok(state.is_active().then(|| {
            state
                .teams()
                .iter()
                .map(|t| t.as_str().to_string())
                .collect()
        }))
    }

    /// Whether job `job_id` may run its task of registered app `app` (whose teams are `teams`)
    /// now, and so get the app's environment: a `Forbidden` saying why not. Decided when it is
    /// about to run, on whoever it runs for: its submitter, that app's token, or, for an
    /// orchestration's job, the user recorded as its creator (the orchestration's creator for a
    /// scheduled run, whoever ran it by hand) — a member of one of `teams` or an admin now. A
    /// job the server itself submitted (no token in its metadata) outside any orchestration may.
    /// So a job submitted before its app was registered, or by someone who has since left its
    /// teams, and an orchestration of someone outside them, do not run with its environment.
    pub async fn job_may_run_on_app(
        &self,
        job_id: Uuid,
        app: &str,
        teams: &[String],
    ) -> Result<(), CommandError> {
        let (first, submission) = self.submission(job_id).await?;
        let by_the_server = first
            .metadata
            .get("token_id")
            .is_none_or(serde_json::Value::is_null);
        if by_the_server && submission.orchestration_id.is_none() {
            return Ok(());
        }
        let principal = submission.created_by.as_str();
        if principal == app_actor_name(app) {
            return Ok(());
        }
        // No user's name starts with `app:` (a GitHub user's is `github:<login>`): `app:<other>`
        // is another app's token.
        if !principal.starts_with(&app_actor_name("")) {
            let client = self.read_models().await?;
            if let Some(user) = identity_model::user(&**client, principal).await? {
                if user.admin || user.teams.iter().any(|t| teams.contains(t)) {
                    return Ok(());
                }
            }
        }
        Err(CommandError::Forbidden(format!(
            "{app} is a registered app: its tasks run only for a member of one of its teams ({}), an admin or its token, and {principal} is none of these now",
            teams.join(", ")
        )))
    }

    /// Job `job_id`'s first event, its submission, as recorded and decoded (404 for no job).
    pub(crate) async fn submission(
        &self,
        job_id: Uuid,
    ) -> Result<(RecordedEvent, Box<Submission>), CommandError> {
        let stream = StreamId::new(Job::CATEGORY, job_id)
            .map_err(|e| CommandError::Internal(e.to_string()))?;
        let first = self
            .store
            .read_stream(&stream, 0, 1)
            .await?
            .pop()
            .ok_or_else(|| DomainError::NotFound(format!("no job {job_id}")))?;
        match bosun_domain::decode::<JobEvent>(&first.event_type, &first.data) {
            Ok(JobEvent::JobSubmitted(submission)) => Ok((first, submission)),
            Ok(_) => Err(CommandError::Internal(format!(
                "{stream} does not begin with its submission"
            ))),
            Err(e) => Err(CommandError::Internal(format!("{stream}: {e}"))),
        }
    }

    pub async fn job_view(&self, job_id: Uuid) -> Result<model::JobView, CommandError> {
        let client = self.read_models().await?;
        model::get(&**client, job_id)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("no job {job_id}")).into())
    }
}

/// What stops `job` now: a cancel while it waits, else a kill (which a finished job refuses).
pub(crate) fn stop_command(job: &Job, reason: &Option<String>) -> JobCommand {
    match job.status {
        Some(JobStatus::Waiting) => JobCommand::Cancel {
            reason: reason.clone(),
        },
        _ => JobCommand::Kill {
            reason: reason.clone(),
        },
    }
}

/// Who may cancel or kill a job (404 for no job): whoever submitted it, or an admin; an app's
/// token, a job of its app's tasks (not an orchestration's) submitted since the app was created
/// (`since_its_app`), whoever submitted it — the jobs it reads.
pub(crate) fn may_stop(
    actor: &Actor,
    job_id: Uuid,
    job: &Job,
    since_its_app: bool,
) -> Result<(), CommandError> {
    let Some(submitter) = &job.created_by else {
        return Err(DomainError::NotFound(format!("no job {job_id}")).into());
    };
    if let Some(token) = actor.app_token() {
        let of_its_app = matches!(&job.plan, Some(Plan::Task(run)) if run.app == token.app());
        return if of_its_app && since_its_app {
            Ok(())
        } else {
            Err(CommandError::Forbidden(format!(
                "an app token stops only the jobs of its app {}'s tasks",
                token.app()
            )))
        };
    }
    if actor.is(submitter) || actor.is_admin() {
        Ok(())
    } else {
        Err(CommandError::Forbidden(
            "only the job's submitter or an admin may stop it".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::AppActor;
    use crate::tests::{append, commands, head, log_summary, origin, user, Racing};
    use bosun_domain::apps::{AppEvent, PlatformName};
    use bosun_domain::identity::{TeamName, Username};

    fn catalog() -> Catalog {
        serde_json::from_value(serde_json::json!({
            "shop": {"production": {"deploy": {"command": ["true"]}}},
            "blog": {"production": {"deploy": {"command": ["true"]}}},
        }))
        .unwrap()
    }

    fn request(app: &str) -> SubmitJob {
        SubmitJob {
            app: app.into(),
            env: "production".into(),
            task: "deploy".into(),
            variables: BTreeMap::new(),
            name: None,
            timeout_seconds: None,
            notification_emails: vec![],
            idempotency_key: None,
        }
    }

    async fn with_shop() -> (Commands<Racing>, Racing) {
        let (commands, log) = commands();
        let created = AppEvent::AppCreated {
            name: AppName::parse("shop").unwrap(),
            platform: PlatformName::parse("python").unwrap(),
            team_owner: TeamName::parse("ops").unwrap(),
            owner: Username::parse("ann").unwrap(),
            description: String::new(),
            at: chrono::Utc::now(),
        };
        append(&log, "app-shop", &[created]).await;
        (commands, log)
    }

    fn forbidden<T>(result: Result<T, CommandError>) -> String {
        match result {
            Err(CommandError::Forbidden(message)) => message,
            Err(e) => panic!("expected a 403, got {e:?}"),
            Ok(_) => panic!("expected a 403, got a success"),
        }
    }

    #[tokio::test]
    async fn only_a_member_an_admin_or_its_token_submits_a_registered_apps_job() {
        let (commands, log) = with_shop().await;
        let before = head(&log).await;
        let outsider = forbidden(
            commands
                .submit_job(&user("bob"), &origin(), &catalog(), request("shop"))
                .await,
        );
        assert!(outsider.contains("app shop's teams (ops)"), "{outsider}");
        let blog_token = Actor::App(AppActor::new("blog", Uuid::new_v4(), "ann"));
        assert!(forbidden(
            commands
                .submit_job(&blog_token, &origin(), &catalog(), request("shop"))
                .await
        )
        .contains("acts only on its app blog"));
        // An app token cannot submit a job of an unregistered catalog app either.
        forbidden(
            commands
                .submit_job(&blog_token, &origin(), &catalog(), request("blog"))
                .await,
        );
        assert_eq!(head(&log).await, before);
        // Its own token may: the job is recorded as the app's, with who issued the token.
        let shop_token = Actor::App(AppActor::new("shop", Uuid::new_v4(), "ann"));
        let _ = commands
            .submit_job(&shop_token, &origin(), &catalog(), request("shop"))
            .await;
        let summary = log_summary(&log).await;
        let (stream, event_type, actor) = summary.last().unwrap();
        assert!(stream.starts_with("job-") && event_type == "JobSubmitted");
        assert_eq!(actor, "app:shop");
        let job_id = Uuid::parse_str(stream.trim_start_matches("job-")).unwrap();
        let (job, _) = commands.load::<Job>(&job_id.to_string()).await.unwrap();
        assert_eq!(job.created_by.as_deref(), Some("app:shop"));
        commands
            .job_may_run_on_app(job_id, "shop", &["ops".into()])
            .await
            .unwrap();
        assert!(forbidden(
            commands
                .job_may_run_on_app(job_id, "blog", &["ops".into()])
                .await
        )
        .contains("app:shop is none of these"));
    }

    #[tokio::test]
    async fn a_job_the_server_submitted_outside_an_orchestration_may_run_on_the_app() {
        let (commands, _log) = with_shop().await;
        let job_id = Uuid::new_v4();
        let submission = Submission {
            job_id,
            name: None,
            app: "shop".into(),
            env: "production".into(),
            task: "deploy".into(),
            variables: Variables::default(),
            command: vec!["true".into()],
            timeout_seconds: None,
            notification_emails: vec![],
            orchestration_id: None,
            initialized_by: "manual".into(),
            created_by: "cli".into(),
            request_digest: None,
            tasks: vec![],
            scheduled_for: None,
            restarted_from: None,
            role_job: None,
        };
        commands
            .execute::<Job>(&job_id.to_string(), &Actor::System("cli"), &origin(), |j| {
                j.handle(JobCommand::Submit(Box::new(submission.clone())))
            })
            .await
            .unwrap();
        commands
            .job_may_run_on_app(job_id, "shop", &["ops".into()])
            .await
            .unwrap();
    }

    #[test]
    fn a_job_restarts_as_one_job_whoever_asks() {
        let (old, other) = (Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(restart_id(old), restart_id(old));
        assert_ne!(restart_id(old), restart_id(other));
        assert_ne!(restart_id(old), old);
        // The newest job's restart is another job again.
        assert_ne!(restart_id(restart_id(old)), restart_id(old));
        assert_ne!(restart_id(old), keyed_id("admin", &old.to_string()));
    }

    #[tokio::test]
    async fn registered_means_created_and_not_removed_and_odd_catalog_names_are_not_apps() {
        let (commands, log) = with_shop().await;
        assert_eq!(
            commands.registered_app_teams("shop").await.unwrap(),
            Some(vec!["ops".to_string()])
        );
        assert_eq!(commands.registered_app_teams("blog").await.unwrap(), None);
        assert_eq!(commands.registered_app_teams("My_App").await.unwrap(), None);
        append(
            &log,
            "app-shop",
            &[AppEvent::AppRemoved {
                at: chrono::Utc::now(),
            }],
        )
        .await;
        assert_eq!(commands.registered_app_teams("shop").await.unwrap(), None);
    }
}
