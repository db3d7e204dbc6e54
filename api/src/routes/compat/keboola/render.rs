//! Keboola's shapes of orchestrations, tasks, notifications and jobs (the blueprint's models),
//! derived from the native read models, and its task and notification input turned into the
//! native one.

use crate::problem::Problem;
use bosun_commands::queries::SubmissionMeta;
use bosun_domain::jobs::JobStatus;
use bosun_domain::orchestrations::{NotificationInput, TaskInput};
use bosun_projections::read_models::jobs::JobView;
use bosun_projections::read_models::orchestrations::OrchestrationView;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use uuid::Uuid;

/// A time as Keboola wrote it: RFC 3339, whole seconds, with an offset (`+00:00`).
pub fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// A time inside a native JSON value (PostgreSQL's `timestamptz` text), written as [`time`];
/// `null` stays `null`.
fn json_time(value: &Value) -> Value {
    match value.as_str().map(DateTime::parse_from_rfc3339) {
        Some(Ok(at)) => Value::String(time(at.with_timezone(&Utc))),
        _ => value.clone(),
    }
}

/// PHP sends an empty associative array as `[]`: that is `{}`. Anything else is given on as
/// it is, for the native rule to judge.
fn php_object(value: Option<Value>) -> Option<Value> {
    match value {
        Some(Value::Array(items)) if items.is_empty() => Some(Value::Object(Map::new())),
        other => other,
    }
}

/// A task as Keboola's clients write it. `null` is as good as absent everywhere (the PHP
/// client sends every field, `null` when unset). `phase` (the current PHP client's
/// `OrchestrationTask::toArray` sends it, usually `null`) is accepted and not used: Bosun runs
/// an orchestration's tasks one after another, in their order.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TaskIn {
    component: Option<String>,
    component_url: Option<String>,
    action: Option<String>,
    action_parameters: Option<Value>,
    continue_on_failure: Option<bool>,
    timeout_minutes: Option<u64>,
    active: Option<bool>,
    #[allow(dead_code)]
    phase: Option<Phase>,
}

/// A task's `phase` as the PHP client types it (an integer), or as a string.
#[derive(Deserialize)]
#[serde(untagged)]
enum Phase {
    Number(#[allow(dead_code)] i64),
    Text(#[allow(dead_code)] String),
}

impl TaskIn {
    /// The native task: the fields given, under their native names, read as `/v1` reads a
    /// task's JSON, so a field not given takes `TaskInput`'s own default.
    fn native(self) -> Result<TaskInput, serde_json::Error> {
        let given = [
            ("component", self.component.map(Value::String)),
            ("component_url", self.component_url.map(Value::String)),
            ("action", self.action.map(Value::String)),
            ("parameters", php_object(self.action_parameters)),
            (
                "continue_on_failure",
                self.continue_on_failure.map(Value::Bool),
            ),
            ("timeout_minutes", self.timeout_minutes.map(Value::from)),
            ("active", self.active.map(Value::Bool)),
        ];
        let fields: Map<String, Value> = given
            .into_iter()
            .filter_map(|(name, value)| Some((name.to_string(), value?)))
            .collect();
        serde_json::from_value(Value::Object(fields))
    }
}

/// The native tasks of `tasks` (a refusal names the task, `tasks[i]`).
pub fn task_inputs(tasks: Vec<TaskIn>) -> Result<Vec<TaskInput>, Problem> {
    tasks
        .into_iter()
        .enumerate()
        .map(|(i, task)| {
            task.native()
                .map_err(|e| Problem::invalid_field(format!("tasks[{i}]"), e.to_string()))
        })
        .collect()
}

/// A notification as Keboola's clients write it (`webhookUrl`: Bosun's webhook notification).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NotificationIn {
    email: Option<String>,
    webhook_url: Option<String>,
    channel: Option<String>,
    parameters: Option<Value>,
}

impl From<NotificationIn> for NotificationInput {
    fn from(n: NotificationIn) -> Self {
        NotificationInput {
            email: n.email,
            webhook_url: n.webhook_url,
            channel: n.channel,
            parameters: php_object(n.parameters),
        }
    }
}

pub fn notification_inputs(notifications: Vec<NotificationIn>) -> Vec<NotificationInput> {
    notifications
        .into_iter()
        .map(NotificationInput::from)
        .collect()
}

/// A native task as reads show it (`component_url` redacted if secret) → Keboola's task: all
/// seven fields, `null` where the native one has none.
pub fn task(shown: &Value) -> Value {
    json!({
        "component": shown["component"],
        "componentUrl": shown["component_url"],
        "action": shown["action"],
        "actionParameters": match &shown["parameters"] {
            Value::Null => Value::Object(Map::new()),
            p => p.clone(),
        },
        "continueOnFailure": shown["continue_on_failure"].as_bool().unwrap_or(false),
        "timeoutMinutes": shown["timeout_minutes"],
        "active": shown["active"].as_bool().unwrap_or(true),
    })
}

fn each(list: &Value, render: fn(&Value) -> Value) -> Vec<Value> {
    list.as_array()
        .map(|items| items.iter().map(render).collect())
        .unwrap_or_default()
}

pub fn tasks(shown: &Value) -> Vec<Value> {
    each(shown, task)
}

/// A native notification as reads show it → Keboola's `{email, channel, parameters}`, with
/// `webhookUrl` (shown redacted) only for a webhook one.
pub fn notification(shown: &Value) -> Value {
    let mut rendered = json!({
        "email": shown["email"],
        "channel": shown["channel"],
        "parameters": match &shown["parameters"] {
            Value::Null => Value::Object(Map::new()),
            p => p.clone(),
        },
    });
    if let (Some(url), Value::Object(fields)) = (shown["webhook_url"].as_str(), &mut rendered) {
        fields.insert("webhookUrl".into(), Value::String(url.to_string()));
    }
    rendered
}

pub fn notifications(shown: &Value) -> Vec<Value> {
    each(shown, notification)
}

/// `{id, description}` of a token.
#[derive(Clone, Debug, Serialize)]
pub struct Token {
    pub id: String,
    pub description: String,
}

/// The token the runs of orchestration `name` carry (Bosun makes one per orchestration).
pub fn run_token(token_id: Uuid, name: &str) -> Token {
    Token {
        id: token_id.to_string(),
        description: format!("orchestration {name}"),
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Orchestration {
    pub id: String,
    pub name: String,
    pub crontab_record: Option<String>,
    pub created_time: String,
    pub last_scheduled_time: Option<String>,
    pub next_scheduled_time: Option<String>,
    pub active: bool,
    pub token: Token,
    pub uri: String,
    /// Left out of lists, as the blueprint's collection model does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notifications: Option<Vec<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks: Option<Vec<Value>>,
}

/// How much of a resource an answer shows: all of it, or a list's item.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    Full,
    Item,
}

pub fn orchestration(view: &OrchestrationView, base: &str, detail: Detail) -> Orchestration {
    let full = detail == Detail::Full;
    Orchestration {
        id: view.id.clone(),
        name: view.name.clone(),
        crontab_record: view.crontab.clone(),
        created_time: time(view.created_at),
        last_scheduled_time: view.last_scheduled_at.map(time),
        next_scheduled_time: view.next_scheduled_at.map(time),
        active: view.active,
        token: run_token(view.token_id, &view.name),
        uri: format!("{base}/orchestrations/{}", view.id),
        notifications: full.then(|| notifications(&view.notifications)),
        tasks: full.then(|| tasks(&view.tasks)),
    }
}

/// Who made a job: the token that submitted it, its holder, and the user agent of the call, as
/// the `JobSubmitted` event's metadata recorded them. A scheduled run was made by the scheduler
/// with no token: `{id: null, description: "scheduler", userAgent: "bosun scheduler <version>"}`.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InitiatorToken {
    pub id: Option<String>,
    pub description: Option<String>,
    pub user_agent: Option<String>,
}

/// The initiator of a job submitted as `submission` says (all `null` if it is unknown).
pub fn initiator(submission: Option<&SubmissionMeta>) -> InitiatorToken {
    submission.map_or_else(InitiatorToken::default, |s| InitiatorToken {
        id: s.token_id.map(|t| t.to_string()),
        description: s.actor.clone(),
        user_agent: s.user_agent.clone(),
    })
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: String,
    pub orchestration_id: String,
    pub created_time: String,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub status: &'static str,
    /// Whether the job has ended (the PHP client polls `while (!$job['isFinished'])`).
    pub is_finished: bool,
    pub initialized_by: String,
    pub token: Token,
    pub initiator_token: InitiatorToken,
    /// `null` until the job ends (and for a cancelled one, which ran nothing), then `{tasks}`:
    /// each task and how it went.
    pub results: Option<Value>,
    /// Left out of lists, as the blueprint's collection model does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks: Option<Vec<Value>>,
    pub notifications_emails: Value,
    /// The job's id: Bosun's logs and output are by job.
    pub run_id: String,
    pub uri: String,
}

/// Keboola's `initializedBy`: `manually` or `scheduler`.
fn initialized_by(native: &str) -> String {
    match native {
        "manual" => "manually".into(),
        other => other.into(),
    }
}

/// Keboola's name of a native job or task status: Syrup calls a killed job `terminated`; the
/// other names are Keboola's own.
fn status(native: &str) -> &str {
    match native {
        "killed" => "terminated",
        other => other,
    }
}

/// A task of a finished job: Keboola's task, and how it went.
fn task_result(native: &Value) -> Value {
    let mut rendered = task(native);
    if let Value::Object(fields) = &mut rendered {
        let shown = match native["status"].as_str() {
            Some(native) => Value::String(status(native).to_string()),
            None => native["status"].clone(),
        };
        fields.insert("status".into(), shown);
        fields.insert("startTime".into(), json_time(&native["started_at"]));
        fields.insert("endTime".into(), json_time(&native["finished_at"]));
        fields.insert("exitCode".into(), native["exit_code"].clone());
        fields.insert("message".into(), native["diagnostics"].clone());
    }
    rendered
}

/// An orchestration job `view` (of the orchestration whose run token is `token`), made by
/// `initiator`.
pub fn job(
    view: &JobView,
    token: Token,
    initiator: InitiatorToken,
    base: &str,
    detail: Detail,
) -> Job {
    Job {
        id: view.id.to_string(),
        orchestration_id: view.orchestration_id.clone().unwrap_or_default(),
        created_time: time(view.created_at),
        start_time: view.started_at.map(time),
        end_time: view.finished_at.map(time),
        status: status(view.status.as_str()),
        is_finished: view.status.is_finished(),
        initialized_by: initialized_by(&view.initialized_by),
        token,
        initiator_token: initiator,
        results: (view.status.is_finished() && view.status != JobStatus::Cancelled)
            .then(|| json!({ "tasks": each(&view.tasks, task_result) })),
        tasks: (detail == Detail::Full).then(|| tasks(&view.tasks)),
        notifications_emails: match &view.notification_emails {
            Value::Null => Value::Array(Vec::new()),
            emails => emails.clone(),
        },
        run_id: view.id.to_string(),
        uri: format!("{base}/jobs/{}", view.id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_has_whole_seconds_and_an_offset() {
        let at = DateTime::parse_from_rfc3339("2013-03-02T10:11:24.5-01:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(time(at), "2013-03-02T11:11:24+00:00");
        assert_eq!(
            json_time(&json!("2013-03-02T11:11:24.123456+00:00")),
            json!("2013-03-02T11:11:24+00:00")
        );
        assert_eq!(json_time(&Value::Null), Value::Null);
    }

    #[test]
    fn a_task_maps_onto_the_native_one_and_back() {
        let input: TaskIn = serde_json::from_value(json!({
            "component": null, "componentUrl": "https://example.com/run", "action": null,
            "actionParameters": [], "continueOnFailure": null, "active": null,
            "timeoutMinutes": 10
        }))
        .unwrap();
        let native = input.native().unwrap();
        assert_eq!(
            native.component_url.as_deref(),
            Some("https://example.com/run")
        );
        assert_eq!(native.parameters, Some(json!({})));
        assert!(native.active && !native.continue_on_failure);
        let shown = json!({"component": "shop/production/build", "component_url": null,
            "action": "run", "parameters": {"a": 1}, "continue_on_failure": true,
            "timeout_minutes": null, "active": false});
        assert_eq!(
            task(&shown),
            json!({"component": "shop/production/build", "componentUrl": null, "action": "run",
                "actionParameters": {"a": 1}, "continueOnFailure": true, "timeoutMinutes": null,
                "active": false})
        );
    }

    #[test]
    fn a_task_field_not_given_takes_the_native_default() {
        let given: TaskIn =
            serde_json::from_value(json!({"component": "shop/production/build"})).unwrap();
        let native = given.native().unwrap();
        let defaults: TaskInput =
            serde_json::from_value(json!({"component": "shop/production/build"})).unwrap();
        assert_eq!(
            (native.active, native.continue_on_failure),
            (defaults.active, defaults.continue_on_failure)
        );
    }

    #[test]
    fn a_tasks_phase_is_taken_as_null_an_integer_or_a_string_and_nothing_else() {
        for phase in [json!(null), json!(1), json!("extract")] {
            assert!(
                serde_json::from_value::<TaskIn>(json!({"phase": phase})).is_ok(),
                "{phase}"
            );
        }
        for phase in [json!({"a": 1}), json!([1]), json!(1.5), json!(true)] {
            let error = serde_json::from_value::<TaskIn>(json!({"phase": phase})).err();
            assert!(error.is_some(), "{phase}");
        }
    }

    #[test]
    fn an_unknown_task_field_is_refused() {
        let error = serde_json::from_value::<TaskIn>(json!({"stage": 1})).err();
        assert!(error.is_some_and(|e| e.to_string().contains("stage")));
    }

    #[test]
    fn a_killed_status_is_syrups_terminated_and_the_others_keep_their_names() {
        assert_eq!(status("killed"), "terminated");
        for name in [
            "waiting",
            "processing",
            "success",
            "error",
            "warning",
            "cancelled",
        ] {
            assert_eq!(status(name), name);
        }
    }

    #[test]
    fn a_webhook_notification_shows_its_url_and_an_email_one_does_not() {
        let email = json!({"email": "a@b.c", "webhook_url": null, "channel": "error",
            "parameters": {}});
        assert_eq!(
            notification(&email),
            json!({"email": "a@b.c", "channel": "error", "parameters": {}})
        );
        let hook = json!({"email": null, "webhook_url": "https://h/…", "channel": "error",
            "parameters": {}});
        assert_eq!(notification(&hook)["webhookUrl"], "https://h/…");
    }
}
