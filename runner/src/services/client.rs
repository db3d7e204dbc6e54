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
//! A 404 to a remove or an unbind means the work is done (the instance, or the binding, is
//! gone); a 409 to a create retried after an earlier attempt means the instance was created.
//! A 502, 503 or 504 (a gateway without the service behind it, a service not up) counts as no
//! answer. Any other non-2xx answer is a refusal with the answer's text (trimmed, at most
//! 1 KiB) as its message. No answer (no connection, a timeout) is tried again after
//! 2^attempts seconds (at most 60), and given up once `services.max_attempts` calls went
//! unanswered. An endpoint that is plain http is checked against `allow_insecure_hosts` again
//! before each call.
//!
//! A failure the service may not know of is undone at the service, once and best effort, before
//! it is recorded ([`undo`]): a create given up is followed by a remove, a bind given up or
//! answered with variables Bosun cannot use by an unbind.
//!
//! Nothing of the password or of the variables is logged or put in a message: the password and
//! the Basic credential are taken out of any text taken from an answer.
//!
//! Does not own: when a call is made or recorded (`services`), the instance rules (`domain`).

use super::{Health, InstanceStatus, ServiceSettings};
use crate::http_task::error_chain;
use bosun_commands::services::{quoted, CallResult, Secrets, ServiceCall, StatusTarget};
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

/// What an answer to a call, or its absence, means before the attempts are counted.
#[derive(Debug)]
pub(super) enum Meaning {
    /// The service did it; a bind's variables.
    Done(Vec<(String, SecretString)>),
    Refused {
        status: Option<u16>,
        message: String,
    },
    /// A 2xx to a bind with variables Bosun cannot use (why): refused, and undone.
    Unusable(String),
    /// No answer, or one saying the service is not there now (502, 503, 504): why.
    NoAnswer(String),
}

/// An attempt's result, and whether the service may hold what the failure it records says it
/// does not (see [`undo`]).
#[derive(Debug)]
pub(super) struct Called {
    pub result: CallResult,
    pub undo: bool,
}

/// Makes `call`'s request and says what its answer means. `retried`: an earlier attempt may
/// have reached the service.
pub(super) async fn call(
    http: &reqwest::Client,
    settings: &ServiceSettings,
    call: &ServiceCall,
    retried: bool,
) -> Called {
    if let Some(message) = disallowed(&call.endpoint, settings) {
        return Called {
            result: CallResult::Refused {
                status: None,
                message,
            },
            undo: false,
        };
    }
    let secrets = Secrets::new(&call.intent.service, &call.password);
    let meaning = match send(request(http, call, &call.operation)).await {
        Ok(answer) => {
            tracing::info!(
                operation = operation_name(&call.operation),
                status = answer.status,
                retried,
                "the service answered"
            );
            meaning_of(&call.operation, retried, &answer, &secrets)
        }
        Err(e) => {
            let reason = reason(e, settings.timeout);
            tracing::info!(
                operation = operation_name(&call.operation),
                attempt = call.attempts + 1,
                reason,
                "the service did not answer"
            );
            Meaning::NoAnswer(reason)
        }
    };
    called(
        &call.operation,
        meaning,
        call.attempts,
        settings.max_attempts,
        Utc::now(),
    )
}

/// Undoes at the service what a failure about to be recorded says did not happen: removes the
/// instance of a create given up, unbinds the app of a bind given up or answered with variables
/// Bosun cannot use. Once and best effort: what came of it is logged (the status, or why there
/// was none), never the answer's text.
pub(super) async fn undo(http: &reqwest::Client, settings: &ServiceSettings, call: &ServiceCall) {
    let Some(operation) = undo_of(&call.operation) else {
        return;
    };
    if disallowed(&call.endpoint, settings).is_some() {
        return;
    }
    let name = operation_name(&operation);
    match send(request(http, call, &operation)).await {
        Ok(answer) if (200..300).contains(&answer.status) || answer.status == 404 => {
            tracing::info!(
                operation = name,
                status = answer.status,
                "undone at the service"
            )
        }
        Ok(answer) => tracing::warn!(
            operation = name,
            status = answer.status,
            "the service refused the undoing call; it may keep what Bosun records as not done"
        ),
        Err(e) => tracing::warn!(
            operation = name,
            reason = reason(e, settings.timeout),
            "the service did not answer the undoing call; it may keep what Bosun records as not done"
        ),
    }
}

/// The call that undoes `operation` at the service, if a failure of it may need one.
pub(super) fn undo_of(operation: &Operation) -> Option<Operation> {
    match operation {
        Operation::Create => Some(Operation::Remove),
        Operation::Bind { app } => Some(Operation::Unbind { app: app.clone() }),
        Operation::Unbind { .. } | Operation::Remove => None,
    }
}

/// `operation`'s request for `call`'s instance, with its credentials.
fn request(
    http: &reqwest::Client,
    call: &ServiceCall,
    operation: &Operation,
) -> reqwest::RequestBuilder {
    let base = call.endpoint.as_str();
    let instance = call.intent.instance.as_str();
    let request = match operation {
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
    request
        .basic_auth(&call.intent.service, Some(call.password.expose_secret()))
        .header(reqwest::header::ACCEPT, "application/json")
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
    let secrets = Secrets::new(&target.service, &target.password);
    match send(request).await {
        Ok(answer) => health_of(&answer, &secrets),
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

/// What `answer` to `operation` means. `retried`: an earlier attempt may have reached the
/// service.
pub(super) fn meaning_of(
    operation: &Operation,
    retried: bool,
    answer: &Answer,
    secrets: &Secrets,
) -> Meaning {
    let status = answer.status;
    let already_done = match operation {
        // Not on a first attempt: another request may have created an instance of that name.
        Operation::Create => retried && status == 409,
        Operation::Remove | Operation::Unbind { .. } => status == 404,
        Operation::Bind { .. } => false,
    };
    if already_done {
        return Meaning::Done(Vec::new());
    }
    if matches!(status, 502..=504) {
        let text = message(&answer.body, secrets);
        return Meaning::NoAnswer(if text.is_empty() {
            format!("HTTP {status}, unavailable")
        } else {
            format!("HTTP {status}, unavailable: {text}")
        });
    }
    if !(200..300).contains(&status) {
        return Meaning::Refused {
            status: Some(status),
            message: refusal_message(answer, secrets),
        };
    }
    match operation {
        Operation::Bind { .. } => match variables(answer, secrets) {
            Ok(vars) => Meaning::Done(vars),
            Err(why) => Meaning::Unusable(why),
        },
        _ => Meaning::Done(Vec::new()),
    }
}

/// What an attempt that had `attempts` earlier unanswered ones records, for `meaning`; and
/// whether to undo it at the service first.
pub(super) fn called(
    operation: &Operation,
    meaning: Meaning,
    attempts: u32,
    max_attempts: u32,
    now: DateTime<Utc>,
) -> Called {
    match meaning {
        Meaning::Done(vars) => Called {
            result: CallResult::Done { vars },
            undo: false,
        },
        Meaning::Refused { status, message } => Called {
            result: CallResult::Refused { status, message },
            undo: false,
        },
        Meaning::Unusable(why) => Called {
            result: CallResult::Refused {
                status: None,
                message: format!("the service answered what Bosun cannot use: {why}"),
            },
            undo: undo_of(operation).is_some(),
        },
        Meaning::NoAnswer(reason) => {
            let result = no_answer(reason, attempts, max_attempts, now);
            let given_up = matches!(result, CallResult::NoAnswer { retry_at: None, .. });
            Called {
                result,
                undo: given_up && undo_of(operation).is_some(),
            }
        }
    }
}

/// A refusal's message: the answer's text, or its status when it has none.
fn refusal_message(answer: &Answer, secrets: &Secrets) -> String {
    let text = message(&answer.body, secrets);
    if text.is_empty() {
        format!(
            "the service answered HTTP {} with no message",
            answer.status
        )
    } else {
        text
    }
}

/// `body` as text without the secrets, trimmed, at most [`MESSAGE_LIMIT`] bytes cut at a
/// character boundary.
pub(super) fn message(body: &[u8], secrets: &Secrets) -> String {
    // Scrubbed before it is cut: a secret cut in two would not be found.
    let text = secrets.scrub(&String::from_utf8_lossy(body));
    let text = text.trim();
    let mut end = text.len().min(MESSAGE_LIMIT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].trim_end().to_string()
}

/// A bind's answer: a JSON object of string values (an empty answer: none). Errors name
/// variables, never their values.
pub(super) fn variables(
    answer: &Answer,
    secrets: &Secrets,
) -> Result<Vec<(String, SecretString)>, String> {
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
                    shown_name(&secrets.scrub(&name))
                ))
            }
        }
    }
    Ok(vars)
}

/// A variable's name as a message shows it: quoted, shortened as
/// [`bosun_commands::services::quoted`] does.
fn shown_name(name: &str) -> String {
    format!("{:?}", quoted(name))
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
pub(super) fn health_of(answer: &Answer, secrets: &Secrets) -> InstanceStatus {
    let status = match answer.status {
        204 => Health::Up,
        202 => Health::Pending,
        _ => Health::Down,
    };
    let mut message = message(&answer.body, secrets);
    if status == Health::Down && message.is_empty() {
        message = format!("the service answered HTTP {}", answer.status);
    }
    InstanceStatus { status, message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use bosun_domain::apps::AppName;

    const PASSWORD: &str = "pa55-w0rd";

    fn secrets() -> Secrets {
        Secrets::new("db", &SecretString::from(PASSWORD))
    }

    fn credential() -> String {
        base64::engine::general_purpose::STANDARD.encode(format!("db:{PASSWORD}"))
    }

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            body: body.as_bytes().to_vec(),
            cut: false,
        }
    }

    /// What a first attempt records for `answer` (`retried` as said).
    fn result_of(operation: &Operation, retried: bool, answer: &Answer) -> CallResult {
        let meaning = meaning_of(operation, retried, answer, &secrets());
        called(operation, meaning, 0, 10, Utc::now()).result
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
    fn a_bind_answer_bosun_cannot_use_is_refused_without_its_values_and_undone() {
        for body in [
            "not json",
            "[1, 2]",
            r#""a string""#,
            r#"{"A": "ok", "B": 12345}"#,
            r#"{"A": {"nested": "s3cr3t"}}"#,
        ] {
            let meaning = meaning_of(&bind(), false, &answer(201, body), &secrets());
            let called = called(&bind(), meaning, 0, 10, Utc::now());
            assert!(called.undo, "{body}: the service may hold the binding");
            let (status, message) = refused(called.result);
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
    fn a_long_variable_name_is_cut_in_a_message() {
        let name = "N".repeat(500);
        let body = format!(r#"{{"{name}": 1}}"#);
        let (_, message) = refused(result_of(&bind(), false, &answer(200, &body)));
        assert!(
            message.contains(&format!("\"{}…\"", "N".repeat(64))),
            "{message}"
        );
        assert!(!message.contains(&"N".repeat(65)), "{message}");
    }

    #[test]
    fn a_non_2xx_is_refused_with_the_answer_text() {
        for operation in [Operation::Create, Operation::Remove, bind(), unbind()] {
            let meaning = meaning_of(&operation, false, &answer(500, "  disk full\n"), &secrets());
            let called = called(&operation, meaning, 0, 10, Utc::now());
            assert!(!called.undo, "the service said it did not");
            let (status, message) = refused(called.result);
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
    fn a_502_503_or_504_is_no_answer_and_tried_again() {
        for operation in [Operation::Create, Operation::Remove, bind(), unbind()] {
            for status in [502, 503, 504] {
                match result_of(&operation, false, &answer(status, " overloaded ")) {
                    CallResult::NoAnswer {
                        reason,
                        retry_at: Some(_),
                    } => {
                        assert_eq!(reason, format!("HTTP {status}, unavailable: overloaded"))
                    }
                    other => panic!("{status}: {other:?}"),
                }
            }
        }
        match result_of(&Operation::Create, true, &answer(503, "")) {
            CallResult::NoAnswer { reason, .. } => assert_eq!(reason, "HTTP 503, unavailable"),
            other => panic!("{other:?}"),
        }
        let (status, _) = refused(result_of(&Operation::Create, false, &answer(501, "")));
        assert_eq!(status, Some(501), "not a gateway's");
    }

    #[test]
    fn a_retried_create_answered_409_was_created() {
        assert!(done_vars(result_of(&Operation::Create, true, &answer(409, "exists"))).is_empty());
        let (status, message) =
            refused(result_of(&Operation::Create, false, &answer(409, "exists")));
        assert_eq!((status, message.as_str()), (Some(409), "exists"));
    }

    #[test]
    fn a_remove_or_unbind_answered_404_is_done_on_any_attempt() {
        for operation in [Operation::Remove, unbind()] {
            for retried in [false, true] {
                assert!(done_vars(result_of(&operation, retried, &answer(404, ""))).is_empty());
            }
        }
        // Not for a bind or a create, nor other statuses.
        let (status, _) = refused(result_of(&bind(), true, &answer(404, "")));
        assert_eq!(status, Some(404));
        let (status, _) = refused(result_of(&Operation::Create, true, &answer(404, "")));
        assert_eq!(status, Some(404));
        let (status, _) = refused(result_of(&Operation::Remove, true, &answer(409, "")));
        assert_eq!(status, Some(409));
    }

    #[test]
    fn a_create_or_bind_given_up_is_undone_at_the_service() {
        let now = Utc::now();
        for (operation, undone) in [
            (Operation::Create, Some(Operation::Remove)),
            (bind(), Some(unbind())),
            (unbind(), None),
            (Operation::Remove, None),
        ] {
            assert_eq!(undo_of(&operation), undone);
            let given_up = called(&operation, Meaning::NoAnswer("timeout".into()), 9, 10, now);
            assert!(matches!(
                given_up.result,
                CallResult::NoAnswer { retry_at: None, .. }
            ));
            assert_eq!(given_up.undo, undone.is_some(), "{operation:?}");
            let again = called(&operation, Meaning::NoAnswer("timeout".into()), 8, 10, now);
            assert!(!again.undo, "{operation:?}: tried again, not undone");
            let done = called(&operation, Meaning::Done(vec![]), 9, 10, now);
            assert!(!done.undo);
        }
    }

    #[test]
    fn secrets_are_taken_out_of_what_a_service_answers() {
        let echo = format!(
            "denied for db:{PASSWORD} (Authorization: Basic {})",
            credential()
        );
        for operation in [Operation::Create, Operation::Remove, bind(), unbind()] {
            let (_, message) = refused(result_of(&operation, false, &answer(401, &echo)));
            assert_eq!(message, "denied for db:*** (Authorization: Basic ***)");
        }
        match result_of(&Operation::Create, false, &answer(503, &echo)) {
            CallResult::NoAnswer { reason, .. } => {
                assert!(
                    !reason.contains(PASSWORD) && !reason.contains(&credential()),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
        let status = health_of(&answer(500, &echo), &secrets());
        assert!(!status.message.contains(PASSWORD), "{}", status.message);
        assert!(
            !status.message.contains(&credential()),
            "{}",
            status.message
        );
        // A variable named after the password.
        let body = format!(r#"{{"{PASSWORD}": 1}}"#);
        let (_, named) = refused(result_of(&bind(), false, &answer(200, &body)));
        assert!(!named.contains(PASSWORD), "{named}");
        // Taken out before the message is cut: no half of it is left at the end.
        let long = format!("{}{PASSWORD}", "x".repeat(MESSAGE_LIMIT - 4));
        let cut = message(long.as_bytes(), &secrets());
        assert!(!cut.contains("pa55"), "{cut}");
    }

    #[test]
    fn a_message_is_cut_at_a_character_boundary() {
        let secrets = secrets();
        let long = "é".repeat(1000); // 2000 bytes
        let cut = message(long.as_bytes(), &secrets);
        assert!(cut.len() <= MESSAGE_LIMIT);
        assert_eq!(cut.len(), 1024);
        assert!(cut.chars().all(|c| c == 'é'));
        let odd = format!("a{}", "€".repeat(600)); // 1 + 1800 bytes
        let cut = message(odd.as_bytes(), &secrets);
        assert_eq!(cut.len(), 1 + 3 * 341);
        assert!(odd.starts_with(&cut));
        assert_eq!(message(b"  short  ", &secrets), "short");
        assert_eq!(message(&[0xff, b'o', b'k'], &secrets), "\u{fffd}ok");
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
        let secrets = secrets();
        assert_eq!(health_of(&answer(204, ""), &secrets).status, Health::Up);
        assert_eq!(
            health_of(&answer(202, "starting"), &secrets).status,
            Health::Pending
        );
        let down = health_of(&answer(500, " broken "), &secrets);
        assert_eq!(
            (down.status, down.message.as_str()),
            (Health::Down, "broken")
        );
        let down = health_of(&answer(200, ""), &secrets);
        assert_eq!(down.status, Health::Down);
        assert!(down.message.contains("200"), "{}", down.message);
        assert_eq!(
            serde_json::to_value(health_of(&answer(204, ""), &secrets)).unwrap(),
            serde_json::json!({"status": "up", "message": ""})
        );
    }

    /// A service on 127.0.0.1 that records each request (method, path, Authorization, body),
    /// never answers a POST and answers anything else 204.
    mod hanging_service {
        use std::sync::{Arc, Mutex};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        #[derive(Clone, Debug)]
        pub struct Request {
            pub method: String,
            pub path: String,
            pub authorization: String,
            pub body: String,
        }

        pub async fn start() -> (String, Arc<Mutex<Vec<Request>>>) {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let endpoint = format!("http://{}", listener.local_addr().unwrap());
            let requests = Arc::new(Mutex::new(Vec::new()));
            let seen = requests.clone();
            tokio::spawn(async move {
                loop {
                    let (mut socket, _) = listener.accept().await.unwrap();
                    let seen = seen.clone();
                    tokio::spawn(async move {
                        let mut read = Vec::new();
                        let mut buf = [0u8; 4096];
                        let head_end = loop {
                            let n = socket.read(&mut buf).await.unwrap();
                            if n == 0 {
                                return;
                            }
                            read.extend_from_slice(&buf[..n]);
                            if let Some(at) = read.windows(4).position(|w| w == b"\r\n\r\n") {
                                break at + 4;
                            }
                        };
                        let head = String::from_utf8_lossy(&read[..head_end]).to_string();
                        let header = |name: &str| {
                            head.lines()
                                .find_map(|l| {
                                    let (n, v) = l.split_once(':')?;
                                    n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                                })
                                .unwrap_or_default()
                        };
                        let length: usize = header("content-length").parse().unwrap_or(0);
                        while read.len() < head_end + length {
                            let n = socket.read(&mut buf).await.unwrap();
                            if n == 0 {
                                break;
                            }
                            read.extend_from_slice(&buf[..n]);
                        }
                        let mut line = head.lines().next().unwrap_or_default().split(' ');
                        let request = Request {
                            method: line.next().unwrap_or_default().to_string(),
                            path: line.next().unwrap_or_default().to_string(),
                            authorization: header("authorization"),
                            body: String::from_utf8_lossy(&read[head_end..]).to_string(),
                        };
                        let hang = request.method == "POST";
                        seen.lock().unwrap().push(request);
                        if hang {
                            std::future::pending::<()>().await;
                        }
                        let _ = socket
                            .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                            .await;
                    });
                }
            });
            (endpoint, requests)
        }
    }

    fn settings() -> ServiceSettings {
        ServiceSettings {
            timeout: Duration::from_millis(300),
            wait: Duration::from_secs(1),
            max_attempts: 3,
            allow_insecure_hosts: vec!["127.0.0.1".into()],
        }
    }

    fn service_call(endpoint: &str, operation: Operation, attempts: u32) -> ServiceCall {
        ServiceCall {
            intent: bosun_commands::services::Intent {
                service: "db".into(),
                instance: "main".into(),
                request_id: uuid::Uuid::new_v4(),
            },
            operation,
            endpoint: Endpoint::parse(endpoint, &["127.0.0.1".to_string()]).unwrap(),
            password: SecretString::from(PASSWORD),
            plan: "small".into(),
            team_owner: "ops".into(),
            app_host: "web.example.com".into(),
            attempts,
            requested_at: Utc::now(),
            retry_at: None,
        }
    }

    fn http(settings: &ServiceSettings) -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn a_create_given_up_is_removed_at_the_service() {
        let (endpoint, requests) = hanging_service::start().await;
        let settings = settings();
        let http = http(&settings);
        let early = call(
            &http,
            &settings,
            &service_call(&endpoint, Operation::Create, 0),
            false,
        )
        .await;
        assert!(
            matches!(
                early.result,
                CallResult::NoAnswer {
                    retry_at: Some(_),
                    ..
                }
            ),
            "{early:?}"
        );
        assert!(!early.undo, "tried again, not undone");
        let last = service_call(&endpoint, Operation::Create, 2);
        let given_up = call(&http, &settings, &last, true).await;
        assert!(
            matches!(given_up.result, CallResult::NoAnswer { retry_at: None, .. }),
            "{given_up:?}"
        );
        assert!(given_up.undo);
        undo(&http, &settings, &last).await;
        let requests = requests.lock().unwrap().clone();
        let basic = format!("Basic {}", credential());
        assert_eq!(requests.len(), 3, "{requests:?}");
        assert_eq!(
            (requests[0].method.as_str(), requests[0].path.as_str()),
            ("POST", "/resources")
        );
        assert_eq!(requests[0].body, "name=main&plan=small&team=ops");
        let removal = &requests[2];
        assert_eq!(
            (removal.method.as_str(), removal.path.as_str()),
            ("DELETE", "/resources/main")
        );
        assert!(
            requests.iter().all(|r| r.authorization == basic),
            "{requests:?}"
        );
    }

    #[tokio::test]
    async fn a_bind_given_up_is_unbound_at_the_service() {
        let (endpoint, requests) = hanging_service::start().await;
        let settings = settings();
        let http = http(&settings);
        let last = service_call(&endpoint, bind(), 2);
        let given_up = call(&http, &settings, &last, true).await;
        assert!(given_up.undo, "{given_up:?}");
        undo(&http, &settings, &last).await;
        let requests = requests.lock().unwrap().clone();
        assert_eq!(requests.len(), 2, "{requests:?}");
        assert_eq!(
            (requests[0].method.as_str(), requests[0].path.as_str()),
            ("POST", "/resources/main/bind-app")
        );
        assert_eq!(requests[0].body, "app-name=web&app-host=web.example.com");
        assert_eq!(
            (requests[1].method.as_str(), requests[1].path.as_str()),
            ("DELETE", "/resources/main/bind-app")
        );
        assert_eq!(requests[1].body, "app-name=web");
    }

    /// Settings that no longer allow plain http to 127.0.0.1.
    fn settings_without_insecure_hosts() -> ServiceSettings {
        ServiceSettings {
            allow_insecure_hosts: vec![],
            ..settings()
        }
    }

    fn no_longer_allowed() -> String {
        "the service's endpoint is plain http to 127.0.0.1, which \
         http_tasks.allow_insecure_hosts no longer allows"
            .to_string()
    }

    #[tokio::test]
    async fn a_call_to_a_host_no_longer_allowed_is_refused_unmade() {
        let (endpoint, requests) = hanging_service::start().await;
        let settings = settings_without_insecure_hosts();
        let http = http(&settings);
        for operation in [Operation::Create, Operation::Remove, bind(), unbind()] {
            let called = call(
                &http,
                &settings,
                &service_call(&endpoint, operation, 0),
                false,
            )
            .await;
            assert!(!called.undo, "{called:?}");
            let (status, message) = refused(called.result);
            assert_eq!(status, None);
            assert_eq!(message, no_longer_allowed());
        }
        assert!(requests.lock().unwrap().is_empty(), "no request was made");
    }

    #[tokio::test]
    async fn a_status_of_a_host_no_longer_allowed_is_down_unasked() {
        let (endpoint, requests) = hanging_service::start().await;
        let settings = settings_without_insecure_hosts();
        let http = http(&settings);
        let target = StatusTarget {
            endpoint: Endpoint::parse(&endpoint, &["127.0.0.1".to_string()]).unwrap(),
            service: "db".into(),
            instance: "main".into(),
            password: SecretString::from(PASSWORD),
        };
        let answered = status(&http, &settings, &target).await;
        assert_eq!(answered.status, Health::Down);
        assert_eq!(answered.message, no_longer_allowed());
        assert!(requests.lock().unwrap().is_empty(), "no request was made");
    }

    #[tokio::test]
    async fn nothing_is_undone_for_an_unbind_or_a_remove() {
        let (endpoint, requests) = hanging_service::start().await;
        let settings = settings();
        let http = http(&settings);
        undo(&http, &settings, &service_call(&endpoint, unbind(), 2)).await;
        undo(
            &http,
            &settings,
            &service_call(&endpoint, Operation::Remove, 2),
        )
        .await;
        assert!(requests.lock().unwrap().is_empty());
    }
}
