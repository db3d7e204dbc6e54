//! `jobs` and `job_output`: one row per job with its current state (what `GET /v1/jobs` shows and
//! what workers claim from), and its output in the chunks it was appended in, each with its byte
//! offset in its own stream and in the combined (interleaved) output. A role job's row also
//! says whether it still holds its name (from the `jobname-` streams' `JobNameReleased`).

use crate::projection::{Projection, Tables, Writes};
use bosun_domain::jobs::{JobEvent, JobNameEvent, JobStatus, OutputStream};
use bosun_eventstore::{Filter, RecordedEvent};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::GenericClient;
use uuid::Uuid;

pub struct Jobs;

impl Projection for Jobs {
    fn name(&self) -> &'static str {
        "jobs"
    }

    fn version(&self) -> i32 {
        // 3: a task's secret `component_url` shown redacted (`Task::component_url`).
        // 4: role jobs (`roles`, `image`, `retry_count`, `retries`, `name_held`, their tasks).
        // 5: indexes ending in the list's order, so a page after a cursor is an index range.
        5
    }

    fn tables(&self) -> &'static [&'static str] {
        &["jobs", "job_output"]
    }

    fn filter(&self) -> Filter {
        Filter {
            categories: vec!["job".into(), "jobname".into()],
            ..Filter::default()
        }
    }

    fn create(&self, tables: &Tables) -> String {
        format!(
            "CREATE TABLE {jobs} (
                job_id           UUID PRIMARY KEY,
                name             TEXT,
                app              TEXT,
                env              TEXT,
                task             TEXT,
                variables        JSONB NOT NULL,
                status           TEXT NOT NULL,
                created_at       TIMESTAMPTZ NOT NULL,
                started_at       TIMESTAMPTZ,
                finished_at      TIMESTAMPTZ,
                exit_code        INTEGER,
                pid              BIGINT,
                command          JSONB NOT NULL,
                worker           TEXT,
                diagnostics      TEXT,
                orchestration_id TEXT,
                initialized_by   TEXT NOT NULL,
                created_by       TEXT NOT NULL,
                timeout_seconds  BIGINT,
                kill_requested   BOOLEAN NOT NULL DEFAULT false,
                stdout_bytes     BIGINT NOT NULL DEFAULT 0,
                stderr_bytes     BIGINT NOT NULL DEFAULT 0,
                tasks            JSONB NOT NULL DEFAULT '[]',
                scheduled_for    TIMESTAMPTZ,
                notification_emails JSONB NOT NULL DEFAULT '[]',
                roles            JSONB NOT NULL DEFAULT '[]',
                image            TEXT,
                retry_count      BIGINT NOT NULL DEFAULT 0,
                retries          BIGINT NOT NULL DEFAULT 0,
                name_held        BOOLEAN NOT NULL DEFAULT false,
                version          BIGINT NOT NULL);
             CREATE TABLE {output} (
                job_id          UUID NOT NULL,
                stream          TEXT NOT NULL,
                stream_offset   BIGINT NOT NULL,
                combined_offset BIGINT NOT NULL,
                text            TEXT NOT NULL,
                task            INTEGER,
                PRIMARY KEY (job_id, combined_offset));",
            jobs = tables.name("jobs"),
            output = tables.name("job_output"),
        )
    }

    fn indexes(&self, tables: &Tables) -> String {
        let jobs = tables.name("jobs");
        format!(
            "CREATE INDEX ON {jobs} (created_at DESC, job_id);
             CREATE INDEX ON {jobs} (status, created_at DESC, job_id);
             CREATE INDEX ON {jobs} (app, created_at DESC, job_id);
             CREATE INDEX ON {jobs} (orchestration_id, created_at DESC);
             CREATE INDEX ON {jobs} (created_by, name) WHERE name_held;"
        )
    }

    fn apply(&self, event: &RecordedEvent, tables: &Tables, writes: &mut Writes) {
        if event.stream_id.category() == "jobname" {
            return apply_name(event, tables, writes);
        }
        let event_data: JobEvent = match bosun_domain::decode(&event.event_type, &event.data) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(position = event.position, error = %e, "jobs projection cannot read this event; skipped");
                return;
            }
        };
        let jobs = tables.name("jobs");
        let output = tables.name("job_output");
        let at = event.recorded_at;
        let version = event.version as i64;
        match event_data {
            JobEvent::JobSubmitted(s) => writes.push(
                format!(
                    "INSERT INTO {jobs} (job_id, name, app, env, task, variables, status, created_at, command,
                        orchestration_id, initialized_by, created_by, timeout_seconds, version,
                        tasks, scheduled_for, notification_emails, roles, image, retry_count, name_held)
                     VALUES ($1, $2, NULLIF($3, ''), NULLIF($4, ''), NULLIF($5, ''), $6, 'waiting', $7, $8,
                        $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
                ),
                vec![
                    Box::new(s.job_id),
                    Box::new(s.name),
                    Box::new(s.app),
                    Box::new(s.env),
                    Box::new(s.task),
                    Box::new(serde_json::to_value(&s.variables).unwrap_or(Value::Null)),
                    Box::new(at),
                    Box::new(serde_json::to_value(&s.command).unwrap_or(Value::Null)),
                    Box::new(s.orchestration_id),
                    Box::new(s.initialized_by),
                    Box::new(s.created_by),
                    Box::new(s.timeout_seconds.map(|t| t as i64)),
                    Box::new(version),
                    Box::new(Value::Array(match &s.role_job {
                        Some(role_job) => role_job.tasks().iter().map(role_task_view).collect(),
                        None => s
                            .tasks
                            .iter()
                            .enumerate()
                            .map(|(index, t)| task_view(index, t))
                            .collect(),
                    })),
                    Box::new(s.scheduled_for),
                    Box::new(serde_json::to_value(&s.notification_emails).unwrap_or(Value::Null)),
                    Box::new(Value::Array(
                        s.role_job
                            .iter()
                            .flat_map(|r| &r.roles)
                            .map(|p| serde_json::to_value(&p.role).unwrap_or(Value::Null))
                            .collect(),
                    )),
                    Box::new(s.role_job.as_ref().and_then(|r| r.image.clone())),
                    Box::new(s.role_job.as_ref().map_or(0, |r| i64::from(r.retry_count))),
                    // A role job is submitted with its name claimed, in the same append.
                    Box::new(s.role_job.is_some()),
                ],
            ),
            JobEvent::JobTaskStarted { job_id, index, pid } => writes.push(
                format!(
                    "UPDATE {jobs} SET tasks = jsonb_set(tasks, ARRAY[$2::text],
                        tasks->($2::int) || jsonb_build_object('status', 'processing', 'started_at', $3::timestamptz, 'pid', $4::bigint)),
                        version = $5
                     WHERE job_id = $1"
                ),
                vec![
                    Box::new(job_id),
                    Box::new(index.to_string()),
                    Box::new(at),
                    Box::new(pid.map(i64::from)),
                    Box::new(version),
                ],
            ),
            JobEvent::JobTaskFinished {
                job_id,
                index,
                status,
                exit_code,
                diagnostics,
            } => writes.push(
                format!(
                    "UPDATE {jobs} SET tasks = jsonb_set(tasks, ARRAY[$2::text],
                        tasks->($2::int) || jsonb_build_object('status', $3::text, 'finished_at', $4::timestamptz,
                            'exit_code', $5::int, 'diagnostics', $6::text)),
                        version = $7
                     WHERE job_id = $1"
                ),
                vec![
                    Box::new(job_id),
                    Box::new(index.to_string()),
                    Box::new(status.as_str()),
                    Box::new(at),
                    Box::new(exit_code),
                    Box::new(diagnostics),
                    Box::new(version),
                ],
            ),
            JobEvent::JobRetried { job_id, retry } => writes.push(
                format!(
                    "UPDATE {jobs} SET retries = $2, version = $3,
                        tasks = COALESCE((SELECT jsonb_agg(t || jsonb_build_object('status', 'waiting',
                            'started_at', null, 'finished_at', null, 'pid', null, 'exit_code', null,
                            'diagnostics', null) ORDER BY n)
                            FROM jsonb_array_elements(tasks) WITH ORDINALITY AS e(t, n)), '[]')
                     WHERE job_id = $1"
                ),
                vec![
                    Box::new(job_id),
                    Box::new(i64::from(retry)),
                    Box::new(version),
                ],
            ),
            JobEvent::JobStarted {
                job_id,
                worker,
                pid,
                command,
            } => writes.push(
                format!(
                    "UPDATE {jobs} SET status = 'processing', started_at = $2, worker = $3, pid = $4,
                        command = $5, version = $6 WHERE job_id = $1"
                ),
                vec![
                    Box::new(job_id),
                    Box::new(at),
                    Box::new(worker),
                    Box::new(pid.map(i64::from)),
                    Box::new(serde_json::to_value(&command).unwrap_or(Value::Null)),
                    Box::new(version),
                ],
            ),
            JobEvent::JobOutputAppended {
                job_id,
                stream,
                offset,
                text,
                task,
            } => {
                let (stream_name, column) = match stream {
                    OutputStream::Stdout => ("stdout", "stdout_bytes"),
                    OutputStream::Stderr => ("stderr", "stderr_bytes"),
                };
                let bytes = text.len() as i64;
                writes.push(
                    format!(
                        "INSERT INTO {output} (job_id, stream, stream_offset, combined_offset, text, task)
                         SELECT $1, $2::text, $3::bigint, j.stdout_bytes + j.stderr_bytes, $4::text, $5::int
                         FROM {jobs} j WHERE j.job_id = $1"
                    ),
                    vec![
                        Box::new(job_id),
                        Box::new(stream_name),
                        Box::new(offset as i64),
                        Box::new(text),
                        Box::new(task.map(|t| t as i32)),
                    ],
                );
                writes.push(
                    format!(
                        "UPDATE {jobs} SET {column} = {column} + $2, version = $3 WHERE job_id = $1"
                    ),
                    vec![Box::new(job_id), Box::new(bytes), Box::new(version)],
                );
            }
            JobEvent::JobCancelled { job_id, reason } => writes.push(
                format!(
                    "UPDATE {jobs} SET status = 'cancelled', finished_at = $2, diagnostics = $3, version = $4
                     WHERE job_id = $1"
                ),
                vec![
                    Box::new(job_id),
                    Box::new(at),
                    Box::new(reason.map(|r| format!("cancelled: {r}"))),
                    Box::new(version),
                ],
            ),
            JobEvent::JobKillRequested { job_id, .. } => writes.push(
                format!("UPDATE {jobs} SET kill_requested = true, version = $2 WHERE job_id = $1"),
                vec![Box::new(job_id), Box::new(version)],
            ),
            JobEvent::JobFinished {
                job_id,
                status,
                exit_code,
                diagnostics,
            } => writes.push(
                format!(
                    "UPDATE {jobs} SET status = $2, finished_at = $3, exit_code = $4, diagnostics = $5, version = $6
                     WHERE job_id = $1"
                ),
                vec![
                    Box::new(job_id),
                    Box::new(bosun_domain::jobs::JobStatus::from(status).as_str()),
                    Box::new(at),
                    Box::new(exit_code),
                    Box::new(diagnostics),
                    Box::new(version),
                ],
            ),
        }
    }
}

/// The writes of a job name's event: a released name is no longer its job's (the claim needs
/// none: a role job's submission, in the same append, says it holds its name).
fn apply_name(event: &RecordedEvent, tables: &Tables, writes: &mut Writes) {
    let jobs = tables.name("jobs");
    match bosun_domain::decode::<JobNameEvent>(&event.event_type, &event.data) {
        Ok(JobNameEvent::JobNameClaimed { .. }) => {}
        Ok(JobNameEvent::JobNameReleased { job_id }) => writes.push(
            format!("UPDATE {jobs} SET name_held = false WHERE job_id = $1"),
            vec![Box::new(job_id)],
        ),
        Err(e) => {
            tracing::error!(position = event.position, error = %e, "jobs projection cannot read this job name event; skipped");
        }
    }
}

/// A role job's task (one instance of a role) as the job shows it, before it runs. A catalog
/// task is its `component`, as an orchestration task's is (so the read rule of a registered
/// app's jobs covers it).
fn role_task_view(task: &bosun_domain::jobs::RoleTask) -> Value {
    use bosun_domain::jobs::RoleTarget;
    let (component, command) = match &task.target {
        RoleTarget::Task(component) => (Some(component.as_str()), None),
        RoleTarget::Command(command) => (None, Some(command.as_str())),
    };
    serde_json::json!({
        "index": task.index,
        "role": task.role,
        "role_index": task.role_index,
        "component": component,
        "command": command,
        "status": "waiting",
        "started_at": null,
        "finished_at": null,
        "pid": null,
        "exit_code": null,
        "diagnostics": null,
    })
}

/// A task of an orchestration job as the job shows it, before it runs.
fn task_view(index: usize, planned: &bosun_domain::jobs::PlannedTask) -> Value {
    let t = &planned.task;
    serde_json::json!({
        "index": index,
        "component": t.component(),
        "component_url": t.component_url(),
        "action": t.action,
        "parameters": t.parameters,
        "continue_on_failure": t.continue_on_failure,
        "timeout_minutes": t.timeout_minutes,
        "active": t.active,
        "status": if t.active { "pending" } else { "inactive" },
        "started_at": null,
        "finished_at": null,
        "pid": null,
        "exit_code": null,
        "diagnostics": null,
    })
}

/// A job as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct JobView {
    pub id: Uuid,
    pub name: Option<String>,
    /// The catalog task of a one-task job; none for an orchestration job.
    pub app: Option<String>,
    pub env: Option<String>,
    pub task: Option<String>,
    pub variables: Value,
    #[schema(value_type = String, example = "waiting")]
    pub status: JobStatus,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub exit_code: Option<i32>,
    pub pid: Option<i64>,
    pub command: Value,
    pub worker: Option<String>,
    pub diagnostics: Option<String>,
    pub orchestration_id: Option<String>,
    pub initialized_by: String,
    pub created_by: String,
    pub timeout_seconds: Option<i64>,
    pub kill_requested: bool,
    /// Output so far, in bytes, per stream.
    pub stdout_bytes: i64,
    pub stderr_bytes: i64,
    /// An orchestration job's tasks, or a role job's (one per instance, in role order: `index`,
    /// `role`, `role_index`, `component` or `command`), and how each went.
    pub tasks: Value,
    /// A scheduled run's cron slot.
    pub scheduled_for: Option<DateTime<Utc>>,
    pub notification_emails: Value,
    pub version: i64,
    /// What the job is: `task` (one catalog task), `orchestration` or `roles`.
    #[schema(value_type = String, example = "roles")]
    pub kind: JobKind,
    /// A role job's roles as submitted (`name`, `instances`, `task` or `command`); empty for
    /// other jobs.
    pub roles: Value,
    /// A role job's image: recorded and shown, not used.
    pub image: Option<String>,
    /// How many times a role job's failed attempt runs again, and how many times it has.
    pub retry_count: i64,
    pub retries: i64,
    /// Whether a role job still holds its name (until `DELETE /v1/jobs/{id}/name`).
    pub name_held: bool,
}

/// What a job is, as its submission made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// A job of one catalog task.
    Task,
    /// An orchestration's job.
    Orchestration,
    /// A role job: its roles' instances at once.
    Roles,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Task => "task",
            JobKind::Orchestration => "orchestration",
            JobKind::Roles => "roles",
        }
    }

    /// The kind named `text` (as [`as_str`](Self::as_str) writes it).
    pub fn parse(text: &str) -> Option<Self> {
        [JobKind::Task, JobKind::Orchestration, JobKind::Roles]
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

/// A job row `j`'s kind, in SQL (as [`JobKind::as_str`] writes it).
const KIND: &str = "CASE WHEN jsonb_array_length(j.roles) > 0 THEN 'roles'
    WHEN j.orchestration_id IS NOT NULL THEN 'orchestration' ELSE 'task' END";

const COLUMNS: &str =
    "j.job_id, j.name, j.app, j.env, j.task, j.variables, j.status, j.created_at, j.started_at,
    j.finished_at, j.exit_code, j.pid, j.command, j.worker, j.diagnostics, j.orchestration_id,
    j.initialized_by, j.created_by, j.timeout_seconds, j.kill_requested, j.stdout_bytes,
    j.stderr_bytes, j.version, j.tasks, j.scheduled_for, j.notification_emails,
    j.roles, j.image, j.retry_count, j.retries, j.name_held, jsonb_array_length(j.roles) > 0";
/// How many columns [`COLUMNS`] names.
const COLUMN_COUNT: usize = 32;

/// The `status` column, read as the enum it holds: a value this code does not know is an error,
/// not a default.
struct StatusColumn(JobStatus);

impl<'a> tokio_postgres::types::FromSql<'a> for StatusColumn {
    fn from_sql(
        ty: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let text = <&str as tokio_postgres::types::FromSql>::from_sql(ty, raw)?;
        JobStatus::parse(text)
            .map(StatusColumn)
            .ok_or_else(|| format!("unknown job status {text:?}").into())
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        <&str as tokio_postgres::types::FromSql>::accepts(ty)
    }
}

fn view(r: &tokio_postgres::Row) -> Result<JobView, tokio_postgres::Error> {
    Ok(JobView {
        id: r.get(0),
        name: r.get(1),
        app: r.get(2),
        env: r.get(3),
        task: r.get(4),
        variables: r.get(5),
        status: r.try_get::<_, StatusColumn>(6)?.0,
        created_at: r.get(7),
        started_at: r.get(8),
        finished_at: r.get(9),
        exit_code: r.get(10),
        pid: r.get(11),
        command: r.get(12),
        worker: r.get(13),
        diagnostics: r.get(14),
        orchestration_id: r.get(15),
        initialized_by: r.get(16),
        created_by: r.get(17),
        timeout_seconds: r.get(18),
        kill_requested: r.get(19),
        stdout_bytes: r.get(20),
        stderr_bytes: r.get(21),
        version: r.get(22),
        tasks: r.get(23),
        scheduled_for: r.get(24),
        notification_emails: r.get(25),
        roles: r.get(26),
        image: r.get(27),
        retry_count: r.get(28),
        retries: r.get(29),
        name_held: r.get(30),
        kind: match (
            r.get::<_, bool>(31),
            r.get::<_, Option<String>>(15).is_some(),
        ) {
            (true, _) => JobKind::Roles,
            (false, true) => JobKind::Orchestration,
            (false, false) => JobKind::Task,
        },
    })
}

pub async fn get(
    client: &impl GenericClient,
    job_id: Uuid,
) -> Result<Option<JobView>, tokio_postgres::Error> {
    let sql = format!("SELECT {COLUMNS} FROM jobs j WHERE job_id = $1");
    client
        .query_opt(&sql, &[&job_id])
        .await?
        .map(|r| view(&r))
        .transpose()
}

/// A job, and whether `readers` may read it (by the same condition as [`list`]).
pub async fn get_for(
    client: &impl GenericClient,
    job_id: Uuid,
    readers: &JobReaders,
) -> Result<Option<(JobView, bool)>, tokio_postgres::Error> {
    let mut params = Params::default();
    let id = params.add(&job_id);
    let admitted = readers.condition(&mut params);
    // SQL's NULL is no answer: a role job has no app, and `j.app = $app` is NULL for it.
    let sql =
        format!("SELECT {COLUMNS}, COALESCE(({admitted}), false) FROM jobs j WHERE job_id = {id}");
    let Some(row) = client.query_opt(&sql, &params.0).await? else {
        return Ok(None);
    };
    let admitted: bool = row.try_get(COLUMN_COUNT)?;
    Ok(Some((view(&row)?, admitted)))
}

/// The metadata of the `JobSubmitted` event (version 0 of stream `job-<id>`) of each job of
/// `job_ids` that `readers` may read (by the same condition as [`list`]), in one statement; a
/// job not admitted, or with no such event, is left out.
pub async fn submissions_for(
    client: &impl GenericClient,
    job_ids: &[Uuid],
    readers: &JobReaders,
) -> Result<Vec<(Uuid, Value)>, tokio_postgres::Error> {
    let mut params = Params::default();
    let ids = params.add(&job_ids);
    let admitted = readers.condition(&mut params);
    let sql = format!(
        "SELECT j.job_id, e.metadata FROM jobs j
         JOIN events e ON e.stream_id = 'job-' || j.job_id::text AND e.version = 0
         WHERE j.job_id = ANY({ids}) AND e.event_type = 'JobSubmitted' AND ({admitted})"
    );
    let rows = client.query(&sql, &params.0).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The parameters of a query under construction, each added with the `$n` it takes.
#[derive(Default)]
struct Params<'a>(Vec<&'a (dyn tokio_postgres::types::ToSql + Sync)>);

impl<'a> Params<'a> {
    fn add(&mut self, value: &'a (dyn tokio_postgres::types::ToSql + Sync)) -> String {
        self.0.push(value);
        format!("${}", self.0.len())
    }
}

#[derive(Clone, Debug)]
pub struct JobQuery {
    /// Whose jobs the caller may see: decided by `commands`, applied here.
    pub readers: JobReaders,
    pub status: Option<String>,
    pub app: Option<String>,
    pub env: Option<String>,
    pub orchestration_id: Option<String>,
    /// Submitted by this actor (a user's name, `app:<name>` for an app's token).
    pub created_by: Option<String>,
    /// Submitted by any of these (none: by anyone).
    pub created_by_any: Vec<String>,
    pub name: Option<String>,
    pub kind: Option<JobKind>,
    /// In any of these statuses (none: in any).
    pub statuses: Vec<String>,
    /// Holding its name (`true`: a role job whose name is not released) or not.
    pub name_held: Option<bool>,
    /// Its name or its submitter's contains this text (case-sensitive).
    pub name_or_creator_contains: Option<String>,
    pub order: JobOrder,
    /// Only the jobs after this one in the default order (newest first): a page that costs the
    /// same however deep in the list it is, where `offset` costs what it skips. Ignored with
    /// any other order.
    pub after: Option<JobCursor>,
    pub limit: i64,
    pub offset: i64,
}

/// Where a page of jobs in the default order ended: its last job's submission time and id, as
/// `<microseconds since 1970>.<job id>` in a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobCursor {
    pub created_at: DateTime<Utc>,
    pub job_id: Uuid,
}

impl JobCursor {
    /// The cursor after `job`.
    pub fn after(job: &JobView) -> Self {
        JobCursor {
            created_at: job.created_at,
            job_id: job.id,
        }
    }

    /// A cursor as [`Display`](std::fmt::Display) writes it: microseconds from 0 to 16 digits
    /// (to the year 2286; PostgreSQL refuses times before 4713 BC, so nothing before 1970 is
    /// taken), a dot, a hyphenated job id.
    pub fn parse(text: &str) -> Option<Self> {
        let (micros, id) = text.split_once('.')?;
        if micros.is_empty() || micros.len() > 16 || !micros.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let created_at = DateTime::from_timestamp_micros(micros.parse().ok()?)?;
        if id.len() != 36 {
            return None;
        }
        let job_id = Uuid::parse_str(id).ok()?;
        Some(JobCursor { created_at, job_id })
    }
}

impl std::fmt::Display for JobCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.created_at.timestamp_micros(), self.job_id)
    }
}

/// What a job list is sorted by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JobOrderField {
    /// When it was submitted.
    #[default]
    CreatedAt,
    Name,
    CreatedBy,
    /// Its status's name.
    Status,
    Retries,
    /// How many tasks it has.
    TaskCount,
    /// When it finished (unfinished ones last when ascending, first when descending).
    FinishedAt,
}

/// A job list's order: a field and a direction, then newest first. The default is newest
/// first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobOrder {
    pub field: JobOrderField,
    pub ascending: bool,
}

impl Default for JobOrder {
    fn default() -> Self {
        JobOrder {
            field: JobOrderField::CreatedAt,
            ascending: false,
        }
    }
}

impl JobOrder {
    /// The `ORDER BY` list for a job row `j` (constant text: no input reaches it).
    fn sql(self) -> String {
        let direction = if self.ascending { "ASC" } else { "DESC" };
        let column = match self.field {
            JobOrderField::CreatedAt => {
                return if self.ascending {
                    "j.created_at ASC, j.job_id DESC".to_string()
                } else {
                    "j.created_at DESC, j.job_id".to_string()
                };
            }
            JobOrderField::Name => "j.name",
            JobOrderField::CreatedBy => "j.created_by",
            JobOrderField::Status => "j.status",
            JobOrderField::Retries => "j.retries",
            JobOrderField::TaskCount => "jsonb_array_length(j.tasks)",
            JobOrderField::FinishedAt => "j.finished_at",
        };
        format!("{column} {direction}, j.created_at DESC, j.job_id")
    }
}

/// Which jobs a caller may read. The rule itself (who gets which) is `commands`'; this is what it
/// means, as one SQL condition on a job row `j` that both a single job ([`get_for`]) and a list
/// ([`list`]) use, so the two can never differ.
///
/// A job "touches" a registered app (a row of the apps read model's `apps` table, not removed)
/// when it is a job of that app's task, or an orchestration job with one of that app's tasks,
/// submitted while that app existed: not before its `registered_at` (a catalog app's jobs from
/// before anyone registered its name, or from before the name was registered again, keep the
/// plain rule, so registering a name takes over no one's earlier jobs), and not after its
/// removal (the row is then `removed`). The app's teams are read when the job is read: whoever
/// joins or leaves a team gains or loses its jobs at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobReaders {
    /// Every job (an admin).
    All,
    /// A user, with their teams: the jobs of registered apps one of whose teams they are in (jobs
    /// submitted while the app existed, see above); the jobs they submitted and every
    /// orchestration job (whoever may read an orchestration may read its jobs, and every reader
    /// may read orchestrations), unless the job touches a registered app none of whose teams
    /// they are in.
    User {
        username: String,
        teams: Vec<String>,
    },
    /// An app token: the jobs of that app's tasks (not orchestration jobs) submitted since the
    /// app was created.
    App(String),
}

/// The registered apps a job row `j` touches: apps `a` not removed, created no later than the
/// job (the incarnation of the name it was submitted under), that it runs a task of. "No
/// later" compares the app's `registered_at` with the job's `created_at`, both times the log
/// recorded its event at (the database's clock), never an API node's `at`.
const TOUCHED_APPS: &str =
    "SELECT 1 FROM apps a WHERE NOT a.removed AND a.registered_at <= j.created_at
    AND (a.name = j.app OR a.name IN (
        SELECT split_part(t->>'component', '/', 1) FROM jsonb_array_elements(j.tasks) t
        WHERE t->>'component' IS NOT NULL))";

impl JobReaders {
    /// The SQL condition on job row `j` that admits it, its parameters added to `params`.
    fn condition<'a>(&'a self, params: &mut Params<'a>) -> String {
        match self {
            JobReaders::All => "true".into(),
            JobReaders::User { username, teams } => {
                let (user, teams) = (params.add(username), params.add(teams));
                format!(
                    "NOT EXISTS ({TOUCHED_APPS} AND NOT (a.teams && {teams}::text[]))
                     AND (j.created_by = {user} OR j.orchestration_id IS NOT NULL
                          OR EXISTS (SELECT 1 FROM apps a WHERE a.name = j.app AND NOT a.removed
                                     AND a.registered_at <= j.created_at))"
                )
            }
            JobReaders::App(app) => {
                let app = params.add(app);
                format!(
                    "j.app = {app} AND j.orchestration_id IS NULL
                     AND EXISTS (SELECT 1 FROM apps a WHERE a.name = {app} AND NOT a.removed
                                 AND a.registered_at <= j.created_at)"
                )
            }
        }
    }
}

/// Jobs matching `query`, newest first, and how many match in all, counted up to
/// [`COUNT_CAP`](super::COUNT_CAP) (above it: more than that).
pub async fn list(
    client: &impl GenericClient,
    query: &JobQuery,
) -> Result<(Vec<JobView>, i64), tokio_postgres::Error> {
    let mut params = Params::default();
    let (status, app, env, orchestration) = (
        params.add(&query.status),
        params.add(&query.app),
        params.add(&query.env),
        params.add(&query.orchestration_id),
    );
    let kind = query.kind.map(JobKind::as_str);
    let (created_by, name, kind) = (
        params.add(&query.created_by),
        params.add(&query.name),
        params.add(&kind),
    );
    let any = |list: &Vec<String>| (!list.is_empty()).then(|| list.clone());
    let (created_by_any, statuses) = (any(&query.created_by_any), any(&query.statuses));
    let (created_by_any, statuses, name_held, contains) = (
        params.add(&created_by_any),
        params.add(&statuses),
        params.add(&query.name_held),
        params.add(&query.name_or_creator_contains),
    );
    let admitted = query.readers.condition(&mut params);
    let filter = format!(
        "({status}::text IS NULL OR j.status = {status}) AND ({app}::text IS NULL OR j.app = {app})
        AND ({env}::text IS NULL OR j.env = {env})
        AND ({orchestration}::text IS NULL OR j.orchestration_id = {orchestration})
        AND ({created_by}::text IS NULL OR j.created_by = {created_by})
        AND ({created_by_any}::text[] IS NULL OR j.created_by = ANY({created_by_any}))
        AND ({name}::text IS NULL OR j.name = {name})
        AND ({kind}::text IS NULL OR ({KIND}) = {kind})
        AND ({statuses}::text[] IS NULL OR j.status = ANY({statuses}))
        AND ({name_held}::boolean IS NULL OR j.name_held = {name_held})
        AND ({contains}::text IS NULL OR strpos(j.name, {contains}) > 0
             OR strpos(j.created_by, {contains}) > 0)
        AND ({admitted})"
    );
    let total: i64 = client
        .query_one(
            &super::capped_count(&format!("jobs j WHERE {filter}")),
            &params.0,
        )
        .await?
        .get(0);
    let after = query.after.filter(|_| query.order == JobOrder::default());
    let (after_time, after_id) = (after.map(|a| a.created_at), after.map(|a| a.job_id));
    let (after_time, after_id) = (params.add(&after_time), params.add(&after_id));
    // Newest first, ties by id: after (t, id) is older than t, or as old with a greater id. The
    // first clause alone bounds the index range.
    let after_filter = format!(
        "({after_time}::timestamptz IS NULL OR (j.created_at <= {after_time}
          AND (j.created_at < {after_time} OR j.job_id > {after_id}::uuid)))"
    );
    let (limit, offset) = (params.add(&query.limit), params.add(&query.offset));
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM jobs j WHERE {filter} AND {after_filter}
                 ORDER BY {order} LIMIT {limit} OFFSET {offset}",
                order = query.order.sql()
            ),
            &params.0,
        )
        .await?;
    Ok((rows.iter().map(view).collect::<Result<_, _>>()?, total))
}

/// The role job of `owner`'s that holds the name `name` now, if one does.
pub async fn named(
    client: &impl GenericClient,
    owner: &str,
    name: &str,
) -> Result<Option<Uuid>, tokio_postgres::Error> {
    Ok(client
        .query_opt(
            "SELECT job_id FROM jobs WHERE created_by = $1 AND name = $2 AND name_held
             ORDER BY created_at DESC LIMIT 1",
            &[&owner, &name],
        )
        .await?
        .map(|r| r.get(0)))
}

/// The teams of app `app` as the apps read model has them, if it is a registered app (created
/// and not removed); `None` for a catalog app no one registered.
pub async fn app_teams(
    client: &impl GenericClient,
    app: &str,
) -> Result<Option<Vec<String>>, tokio_postgres::Error> {
    Ok(client
        .query_opt(
            "SELECT teams FROM apps WHERE name = $1 AND NOT removed",
            &[&app],
        )
        .await?
        .map(|r| r.get(0)))
}

/// Which output a client reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputSelection {
    Stdout,
    Stderr,
    Combined,
}

/// The output of a job from byte `offset` on in the selected stream, at most `max` bytes (whole
/// chunks, so a chunk is never split), and the offset after it.
pub async fn output(
    client: &impl GenericClient,
    job_id: Uuid,
    selection: OutputSelection,
    task: Option<i32>,
    offset: i64,
    max: i64,
) -> Result<(String, i64), tokio_postgres::Error> {
    let (column, stream) = match selection {
        OutputSelection::Stdout => ("stream_offset", Some("stdout")),
        OutputSelection::Stderr => ("stream_offset", Some("stderr")),
        OutputSelection::Combined => ("combined_offset", None),
    };
    let rows = client
        .query(
            &format!(
                "SELECT {column}, text FROM job_output
                 WHERE job_id = $1 AND ($2::text IS NULL OR stream = $2)
                   AND {column} + octet_length(text) > $3 AND ($4::int IS NULL OR task = $4)
                 ORDER BY {column}"
            ),
            &[&job_id, &stream, &offset, &task],
        )
        .await?;
    let mut text = Vec::new();
    let mut next = offset;
    for row in rows {
        let start: i64 = row.get(0);
        let chunk: String = row.get(1);
        let bytes = chunk.as_bytes();
        let skip = (offset - start).clamp(0, bytes.len() as i64) as usize;
        if !text.is_empty() && (text.len() + bytes.len() - skip) as i64 > max {
            break;
        }
        text.extend_from_slice(&bytes[skip..]);
        next = start + bytes.len() as i64;
    }
    // An offset inside a character gives a partial one at the start; it is shown replaced.
    Ok((String::from_utf8_lossy(&text).into_owned(), next))
}
