//! The orchestration aggregate, stream `orchestration-<id>`: a named, ordered list of tasks with
//! an optional cron schedule and notifications.
//!
//! A deleted orchestration accepts no command (409 `orchestration_deleted`) but still reads. The
//! scheduler claims each cron slot with `RecordScheduledRun` against the stream's exact version,
//! so a slot is fired once however many schedulers race or restart.
//!
//! No event it records holds a secret URL in clear (`super::url`): `commands` seals them before
//! the command, and a command carrying one unsealed is refused.

use super::crontab::Crontab;
use super::task::{Notification, Task};
use super::url::UrlField;
use crate::aggregate::{Aggregate, DomainEvent};
use crate::error::DomainError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How late a slot may be fired before the run counts as a catch-up after downtime.
pub const CATCH_UP_AFTER_SECONDS: i64 = 60;
/// At most this many missed slots are counted (a `* * * * *` orchestration down for a week).
const MAX_COUNTED_MISSES: u32 = 100_000;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Definition {
    pub id: String,
    pub name: String,
    pub crontab: Option<Crontab>,
    pub active: bool,
    pub tasks: Vec<Task>,
    pub notifications: Vec<Notification>,
    pub token_id: Uuid,
    pub created_by: String,
    /// When it was created: the first cron slot is the first after it.
    pub at: DateTime<Utc>,
    /// Filled in by the aggregate, so read models need no cron arithmetic.
    #[serde(default)]
    pub next_scheduled_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event_type", content = "data")]
pub enum OrchestrationEvent {
    OrchestrationCreated(Box<Definition>),
    OrchestrationRenamed {
        name: String,
    },
    /// A new schedule (or none); slots count from `at`.
    OrchestrationScheduleChanged {
        crontab: Option<Crontab>,
        at: DateTime<Utc>,
        #[serde(default)]
        next_scheduled_at: Option<DateTime<Utc>>,
    },
    /// Scheduling resumes with the first slot after `at`: slots missed while inactive never fire.
    OrchestrationActivated {
        at: DateTime<Utc>,
        #[serde(default)]
        next_scheduled_at: Option<DateTime<Utc>>,
    },
    OrchestrationDeactivated {},
    OrchestrationTasksReplaced {
        tasks: Vec<Task>,
    },
    OrchestrationNotificationsReplaced {
        notifications: Vec<Notification>,
    },
    /// Runs now send a token derived from `token_id`; the one from `revoked_token_id` is no
    /// longer sent.
    OrchestrationTokenRefreshed {
        token_id: Uuid,
        revoked_token_id: Uuid,
    },
    OrchestrationDeleted {},
    /// The scheduler fired the slot `scheduled_for` as job `job_id`. A catch-up run after
    /// downtime says how many slots it stands for (`missed`), which never fire on their own.
    OrchestrationRunScheduled {
        scheduled_for: DateTime<Utc>,
        job_id: Uuid,
        catch_up: bool,
        missed: u32,
        #[serde(default)]
        next_scheduled_at: Option<DateTime<Utc>>,
    },
}

impl DomainEvent for OrchestrationEvent {
    fn event_type(&self) -> &'static str {
        match self {
            OrchestrationEvent::OrchestrationCreated(_) => "OrchestrationCreated",
            OrchestrationEvent::OrchestrationRenamed { .. } => "OrchestrationRenamed",
            OrchestrationEvent::OrchestrationScheduleChanged { .. } => {
                "OrchestrationScheduleChanged"
            }
            OrchestrationEvent::OrchestrationActivated { .. } => "OrchestrationActivated",
            OrchestrationEvent::OrchestrationDeactivated {} => "OrchestrationDeactivated",
            OrchestrationEvent::OrchestrationTasksReplaced { .. } => "OrchestrationTasksReplaced",
            OrchestrationEvent::OrchestrationNotificationsReplaced { .. } => {
                "OrchestrationNotificationsReplaced"
            }
            OrchestrationEvent::OrchestrationTokenRefreshed { .. } => "OrchestrationTokenRefreshed",
            OrchestrationEvent::OrchestrationDeleted {} => "OrchestrationDeleted",
            OrchestrationEvent::OrchestrationRunScheduled { .. } => "OrchestrationRunScheduled",
        }
    }
}

/// Changes of a PATCH: each `Some` is applied, in one append.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    pub name: Option<String>,
    /// `Some(None)` removes the schedule.
    pub crontab: Option<Option<Crontab>>,
    pub active: Option<bool>,
    pub tasks: Option<Vec<Task>>,
    pub notifications: Option<Vec<Notification>>,
}

#[derive(Clone, Debug)]
pub enum OrchestrationCommand {
    Create(Box<Definition>),
    Update {
        changes: Box<Changes>,
        at: DateTime<Utc>,
    },
    RefreshToken {
        token_id: Uuid,
    },
    Delete,
    /// Fire the due slot, if it is still due at `now`.
    ScheduleRun {
        now: DateTime<Utc>,
    },
}

/// The run the scheduler last fired.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduledRun {
    pub scheduled_for: DateTime<Utc>,
    pub job_id: Uuid,
    pub catch_up: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Orchestration {
    pub id: Option<String>,
    pub name: String,
    pub crontab: Option<Crontab>,
    pub active: bool,
    pub deleted: bool,
    pub tasks: Vec<Task>,
    pub notifications: Vec<Notification>,
    pub token_id: Option<Uuid>,
    pub created_by: String,
    /// Slots after this may fire: creation, activation or a new schedule, or the last run.
    pub schedule_from: Option<DateTime<Utc>>,
    pub last_run: Option<ScheduledRun>,
    /// The run before it: the scheduler checks it has its job.
    pub previous_run: Option<ScheduledRun>,
}

/// A name: 1 to 256 characters, not blank.
pub fn check_name(name: &str) -> Result<(), DomainError> {
    if name.trim().is_empty() || name.chars().count() > 256 {
        return Err(DomainError::invalid(
            "name",
            "must be 1 to 256 characters, not blank",
        ));
    }
    Ok(())
}

/// The job id of the run for `slot`: the same slot of the same orchestration always names the
/// same job, so a scheduler that fires it again after a crash cannot make a second one.
pub fn scheduled_job_id(orchestration_id: &str, slot: DateTime<Utc>) -> Uuid {
    let name = format!(
        "bosun scheduled run\n{orchestration_id}\n{}",
        slot.timestamp()
    );
    Uuid::new_v5(&Uuid::NAMESPACE_OID, name.as_bytes())
}

/// What is due at `now`: the latest slot at or before `now` after `from`, and how many earlier
/// slots it stands for. `None` when nothing is due.
pub fn due_slot(
    crontab: &Crontab,
    from: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<(DateTime<Utc>, u32)> {
    let mut slot = crontab.next_after(from).filter(|s| *s <= now)?;
    let mut missed = 0;
    while let Some(next) = crontab.next_after(slot).filter(|s| *s <= now) {
        slot = next;
        missed += 1;
        if missed >= MAX_COUNTED_MISSES {
            // Skip ahead: the rest are missed too, but not worth counting one by one.
            let latest =
                std::iter::successors(Some(slot), |s| crontab.next_after(*s).filter(|n| *n <= now))
                    .last()
                    .unwrap_or(slot);
            return Some((latest, missed));
        }
    }
    Some((slot, missed))
}

impl Orchestration {
    fn decide(
        &self,
        command: OrchestrationCommand,
    ) -> Result<Vec<OrchestrationEvent>, DomainError> {
        use OrchestrationEvent as E;
        match command {
            OrchestrationCommand::Create(definition) => {
                if self.id.is_some() {
                    return Err(DomainError::conflict(
                        "orchestration_exists",
                        "the orchestration exists",
                    ));
                }
                check_name(&definition.name)?;
                Ok(vec![E::OrchestrationCreated(definition)])
            }
            OrchestrationCommand::Update { changes, at } => {
                self.live()?;
                let changes = *changes;
                let mut events = Vec::new();
                if let Some(name) = changes.name.filter(|n| *n != self.name) {
                    check_name(&name)?;
                    events.push(E::OrchestrationRenamed { name });
                }
                if let Some(crontab) = changes.crontab.filter(|c| *c != self.crontab) {
                    events.push(E::OrchestrationScheduleChanged {
                        crontab,
                        at,
                        next_scheduled_at: None,
                    });
                }
                match changes.active {
                    Some(true) if !self.active => events.push(E::OrchestrationActivated {
                        at,
                        next_scheduled_at: None,
                    }),
                    Some(false) if self.active => events.push(E::OrchestrationDeactivated {}),
                    _ => {}
                }
                if let Some(tasks) = changes.tasks.filter(|t| *t != self.tasks) {
                    events.push(E::OrchestrationTasksReplaced { tasks });
                }
                if let Some(notifications) =
                    changes.notifications.filter(|n| *n != self.notifications)
                {
                    events.push(E::OrchestrationNotificationsReplaced { notifications });
                }
                Ok(events)
            }
            OrchestrationCommand::RefreshToken { token_id } => {
                self.live()?;
                Ok(vec![E::OrchestrationTokenRefreshed {
                    token_id,
                    revoked_token_id: self.token_id.unwrap_or_default(),
                }])
            }
            OrchestrationCommand::Delete => {
                self.live()?;
                Ok(vec![E::OrchestrationDeleted {}])
            }
            OrchestrationCommand::ScheduleRun { now } => {
                let id = self.live()?;
                let (Some(crontab), Some(from), true) =
                    (&self.crontab, self.schedule_from, self.active)
                else {
                    return Ok(vec![]);
                };
                let Some((slot, missed)) = due_slot(crontab, from, now) else {
                    return Ok(vec![]);
                };
                let late = (now - slot).num_seconds();
                Ok(vec![E::OrchestrationRunScheduled {
                    scheduled_for: slot,
                    job_id: scheduled_job_id(id, slot),
                    catch_up: missed > 0 || late > CATCH_UP_AFTER_SECONDS,
                    missed,
                    next_scheduled_at: None,
                }])
            }
        }
    }

    fn live(&self) -> Result<&str, DomainError> {
        let Some(id) = &self.id else {
            return Err(DomainError::NotFound("no such orchestration".into()));
        };
        if self.deleted {
            return Err(DomainError::conflict(
                "orchestration_deleted",
                "the orchestration was deleted; it can be read but not changed or run",
            ));
        }
        Ok(id)
    }

    /// When its next run is due, if it is active and has a schedule.
    pub fn next_scheduled_at(&self) -> Option<DateTime<Utc>> {
        if !self.active || self.deleted {
            return None;
        }
        self.crontab.as_ref()?.next_after(self.schedule_from?)
    }

    /// The tasks of a manual run: the orchestration's, or `requested` if it lists all of them in
    /// the same order with only `active` changed.
    pub fn tasks_for_run(&self, requested: Option<Vec<Task>>) -> Result<Vec<Task>, DomainError> {
        self.live()?;
        let Some(requested) = requested else {
            return Ok(self.tasks.clone());
        };
        if requested.len() != self.tasks.len()
            || !requested
                .iter()
                .zip(&self.tasks)
                .all(|(r, t)| t.same_apart_from_active(r))
        {
            return Err(DomainError::invalid(
                "tasks",
                format!(
                    "must be the orchestration's {} tasks in the same order; only active may differ",
                    self.tasks.len()
                ),
            ));
        }
        Ok(requested)
    }
}

/// Refuses an event that would store a secret URL in clear: `commands` seals every one before
/// it decides, so this is a bug caught before it reaches the log.
fn refuse_unsealed(event: &OrchestrationEvent) -> Result<(), DomainError> {
    let (tasks, notifications): (&[Task], &[Notification]) = match event {
        OrchestrationEvent::OrchestrationCreated(d) => (&d.tasks, &d.notifications),
        OrchestrationEvent::OrchestrationTasksReplaced { tasks } => (tasks, &[]),
        OrchestrationEvent::OrchestrationNotificationsReplaced { notifications } => {
            (&[], notifications)
        }
        _ => return Ok(()),
    };
    let unsealed = |field: &'static str, kind: UrlField, shown: &str| {
        DomainError::invalid(
            field,
            format!(
                "{} {shown:?} holds a secret and must be sealed before it is stored",
                kind.as_str()
            ),
        )
    };
    for task in tasks {
        if let Some(url) = task
            .url()
            .filter(|u| u.needs_sealing(UrlField::ComponentUrl))
        {
            return Err(unsealed(
                "tasks",
                UrlField::ComponentUrl,
                &url.shown(UrlField::ComponentUrl),
            ));
        }
    }
    for notification in notifications {
        if let Some(url) = notification
            .webhook_url
            .as_ref()
            .filter(|u| u.needs_sealing(UrlField::WebhookUrl))
        {
            return Err(unsealed(
                "notifications",
                UrlField::WebhookUrl,
                &url.shown(UrlField::WebhookUrl),
            ));
        }
    }
    Ok(())
}

impl Aggregate for Orchestration {
    type Command = OrchestrationCommand;
    type Event = OrchestrationEvent;
    const CATEGORY: &'static str = "orchestration";

    fn handle(
        &self,
        command: OrchestrationCommand,
    ) -> Result<Vec<OrchestrationEvent>, DomainError> {
        let mut events = self.decide(command)?;
        for event in &events {
            refuse_unsealed(event)?;
        }
        // Each event that moves the schedule says where it moved to.
        let mut after = self.clone();
        for event in &mut events {
            after.apply(event);
            let next = after.next_scheduled_at();
            match event {
                OrchestrationEvent::OrchestrationCreated(d) => d.next_scheduled_at = next,
                OrchestrationEvent::OrchestrationScheduleChanged {
                    next_scheduled_at, ..
                }
                | OrchestrationEvent::OrchestrationActivated {
                    next_scheduled_at, ..
                }
                | OrchestrationEvent::OrchestrationRunScheduled {
                    next_scheduled_at, ..
                } => *next_scheduled_at = next,
                _ => {}
            }
        }
        Ok(events)
    }

    fn apply(&mut self, event: &OrchestrationEvent) {
        use OrchestrationEvent as E;
        match event {
            E::OrchestrationCreated(d) => {
                self.id = Some(d.id.clone());
                self.name = d.name.clone();
                self.crontab = d.crontab.clone();
                self.active = d.active;
                self.tasks = d.tasks.clone();
                self.notifications = d.notifications.clone();
                self.token_id = Some(d.token_id);
                self.created_by = d.created_by.clone();
                self.schedule_from = Some(d.at);
            }
            E::OrchestrationRenamed { name } => self.name = name.clone(),
            E::OrchestrationScheduleChanged { crontab, at, .. } => {
                self.crontab = crontab.clone();
                self.schedule_from = Some(*at);
            }
            E::OrchestrationActivated { at, .. } => {
                self.active = true;
                self.schedule_from = Some(*at);
            }
            E::OrchestrationDeactivated {} => self.active = false,
            E::OrchestrationTasksReplaced { tasks } => self.tasks = tasks.clone(),
            E::OrchestrationNotificationsReplaced { notifications } => {
                self.notifications = notifications.clone()
            }
            E::OrchestrationTokenRefreshed { token_id, .. } => self.token_id = Some(*token_id),
            E::OrchestrationDeleted {} => self.deleted = true,
            E::OrchestrationRunScheduled {
                scheduled_for,
                job_id,
                catch_up,
                ..
            } => {
                self.schedule_from = Some(*scheduled_for);
                self.previous_run = self.last_run.take();
                self.last_run = Some(ScheduledRun {
                    scheduled_for: *scheduled_for,
                    job_id: *job_id,
                    catch_up: *catch_up,
                });
            }
        }
    }

    fn exists(&self) -> bool {
        self.id.is_some()
    }
}
