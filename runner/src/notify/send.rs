//! Sending one notification: an email through the configured SMTP server, or a webhook POST of
//! the job as JSON, signed with HMAC-SHA256 when a webhook secret is configured. The webhook's
//! URL comes opened (`Target`); errors name it as reads show it.

use super::{Due, Notifier, Target};
use crate::http_task::{error_chain, hmac_sha256_hex};
use secrecy::ExposeSecret;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);
pub const SIGNATURE_HEADER: &str = "X-Bosun-Signature";

pub(crate) async fn send(notifier: &Notifier, due: &Due, target: &Target) -> Result<(), String> {
    match target {
        Target::Email(email) => send_email(notifier, due, email).await,
        Target::Webhook(Ok(url)) => send_webhook(notifier, due, url.expose_secret()).await,
        Target::Webhook(Err(e)) => Err(e.clone()),
        Target::None => Err("the notification has no recipient".into()),
    }
}

fn subject(due: &Due) -> String {
    let what = due
        .job
        .orchestration_id
        .as_ref()
        .map(|o| format!("orchestration {o}"))
        .unwrap_or_else(|| {
            format!(
                "{}/{}/{}",
                due.job.app.as_deref().unwrap_or_default(),
                due.job.env.as_deref().unwrap_or_default(),
                due.job.task.as_deref().unwrap_or_default()
            )
        });
    match due.channel.as_str() {
        "error" => format!("[bosun] job {} of {what} failed", due.job.id),
        "waiting" => format!("[bosun] job {} of {what} is waiting too long", due.job.id),
        _ => format!(
            "[bosun] job {} of {what} is running unusually long",
            due.job.id
        ),
    }
}

async fn send_email(notifier: &Notifier, due: &Due, to: &str) -> Result<(), String> {
    let Some(smtp) = &notifier.settings.smtp else {
        return Err("no SMTP server is configured (notifications.smtp)".into());
    };
    let body = format!(
        "{}\n\nstatus: {}\ndiagnostics: {}\ncreated: {}\nstarted: {}\nfinished: {}\n\n{}\n",
        subject(due),
        due.job.status.as_str(),
        due.job.diagnostics.as_deref().unwrap_or("-"),
        due.job.created_at.to_rfc3339(),
        due.job
            .started_at
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| "-".into()),
        due.job
            .finished_at
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| "-".into()),
        serde_json::to_string_pretty(&due.job).unwrap_or_default(),
    );
    crate::mail::send_mail(smtp, to, &subject(due), body).await
}

/// `sha256=<hex>` of `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    format!("sha256={}", hmac_sha256_hex(secret, &[body]))
}

async fn send_webhook(notifier: &Notifier, due: &Due, url: &str) -> Result<(), String> {
    let body = serde_json::to_vec(&serde_json::json!({
        "channel": due.channel.as_str(),
        "job": due.job,
    }))
    .map_err(|e| e.to_string())?;
    let mut request = notifier
        .http
        .post(url)
        .timeout(TIMEOUT)
        .header("Content-Type", "application/json")
        .header("X-Bosun-Channel", due.channel.as_str());
    if let Some(secret) = &notifier.settings.webhook_secret {
        request = request.header(
            SIGNATURE_HEADER,
            signature(secret.expose_secret().as_bytes(), &body),
        );
    }
    let shown = due.shown();
    let response = request
        .body(body)
        .send()
        .await
        .map_err(|e| format!("POST {shown}: {}", error_chain(&e.without_url())))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("POST {shown}: HTTP {}", response.status()))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            super::signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
