//! Orchestration commands: create, change, delete, refresh the token, run by hand; and the
//! scheduler's two steps, claiming a due slot and submitting its job.
//!
//! Who may do what: anyone with the read scope reads; the creator or an admin (write scope)
//! changes, deletes and runs an orchestration.
//!
//! Secret URLs (every `webhook_url`; a `component_url` with credentials, a query or a fragment:
//! `bosun_domain::orchestrations::UrlField`) are sealed here, before they enter an event, for
//! the context `orchestration-<id>/<field>`. A URL the orchestration already holds keeps its
//! stored sealed value, so giving the same URL again is no change: given in clear, it is
//! compared with the held values opened; given as reads show it (`https://host/…`), it names the
//! held URL shown so at the same place, or the only one shown so. A job carries its
//! orchestration's tasks sealed the same way (those stored in clear before sealing are sealed
//! on the way), and the runner opens them with [`Commands::open_url`] only to make the call.
//!
//! An orchestration stored before sealing existed holds its secret URLs in clear in its events
//! until it is edited: [`Commands::seal_clear_orchestration_urls`], run once at every start,
//! appends the sealed replacement of each (`OrchestrationTasksReplaced`,
//! `OrchestrationNotificationsReplaced`), so its state and the read model hold them sealed from
//! then on. The old events stay in the append-only log.

use crate::actor::{Actor, Origin};
use crate::error::CommandError;
use crate::execute::{Appended, Commands, Written, ATTEMPTS};
use crate::seal::Sealer;
use bosun_domain::jobs::{Catalog, Job, JobCommand, PlannedTask, Submission, Variables};
use bosun_domain::orchestrations::{
    Changes, Crontab, Definition, Notification, NotificationInput, Orchestration,
    OrchestrationCommand, OrchestrationEvent, ScheduledRun, StoredUrl, Task, TaskInput, TaskRules,
    UrlField,
};
use bosun_domain::{Aggregate, DomainError};
use bosun_eventstore::{EventStore, Filter};
use bosun_projections::read_models::jobs::JobView;
use bosun_projections::read_models::orchestrations::{self as model, OrchestrationView};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;
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

/// What a manual run made: its job, and the orchestration's name and run token id as the run
/// found them (the token its calls carry), so a caller shows them without reading the
/// orchestration again.
#[derive(Debug)]
pub struct OrchestrationRun {
    pub job: JobView,
    pub orchestration_name: String,
    pub token_id: Uuid,
}

fn crontab(text: Option<String>) -> Result<Option<Crontab>, DomainError> {
    text.map(|t| Crontab::parse(&t)).transpose()
}

const SCHEDULER: Actor = Actor::System("scheduler");
/// Who seals the URLs stored in clear before sealing existed.
const SEALER: Actor = Actor::System("url-sealer");
/// How many events one page of the scan for URLs stored in clear reads.
const SCAN_PAGE: usize = 500;

/// Whether `tasks` hold a secret `component_url` in clear.
fn clear_tasks(tasks: &[Task]) -> bool {
    tasks.iter().any(|t| {
        t.url()
            .is_some_and(|u| u.needs_sealing(UrlField::ComponentUrl))
    })
}

/// Whether `notifications` hold a `webhook_url` in clear.
fn clear_notifications(notifications: &[Notification]) -> bool {
    notifications.iter().any(|n| {
        n.webhook_url
            .as_ref()
            .is_some_and(|u| u.needs_sealing(UrlField::WebhookUrl))
    })
}

impl<S: EventStore> Commands<S> {
    #[tracing::instrument(skip_all, fields(actor = actor.name(), orchestration_name = request.name.as_str()))]
    pub async fn create_orchestration(
        &self,
        actor: &Actor,
        origin: &Origin,
        rules: &TaskRules<'_>,
        request: CreateOrchestration,
    ) -> Result<(OrchestrationView, Written), CommandError> {
        actor.require_writer()?;
        let id = Uuid::new_v4().to_string();
        let none = Orchestration::default();
        let sealing = self.url_sealing(&id);
        let definition = Definition {
            id: id.clone(),
            name: request.name,
            crontab: crontab(request.crontab)?,
            active: request.active.unwrap_or(true),
            tasks: sealing.tasks(
                &none,
                Task::parse_all(request.tasks.unwrap_or_default(), rules)?,
                Seal::Store,
            )?,
            notifications: sealing.notifications(
                &none,
                Notification::parse_all(request.notifications.unwrap_or_default(), rules)?,
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
        let current = self.orchestration_control(actor, id).await?;
        let sealing = self.url_sealing(id);
        let changes = Changes {
            name: request.name,
            crontab: request.crontab.map(crontab).transpose()?,
            active: request.active,
            tasks: request
                .tasks
                .map(|t| sealing.tasks(&current, Task::parse_all(t, rules)?, Seal::Store))
                .transpose()?,
            notifications: request
                .notifications
                .map(|n| sealing.notifications(&current, Notification::parse_all(n, rules)?))
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
    ) -> Result<(OrchestrationRun, Written), CommandError> {
        let orchestration = self.orchestration_control(actor, id).await?;
        let sealing = self.url_sealing(id);
        let requested = request
            .tasks
            .map(|t| sealing.tasks(&orchestration, Task::parse_all(t, rules)?, Seal::Resolve))
            .transpose()?;
        crate::jobs::check_notification_emails(&request.notification_emails)?;
        let tasks = sealing.tasks(
            &orchestration,
            orchestration.tasks_for_run(requested)?,
            Seal::Store,
        )?;
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
        let run = OrchestrationRun {
            job: self.job_view(job_id).await?,
            token_id: orchestration.token_id.unwrap_or_default(),
            orchestration_name: orchestration.name,
        };
        Ok((run, written))
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
        let tasks = self
            .url_sealing(id)
            .tasks(state, state.tasks.clone(), Seal::Store)?;
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

    /// Seals what orchestrations stored before sealing existed still hold in clear: for each
    /// whose latest tasks or notifications (deleted ones too: they still read, and their row
    /// keeps its notifications) hold a secret URL in clear, appends their sealed replacement
    /// against the stream's exact version, so of several nodes starting at once one writes it
    /// and the others, finding it sealed, write nothing. Idempotent: once sealed, nothing is
    /// left to do. Waits for the read models to hold what it wrote. Returns how many
    /// orchestrations it sealed.
    #[tracing::instrument(skip_all)]
    pub async fn seal_clear_orchestration_urls(&self) -> Result<usize, CommandError> {
        let candidates = self.orchestrations_holding_clear_urls().await?;
        if candidates.is_empty() {
            return Ok(0);
        }
        if self.sealer().is_err() {
            tracing::warn!(
                orchestrations = candidates.len(),
                "orchestrations hold secret URLs in clear from before sealing, and this server has no data key to seal them"
            );
            return Ok(0);
        }
        let (mut sealed, mut last) = (0, Written::default());
        for id in candidates {
            // One orchestration that cannot be sealed now (an outage, an event this version
            // cannot read) must not leave every later one in clear: it is tried again next start.
            let written = match self.seal_orchestration_urls(&id).await {
                Ok(written) => written,
                Err(e) => {
                    tracing::warn!(orchestration = %id, error = %e, "could not seal the secret URLs it holds in clear; trying again at the next start");
                    continue;
                }
            };
            if written.position.is_some() {
                tracing::info!(orchestration = %id, "sealed the secret URLs it held in clear");
                sealed += 1;
                last = last.and(written);
            }
        }
        self.settle(last).await;
        Ok(sealed)
    }

    /// The orchestrations whose latest tasks or notifications, as their events hold them, hold
    /// a secret URL in clear: read from the events that set them alone.
    async fn orchestrations_holding_clear_urls(&self) -> Result<Vec<String>, CommandError> {
        let filter = Filter {
            categories: vec![<Orchestration as Aggregate>::CATEGORY.into()],
            event_types: [
                "OrchestrationCreated",
                "OrchestrationTasksReplaced",
                "OrchestrationNotificationsReplaced",
            ]
            .map(String::from)
            .to_vec(),
            ..Filter::default()
        };
        // By orchestration: whether its tasks, its notifications hold one in clear.
        let mut clear: BTreeMap<String, (bool, bool)> = BTreeMap::new();
        let mut from = 1;
        loop {
            let page = self.store.read_page(from, SCAN_PAGE, &filter).await?;
            for recorded in &page.events {
                from = recorded.position + 1;
                let event: OrchestrationEvent = match bosun_domain::decode(
                    &recorded.event_type,
                    &recorded.data,
                ) {
                    Ok(event) => event,
                    Err(e) => {
                        tracing::warn!(position = recorded.position, error = %e, "an orchestration event does not load; not checked for URLs in clear");
                        continue;
                    }
                };
                let held = clear
                    .entry(recorded.stream_id.id().to_string())
                    .or_default();
                match event {
                    OrchestrationEvent::OrchestrationCreated(d) => {
                        *held = (clear_tasks(&d.tasks), clear_notifications(&d.notifications))
                    }
                    OrchestrationEvent::OrchestrationTasksReplaced { tasks } => {
                        held.0 = clear_tasks(&tasks)
                    }
                    OrchestrationEvent::OrchestrationNotificationsReplaced { notifications } => {
                        held.1 = clear_notifications(&notifications)
                    }
                    _ => {}
                }
            }
            if page.events.len() < SCAN_PAGE {
                break;
            }
        }
        Ok(clear
            .into_iter()
            .filter(|(_, (tasks, notifications))| *tasks || *notifications)
            .map(|(id, _)| id)
            .collect())
    }

    /// Seals what orchestration `id` holds in clear, against its exact version; nothing if it
    /// holds nothing so (another node sealed it first).
    async fn seal_orchestration_urls(&self, id: &str) -> Result<Written, CommandError> {
        let mut held = self.hold::<Orchestration>(id).await?;
        for _ in 0..ATTEMPTS {
            let events = self.sealed_replacements(id, &held.state)?;
            if events.is_empty() {
                return Ok(Written::default());
            }
            match self
                .append_held(
                    &mut held,
                    &SEALER,
                    &Origin::default(),
                    Uuid::new_v4(),
                    events,
                )
                .await?
            {
                Appended::Written(written) => return Ok(written),
                // Another writer got there first: decided again on what it left.
                Appended::Conflict => {}
            }
        }
        Err(CommandError::Contended(format!("orchestration {id}")))
    }

    /// The events that replace what `state` holds in clear with the same values sealed.
    fn sealed_replacements(
        &self,
        id: &str,
        state: &Orchestration,
    ) -> Result<Vec<OrchestrationEvent>, CommandError> {
        let sealing = self.url_sealing(id);
        let mut events = Vec::new();
        if clear_tasks(&state.tasks) {
            events.push(OrchestrationEvent::OrchestrationTasksReplaced {
                tasks: sealing.tasks(state, state.tasks.clone(), Seal::Store)?,
            });
        }
        if clear_notifications(&state.notifications) {
            events.push(OrchestrationEvent::OrchestrationNotificationsReplaced {
                notifications: sealing.notifications(state, state.notifications.clone())?,
            });
        }
        Ok(events)
    }

    /// The URL `url` of `field` of orchestration `orchestration_id` (or of one of its jobs) in
    /// clear, to make the call: opened if sealed, as it is if stored in clear.
    pub fn open_url(
        &self,
        field: UrlField,
        orchestration_id: &str,
        url: &StoredUrl,
    ) -> Result<SecretString, CommandError> {
        match url {
            StoredUrl::Clear(url) => Ok(SecretString::from(url.clone())),
            StoredUrl::Sealed { sealed, .. } => self
                .sealer()?
                .open(&field.context(orchestration_id), sealed),
        }
    }

    fn url_sealing<'a>(&'a self, id: &'a str) -> UrlSealing<'a> {
        UrlSealing {
            sealer: self.sealer().ok(),
            id,
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
        actor.require_writer()?;
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

/// Seals the secret URLs given to orchestration `id` (see the module's doc), keeping the stored
/// value of each one it already holds.
///
/// [`Seal::Resolve`] only names held values (for a run's requested tasks, compared with the
/// orchestration's, which may hold a URL in clear from before sealing); [`Seal::Store`] also
/// seals every secret URL left in clear, for an event.
struct UrlSealing<'a> {
    /// None without a data key: then only URLs with no secret can be stored.
    sealer: Option<&'a Sealer>,
    id: &'a str,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Seal {
    Resolve,
    Store,
}

impl UrlSealing<'_> {
    /// `tasks` to store (or, with [`Seal::Resolve`], to compare) in `current`.
    fn tasks(
        &self,
        current: &Orchestration,
        mut tasks: Vec<Task>,
        seal: Seal,
    ) -> Result<Vec<Task>, CommandError> {
        let held: Vec<Option<&StoredUrl>> = current.tasks.iter().map(Task::url).collect();
        let mut field = self.field(UrlField::ComponentUrl, "tasks", held);
        for (position, task) in tasks.iter_mut().enumerate() {
            if let Some(url) = task.url_mut() {
                *url = field.store(position, url, seal)?;
            }
        }
        Ok(tasks)
    }

    /// `notifications` to store in `current`.
    fn notifications(
        &self,
        current: &Orchestration,
        mut notifications: Vec<Notification>,
    ) -> Result<Vec<Notification>, CommandError> {
        let held = current
            .notifications
            .iter()
            .map(|n| n.webhook_url.as_ref())
            .collect();
        let mut field = self.field(UrlField::WebhookUrl, "notifications", held);
        for (position, notification) in notifications.iter_mut().enumerate() {
            if let Some(url) = &mut notification.webhook_url {
                *url = field.store(position, url, Seal::Store)?;
            }
        }
        Ok(notifications)
    }

    fn field<'h>(
        &self,
        field: UrlField,
        name: &'static str,
        held: Vec<Option<&'h StoredUrl>>,
    ) -> HeldUrls<'_, 'h> {
        HeldUrls {
            sealer: self.sealer,
            field,
            name,
            context: field.context(self.id),
            opened: vec![None; held.len()],
            held,
        }
    }
}

/// The URLs of one field an orchestration holds, by place (a task's index, a notification's),
/// with those opened so far.
struct HeldUrls<'s, 'h> {
    sealer: Option<&'s Sealer>,
    field: UrlField,
    /// The input's field, for refusals.
    name: &'static str,
    context: String,
    held: Vec<Option<&'h StoredUrl>>,
    /// Each held URL in clear, once needed (`Some(None)`: it did not open).
    opened: Vec<Option<Option<SecretString>>>,
}

impl HeldUrls<'_, '_> {
    /// What to store for `given` at `position`: a held value if it names one (a sealed one as
    /// it is; one in clear from before sealing sealed anew, unless `seal` is
    /// [`Seal::Resolve`]), else `given` sealed if it is a secret, else `given` as it is.
    fn store(
        &mut self,
        position: usize,
        given: &StoredUrl,
        seal: Seal,
    ) -> Result<StoredUrl, CommandError> {
        let StoredUrl::Clear(url) = given else {
            return Ok(given.clone());
        };
        let mut url = url.clone();
        // Given back as reads show it.
        let shown_so: Vec<usize> = (0..self.held.len())
            .filter(|&i| {
                self.held[i].is_some_and(|h| h.is_hidden(self.field) && h.shown(self.field) == url)
            })
            .collect();
        if !shown_so.is_empty() {
            let index = if shown_so.contains(&position) {
                position
            } else if let [only] = shown_so[..] {
                only
            } else {
                return Err(DomainError::invalid(
                    self.name,
                    format!(
                        "{} {url:?} is how reads show a sealed URL, and several of the orchestration's are shown so: give the URL in full",
                        self.field.as_str()
                    ),
                )
                .into());
            };
            match self.held[index] {
                Some(StoredUrl::Clear(clear)) => url = clear.clone(),
                Some(sealed) => return Ok(sealed.clone()),
                None => {}
            }
        }
        if !self.field.is_secret(&url) {
            return Ok(StoredUrl::Clear(url));
        }
        // Given again in clear: the held value stays.
        for index in 0..self.held.len() {
            if let Some(sealed @ StoredUrl::Sealed { .. }) = self.held[index] {
                if self
                    .open(index)
                    .is_some_and(|clear| clear.expose_secret() == url)
                {
                    return Ok(sealed.clone());
                }
            }
        }
        if seal == Seal::Resolve {
            return Ok(StoredUrl::Clear(url));
        }
        let Some(sealer) = self.sealer else {
            return Err(CommandError::Internal(format!(
                "a {} holding a secret cannot be stored: this server has no data key to seal it with",
                self.field.as_str()
            )));
        };
        Ok(StoredUrl::Sealed {
            sealed: sealer.seal(&self.context, &url)?,
            shown: self.field.shown(&url).into_owned(),
        })
    }

    /// Held URL `index` in clear, if it is sealed and opens.
    fn open(&mut self, index: usize) -> Option<&SecretString> {
        if self.opened[index].is_none() {
            let opened = match (self.held[index], self.sealer) {
                (Some(StoredUrl::Sealed { sealed, .. }), Some(sealer)) => {
                    match sealer.open(&self.context, sealed) {
                        Ok(clear) => Some(clear),
                        Err(e) => {
                            tracing::warn!(context = %self.context, error = %e, "a held URL does not open; it is sealed anew if given again");
                            None
                        }
                    }
                }
                _ => None,
            };
            self.opened[index] = Some(opened);
        }
        self.opened[index].as_ref().and_then(Option::as_ref)
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
        restarted_from: None,
        role_job: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretSlice;

    fn sealer() -> Sealer {
        Sealer::new(&SecretSlice::from(vec![3u8; 32]))
    }

    fn sealing(sealer: Option<&Sealer>) -> UrlSealing<'_> {
        UrlSealing { sealer, id: "o1" }
    }

    fn webhooks(urls: &[&str]) -> Vec<Notification> {
        urls.iter()
            .map(|url| Notification {
                email: None,
                webhook_url: Some(StoredUrl::Clear(url.to_string())),
                channel: bosun_domain::orchestrations::Channel::Error,
                parameters: serde_json::json!({}),
            })
            .collect()
    }

    fn holding(notifications: Vec<Notification>) -> Orchestration {
        Orchestration {
            id: Some("o1".into()),
            notifications,
            ..Orchestration::default()
        }
    }

    fn url(n: &Notification) -> &StoredUrl {
        n.webhook_url.as_ref().unwrap()
    }

    const A: &str = "https://hooks.example.com/T0/aaaa";
    const B: &str = "https://hooks.example.com/T0/bbbb";
    const SHOWN: &str = "https://hooks.example.com/…";

    #[test]
    fn a_new_secret_url_is_sealed_for_its_orchestration_and_field() {
        let sealer = sealer();
        let stored = sealing(Some(&sealer))
            .notifications(&Orchestration::default(), webhooks(&[A]))
            .unwrap();
        let StoredUrl::Sealed { sealed, shown } = url(&stored[0]) else {
            panic!("sealed")
        };
        assert_eq!(shown, SHOWN);
        assert!(!sealed.as_str().contains("aaaa"));
        let opened = sealer.open("orchestration-o1/webhook_url", sealed).unwrap();
        assert_eq!(opened.expose_secret(), A);
        assert!(sealer.open("orchestration-o2/webhook_url", sealed).is_err());
        assert!(sealer
            .open("orchestration-o1/component_url", sealed)
            .is_err());
    }

    #[test]
    fn a_held_url_given_again_in_clear_or_as_shown_keeps_its_sealed_value() {
        let sealer = sealer();
        let sealing = sealing(Some(&sealer));
        let held = sealing
            .notifications(&Orchestration::default(), webhooks(&[A, B]))
            .unwrap();
        let current = holding(held.clone());
        // In clear, in another order.
        let again = sealing.notifications(&current, webhooks(&[B, A])).unwrap();
        assert_eq!(
            (url(&again[0]), url(&again[1])),
            (url(&held[1]), url(&held[0]))
        );
        // As shown: both are shown so, each names the one at its place.
        let shown = sealing
            .notifications(&current, webhooks(&[SHOWN, SHOWN]))
            .unwrap();
        assert_eq!(shown, held);
        // A third place shown so names neither for sure.
        let refused = sealing
            .notifications(&current, webhooks(&[A, B, SHOWN]))
            .unwrap_err();
        assert!(
            matches!(
                &refused,
                CommandError::Domain(DomainError::Invalid {
                    field: "notifications",
                    ..
                })
            ),
            "{refused:?}"
        );
        // Only one shown so: it is that one, wherever it is given.
        let one = holding(held[..1].to_vec());
        let moved = sealing
            .notifications(&one, webhooks(&["https://x.io/new", SHOWN]))
            .unwrap();
        assert_eq!(url(&moved[1]), url(&held[0]));
        assert!(
            matches!(url(&moved[0]), StoredUrl::Sealed { shown, .. } if shown == "https://x.io/…")
        );
    }

    #[test]
    fn a_url_held_in_clear_from_before_sealing_is_sealed_when_stored_but_matches_when_compared() {
        let sealer = sealer();
        let sealing = sealing(Some(&sealer));
        let legacy = "https://bot:pa55@api.example.com/run";
        let task = |url: &str| Task {
            target: bosun_domain::orchestrations::TaskTarget::Url(StoredUrl::Clear(url.into())),
            action: None,
            parameters: serde_json::json!({}),
            continue_on_failure: false,
            timeout_minutes: None,
            active: true,
        };
        let current = Orchestration {
            id: Some("o1".into()),
            tasks: vec![task(legacy), task("https://api.example.com/plain")],
            ..Orchestration::default()
        };
        for given in [legacy, "https://api.example.com/…"] {
            let requested = vec![task(given), task("https://api.example.com/plain")];
            let resolved = sealing
                .tasks(&current, requested.clone(), Seal::Resolve)
                .unwrap();
            assert_eq!(resolved, current.tasks, "{given}");
            let stored = sealing.tasks(&current, requested, Seal::Store).unwrap();
            assert!(matches!(stored[0].url(), Some(StoredUrl::Sealed { .. })));
            assert_eq!(stored[1], current.tasks[1], "no secret: kept in clear");
        }
    }

    /// Commands over an in-memory log holding orchestration `o1` as stored before sealing: a
    /// secret `component_url`, a plain one and a webhook, all in clear; deleted if `deleted`.
    async fn stored_before_sealing(
        deleted: bool,
    ) -> Commands<bosun_eventstore::InMemoryEventStore> {
        let commands = Commands::over(
            bosun_eventstore::InMemoryEventStore::default(),
            bosun_projections::Freshness::none(),
            None,
        )
        .with_sealer(sealer());
        let task = |url: &str| Task {
            target: bosun_domain::orchestrations::TaskTarget::Url(StoredUrl::Clear(url.into())),
            action: None,
            parameters: serde_json::json!({}),
            continue_on_failure: false,
            timeout_minutes: None,
            active: true,
        };
        let mut events = vec![OrchestrationEvent::OrchestrationCreated(Box::new(
            Definition {
                id: "o1".into(),
                name: "from before".into(),
                crontab: None,
                active: true,
                tasks: vec![task(LEGACY), task(PLAIN)],
                notifications: webhooks(&[A]),
                token_id: Uuid::nil(),
                created_by: "ann".into(),
                at: Utc::now(),
                next_scheduled_at: None,
            },
        ))];
        if deleted {
            events.push(OrchestrationEvent::OrchestrationDeleted {});
        }
        // Appended as they were then, past today's checks.
        commands
            .execute::<Orchestration>("o1", &Actor::System("test"), &Origin::default(), |_| {
                Ok(events.clone())
            })
            .await
            .unwrap();
        commands
    }

    const LEGACY: &str = "https://bot:pa55@api.example.com/run?key=k3y";
    const PLAIN: &str = "https://api.example.com/plain";

    async fn stream_of_o1(
        commands: &Commands<bosun_eventstore::InMemoryEventStore>,
    ) -> Vec<String> {
        commands
            .store
            .read_stream(
                &bosun_eventstore::StreamId::parse("orchestration-o1").unwrap(),
                0,
                100,
            )
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event_type)
            .collect()
    }

    /// Asserts `o1` holds its URLs sealed (the plain one in clear), each opening to what it was.
    async fn assert_sealed(commands: &Commands<bosun_eventstore::InMemoryEventStore>) {
        let (state, _) = commands.load::<Orchestration>("o1").await.unwrap();
        let task_url = state.tasks[0].url().unwrap();
        assert!(matches!(task_url, StoredUrl::Sealed { .. }), "{task_url:?}");
        let opened = commands
            .open_url(UrlField::ComponentUrl, "o1", task_url)
            .unwrap();
        assert_eq!(opened.expose_secret(), LEGACY);
        assert_eq!(state.tasks[1].url(), Some(&StoredUrl::Clear(PLAIN.into())));
        let webhook = url(&state.notifications[0]);
        assert!(matches!(webhook, StoredUrl::Sealed { .. }), "{webhook:?}");
        let opened = commands
            .open_url(UrlField::WebhookUrl, "o1", webhook)
            .unwrap();
        assert_eq!(opened.expose_secret(), A);
    }

    #[tokio::test]
    async fn urls_stored_in_clear_before_sealing_are_sealed_once() {
        let commands = stored_before_sealing(false).await;
        assert_eq!(commands.seal_clear_orchestration_urls().await.unwrap(), 1);
        assert_sealed(&commands).await;
        let events = stream_of_o1(&commands).await;
        assert_eq!(
            events,
            [
                "OrchestrationCreated",
                "OrchestrationTasksReplaced",
                "OrchestrationNotificationsReplaced"
            ]
        );
        // Again (the next start): nothing left to do, nothing written.
        assert_eq!(commands.seal_clear_orchestration_urls().await.unwrap(), 0);
        assert_eq!(stream_of_o1(&commands).await, events);
        // Nothing in the log after the creation holds them in clear.
        let after = commands
            .store
            .read_all(2, 100, &Filter::all())
            .await
            .unwrap();
        let text = serde_json::to_string(&after).unwrap();
        assert!(!text.contains("pa55") && !text.contains("aaaa"), "{text}");
    }

    #[tokio::test]
    async fn a_deleted_orchestration_is_sealed_too() {
        let commands = stored_before_sealing(true).await;
        assert_eq!(commands.seal_clear_orchestration_urls().await.unwrap(), 1);
        assert_sealed(&commands).await;
        let (state, _) = commands.load::<Orchestration>("o1").await.unwrap();
        assert!(state.deleted);
    }

    #[tokio::test]
    async fn of_two_nodes_sealing_at_once_one_writes() {
        let commands = stored_before_sealing(false).await;
        // The other node decided on the stream as it was, then this one sealed it.
        let mut stale = commands.hold::<Orchestration>("o1").await.unwrap();
        let theirs = commands.sealed_replacements("o1", &stale.state).unwrap();
        assert_eq!(theirs.len(), 2);
        assert_eq!(commands.seal_clear_orchestration_urls().await.unwrap(), 1);
        let appended = commands
            .append_held(
                &mut stale,
                &SEALER,
                &Origin::default(),
                Uuid::new_v4(),
                theirs,
            )
            .await
            .unwrap();
        assert!(matches!(appended, Appended::Conflict));
        // Reloaded, it finds nothing left to seal.
        assert!(commands
            .sealed_replacements("o1", &stale.state)
            .unwrap()
            .is_empty());
        assert_eq!(stream_of_o1(&commands).await.len(), 3);
    }

    #[tokio::test]
    async fn without_a_data_key_urls_in_clear_are_left_and_the_start_goes_on() {
        let commands = Commands::over(
            bosun_eventstore::InMemoryEventStore::default(),
            bosun_projections::Freshness::none(),
            None,
        );
        let with_key = stored_before_sealing(false).await;
        let events = with_key
            .store
            .read_all(1, 100, &Filter::all())
            .await
            .unwrap();
        let created: OrchestrationEvent =
            bosun_domain::decode(&events[0].event_type, &events[0].data).unwrap();
        commands
            .execute::<Orchestration>("o1", &Actor::System("test"), &Origin::default(), |_| {
                Ok(vec![created.clone()])
            })
            .await
            .unwrap();
        assert_eq!(commands.seal_clear_orchestration_urls().await.unwrap(), 0);
        assert_eq!(stream_of_o1(&commands).await, ["OrchestrationCreated"]);
    }

    #[test]
    fn without_a_data_key_only_urls_without_a_secret_are_stored() {
        let refused = sealing(None)
            .notifications(&Orchestration::default(), webhooks(&[A]))
            .unwrap_err();
        assert!(matches!(refused, CommandError::Internal(_)), "{refused:?}");
        let plain = Task::parse(
            serde_json::from_value(serde_json::json!({"component_url": "https://x.io/run"}))
                .unwrap(),
            &TaskRules {
                catalog: &serde_json::from_value(serde_json::json!({})).unwrap(),
                allow_insecure_hosts: &[],
            },
        )
        .unwrap();
        let stored = sealing(None)
            .tasks(&Orchestration::default(), vec![plain.clone()], Seal::Store)
            .unwrap();
        assert_eq!(stored, vec![plain]);
    }
}
