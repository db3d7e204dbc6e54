//! An orchestration's task and notification, parsed from what a client sent: a task names
//! exactly one of a catalog task (`component: app/env/task`) and an HTTP endpoint
//! (`component_url`, https unless its host is allowed plain http); a notification exactly one of
//! an email address and a webhook URL. URLs that hold secrets are sealed before they are stored
//! and shown redacted (`super::url`).

use super::url::{redacted, StoredUrl, UrlField};
use crate::error::DomainError;
use crate::identity::Email;
use crate::insecure_hosts;
use crate::jobs::Catalog;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;

/// The longest a task may run: a day.
pub const MAX_TIMEOUT_MINUTES: u64 = 24 * 60;
/// Tasks and notifications per orchestration.
pub const MAX_TASKS: usize = 100;
pub const MAX_NOTIFICATIONS: usize = 50;

/// What tasks and notifications are checked against.
pub struct TaskRules<'a> {
    pub catalog: &'a Catalog,
    /// Hosts whose `component_url` and `webhook_url` may be plain http (tests allow loopback).
    pub allow_insecure_hosts: &'a [String],
}

/// A task as a client writes it, before it is checked. Its Debug hides its URL's secrets.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskInput {
    pub component: Option<String>,
    pub component_url: Option<String>,
    pub action: Option<String>,
    pub parameters: Option<Value>,
    #[serde(default)]
    pub continue_on_failure: bool,
    pub timeout_minutes: Option<u64>,
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

impl fmt::Debug for TaskInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskInput")
            .field("component", &self.component)
            .field(
                "component_url",
                &self
                    .component_url
                    .as_deref()
                    .map(|u| UrlField::ComponentUrl.shown(u)),
            )
            .field("action", &self.action)
            .field("parameters", &self.parameters)
            .field("continue_on_failure", &self.continue_on_failure)
            .field("timeout_minutes", &self.timeout_minutes)
            .field("active", &self.active)
            .finish()
    }
}

/// A task as the log stores it: `component` and `component_url` both present, exactly one of
/// them not null; a secret `component_url` sealed (`{"sealed", "shown"}`), as [`Task::shown`]
/// shows it to readers.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(try_from = "StoredTask")]
pub struct Task {
    /// What it runs.
    pub target: TaskTarget,
    pub action: Option<String>,
    /// A JSON object: a catalog task gets it as `BOSUN_TASK_PARAMETERS`, an HTTP task as its body.
    pub parameters: Value,
    pub continue_on_failure: bool,
    pub timeout_minutes: Option<u64>,
    pub active: bool,
}

/// What a task runs: a task of the catalog, as a process, or an HTTP endpoint it POSTs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskTarget {
    /// `app/env/task` of the catalog (`component`).
    Component(String),
    /// An https URL, or http to an allowed host (`component_url`), sealed if it is a secret.
    Url(StoredUrl),
}

/// `Task` as it is written: the shape stored events and API answers have had from the start.
#[derive(Deserialize)]
struct StoredTask {
    component: Option<String>,
    component_url: Option<StoredUrl>,
    action: Option<String>,
    parameters: Value,
    continue_on_failure: bool,
    timeout_minutes: Option<u64>,
    active: bool,
}

/// `StoredTask`, borrowed from a `Task` to write it (`U`: the stored URL, or what is shown).
#[derive(Serialize)]
struct StoredTaskRef<'a, U> {
    component: Option<&'a str>,
    component_url: Option<U>,
    action: &'a Option<String>,
    parameters: &'a Value,
    continue_on_failure: bool,
    timeout_minutes: Option<u64>,
    active: bool,
}

impl TryFrom<StoredTask> for Task {
    type Error = String;

    fn try_from(stored: StoredTask) -> Result<Self, String> {
        let target = match (stored.component, stored.component_url) {
            (Some(component), None) => TaskTarget::Component(component),
            (None, Some(url)) => TaskTarget::Url(url),
            _ => return Err("a task names exactly one of component and component_url".into()),
        };
        Ok(Task {
            target,
            action: stored.action,
            parameters: stored.parameters,
            continue_on_failure: stored.continue_on_failure,
            timeout_minutes: stored.timeout_minutes,
            active: stored.active,
        })
    }
}

impl Serialize for Task {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.written(self.url()).serialize(serializer)
    }
}

impl Task {
    fn written<U>(&self, component_url: Option<U>) -> StoredTaskRef<'_, U> {
        StoredTaskRef {
            component: self.component(),
            component_url,
            action: &self.action,
            parameters: &self.parameters,
            continue_on_failure: self.continue_on_failure,
            timeout_minutes: self.timeout_minutes,
            active: self.active,
        }
    }

    /// The task as reads show it: as stored, its `component_url` shown by the rule of
    /// `super::url` (a secret one as `scheme://host[:port]/…`).
    pub fn shown(&self) -> Value {
        serde_json::to_value(self.written(self.component_url())).unwrap_or(Value::Null)
    }

    /// A task as a client sent it; its URL is in clear until `commands` seals it.
    pub fn parse(input: TaskInput, rules: &TaskRules) -> Result<Task, DomainError> {
        let target = match (input.component, input.component_url) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(DomainError::invalid(
                    "tasks",
                    "each task needs exactly one of component and component_url",
                ))
            }
            (Some(component), None) => {
                let parts: Vec<&str> = component.split('/').collect();
                let [app, env, task] = parts[..] else {
                    return Err(DomainError::invalid(
                        "tasks",
                        format!("component {component:?} must be written app/env/task"),
                    ));
                };
                rules.catalog.task(app, env, task).map_err(|e| {
                    DomainError::invalid("tasks", format!("component {component:?}: {e}"))
                })?;
                TaskTarget::Component(component)
            }
            (None, Some(url)) => {
                check_url("tasks", UrlField::ComponentUrl, &url, rules)?;
                TaskTarget::Url(StoredUrl::Clear(url))
            }
        };
        let parameters = match input.parameters {
            None | Some(Value::Null) => Value::Object(Default::default()),
            Some(p @ Value::Object(_)) => p,
            Some(_) => {
                return Err(DomainError::invalid(
                    "tasks",
                    "parameters must be a JSON object",
                ))
            }
        };
        if input
            .timeout_minutes
            .is_some_and(|t| !(1..=MAX_TIMEOUT_MINUTES).contains(&t))
        {
            return Err(DomainError::invalid(
                "tasks",
                format!("timeout_minutes must be 1 to {MAX_TIMEOUT_MINUTES}"),
            ));
        }
        if input.action.as_ref().is_some_and(|a| a.len() > 256) {
            return Err(DomainError::invalid(
                "tasks",
                "action must be at most 256 bytes",
            ));
        }
        Ok(Task {
            target,
            action: input.action,
            parameters,
            continue_on_failure: input.continue_on_failure,
            timeout_minutes: input.timeout_minutes,
            active: input.active,
        })
    }

    pub fn parse_all(inputs: Vec<TaskInput>, rules: &TaskRules) -> Result<Vec<Task>, DomainError> {
        if inputs.len() > MAX_TASKS {
            return Err(DomainError::invalid(
                "tasks",
                format!("at most {MAX_TASKS} tasks"),
            ));
        }
        inputs.into_iter().map(|t| Task::parse(t, rules)).collect()
    }

    /// The task with everything but `active` compared: what a manual run may change.
    pub fn same_apart_from_active(&self, other: &Task) -> bool {
        Task {
            active: other.active,
            ..self.clone()
        } == *other
    }

    /// `app`, `env`, `task` of a catalog task.
    pub fn catalog_task(&self) -> Option<(&str, &str, &str)> {
        let mut parts = self.component()?.splitn(3, '/');
        Some((parts.next()?, parts.next()?, parts.next()?))
    }

    /// `app/env/task` of a catalog task.
    pub fn component(&self) -> Option<&str> {
        match &self.target {
            TaskTarget::Component(component) => Some(component),
            TaskTarget::Url(_) => None,
        }
    }

    /// The endpoint of an HTTP task as reads show it: never a secret (see `super::url`).
    pub fn component_url(&self) -> Option<Cow<'_, str>> {
        self.url().map(|url| url.shown(UrlField::ComponentUrl))
    }

    /// The endpoint of an HTTP task as stored: sealed if it is a secret.
    pub fn url(&self) -> Option<&StoredUrl> {
        match &self.target {
            TaskTarget::Url(url) => Some(url),
            TaskTarget::Component(_) => None,
        }
    }

    /// The endpoint, mutable: `commands` seals it in place.
    pub fn url_mut(&mut self) -> Option<&mut StoredUrl> {
        match &mut self.target {
            TaskTarget::Url(url) => Some(url),
            TaskTarget::Component(_) => None,
        }
    }

    /// The component or the URL as reads show it: how messages name the task.
    pub fn name(&self) -> Cow<'_, str> {
        match &self.target {
            TaskTarget::Component(name) => Cow::Borrowed(name),
            TaskTarget::Url(url) => url.shown(UrlField::ComponentUrl),
        }
    }
}

/// Which notification fires when.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// A job ended `error`.
    Error,
    /// A job waited longer than `parameters.timeout` minutes.
    Waiting,
    /// A job ran longer than its orchestration's usual plus `parameters.tolerance` percent.
    Processing,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Error => "error",
            Channel::Waiting => "waiting",
            Channel::Processing => "processing",
        }
    }
}

/// A notification as a client writes it. Its Debug hides its webhook URL.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationInput {
    pub email: Option<String>,
    pub webhook_url: Option<String>,
    pub channel: Option<String>,
    pub parameters: Option<Value>,
}

impl fmt::Debug for NotificationInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotificationInput")
            .field("email", &self.email)
            .field("webhook_url", &self.webhook_url.as_deref().map(redacted))
            .field("channel", &self.channel)
            .field("parameters", &self.parameters)
            .finish()
    }
}

/// A notification as the log stores it: its `webhook_url` sealed (events from before sealing
/// hold it in clear), as [`Notification::shown`] shows it to readers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub email: Option<String>,
    pub webhook_url: Option<StoredUrl>,
    pub channel: Channel,
    pub parameters: Value,
}

/// A notification as reads show it.
#[derive(Serialize)]
struct ShownNotification<'a> {
    email: &'a Option<String>,
    webhook_url: Option<Cow<'a, str>>,
    channel: Channel,
    parameters: &'a Value,
}

/// The tolerance a `processing` notification uses when it names none, in percent.
pub const DEFAULT_TOLERANCE_PERCENT: f64 = 20.0;

impl Notification {
    pub fn parse(input: NotificationInput, rules: &TaskRules) -> Result<Self, DomainError> {
        let field = "notifications";
        match (&input.email, &input.webhook_url) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(DomainError::invalid(
                    field,
                    "each notification needs exactly one of email and webhook_url",
                ))
            }
            (Some(email), None) => {
                Email::parse(email)
                    .map_err(|e| DomainError::invalid(field, format!("email: {e}")))?;
            }
            (None, Some(url)) => check_url(field, UrlField::WebhookUrl, url, rules)?,
        }
        let channel = match input.channel.as_deref() {
            Some("error") => Channel::Error,
            Some("waiting") => Channel::Waiting,
            Some("processing") => Channel::Processing,
            other => {
                return Err(DomainError::invalid(
                    field,
                    format!("channel must be error, waiting or processing, not {other:?}"),
                ))
            }
        };
        let parameters = match input.parameters {
            None | Some(Value::Null) => Value::Object(Default::default()),
            Some(p @ Value::Object(_)) => p,
            Some(_) => {
                return Err(DomainError::invalid(
                    field,
                    "parameters must be a JSON object",
                ))
            }
        };
        let notification = Notification {
            email: input.email,
            webhook_url: input.webhook_url.map(StoredUrl::Clear),
            channel,
            parameters,
        };
        match channel {
            Channel::Waiting if notification.waiting_minutes().is_none() => {
                Err(DomainError::invalid(
                    field,
                    "a waiting notification needs parameters.timeout, in minutes (> 0)",
                ))
            }
            Channel::Processing if notification.tolerance_percent().is_none() => {
                Err(DomainError::invalid(
                    field,
                    "parameters.tolerance of a processing notification is a percentage (>= 0)",
                ))
            }
            _ => Ok(notification),
        }
    }

    pub fn parse_all(
        inputs: Vec<NotificationInput>,
        rules: &TaskRules,
    ) -> Result<Vec<Notification>, DomainError> {
        if inputs.len() > MAX_NOTIFICATIONS {
            return Err(DomainError::invalid(
                "notifications",
                format!("at most {MAX_NOTIFICATIONS} notifications"),
            ));
        }
        inputs
            .into_iter()
            .map(|n| Notification::parse(n, rules))
            .collect()
    }

    /// Where it goes as reads show it: the address, or the webhook URL (never its secret).
    pub fn target(&self) -> Cow<'_, str> {
        match (&self.email, &self.webhook_url) {
            (Some(email), _) => Cow::Borrowed(email),
            (None, Some(url)) => url.shown(UrlField::WebhookUrl),
            (None, None) => Cow::Borrowed(""),
        }
    }

    /// The notification as reads show it: as stored, its `webhook_url` shown as
    /// `scheme://host[:port]/…`.
    pub fn shown(&self) -> Value {
        serde_json::to_value(ShownNotification {
            email: &self.email,
            webhook_url: self
                .webhook_url
                .as_ref()
                .map(|url| url.shown(UrlField::WebhookUrl)),
            channel: self.channel,
            parameters: &self.parameters,
        })
        .unwrap_or(Value::Null)
    }

    /// `waiting`: minutes a job may wait before this fires.
    pub fn waiting_minutes(&self) -> Option<f64> {
        self.parameters
            .get("timeout")
            .and_then(Value::as_f64)
            .filter(|t| *t > 0.0 && t.is_finite())
    }

    /// `processing`: percent over the usual run time before this fires.
    pub fn tolerance_percent(&self) -> Option<f64> {
        match self.parameters.get("tolerance") {
            None => Some(DEFAULT_TOLERANCE_PERCENT),
            Some(t) => t.as_f64().filter(|t| *t >= 0.0 && t.is_finite()),
        }
    }
}

/// https, or http to an allowed host; nothing else. Messages name the URL as reads show it,
/// so a refusal never echoes a secret.
fn check_url(
    field: &'static str,
    kind: UrlField,
    url: &str,
    rules: &TaskRules,
) -> Result<(), DomainError> {
    let name = kind.as_str();
    let parsed = url::Url::parse(url)
        .map_err(|e| DomainError::invalid(field, format!("a {name} is not a URL: {e}")))?;
    let host = parsed.host_str().unwrap_or_default();
    let shown = kind.shown(url);
    match parsed.scheme() {
        scheme if insecure_hosts::is_allowed(scheme, host, rules.allow_insecure_hosts) => Ok(()),
        "http" => Err(DomainError::invalid(
            field,
            insecure_hosts::must_use_https(name, &shown),
        )),
        other => Err(DomainError::invalid(
            field,
            format!("{name} {shown:?}: scheme {other:?} is not https"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_stored_task_loads_and_is_written_back_exactly_as_it_was() {
        // As `OrchestrationCreated` and `JobSubmitted` have stored them from the start.
        let stored = [
            json!({"component": "shop/production/deploy", "component_url": null, "action": null,
                   "parameters": {}, "continue_on_failure": false, "timeout_minutes": null,
                   "active": true}),
            json!({"component": null, "component_url": "https://example.com/run",
                   "action": "announce", "parameters": {"message": "released"},
                   "continue_on_failure": true, "timeout_minutes": 5, "active": false}),
        ];
        for json in stored {
            let task: Task = serde_json::from_value(json.clone()).unwrap();
            assert_eq!(serde_json::to_value(&task).unwrap(), json, "{task:?}");
        }
        let url: Task = serde_json::from_value(json!({
            "component_url": "https://example.com/run", "action": null, "parameters": {},
            "continue_on_failure": false, "timeout_minutes": null, "active": true
        }))
        .unwrap();
        assert_eq!(
            url.target,
            TaskTarget::Url("https://example.com/run".into())
        );
        assert_eq!(url.component(), None);
        assert_eq!(url.name(), "https://example.com/run");
    }

    #[test]
    fn a_task_stored_with_its_url_in_clear_still_loads_and_shows_redacted() {
        // Before sealing, a component_url with credentials was stored as it was given.
        let json = json!({"component": null, "component_url": "https://bot:pa55@example.com/run?key=k3y",
                          "action": null, "parameters": {}, "continue_on_failure": false,
                          "timeout_minutes": null, "active": true});
        let task: Task = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(
            task.url(),
            Some(&StoredUrl::Clear(
                "https://bot:pa55@example.com/run?key=k3y".into()
            ))
        );
        assert!(task.url().unwrap().needs_sealing(UrlField::ComponentUrl));
        assert_eq!(
            serde_json::to_value(&task).unwrap(),
            json,
            "written back as it was"
        );
        assert_eq!(task.name(), "https://example.com/…");
        assert_eq!(
            task.component_url().as_deref(),
            Some("https://example.com/…")
        );
        assert_eq!(task.shown()["component_url"], "https://example.com/…");
        for secret in ["pa55", "k3y"] {
            assert!(!task.shown().to_string().contains(secret));
            assert!(!format!("{task:?}").contains(secret));
        }
    }

    #[test]
    fn a_sealed_task_url_is_stored_as_an_object_and_shown_by_its_host() {
        let json = json!({"component": null,
                          "component_url": {"sealed": "v1.AAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBB", "shown": "https://example.com/…"},
                          "action": null, "parameters": {}, "continue_on_failure": false,
                          "timeout_minutes": null, "active": true});
        let task: Task = serde_json::from_value(json.clone()).unwrap();
        assert!(matches!(task.url(), Some(StoredUrl::Sealed { .. })));
        assert_eq!(serde_json::to_value(&task).unwrap(), json);
        assert_eq!(task.shown()["component_url"], "https://example.com/…");
        assert!(!task.shown().to_string().contains("v1."));
    }

    #[test]
    fn a_job_s_planned_task_carries_the_sealed_url_as_the_orchestration_stored_it() {
        for url in [
            json!({"sealed": "v1.AAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBB", "shown": "https://example.com/…"}),
            json!("https://bot:pa55@example.com/run"),
        ] {
            let json = json!({"component": null, "component_url": url, "action": null,
                              "parameters": {}, "continue_on_failure": false,
                              "timeout_minutes": null, "active": true});
            let planned: crate::jobs::PlannedTask = serde_json::from_value(json.clone()).unwrap();
            assert_eq!(
                planned.task.url().map(|u| serde_json::to_value(u).unwrap()),
                Some(url)
            );
            assert_eq!(serde_json::to_value(&planned).unwrap(), json);
        }
    }

    #[test]
    fn a_notification_stored_with_its_webhook_in_clear_still_loads() {
        let json = json!({"email": null, "webhook_url": "https://hooks.example.com/T0/B0/s3cret",
                          "channel": "error", "parameters": {}});
        let n: Notification = serde_json::from_value(json.clone()).unwrap();
        assert!(n
            .webhook_url
            .as_ref()
            .unwrap()
            .needs_sealing(UrlField::WebhookUrl));
        assert_eq!(serde_json::to_value(&n).unwrap(), json);
        assert_eq!(n.target(), "https://hooks.example.com/…");
        assert_eq!(
            n.shown(),
            json!({"email": null, "webhook_url": "https://hooks.example.com/…",
                   "channel": "error", "parameters": {}})
        );
        assert!(!format!("{n:?}").contains("s3cret"));
    }

    #[test]
    fn inputs_hide_their_urls_in_debug_and_refusals() {
        let input = TaskInput {
            component_url: Some("https://bot:pa55@example.com/run".into()),
            ..TaskInput::default()
        };
        assert!(!format!("{input:?}").contains("pa55"));
        let input = NotificationInput {
            webhook_url: Some("https://hooks.example.com/s3cret".into()),
            ..NotificationInput::default()
        };
        assert!(!format!("{input:?}").contains("s3cret"));
        let catalog: Catalog = serde_json::from_value(json!({})).unwrap();
        let rules = TaskRules {
            catalog: &catalog,
            allow_insecure_hosts: &[],
        };
        let refused = Task::parse(
            TaskInput {
                component_url: Some("http://bot:pa55@example.com/run".into()),
                ..TaskInput::default()
            },
            &rules,
        )
        .unwrap_err();
        assert!(!refused.to_string().contains("pa55"), "{refused}");
        assert!(refused.to_string().contains("https"), "{refused}");
    }

    #[test]
    fn the_field_order_is_the_stored_one() {
        let task = Task {
            target: TaskTarget::Component("a/b/c".into()),
            action: None,
            parameters: json!({}),
            continue_on_failure: false,
            timeout_minutes: Some(1),
            active: true,
        };
        assert_eq!(
            serde_json::to_string(&task).unwrap(),
            r#"{"component":"a/b/c","component_url":null,"action":null,"parameters":{},"continue_on_failure":false,"timeout_minutes":1,"active":true}"#
        );
        assert_eq!(task.catalog_task(), Some(("a", "b", "c")));
    }

    #[test]
    fn a_stored_task_naming_both_targets_or_none_is_refused() {
        let rest = json!({"action": null, "parameters": {}, "continue_on_failure": false,
                          "timeout_minutes": null, "active": true});
        for (component, url) in [
            (json!("a/b/c"), json!("https://x.io")),
            (json!(null), json!(null)),
        ] {
            let mut json = rest.clone();
            json["component"] = component;
            json["component_url"] = url;
            assert!(serde_json::from_value::<Task>(json).is_err());
        }
    }
}
