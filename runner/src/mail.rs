//! Sending one plain-text mail through the configured SMTP server (`notifications.smtp`), the one
//! way every mail of Bosun goes out: the notifications reactor's, and the identity commands'
//! (password reset tokens, new passwords). STARTTLS when the server offers it. A mail's body may
//! hold a secret: it is never logged, and an error never quotes it.

use crate::http_task::error_chain;
use crate::settings::SmtpSettings;
use lettre::message::header::ContentType;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);

/// Sends `body` to `to` with `subject`; the error says why not (never with the body).
pub async fn send_mail(
    smtp: &SmtpSettings,
    to: &str,
    subject: &str,
    body: String,
) -> Result<(), String> {
    let message = Message::builder()
        .from(
            smtp.from
                .parse()
                .map_err(|e| format!("notifications.smtp.from: {e}"))?,
        )
        .to(to.parse().map_err(|e| format!("{to:?}: {e}"))?)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| format!("building the mail: {e}"))?;
    let tls = TlsParameters::new(smtp.host.clone()).map_err(|e| format!("TLS setup: {e}"))?;
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host.as_str())
        .port(smtp.port)
        .tls(Tls::Opportunistic(tls))
        .timeout(Some(TIMEOUT))
        .build();
    transport
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| format!("SMTP {}:{}: {}", smtp.host, smtp.port, error_chain(&e)))
}
