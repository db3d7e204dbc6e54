//! Sending the mails identity commands give back (password reset tokens, new passwords) through
//! the SMTP server of `notifications.smtp`, by the runner's one mail sender
//! ([`bosun_runner::send_mail`]). A mail's body holds a secret: it is never logged.

use bosun_commands::identity::OutgoingMail;
use bosun_runner::SmtpSettings;

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
        bosun_runner::send_mail(&self.smtp, &mail.to, &mail.subject, mail.body().to_string()).await
    }
}
