//! Orchestration commands: create, change, delete, refresh the token, run by hand; and the
//! scheduler's two steps, claiming a due slot and submitting its job.
//!
//! Who may do what: anyone with the read scope reads; the creator or an admin (write scope)
//! changes, deletes and runs an orchestration.

use crate::actor::{Actor, Origin};
use crate::error::CommandError;
use crate::execute::{Commands, Written};
use bosun_domain::identity::Scope;
use bosun_domain::jobs::{Catalog, Job, JobCommand, PlannedTask, Submission, Variables};
use bosun_domain::orchestrations::{
    Changes, Crontab, Definition, Notification, NotificationInput, Orchestration,
    OrchestrationCommand, ScheduledRun, Task, TaskInput, TaskRules,
};
use bosun_domain::{Aggregate, DomainError};
use bosun_eventstore::EventStore;
use bosun_projections::read_models::jobs::JobView;
use bosun_projections::read_models::orchestrations::{self as model, OrchestrationView};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// `POST /v1/orchestrations`.
#[derive(Debug, Default)]
pub struct CreateOrchestration {
    pub name: String,
    pub crontab: Option<String>,
    pub active: Option<bool>,
    pub tasks: Option<Vec<TaskInput>>,
    pub notifications: Option<Vec<NotificationInput>>,
}

/// `PATCH /v1/orchestrations/{id}`: each field given is changed; `crontab: Some(None)` removes
/// the schedule.
#[derive(Debug, Default)]
pub struct UpdateOrchestration {
    pub name: Option<String>,
    pub crontab: Option<Option<String>>,
    pub active: Option<bool>,
    pub tasks: Option<Vec<TaskInput>>,
    pub notifications: Option<Vec<NotificationInput>>,
}

/// `POST /v1/orchestrations/{id}/jobs`.
#[derive(Debug, Default)]
pub struct RunOrchestration {
    pub tasks: Option<Vec<TaskInput>>,
    pub notification_emails: Vec<String>,
}

fn crontab(text: Option<String>) -> Result<Option<Crontab>, DomainError> {
    text.map(|t| Crontab::parse(&t)).transpose()
}

const SCHEDULER: Actor = Actor::System("scheduler");

impl<S: EventStore> Commands<S> {
    #[tracing::instrument(skip_all, fields(actor = actor.name(), orchestration_name = request.name.as_str()))]
    pub async fn create_orchestration(
        &self,
        actor: &Actor,
        origin: &Origin,
        rules: &TaskRules<'_>,
        request: CreateOrchestration,
    ) -> Result<(OrchestrationView, Written), CommandError> {
        actor.require(Scope::Write)?;
        let id = Uuid::new_v4().to_string();
        let definition = Definition {
            id: id.clone(),
            name: request.name,
            crontab: crontab(request.crontab)?,
            active: request.active.unwrap_or(true),
            tasks: Task::parse_all(request.tasks.unwrap_or_default(), rules)?,
            notifications: Notification::parse_all(
                request.notifications.unwrap_or_default(),
                rules,
            )?,
            token_id: Uuid::new_v4(),
            created_by: actor.name().to_string(),
            at: Utc::now(),
            next_scheduled_at: None,
        };
        let (_, written) = self
            .execute::<Orchestration>(&id, actor, origin, |state| {
                state.handle(OrchestrationCommand::Create(Box::new(definition.clone())))
            })
            .await?;
        Ok((self.orchestration_view(&id).await?, written))
    }

    #[tracing::instrument(skip_all, fields(actor = actor.name(), orchestration = id))]
    pub async fn update_orchestration(
        &self,
        actor: &Actor,
        origin: &Origin,
        rules: &TaskRules<'_>,
        id: &str,
        request: UpdateOrchestration,
    ) -> Result<(OrchestrationView, Written), CommandError> {
        self.orchestration_control(actor, id).await?;
        let changes = Changes {
            name: request.name,
            crontab: request.crontab.map(crontab).transpose()?,
            active: request.active,
            tasks: request
                .tasks
                .map(|t| Task::parse_all(t, rules))
                .transpose()?,
            notifications: request
                .notifications
                .map(|n| Notification::parse_all(n, rules))
                .transpose()?,
        };
        let at = Utc::now();
        let (_, written) = self
            .execute_guarded::<Orchestration>(
                id,
                actor,
                origin,
                |state| may_change(actor, id, state),
                |state| {
                    state.handle(OrchestrationCommand::Update {
                        changes: Box::new(changes.clone()),
                        at,
                    })
                },
            )
            .await?;
        Ok((self.orchestration_view(id).await?, written))
    }

    /// A new token id for the orchestration's runs; the old token is no longer sent.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), orchestration = id))]
    pub async fn refresh_orchestration_token(
        &self,
        actor: &Actor,
        origin: &Origin,
        id: &str,
    ) -> Result<(OrchestrationView, Written), CommandError> {
        self.orchestration_control(actor, id).await?;
        let token_id = Uuid::new_v4();
        let (_, written) = self
            .execute_guarded::<Orchestration>(
                id,
                actor,
                origin,
                |state| may_change(actor, id, state),
                |state| state.handle(OrchestrationCommand::RefreshToken { token_id }),
            )
            .await?;
        Ok((self.orchestration_view(id).await?, written))
    }

    #[tracing::instrument(skip_all, fields(actor = actor.name(), orchestration = id))]
    pub async fn delete_orchestration(
        &self,
        actor: &Actor,
        origin: &Origin,
        id: &str,
    ) -> Result<Written, CommandError> {
        self.orchestration_control(actor, id).await?;
        let (_, written) = self
            .execute_guarded::<Orchestration>(
                id,
                actor,
                origin,
                |state| may_change(actor, id, state),
                |state| state.handle(OrchestrationCommand::Delete),
            )
            .await?;
        Ok(written)
    }

    /// A manual run: a job of the orchestration's tasks (`tasks`, if given, may only change
    /// which are active), `initialized_by: manual`.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), orchestration = id))]
    pub async fn run_orchestration(
        &self,
        actor: &Actor,
        origin: &Origin,
        rules: &TaskRules<'_>,
        id: &str,
        request: RunOrchestration,
    ) -> Result<(JobView, Written), CommandError> {
        let orchestration = self.orchestration_control(actor, id).await?;
        let requested = request
            .tasks
            .map(|t| Task::parse_all(t, rules))
            .transpose()?;
        crate::jobs::check_notification_emails(&request.notification_emails)?;
        let tasks = orchestration.tasks_for_run(requested)?;
        let job_id = Uuid::new_v4();
        let submission = orchestration_job(
            rules.catalog,
            id,
            job_id,
            tasks,
            "manual",
            actor.name(),
            request.notification_emails,
            None,
        );
        let (_, written) = self
            .execute::<Job>(&job_id.to_string(), actor, origin, |state| {
                state.handle(JobCommand::Submit(Box::new(submission.clone())))
            })
            .await?;
        Ok((self.job_view(job_id).await?, written))
    }

    /// The scheduler's firing of a slot: claims the slot of `id` due at `now`, if one is,
    /// against the stream's exact version (a slot is claimed once however many try), then
    /// submits its job, and the previous slot's if that one has none. Returns the job submitted,
    /// if any. Does not wait for the read models.
    #[tracing::instrument(skip_all, fields(orchestration = id, now = %now))]
    pub async fn fire_due_run(
        &self,
        origin: &Origin,
        catalog: &Catalog,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Uuid>, CommandError> {
        let (state, written) = self
            .execute_unsettled::<Orchestration>(id, &SCHEDULER, origin, |state| {
                state.handle(OrchestrationCommand::ScheduleRun { now })
            })
            .await?;
        if written.position.is_none() {
            return Ok(None);
        }
        let (Some(run), previous) = (&state.last_run, &state.previous_run) else {
            return Ok(None);
        };
        let job = self
            .submit_scheduled_job(origin, catalog, id, &state, run)
            .await?;
        // The slot before must have its job too (its submission may have failed after its
        // claim); its id is fixed, so one already there is left as it is.
        if let Some(previous) = previous {
            let (earlier, _) = self.load::<Job>(&previous.job_id.to_string()).await?;
            if !earlier.exists() {
                tracing::warn!(orchestration = id, job = %previous.job_id, "a claimed run had no job; submitting it");
                self.submit_scheduled_job(origin, catalog, id, &state, previous)
                    .await?;
            }
        }
        Ok(Some(job))
    }

    /// Run by a scheduler taking over: the job of the last claimed slot, submitted if it is not
    /// yet (its holder may have died between the claim and the submission); its id is fixed by
    /// the slot, so it is never made twice.
    #[tracing::instrument(skip_all, fields(orchestration = id))]
    pub async fn submit_missing_scheduled_job(
        &self,
        origin: &Origin,
        catalog: &Catalog,
        id: &str,
    ) -> Result<Option<Uuid>, CommandError> {
        let (state, _) = self.load::<Orchestration>(id).await?;
        let Some(run) = &state.last_run else {
            return Ok(None);
        };
        self.submit_scheduled_job(origin, catalog, id, &state, run)
            .await
            .map(Some)
    }

    async fn submit_scheduled_job(
        &self,
        origin: &Origin,
        catalog: &Catalog,
        id: &str,
        state: &Orchestration,
        run: &ScheduledRun,
    ) -> Result<Uuid, CommandError> {
        let tasks = state.tasks.clone();
        let submission = orchestration_job(
            catalog,
            id,
            run.job_id,
            tasks,
            "scheduler",
            &state.created_by,
            vec![],
            Some(run.scheduled_for),
        );
        let result = self
            .execute_unsettled::<Job>(&run.job_id.to_string(), &SCHEDULER, origin, |job| {
                job.handle(JobCommand::Submit(Box::new(submission.clone())))
            })
            .await;
        match result {
            Ok(_) => Ok(run.job_id),
            // Submitted before a crash or by a scheduler that lost its lock: it stands.
            Err(CommandError::Domain(DomainError::Conflict {
                code: "job_exists", ..
            })) => Ok(run.job_id),
            Err(e) => Err(e),
        }
    }

    pub async fn orchestration_view(&self, id: &str) -> Result<OrchestrationView, CommandError> {
        let client = self.read_models().await?;
        model::get(&**client, id)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("no orchestration {id}")).into())
    }

    /// The orchestration, if `actor` may change or run it (decided before its input is parsed,
    /// so a stranger learns nothing from a 400).
    async fn orchestration_control(
        &self,
        actor: &Actor,
        id: &str,
    ) -> Result<Orchestration, CommandError> {
        actor.require(Scope::Write)?;
        let (orchestration, _) = self.load::<Orchestration>(id).await?;
        may_change(actor, id, &orchestration)?;
        Ok(orchestration)
    }
}

/// Who may change or run an orchestration: whoever created it, or an admin; decided on the
/// orchestration itself (404 for none).
fn may_change(actor: &Actor, id: &str, orchestration: &Orchestration) -> Result<(), CommandError> {
    if !orchestration.exists() {
        return Err(DomainError::NotFound(format!("no orchestration {id}")).into());
    }
    if actor.is(&orchestration.created_by) || actor.is_admin() {
        Ok(())
    } else {
        Err(CommandError::Forbidden(
            "only the orchestration's creator or an admin may change or run it".into(),
        ))
    }
}

/// A job running `tasks` of orchestration `id`, each catalog task with its argv as the catalog
/// has it now (none if it has gone: the task then fails saying so).
#[allow(clippy::too_many_arguments)]
fn orchestration_job(
    catalog: &Catalog,
    id: &str,
    job_id: Uuid,
    tasks: Vec<Task>,
    initialized_by: &str,
    created_by: &str,
    notification_emails: Vec<String>,
    scheduled_for: Option<DateTime<Utc>>,
) -> Submission {
    let tasks = tasks
        .into_iter()
        .map(|task| {
            let command = task
                .catalog_task()
                .and_then(|(app, env, name)| catalog.task(app, env, name).ok())
                .map(|spec| spec.command.clone())
                .unwrap_or_default();
            PlannedTask { task, command }
        })
        .collect();
    Submission {
        job_id,
        name: None,
        app: String::new(),
        env: String::new(),
        task: String::new(),
        variables: Variables::default(),
        command: vec![],
        timeout_seconds: None,
        notification_emails,
        orchestration_id: Some(id.to_string()),
        initialized_by: initialized_by.to_string(),
        created_by: created_by.to_string(),
        request_digest: None,
        tasks,
        scheduled_for,
    }
}
