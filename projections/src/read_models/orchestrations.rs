//! `orchestrations`: one row per orchestration with its tasks, notifications, schedule and the
//! scheduler's progress (`next_scheduled_at`, `last_scheduled_at`), which the scheduler reads
//! to find what is due. Deleted ones stay, marked, so their jobs still name something readable.
//!
//! `tasks` and `notifications` hold what the API shows: secret URLs redacted
//! (`bosun_domain::orchestrations::UrlField::shown`), never in clear nor sealed.
//! `stored_notifications` holds the notifications as the log stores them (webhook URLs sealed),
//! for the notifier to open; it is never answered.

use crate::projection::{Param, Projection, Tables, Writes};
use bosun_domain::orchestrations::{Notification, OrchestrationEvent, Task};
use bosun_eventstore::{Filter, RecordedEvent};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::GenericClient;
use uuid::Uuid;

pub struct Orchestrations;

impl Projection for Orchestrations {
    fn name(&self) -> &'static str {
        "orchestrations"
    }

    fn version(&self) -> i32 {
        // 2: secret URLs redacted in `tasks` and `notifications`; `stored_notifications`.
        2
    }

    fn tables(&self) -> &'static [&'static str] {
        &["orchestrations"]
    }

    fn filter(&self) -> Filter {
        Filter::category("orchestration")
    }

    fn create(&self, tables: &Tables) -> String {
        format!(
            "CREATE TABLE {o} (
                id                TEXT PRIMARY KEY,
                name              TEXT NOT NULL,
                crontab           TEXT,
                active            BOOLEAN NOT NULL,
                deleted           BOOLEAN NOT NULL DEFAULT false,
                tasks             JSONB NOT NULL,
                notifications     JSONB NOT NULL,
                stored_notifications JSONB NOT NULL,
                token_id          UUID NOT NULL,
                created_by        TEXT NOT NULL,
                created_at        TIMESTAMPTZ NOT NULL,
                updated_at        TIMESTAMPTZ NOT NULL,
                next_scheduled_at TIMESTAMPTZ,
                last_scheduled_at TIMESTAMPTZ,
                last_job_id       UUID,
                version           BIGINT NOT NULL);",
            o = tables.name("orchestrations"),
        )
    }

    fn indexes(&self, tables: &Tables) -> String {
        let o = tables.name("orchestrations");
        format!(
            "CREATE INDEX ON {o} (next_scheduled_at) WHERE next_scheduled_at IS NOT NULL;
             CREATE INDEX ON {o} (created_at DESC);"
        )
    }

    fn apply(&self, event: &RecordedEvent, tables: &Tables, writes: &mut Writes) {
        let decoded: OrchestrationEvent = match bosun_domain::decode(&event.event_type, &event.data)
        {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(position = event.position, error = %e, "orchestrations projection cannot read this event; skipped");
                return;
            }
        };
        let o = tables.name("orchestrations");
        let id = event
            .stream_id
            .as_str()
            .trim_start_matches("orchestration-")
            .to_string();
        let at = event.recorded_at;
        let version = event.version as i64;
        // Every change but the creation sets some columns, `updated_at` and `version`.
        let set = |columns: &str, mut params: Vec<Param>| {
            let mut all: Vec<Param> = vec![Box::new(id.clone()), Box::new(at), Box::new(version)];
            all.append(&mut params);
            (
                format!("UPDATE {o} SET {columns}, updated_at = $2, version = $3 WHERE id = $1"),
                all,
            )
        };
        use OrchestrationEvent as E;
        let (sql, params) = match decoded {
            E::OrchestrationCreated(d) => (
                format!(
                    "INSERT INTO {o} (id, name, crontab, active, tasks, notifications, token_id,
                        created_by, created_at, updated_at, next_scheduled_at, version,
                        stored_notifications)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12)"
                ),
                {
                    let params: Vec<Param> = vec![
                        Box::new(d.id.clone()),
                        Box::new(d.name.clone()),
                        Box::new(d.crontab.as_ref().map(|c| c.to_string())),
                        Box::new(d.active),
                        Box::new(shown_tasks(&d.tasks)),
                        Box::new(shown_notifications(&d.notifications)),
                        Box::new(d.token_id),
                        Box::new(d.created_by.clone()),
                        Box::new(at),
                        Box::new(d.next_scheduled_at),
                        Box::new(version),
                        Box::new(json(&d.notifications)),
                    ];
                    params
                },
            ),
            E::OrchestrationRenamed { name } => set("name = $4", vec![Box::new(name)]),
            E::OrchestrationScheduleChanged {
                crontab,
                next_scheduled_at,
                ..
            } => set(
                "crontab = $4, next_scheduled_at = $5",
                vec![
                    Box::new(crontab.map(|c| c.to_string())),
                    Box::new(next_scheduled_at),
                ],
            ),
            E::OrchestrationActivated {
                next_scheduled_at, ..
            } => set(
                "active = true, next_scheduled_at = $4",
                vec![Box::new(next_scheduled_at)],
            ),
            E::OrchestrationDeactivated {} => {
                set("active = false, next_scheduled_at = NULL", vec![])
            }
            E::OrchestrationTasksReplaced { tasks } => {
                set("tasks = $4", vec![Box::new(shown_tasks(&tasks))])
            }
            E::OrchestrationNotificationsReplaced { notifications } => set(
                "notifications = $4, stored_notifications = $5",
                vec![
                    Box::new(shown_notifications(&notifications)),
                    Box::new(json(&notifications)),
                ],
            ),
            E::OrchestrationTokenRefreshed { token_id, .. } => {
                set("token_id = $4", vec![Box::new(token_id)])
            }
            E::OrchestrationDeleted {} => set("deleted = true, next_scheduled_at = NULL", vec![]),
            E::OrchestrationRunScheduled {
                scheduled_for,
                job_id,
                next_scheduled_at,
                ..
            } => set(
                "last_scheduled_at = $4, last_job_id = $5, next_scheduled_at = $6",
                vec![
                    Box::new(scheduled_for),
                    Box::new(job_id),
                    Box::new(next_scheduled_at),
                ],
            ),
        };
        writes.push(sql, params);
    }
}

fn json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn shown_tasks(tasks: &[Task]) -> Value {
    Value::Array(tasks.iter().map(Task::shown).collect())
}

fn shown_notifications(notifications: &[Notification]) -> Value {
    Value::Array(notifications.iter().map(Notification::shown).collect())
}

/// An orchestration as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct OrchestrationView {
    pub id: String,
    pub name: String,
    pub crontab: Option<String>,
    pub active: bool,
    pub deleted: bool,
    /// Its tasks, in order: `{component, component_url, action, parameters,
    /// continue_on_failure, timeout_minutes, active}`. A `component_url` with a user name, a
    /// password, a query or a fragment is stored sealed and shown as `scheme://host[:port]/…`;
    /// any other is shown as given. Giving a shown value back (in `PUT …/tasks`, `PATCH`, or a
    /// run's `tasks`) keeps the stored URL.
    pub tasks: Value,
    /// Its notifications: `{email, webhook_url, channel, parameters}`. A `webhook_url` is always
    /// stored sealed and shown as `scheme://host[:port]/…` (its path, query and credentials
    /// hidden); giving a shown value back keeps the stored URL.
    pub notifications: Value,
    pub token_id: Uuid,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub next_scheduled_at: Option<DateTime<Utc>>,
    pub last_scheduled_at: Option<DateTime<Utc>>,
    pub last_job_id: Option<Uuid>,
    pub version: i64,
}

const COLUMNS: &str = "id, name, crontab, active, deleted, tasks, notifications, token_id,
    created_by, created_at, updated_at, next_scheduled_at, last_scheduled_at, last_job_id, version";

fn view(r: &tokio_postgres::Row) -> OrchestrationView {
    OrchestrationView {
        id: r.get(0),
        name: r.get(1),
        crontab: r.get(2),
        active: r.get(3),
        deleted: r.get(4),
        tasks: r.get(5),
        notifications: r.get(6),
        token_id: r.get(7),
        created_by: r.get(8),
        created_at: r.get(9),
        updated_at: r.get(10),
        next_scheduled_at: r.get(11),
        last_scheduled_at: r.get(12),
        last_job_id: r.get(13),
        version: r.get(14),
    }
}

pub async fn get(
    client: &impl GenericClient,
    id: &str,
) -> Result<Option<OrchestrationView>, tokio_postgres::Error> {
    let sql = format!("SELECT {COLUMNS} FROM orchestrations WHERE id = $1");
    Ok(client.query_opt(&sql, &[&id]).await?.map(|r| view(&r)))
}

/// The notifications of orchestration `id` as the log stores them (webhook URLs sealed): for
/// the notifier, never for an answer. `None` if there is no such orchestration.
pub async fn stored_notifications(
    client: &impl GenericClient,
    id: &str,
) -> Result<Option<Vec<Notification>>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT stored_notifications FROM orchestrations WHERE id = $1",
            &[&id],
        )
        .await?;
    Ok(row.map(|r| {
        let stored: Value = r.get(0);
        serde_json::from_value(stored).unwrap_or_else(|e| {
            tracing::error!(orchestration = id, error = %e, "stored notifications do not load");
            Vec::new()
        })
    }))
}

/// Orchestrations not deleted, newest first, and how many there are.
pub async fn list(
    client: &impl GenericClient,
    limit: i64,
    offset: i64,
) -> Result<(Vec<OrchestrationView>, i64), tokio_postgres::Error> {
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM orchestrations WHERE NOT deleted
                 ORDER BY created_at DESC, id LIMIT $1 OFFSET $2"
            ),
            &[&limit, &offset],
        )
        .await?;
    let total: i64 = client
        .query_one("SELECT count(*) FROM orchestrations WHERE NOT deleted", &[])
        .await?
        .get(0);
    Ok((rows.iter().map(view).collect(), total))
}

/// Ids of the orchestrations whose next run is due at `now`, earliest first.
pub async fn due(
    client: &impl GenericClient,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT id FROM orchestrations WHERE next_scheduled_at <= $1
             ORDER BY next_scheduled_at LIMIT $2",
            &[&now, &limit],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// When the earliest next run is due, if any is scheduled.
pub async fn earliest_due(
    client: &impl GenericClient,
) -> Result<Option<DateTime<Utc>>, tokio_postgres::Error> {
    Ok(client
        .query_one("SELECT min(next_scheduled_at) FROM orchestrations", &[])
        .await?
        .get(0))
}

/// Orchestrations whose last scheduled run has no job yet: a scheduler stopped between claiming
/// the slot and submitting its job.
pub async fn runs_without_job(
    client: &impl GenericClient,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT o.id FROM orchestrations o
             WHERE o.last_job_id IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.job_id = o.last_job_id)",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
