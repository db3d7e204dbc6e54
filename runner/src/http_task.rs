//! A `component_url` task: an HTTP POST of its parameters as JSON, with the orchestration's
//! token in `X-StorageApi-Token`; a 2xx answer is success. The answer's body (up to 64 KiB) is
//! the task's output. The lease is kept, and a kill or the task's timeout ends the request.
//!
//! A `component_url` holding a secret (credentials, a query) is sealed in the job's events: it
//! is opened here only to make the call (credentials in it become the request's basic
//! authorization), and every message names it as reads show it (`https://host/…`).
//!
//! Does not own: recording the task's start and end, nor which task runs when
//! (`orchestration_job`).

use crate::catalog_task::{Outcome, TaskEnd, Timeout};
use crate::claim::Run;
use crate::job_stream::taken_over;
use crate::supervise::stop_wanted;
use bosun_commands::CommandError;
use bosun_domain::jobs::{OutputStream, PlannedTask};
use bosun_domain::orchestrations::{Orchestration, StoredUrl, UrlField};
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use sha2::Sha256;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Body kept as output.
const BODY_LIMIT: usize = 64 * 1024;
const CHECK_EVERY: Duration = Duration::from_millis(200);

/// The token an orchestration's runs send: derived from its token id and the server's data key,
/// so no event holds it and every node derives the same one.
pub fn orchestration_token(data_key: &[u8], token_id: Uuid) -> String {
    format!(
        "bosun_orch_{}",
        hmac_sha256_hex(
            data_key,
            &[b"bosun orchestration token\n", token_id.as_bytes()]
        )
    )
}

/// HMAC-SHA256 of `parts` (one after the other) under `key`, in lowercase hex.
pub(crate) fn hmac_sha256_hex(key: &[u8], parts: &[&[u8]]) -> String {
    // HMAC takes keys of any length, so this never fails.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    for part in parts {
        mac.update(part);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// POSTs task `planned` of orchestration `orchestration_id` to `stored` (opened if sealed);
/// `None` if the job was taken from this worker.
pub(crate) async fn run(
    run: &mut Run<'_>,
    orchestration_id: &str,
    stored: &StoredUrl,
    planned: &PlannedTask,
    timeout: Option<Timeout>,
) -> Result<Option<TaskEnd>, CommandError> {
    let context = run.context;
    let job_id = run.stream.job_id;
    let url = stored.shown(UrlField::ComponentUrl);
    let clear = match context
        .commands
        .open_url(UrlField::ComponentUrl, orchestration_id, stored)
    {
        Ok(clear) => clear,
        Err(e) => {
            tracing::error!(%job_id, error = %e, "a task's component_url does not open");
            return Ok(Some(TaskEnd {
                outcome: Outcome::Error,
                exit_code: None,
                diagnostics: Some(format!(
                    "the component_url {url} cannot be opened on this node: {e}"
                )),
            }));
        }
    };
    let token_id = context
        .commands
        .load::<Orchestration>(orchestration_id)
        .await?
        .0
        .token_id;
    let mut request = context
        .http
        .post(clear.expose_secret())
        .json(&planned.task.parameters)
        .header("X-Bosun-Job-Id", job_id.to_string());
    if let Some(token_id) = token_id {
        request = request.header(
            "X-StorageApi-Token",
            orchestration_token(context.data_key.expose_secret(), token_id),
        );
    }
    if let Some(action) = &planned.task.action {
        request = request.header("X-Bosun-Action", action.as_str());
    }
    if let Some(timeout) = timeout {
        request = request.timeout(timeout.duration());
    }
    let began = Instant::now();
    let call = async {
        let response = request.send().await?;
        let status = response.status();
        let mut body = Vec::new();
        let mut response = response;
        while let Some(chunk) = response.chunk().await? {
            let room = BODY_LIMIT.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if room < chunk.len() {
                break;
            }
        }
        Ok::<_, reqwest::Error>((status, body))
    };
    tokio::pin!(call);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + CHECK_EVERY, CHECK_EVERY);
    let result = loop {
        tokio::select! {
            result = &mut call => break result,
            _ = tick.tick() => {
                if run.heartbeat.beat(context).await.is_err() {
                    return Ok(None);
                }
                if let Some(stop) = stop_wanted(context, job_id, began, None).await {
                    tracing::info!(%job_id, ?stop, "abandoning the HTTP request");
                    return Ok(Some(TaskEnd {
                        outcome: Outcome::Killed,
                        exit_code: None,
                        diagnostics: Some(format!("killed on request while POST {url} was in flight")),
                    }));
                }
            }
        }
    };
    let end = match result {
        Ok((status, body)) => {
            run.output.push(OutputStream::Stdout, &body);
            let line = format!("POST {url}: HTTP {status}");
            TaskEnd {
                outcome: if status.is_success() {
                    Outcome::Success
                } else {
                    Outcome::Error
                },
                exit_code: None,
                diagnostics: Some(line),
            }
        }
        Err(e) if e.is_timeout() => TaskEnd {
            outcome: Outcome::Error,
            exit_code: None,
            diagnostics: Some(format!(
                "POST {url} timed out after {}",
                timeout.unwrap_or(Timeout::Minutes(0))
            )),
        },
        Err(e) => TaskEnd {
            outcome: Outcome::Error,
            exit_code: None,
            diagnostics: Some(format!(
                "POST {url} failed: {}",
                error_chain(&e.without_url())
            )),
        },
    };
    if let Err(e) = run.output.flush(context, &mut run.stream, true).await {
        if taken_over(&e) {
            return Ok(None);
        }
        tracing::warn!(%job_id, error = %e, "appending the task's output failed");
    }
    Ok(Some(end))
}

/// An error with its causes, which reqwest keeps apart ("error sending request" alone says little).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_depends_on_the_key_and_the_token_id() {
        let id = Uuid::new_v4();
        let a = orchestration_token(b"key one", id);
        assert_eq!(a, orchestration_token(b"key one", id));
        assert_ne!(a, orchestration_token(b"key two", id));
        assert_ne!(a, orchestration_token(b"key one", Uuid::new_v4()));
        assert!(a.starts_with("bosun_orch_") && a.len() == "bosun_orch_".len() + 64);
    }
}
