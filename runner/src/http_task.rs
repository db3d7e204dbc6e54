//! A `component_url` task: an HTTP POST of its parameters as JSON, with the orchestration's
//! token in `X-StorageApi-Token`; a 2xx answer is success. The answer's body (up to 64 KiB) is
//! the task's output. The lease is kept, and a kill or the task's timeout ends the request.

use crate::worker::{Context, Heartbeat, Output};
use bosun_commands::{CommandError, Origin};
use bosun_domain::jobs::{OutputStream, PlannedTask, TaskStatus};
use bosun_domain::orchestrations::Orchestration;
use bosun_projections::read_models::jobs::JobView;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::{Duration, Instant};
use uuid::Uuid;

use super::orchestration_job::TaskEnd;

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
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Runs the task; `None` if the job was taken from this worker.
pub(crate) async fn run(
    context: &Context,
    origin: &Origin,
    heartbeat: &mut Heartbeat,
    job: &JobView,
    planned: &PlannedTask,
    timeout: Option<Duration>,
    output: &mut Output,
) -> Result<Option<TaskEnd>, CommandError> {
    let url = planned.task.component_url.clone().unwrap_or_default();
    let token_id = match &job.orchestration_id {
        Some(id) => context.commands.load::<Orchestration>(id).await?.0.token_id,
        None => None,
    };
    let mut request = context
        .http
        .post(&url)
        .json(&planned.task.parameters)
        .header("X-Bosun-Job-Id", job.id.to_string());
    if let Some(token_id) = token_id {
        request = request.header(
            "X-StorageApi-Token",
            orchestration_token(&context.data_key, token_id),
        );
    }
    if let Some(action) = &planned.task.action {
        request = request.header("X-Bosun-Action", action.as_str());
    }
    if let Some(timeout) = timeout {
        request = request.timeout(timeout);
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
                if heartbeat.beat(context).await.is_err() {
                    return Ok(None);
                }
                if let Some(stop) = heartbeat.stop_wanted(context, began, None).await {
                    tracing::info!(job_id = %job.id, ?stop, "abandoning the HTTP request");
                    return Ok(Some(TaskEnd {
                        status: TaskStatus::Killed,
                        exit_code: None,
                        diagnostics: Some(format!("killed on request while POST {url} was in flight")),
                    }));
                }
            }
        }
    };
    let end = match result {
        Ok((status, body)) => {
            output.push(OutputStream::Stdout, &body);
            let line = format!("POST {url}: HTTP {status}");
            if status.is_success() {
                TaskEnd {
                    status: TaskStatus::Success,
                    exit_code: None,
                    diagnostics: Some(line),
                }
            } else {
                TaskEnd {
                    status: TaskStatus::Error,
                    exit_code: None,
                    diagnostics: Some(line),
                }
            }
        }
        Err(e) if e.is_timeout() => TaskEnd {
            status: TaskStatus::Error,
            exit_code: None,
            diagnostics: Some(format!(
                "POST {url} timed out after {} min",
                timeout.map_or(0, |t| t.as_secs() / 60)
            )),
        },
        Err(e) => TaskEnd {
            status: TaskStatus::Error,
            exit_code: None,
            diagnostics: Some(format!(
                "POST {url} failed: {}",
                error_chain(&e.without_url())
            )),
        },
    };
    if let Err(e) = output.flush(context, job.id, origin, true).await {
        if crate::worker::taken_over(&e) {
            return Ok(None);
        }
        tracing::warn!(job_id = %job.id, error = %e, "appending the task's output failed");
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
