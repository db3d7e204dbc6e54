//! The HTTP side of tsuru's service protocol, and what each answer means.
//!
//! Every call carries Basic auth (the service's name, its password), sends a form body, follows
//! no redirect, and reads at most 64 KiB of the answer within `services.timeout`:
//! - create: `POST {endpoint}/resources` (`name`, `plan`, `team`) → 2xx;
//! - remove: `DELETE {endpoint}/resources/{name}` → 2xx;
//! - bind: `POST {endpoint}/resources/{name}/bind-app` (`app-name`, `app-host`) → 2xx with a JSON
//!   object of string values, the app's variables (an empty answer: none);
//! - unbind: `DELETE {endpoint}/resources/{name}/bind-app` (`app-name`) → 2xx;
//! - status: `GET {endpoint}/resources/{name}/status` → 204 up, 202 pending, anything else down.
//!
//! A call retried after an earlier attempt may find its work done: a 409 to a create means the
//! instance was created, a 404 to a remove or an unbind means it is gone. Any other non-2xx
//! answer is a refusal with the answer's text (trimmed, at most 1 KiB) as its message. No answer
//! (no connection, a timeout) is tried again after 2^attempts seconds (at most 60), and given up
//! once `services.max_attempts` calls went unanswered. An endpoint that is plain http is checked
//! against `allow_insecure_hosts` again before each call.
//!
//! Nothing of the password or of the variables is logged or put in a message.
//!
//! Does not own: when a call is made or recorded (`services`), the instance rules (`domain`).

use super::{Health, InstanceStatus, ServiceSettings};
use crate::http_task::error_chain;
use bosun_commands::services::{CallResult, ServiceCall, StatusTarget};
use bosun_domain::services::{Endpoint, Operation};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

/// Answer read, at most.
const BODY_LIMIT: usize = 64 * 1024;
/// A message taken from an answer, at most (bytes).
const MESSAGE_LIMIT: usize = 1024;
/// Longest wait between attempts.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

/// What a service answered, as much of it as is read.
#[derive(Debug)]
pub(super) struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    /// The answer was longer than [`BODY_LIMIT`]; `body` is its beginning.
    pub cut: bool,
}

/// Makes `call`'s request and says what its answer means. `retried`: an earlier attempt may
/// have reached the service.
pub(super) async fn call(
    http: &reqwest::Client,
    settings: &ServiceSettings,
    call: &ServiceCall,
    retried: bool,
) -> CallResult {
    if let Some(message) = disallowed(&call.endpoint, settings) {
        return CallResult::Refused {
            status: None,
            message,
        };
    }
    let base = call.endpoint.as_str();
    let instance = call.intent.instance.as_str();
    let request = match &call.operation {
        Operation::Create => http.post(format!("{base}/resources")).form(&[
            ("name", instance),
            ("plan", call.plan.as_str()),
            ("team", call.team_owner.as_str()),
        ]),
        Operation::Remove => http.delete(format!("{base}/resources/{instance}")),
        Operation::Bind { app } => http
            .post(format!("{base}/resources/{instance}/bind-app"))
            .form(&[
                ("app-name", app.as_str()),
                ("app-host", call.app_host.as_str()),
            ]),
        Operation::Unbind { app } => http
            .delete(format!("{base}/resources/{instance}/bind-app"))
            .form(&[("app-name", app.as_str())]),
    };
    let request = request
        .basic_auth(&call.intent.service, Some(call.password.expose_secret()))
        .header(reqwest::header::ACCEPT, "application/json");
    match send(request).await {
        Ok(answer) => {
            tracing::info!(
                operation = operation_name(&call.operation),
                status = answer.status,
                retried,
                "the service answered"
            );
            result_of(&call.operation, retried, &answer)
        }
        Err(e) => {
            let reason = reason(e, settings.timeout);
            tracing::info!(
                operation = operation_name(&call.operation),
                attempt = call.attempts + 1,
                reason,
                "the service did not answer"
            );
            no_answer(reason, call.attempts, settings.max_attempts, Utc::now())
        }
    }
}

/// `GET {endpoint}/resources/{name}/status`: what the service says of the instance.
pub(super) async fn status(
    http: &reqwest::Client,
    settings: &ServiceSettings,
    target: &StatusTarget,
) -> InstanceStatus {
    if let Some(message) = disallowed(&target.endpoint, settings) {
        return InstanceStatus {
            status: Health::Down,
            message,
        };
    }
    let request = http
        .get(format!(
            "{}/resources/{}/status",
            target.endpoint.as_str(),
            target.instance
        ))
        .basic_auth(&target.service, Some(target.password.expose_secret()));
    match send(request).await {
        Ok(answer) => health_of(&answer),
        Err(e) => InstanceStatus {
            status: Health::Down,
            message: format!(
                "the service did not answer: {}",
                reason(e, settings.timeout)
            ),
        },
    }
}

/// Why `endpoint` may not be called now: plain http to a host no longer allowed.
fn disallowed(endpoint: &Endpoint, settings: &ServiceSettings) -> Option<String> {
    (!endpoint.is_allowed(&settings.allow_insecure_hosts)).then(|| {
        format!(
            "the service's endpoint is plain http to {}, which http_tasks.allow_insecure_hosts no longer allows",
            endpoint.host()
        )
    })
}

async fn send(request: reqwest::RequestBuilder) -> Result<Answer, reqwest::Error> {
    let mut response = request.send().await?;
    let status = response.status().as_u16();
    let mut body = Vec::new();
    let mut cut = false;
    while let Some(chunk) = response.chunk().await? {
        let room = BODY_LIMIT - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            cut = true;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer { status, body, cut })
}

/// Why no answer came, without the URL.
fn reason(e: reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        format!("no answer within {}s", timeout.as_secs_f64())
    } else {
        error_chain(&e.without_url())
    }
}

fn operation_name(operation: &Operation) -> &'static str {
    match operation {
        Operation::Create => "create",
        Operation::Bind { .. } => "bind",
        Operation::Unbind { .. } => "unbind",
        Operation::Remove => "remove",
    }
}

/// What `answer` to `operation` means.
pub(super) fn result_of(operation: &Operation, retried: bool, answer: &Answer) -> CallResult {
    let status = answer.status;
    let success = (200..300).contains(&status);
    let already_done = retried
        && match operation {
            Operation::Create => status == 409,
            Operation::Remove | Operation::Unbind { .. } => status == 404,
            Operation::Bind { .. } => false,
        };
    if already_done {
        return CallResult::Done { vars: Vec::new() };
    }
    if !success {
        return CallResult::Refused {
            status: Some(status),
            message: refusal_message(answer),
        };
    }
    match operation {
        Operation::Bind { .. } => match variables(answer) {
            Ok(vars) => CallResult::Done { vars },
            Err(why) => CallResult::Refused {
                status: None,
                message: format!("the service answered what Bosun cannot use: {why}"),
            },
        },
        _ => CallResult::Done { vars: Vec::new() },
    }
}

/// A refusal's message: the answer's text, or its status when it has none.
fn refusal_message(answer: &Answer) -> String {
    let text = message(&answer.body);
    if text.is_empty() {
        format!(
            "the service answered HTTP {} with no message",
            answer.status
        )
    } else {
        text
    }
}

/// `body` as text, trimmed, at most [`MESSAGE_LIMIT`] bytes cut at a character boundary.
pub(super) fn message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let mut end = text.len().min(MESSAGE_LIMIT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].trim_end().to_string()
}

/// A bind's answer: a JSON object of string values (an empty answer: none). Errors name
/// variables, never their values.
pub(super) fn variables(answer: &Answer) -> Result<Vec<(String, SecretString)>, String> {
    if answer.cut {
        return Err(format!("an answer longer than {} KiB", BODY_LIMIT / 1024));
    }
    if answer.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    // Parsed as a value first: serde's typed errors would quote the values.
    let value: serde_json::Value = serde_json::from_slice(&answer.body)
        .map_err(|e| format!("not JSON (line {}, column {})", e.line(), e.column()))?;
    let serde_json::Value::Object(object) = value else {
        return Err("not a JSON object of variables".into());
    };
    let mut vars = Vec::with_capacity(object.len());
    for (name, value) in object {
        match value {
            serde_json::Value::String(value) => vars.push((name, SecretString::from(value))),
            _ => {
                return Err(format!(
                    "the value of {} is not a string",
                    shown_name(&name)
                ))
            }
        }
    }
    Ok(vars)
}

/// A variable's name as a message shows it: quoted, at most 64 characters.
fn shown_name(name: &str) -> String {
    let shown: String = name.chars().take(64).collect();
    if shown.len() < name.len() {
        format!("{shown:?}…")
    } else {
        format!("{shown:?}")
    }
}

/// The wait before attempt `attempts + 1` when attempt `attempts` got no answer (counting from
/// 0): 2^attempts seconds, at most a minute.
pub(super) fn retry_delay(attempts: u32) -> Duration {
    let seconds = 1u64.checked_shl(attempts).unwrap_or(u64::MAX);
    Duration::from_secs(seconds).min(MAX_RETRY_DELAY)
}

/// No answer to a call that had `attempts` earlier unanswered attempts: tried again later, or
/// given up once `max_attempts` went unanswered.
pub(super) fn no_answer(
    reason: String,
    attempts: u32,
    max_attempts: u32,
    now: DateTime<Utc>,
) -> CallResult {
    let retry_at = (attempts.saturating_add(1) < max_attempts).then(|| {
        now + chrono::Duration::from_std(retry_delay(attempts))
            .unwrap_or_else(|_| chrono::Duration::seconds(60))
    });
    CallResult::NoAnswer { reason, retry_at }
}

/// What a status answer says.
pub(super) fn health_of(answer: &Answer) -> InstanceStatus {
    let status = match answer.status {
        204 => Health::Up,
        202 => Health::Pending,
        _ => Health::Down,
    };
    let mut message = message(&answer.body);
    if status == Health::Down && message.is_empty() {
        message = format!("the service answered HTTP {}", answer.status);
    }
    InstanceStatus { status, message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bosun_domain::apps::AppName;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            body: body.as_bytes().to_vec(),
            cut: false,
        }
    }

    fn bind() -> Operation {
        Operation::Bind {
            app: AppName::parse("web").unwrap(),
        }
    }

    fn unbind() -> Operation {
        Operation::Unbind {
            app: AppName::parse("web").unwrap(),
        }
    }

    fn done_vars(result: CallResult) -> Vec<(String, String)> {
        match result {
            CallResult::Done { vars } => vars
                .into_iter()
                .map(|(n, v)| (n, v.expose_secret().to_string()))
                .collect(),
            other => panic!("not done: {other:?}"),
        }
    }

    fn refused(result: CallResult) -> (Option<u16>, String) {
        match result {
            CallResult::Refused { status, message } => (status, message),
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn a_2xx_is_done() {
        for operation in [Operation::Create, Operation::Remove, unbind()] {
            for status in [200, 201, 204] {
                assert!(done_vars(result_of(&operation, false, &answer(status, ""))).is_empty());
            }
        }
    }

    #[test]
    fn a_bind_answers_its_variables() {
        let vars = done_vars(result_of(
            &bind(),
            false,
            &answer(201, r#"{"DATABASE_URL": "postgres://x", "DB_USER": "u"}"#),
        ));
        assert_eq!(
            vars,
            [
                ("DATABASE_URL".to_string(), "postgres://x".to_string()),
                ("DB_USER".to_string(), "u".to_string())
            ]
        );
        assert!(done_vars(result_of(&bind(), false, &answer(201, " \n"))).is_empty());
        assert!(done_vars(result_of(&bind(), false, &answer(200, "{}"))).is_empty());
    }

    #[test]
    fn a_bind_answer_bosun_cannot_use_is_refused_without_its_values() {
        for body in [
            "not json",
            "[1, 2]",
            r#""a string""#,
            r#"{"A": "ok", "B": 12345}"#,
            r#"{"A": {"nested": "s3cr3t"}}"#,
        ] {
            let (status, message) = refused(result_of(&bind(), false, &answer(201, body)));
            assert_eq!(status, None, "{body}");
            assert!(message.contains("cannot use"), "{message}");
            assert!(
                !message.contains("12345") && !message.contains("s3cr3t"),
                "{message}"
            );
        }
        let (_, message) = refused(result_of(
            &bind(),
            false,
            &answer(201, r#"{"A": "ok", "B": 12345}"#),
        ));
        assert!(message.contains("\"B\""), "{message}");
        let cut = Answer {
            status: 201,
            body: b"{\"A\": \"".to_vec(),
            cut: true,
        };
        let (_, message) = refused(result_of(&bind(), false, &cut));
        assert!(message.contains("64 KiB"), "{message}");
    }

    #[test]
    fn a_non_2xx_is_refused_with_the_answer_text() {
        for operation in [Operation::Create, Operation::Remove, bind(), unbind()] {
            let (status, message) =
                refused(result_of(&operation, false, &answer(500, "  disk full\n")));
            assert_eq!(status, Some(500));
            assert_eq!(message, "disk full");
        }
        let (status, message) = refused(result_of(&Operation::Create, false, &answer(403, "")));
        assert_eq!(status, Some(403));
        assert!(message.contains("403"), "{message}");
        // A redirect is not followed: refused.
        let (status, _) = refused(result_of(&Operation::Create, false, &answer(302, "")));
        assert_eq!(status, Some(302));
    }

    #[test]
    fn a_retried_create_answered_409_was_created() {
        assert!(done_vars(result_of(&Operation::Create, true, &answer(409, "exists"))).is_empty());
        let (status, message) =
            refused(result_of(&Operation::Create, false, &answer(409, "exists")));
        assert_eq!((status, message.as_str()), (Some(409), "exists"));
    }

    #[test]
    fn a_retried_remove_or_unbind_answered_404_is_done() {
        for operation in [Operation::Remove, unbind()] {
            assert!(done_vars(result_of(&operation, true, &answer(404, ""))).is_empty());
            let (status, _) = refused(result_of(&operation, false, &answer(404, "")));
            assert_eq!(status, Some(404));
        }
        // Not for a bind, nor other statuses.
        let (status, _) = refused(result_of(&bind(), true, &answer(404, "")));
        assert_eq!(status, Some(404));
        let (status, _) = refused(result_of(&Operation::Create, true, &answer(404, "")));
        assert_eq!(status, Some(404));
        let (status, _) = refused(result_of(&Operation::Remove, true, &answer(409, "")));
        assert_eq!(status, Some(409));
    }

    #[test]
    fn a_message_is_cut_at_a_character_boundary() {
        let long = "é".repeat(1000); // 2000 bytes
        let cut = message(long.as_bytes());
        assert!(cut.len() <= MESSAGE_LIMIT);
        assert_eq!(cut.len(), 1024);
        assert!(cut.chars().all(|c| c == 'é'));
        let odd = format!("a{}", "€".repeat(600)); // 1 + 1800 bytes
        let cut = message(odd.as_bytes());
        assert_eq!(cut.len(), 1 + 3 * 341);
        assert!(odd.starts_with(&cut));
        assert_eq!(message(b"  short  "), "short");
        assert_eq!(message(&[0xff, b'o', b'k']), "\u{fffd}ok");
    }

    #[test]
    fn no_answer_backs_off_then_gives_up() {
        let now = Utc::now();
        let retry = |attempts| match no_answer("timeout".into(), attempts, 10, now) {
            CallResult::NoAnswer { retry_at, reason } => {
                assert_eq!(reason, "timeout");
                retry_at.map(|t| (t - now).num_seconds())
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(retry(0), Some(1));
        assert_eq!(retry(1), Some(2));
        assert_eq!(retry(5), Some(32));
        assert_eq!(retry(6), Some(60));
        assert_eq!(retry(8), Some(60));
        assert_eq!(retry(9), None, "the tenth unanswered attempt gives up");
        assert_eq!(retry(50), None);
        assert!(matches!(
            no_answer("x".into(), 0, 1, now),
            CallResult::NoAnswer { retry_at: None, .. }
        ));
        assert_eq!(retry_delay(200), MAX_RETRY_DELAY);
        assert_eq!(retry_delay(63), MAX_RETRY_DELAY);
    }

    #[test]
    fn status_answers() {
        assert_eq!(health_of(&answer(204, "")).status, Health::Up);
        assert_eq!(health_of(&answer(202, "starting")).status, Health::Pending);
        let down = health_of(&answer(500, " broken "));
        assert_eq!(
            (down.status, down.message.as_str()),
            (Health::Down, "broken")
        );
        let down = health_of(&answer(200, ""));
        assert_eq!(down.status, Health::Down);
        assert!(down.message.contains("200"), "{}", down.message);
        assert_eq!(
            serde_json::to_value(health_of(&answer(204, ""))).unwrap(),
            serde_json::json!({"status": "up", "message": ""})
        );
    }
}
