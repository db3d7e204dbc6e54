//! Password reset by email, as tsuru did it: anyone may ask for a reset of a user's password;
//! a one-time token goes to the user's email; whoever holds it gets a new random password,
//! which goes to the same email. Neither the token nor the new password is ever in an event,
//! an answer or a log line: the log keeps the token's SHA-256 digest (as for API tokens: the
//! token is 32 random bytes, so its digest cannot be turned back) and the new password's argon2
//! hash. The user's tokens keep working (tsuru's behaviour: a reset is for a forgotten
//! password, not a stolen one; revoke tokens with `DELETE /v1/tokens/{id}`); a password change
//! of any kind voids the reset tokens issued before it.
//!
//! These commands decide and record, and give back the mail to send ([`OutgoingMail`]); the
//! caller delivers it (the API through its SMTP mailer), after the write, so a mail is only
//! ever sent for what the log holds.

use super::secrets::{digest, hash_password, new_token, random_password};
use crate::actor::{Actor, Origin};
use crate::error::CommandError;
use crate::execute::{Commands, Written};
use bosun_domain::identity::{User, UserCommand, Username};
use bosun_domain::{Aggregate, DomainError};
use bosun_eventstore::EventStore;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

/// How long a reset token works unless configured otherwise: an hour.
pub const DEFAULT_RESET_TTL_SECONDS: i64 = 3600;

/// A mail to send: its recipient and subject, and a body that holds a secret (a reset token or
/// a new password), which its `Debug` does not show.
pub struct OutgoingMail {
    pub to: String,
    pub subject: String,
    body: SecretString,
}

impl OutgoingMail {
    pub fn body(&self) -> &str {
        self.body.expose_secret()
    }
}

impl std::fmt::Debug for OutgoingMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingMail")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .field("body", &"***")
            .finish()
    }
}

/// A reset just requested: the mail with its token, and when the token expires.
#[derive(Debug)]
pub struct ResetRequested {
    pub mail: OutgoingMail,
    pub expires_at: DateTime<Utc>,
}

impl<S: EventStore> Commands<S> {
    /// Anyone asks for a reset of `username`'s password: a token good for `ttl_seconds` is
    /// recorded (its digest) and returned in the mail to the user's email. 404 for an unknown
    /// user, 409 `no_email` for one without an email.
    #[tracing::instrument(skip_all, fields(username = username))]
    pub async fn request_password_reset(
        &self,
        origin: &Origin,
        username: &str,
        ttl_seconds: i64,
    ) -> Result<(ResetRequested, Written), CommandError> {
        let username = known_name(username)?;
        let token = new_token();
        let expires_at = Utc::now() + chrono::Duration::seconds(ttl_seconds);
        let (user, written) = self
            .execute::<User>(username.as_str(), &Actor::Anonymous, origin, |user| {
                user.handle(UserCommand::RequestPasswordReset {
                    digest: token.digest.clone(),
                    expires_at,
                })
            })
            .await?;
        let to = recipient(&user)?;
        let body = format!(
            "Someone, hopefully you, asked to reset the password of\n\
             the Bosun user {username}.\n\
             \n\
             This one-time token gets you a new password until\n\
             {expires}:\n\
             \n\
             token: {token}\n\
             \n\
             Send it with POST /v1/users/{username}/password-reset/<token>;\n\
             the new password comes to this address.\n\
             \n\
             If you did not ask for this, ignore this mail: your password\n\
             stays as it is.\n",
            expires = expires_at.format("%Y-%m-%d %H:%M:%S UTC"),
            token = token.secret,
        );
        let mail = OutgoingMail {
            to,
            subject: format!("[bosun] password reset for {username}"),
            body: SecretString::from(body),
        };
        Ok((ResetRequested { mail, expires_at }, written))
    }

    /// Anyone holding a reset token of `username` uses it: a new random password is set and
    /// returned in the mail to the user's email. 404 for an unknown user or a token never
    /// issued; 409 `reset_token_used` or `reset_token_expired` (410 at the API).
    #[tracing::instrument(skip_all, fields(username = username))]
    pub async fn reset_password(
        &self,
        origin: &Origin,
        username: &str,
        token: &str,
    ) -> Result<(OutgoingMail, Written), CommandError> {
        let username = known_name(username)?;
        let digest = digest(token);
        // Checked before the (slow) hashing: an unknown token costs no argon2 work.
        let (current, _) = self.load::<User>(username.as_str()).await?;
        current.handle(UserCommand::ResetPassword {
            digest: digest.clone(),
            password_hash: bosun_domain::identity::PasswordHash(String::new()),
            now: Utc::now(),
        })?;
        let password = random_password();
        let password_hash = hash_password(&password).await?;
        let now = Utc::now();
        let (user, written) = self
            .execute::<User>(username.as_str(), &Actor::Anonymous, origin, |user| {
                user.handle(UserCommand::ResetPassword {
                    digest: digest.clone(),
                    password_hash: password_hash.clone(),
                    now,
                })
            })
            .await?;
        let to = recipient(&user)?;
        let body = format!(
            "The password of the Bosun user {username} was reset.\n\
             Your new password:\n\
             \n\
             password: {password}\n\
             \n\
             Log in with it (POST /v1/auth/tokens), then choose one of\n\
             your own (PUT /v1/users/{username}/password).\n",
            password = password.expose(),
        );
        let mail = OutgoingMail {
            to,
            subject: format!("[bosun] new password for {username}"),
            body: SecretString::from(body),
        };
        Ok((mail, written))
    }
}

/// A user named by a caller: a name that cannot exist is not found.
fn known_name(username: &str) -> Result<Username, CommandError> {
    Username::parse(username)
        .map_err(|_| DomainError::NotFound(format!("no user {username}")).into())
}

/// The address the user's mail goes to: the domain refused a user without one.
fn recipient(user: &User) -> Result<String, CommandError> {
    user.email
        .as_ref()
        .map(|e| e.as_str().to_string())
        .ok_or_else(|| {
            CommandError::Internal("a reset was recorded for a user without an email".into())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::secrets::verify_password;
    use bosun_domain::identity::{Email, PasswordHash, UserEvent};
    use bosun_eventstore::{Filter, InMemoryEventStore};
    use bosun_projections::Freshness;

    /// Commands over an in-memory log holding user `ann` (with an email if `email`).
    async fn with_ann(email: bool) -> Commands<InMemoryEventStore> {
        let commands = Commands::over(InMemoryEventStore::default(), Freshness::none(), None);
        let registered = UserEvent::UserRegistered {
            username: Username::parse("ann").unwrap(),
            email: email.then(|| Email::parse("ann@example.org").unwrap()),
            admin: false,
            password_hash: PasswordHash("$argon2id$old".into()),
        };
        commands
            .execute::<User>("ann", &Actor::System("test"), &Origin::default(), |_| {
                Ok(vec![registered.clone()])
            })
            .await
            .unwrap();
        commands
    }

    async fn stored(commands: &Commands<InMemoryEventStore>) -> String {
        let events = commands
            .store
            .read_all(1, 1000, &Filter::all())
            .await
            .unwrap();
        serde_json::to_string(&events).unwrap()
    }

    /// The value of the line `<label>: <value>` of `body`.
    fn line(body: &str, label: &str) -> String {
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("{label}: ")).map(str::to_string))
            .unwrap_or_else(|| panic!("no {label} in {body}"))
    }

    #[tokio::test]
    async fn the_token_and_the_new_password_go_only_into_the_mails() {
        let commands = with_ann(true).await;
        let (requested, _) = commands
            .request_password_reset(&Origin::default(), "ann", 60)
            .await
            .unwrap();
        assert_eq!(requested.mail.to, "ann@example.org");
        let token = line(requested.mail.body(), "token");
        assert!(!format!("{requested:?}").contains(&token));
        assert!(!stored(&commands).await.contains(&token));

        let (mail, _) = commands
            .reset_password(&Origin::default(), "ann", &token)
            .await
            .unwrap();
        let password = line(mail.body(), "password");
        assert_eq!(password.len(), 24);
        assert!(!format!("{mail:?}").contains(&password));
        let log = stored(&commands).await;
        assert!(!log.contains(&password) && !log.contains(&token));
        let (ann, _) = commands.load::<User>("ann").await.unwrap();
        assert!(verify_password(&password, ann.password_hash.map(|h| h.0)).await);

        // Once only.
        let again = commands
            .reset_password(&Origin::default(), "ann", &token)
            .await
            .unwrap_err();
        assert!(
            matches!(again, CommandError::Domain(DomainError::Conflict { code, .. }) if code == bosun_domain::identity::RESET_TOKEN_USED),
            "{again:?}"
        );
    }

    #[tokio::test]
    async fn refusals_write_nothing() {
        let commands = with_ann(false).await;
        let before = stored(&commands).await;
        for result in [
            commands
                .request_password_reset(&Origin::default(), "ann", 60)
                .await
                .map(|_| ()),
            commands
                .request_password_reset(&Origin::default(), "nobody", 60)
                .await
                .map(|_| ()),
            commands
                .request_password_reset(&Origin::default(), "no such", 60)
                .await
                .map(|_| ()),
            commands
                .reset_password(&Origin::default(), "ann", "bosun_never-issued")
                .await
                .map(|_| ()),
        ] {
            assert!(result.is_err());
        }
        assert_eq!(stored(&commands).await, before);
    }
}
