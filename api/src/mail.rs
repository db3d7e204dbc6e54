//! Sending the mails identity commands give back (password reset tokens, new passwords) through
//! the SMTP server of `notifications.smtp`, as the notifications reactor sends its mails: plain
//! text, STARTTLS when the server offers it. A mail's body holds a secret: it is never logged,
//! and neither is the SMTP server's answer beyond its error.

use bosun_commands::identity::OutgoingMail;
use bosun_runner::SmtpSettings;
use lettre::message::header::ContentType;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);

/// The configured SMTP server.
#[derive(Clone, Debug)]
pub struct Mailer {
    smtp: SmtpSettings,
}

impl Mailer {
    pub fn new(smtp: SmtpSettings) -> Self {
        Mailer { smtp }
    }

    /// Sends `mail`; the error says why not (without the body).
    pub async fn send(&self, mail: &OutgoingMail) -> Result<(), String> {
        let smtp = &self.smtp;
        let message = Message::builder()
            .from(
                smtp.from
                    .parse()
                    .map_err(|e| format!("notifications.smtp.from: {e}"))?,
            )
            .to(mail.to.parse().map_err(|e| format!("{:?}: {e}", mail.to))?)
            .subject(mail.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body().to_string())
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
            .map_err(|e| format!("SMTP {}:{}: {e}", smtp.host, smtp.port))
    }
}
