//! An orchestration's task and notification, parsed from what a client sent: a task names
//! exactly one of a catalog task (`component: app/env/task`) and an HTTP endpoint
//! (`component_url`, https unless its host is allowed plain http); a notification exactly one of
//! an email address and a webhook URL.

use crate::error::DomainError;
use crate::identity::Email;
use crate::jobs::Catalog;
use serde::{Deserialize, Serialize};
use serde_json::Value;

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

/// A task as a client writes it, before it is checked.
#[derive(Clone, Debug, Default, Deserialize)]
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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// `app/env/task` of the catalog.
    pub component: Option<String>,
    pub component_url: Option<String>,
    pub action: Option<String>,
    /// A JSON object: a catalog task gets it as `BOSUN_TASK_PARAMETERS`, an HTTP task as its body.
    pub parameters: Value,
    pub continue_on_failure: bool,
    pub timeout_minutes: Option<u64>,
    pub active: bool,
}

impl Task {
    pub fn parse(input: TaskInput, rules: &TaskRules) -> Result<Task, DomainError> {
        let component = match (&input.component, &input.component_url) {
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
                Some(component.clone())
            }
            (None, Some(url)) => {
                check_url("tasks", url, rules)?;
                None
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
            component,
            component_url: input.component_url,
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
        let mut parts = self.component.as_deref()?.splitn(3, '/');
        Some((parts.next()?, parts.next()?, parts.next()?))
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

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationInput {
    pub email: Option<String>,
    pub webhook_url: Option<String>,
    pub channel: Option<String>,
    pub parameters: Option<Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub email: Option<String>,
    pub webhook_url: Option<String>,
    pub channel: Channel,
    pub parameters: Value,
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
            (None, Some(url)) => check_url(field, url, rules)?,
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
            webhook_url: input.webhook_url,
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

    /// Where it goes: the address or the URL.
    pub fn target(&self) -> &str {
        self.email
            .as_deref()
            .or(self.webhook_url.as_deref())
            .unwrap_or_default()
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

/// https, or http to an allowed host; nothing else.
fn check_url(field: &'static str, url: &str, rules: &TaskRules) -> Result<(), DomainError> {
    let parsed = url::Url::parse(url)
        .map_err(|e| DomainError::invalid(field, format!("{url:?} is not a URL: {e}")))?;
    let host = parsed.host_str().unwrap_or_default();
    match parsed.scheme() {
        "https" if !host.is_empty() => Ok(()),
        "http" if rules.allow_insecure_hosts.iter().any(|h| h == host) => Ok(()),
        "http" => Err(DomainError::invalid(
            field,
            format!(
                "{url:?} must use https (plain http only to hosts in http_tasks.allow_insecure_hosts)"
            ),
        )),
        other => Err(DomainError::invalid(
            field,
            format!("{url:?}: scheme {other:?} is not https"),
        )),
    }
}
