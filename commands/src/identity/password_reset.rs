//! Password reset by email, as tsuru did it: anyone may ask for a reset of a user's password;
//! a one-time token goes to the user's email; whoever holds it gets a new random password,
//! which goes to the same email. Neither the token nor the new password is ever in an event,
//! an answer or a log line: the log keeps the token's SHA-256 digest (as for API tokens: the
//! token is 32 random bytes, so its digest cannot be turned back) and the new password's argon2
//! hash. The user's tokens keep working (tsuru's behaviour: a reset is for a forgotten
//! password, not a stolen one; revoke tokens with `DELETE /v1/tokens/{id}`); a password change
//! of any kind voids the reset tokens issued before it. A user is sent a token at most once a
//! minute, and a new token supersedes the earlier ones (the user aggregate's rules).
//!
//! These commands decide, hand the mail to the caller's `send` (the API's SMTP mailer), and
//! record only once the mail server took it: a mail that cannot be sent changes nothing (the
//! password, the token in hand, the time of the last request all stay as they were), so asking
//! again is safe. The other way round, a mail sent whose events could not then be appended
//! holds a token or a password that does not work, and the caller is told so
//! ([`ResetFailure::NotRecorded`]); the state is as before that call, so again a retry is safe.
//!
//! Each call is serialised with the other reset calls of the same user, on every node, from its
//! check to its append (a PostgreSQL advisory lock, [`Commands::lock_resets_of`]): without it,
//! concurrent requests would all pass the once-a-minute check and all send a token, and two
//! concurrent uses of one token would both mail a password, only one of which works. Should
//! the final append refuse all the same (over a log with no read models, which runs unlocked),
//! the refusal is answered as such (too soon, a token used or gone), not as a failure to record.

use super::secrets::{digest, hash_password, new_token, random_password};
use crate::actor::{Actor, Origin};
use crate::error::CommandError;
use crate::execute::{Commands, Written};
use bosun_domain::identity::{PasswordHash, User, UserCommand, Username, RESET_TOO_SOON};
use bosun_domain::{Aggregate, DomainError};
use bosun_eventstore::EventStore;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use std::future::Future;

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

/// A reset just requested, mailed and recorded: when its token expires.
#[derive(Debug)]
pub struct ResetRequested {
    pub expires_at: DateTime<Utc>,
}

/// Why a password reset (its request or its use) did not happen; `E` is the mailer's error.
#[derive(Debug)]
pub enum ResetFailure<E> {
    /// Refused before anything was sent or written (unknown user, no email, a token used,
    /// expired or never issued), or the log could not be read. Also a refusal of the final
    /// append (another call of the same user got there first): the mail sent holds a password
    /// that does not work, and nothing was written.
    Refused(CommandError),
    /// Asked for within a minute of the previous request: nothing written (and nothing sent,
    /// unless the final append was the one to refuse); ask again in `retry_after_seconds`.
    TooSoon {
        retry_after_seconds: i64,
        message: String,
    },
    /// The mail could not be sent: nothing written.
    Mail(E),
    /// The mail went out but its events could not be appended: the token or the password it
    /// holds does not work, and everything is as before the call (try again).
    NotRecorded(CommandError),
}

impl<E> From<CommandError> for ResetFailure<E> {
    fn from(e: CommandError) -> Self {
        ResetFailure::Refused(e)
    }
}

impl<E> From<DomainError> for ResetFailure<E> {
    fn from(e: DomainError) -> Self {
        ResetFailure::Refused(e.into())
    }
}

impl<S: EventStore> Commands<S> {
    /// Anyone asks for a reset of `username`'s password: a token good for `ttl_seconds` goes to
    /// the user's email by `send`, then its digest is recorded. 404 for an unknown user, 409
    /// `no_email` for one without an email, [`ResetFailure::TooSoon`] within a minute of the
    /// previous request.
    #[tracing::instrument(skip_all, fields(username = username))]
    pub async fn request_password_reset<E, F, Fut>(
        &self,
        origin: &Origin,
        username: &str,
        ttl_seconds: i64,
        send: F,
    ) -> Result<(ResetRequested, Written), ResetFailure<E>>
    where
        F: FnOnce(OutgoingMail) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        let username = known_name(username)?;
        let lock = self.lock_resets_of(&username).await?;
        let result = self
            .request_password_reset_locked(origin, &username, ttl_seconds, send)
            .await;
        lock.release().await;
        result
    }

    /// [`Commands::request_password_reset`], with the user's reset lock held.
    async fn request_password_reset_locked<E, F, Fut>(
        &self,
        origin: &Origin,
        username: &Username,
        ttl_seconds: i64,
        send: F,
    ) -> Result<(ResetRequested, Written), ResetFailure<E>>
    where
        F: FnOnce(OutgoingMail) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        let token = new_token();
        let now = Utc::now();
        let expires_at = now + chrono::Duration::seconds(ttl_seconds);
        let command = || UserCommand::RequestPasswordReset {
            digest: token.digest.clone(),
            expires_at,
            now,
        };
        // Decided first (a dry run), so a refusal sends nothing.
        let (current, _) = self.load::<User>(username.as_str()).await?;
        current
            .handle(command())
            .map_err(|e| too_soon(e, current.reset_request_retry_after(now)))?;
        let to = recipient(&current)?;
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
             the new password comes to this address. It replaces any\n\
             token sent before.\n\
             \n\
             If you did not ask for this, ignore this mail: your password\n\
             stays as it is.\n",
            expires = expires_at.format("%Y-%m-%d %H:%M:%S UTC"),
            token = token.secret,
        );
        send(OutgoingMail {
            to,
            subject: format!("[bosun] password reset for {username}"),
            body: SecretString::from(body),
        })
        .await
        .map_err(ResetFailure::Mail)?;
        // How long the state the append refused on says to wait, should it refuse.
        let retry_after = std::sync::Mutex::new(None);
        let (_, written) = self
            .execute::<User>(username.as_str(), &Actor::Anonymous, origin, |user| {
                user.handle(command()).inspect_err(|_| {
                    *retry_after.lock().unwrap_or_else(|p| p.into_inner()) =
                        user.reset_request_retry_after(now);
                })
            })
            .await
            .map_err(|e| match e {
                CommandError::Domain(e) => {
                    tracing::warn!(error = %e, "a reset token was mailed, then refused");
                    let wait = *retry_after.lock().unwrap_or_else(|p| p.into_inner());
                    too_soon(e, wait)
                }
                other => ResetFailure::NotRecorded(other),
            })?;
        Ok((ResetRequested { expires_at }, written))
    }

    /// Anyone holding a reset token of `username` uses it: a new random password goes to the
    /// user's email by `send`, then it is set (with the token marked used). 404 for an unknown
    /// user or a token never issued (or superseded); 409 `reset_token_used` or
    /// `reset_token_expired` (410 at the API).
    #[tracing::instrument(skip_all, fields(username = username))]
    pub async fn reset_password<E, F, Fut>(
        &self,
        origin: &Origin,
        username: &str,
        token: &str,
        send: F,
    ) -> Result<Written, ResetFailure<E>>
    where
        F: FnOnce(OutgoingMail) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        let username = known_name(username)?;
        let lock = self.lock_resets_of(&username).await?;
        let result = self
            .reset_password_locked(origin, &username, token, send)
            .await;
        lock.release().await;
        result
    }

    /// [`Commands::reset_password`], with the user's reset lock held.
    async fn reset_password_locked<E, F, Fut>(
        &self,
        origin: &Origin,
        username: &Username,
        token: &str,
        send: F,
    ) -> Result<Written, ResetFailure<E>>
    where
        F: FnOnce(OutgoingMail) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        let digest = digest(token);
        // The token as it is when it is used: the time to hash and to mail does not expire it.
        let now = Utc::now();
        // Checked before the (slow) hashing: an unknown token costs no argon2 work.
        let (current, _) = self.load::<User>(username.as_str()).await?;
        current.handle(UserCommand::ResetPassword {
            digest: digest.clone(),
            password_hash: PasswordHash(String::new()),
            now,
        })?;
        let to = recipient(&current)?;
        let password = random_password();
        let password_hash = hash_password(&password).await?;
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
        send(OutgoingMail {
            to,
            subject: format!("[bosun] new password for {username}"),
            body: SecretString::from(body),
        })
        .await
        .map_err(ResetFailure::Mail)?;
        let (_, written) = self
            .execute::<User>(username.as_str(), &Actor::Anonymous, origin, |user| {
                user.handle(UserCommand::ResetPassword {
                    digest: digest.clone(),
                    password_hash: password_hash.clone(),
                    now,
                })
            })
            .await
            .map_err(|e| match e {
                // The token went since the check (used, superseded): 410 or 404, as it is.
                CommandError::Domain(e) => {
                    tracing::warn!(error = %e, "a new password was mailed, then refused");
                    ResetFailure::Refused(e.into())
                }
                other => ResetFailure::NotRecorded(other),
            })?;
        Ok(written)
    }

    /// Takes the reset lock of `username`, waiting for the reset call of that user running on
    /// any node: a session-level advisory lock on a connection of the read models' pool, kept
    /// out of the pool until [`ResetLock::release`] unlocks it. With no read models (a log
    /// nothing projects, as in unit tests: one process, no database) the call runs unlocked.
    async fn lock_resets_of(&self, username: &Username) -> Result<ResetLock, CommandError> {
        let client = match self.read_models().await {
            Ok(client) => client,
            // `read_models` is `Internal` only when there are none; a pool that fails is a
            // `Store` error, which fails the call rather than run it unlocked.
            Err(CommandError::Internal(_)) => return Ok(ResetLock::none()),
            Err(e) => return Err(e),
        };
        // Held by the guard before the lock is asked for: if this call is dropped while it
        // waits, or the statement fails, the connection is closed, not pooled with the lock
        // (perhaps granted later) on it.
        let mut lock = ResetLock {
            client: Some(client),
            username: username.as_str().to_string(),
        };
        if let Some(client) = &lock.client {
            client
                .execute(
                    "SELECT pg_advisory_lock(hashtext('bosun password reset ' || $1))",
                    &[&lock.username],
                )
                .await?;
        }
        Ok(std::mem::replace(&mut lock, ResetLock::none()))
    }
}

/// A user's reset lock, held (or none, over a log with no read models). Released by
/// [`ResetLock::release`]; dropped without it (a panic, a call dropped midway), its connection
/// is taken out of the pool and closed, which ends the session and so the lock.
struct ResetLock {
    client: Option<deadpool_postgres::Object>,
    username: String,
}

impl ResetLock {
    fn none() -> Self {
        ResetLock {
            client: None,
            username: String::new(),
        }
    }

    /// Unlocks; a connection that cannot say it unlocked is closed rather than pooled.
    async fn release(mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let unlocked = client
            .query_one(
                "SELECT pg_advisory_unlock(hashtext('bosun password reset ' || $1))",
                &[&self.username],
            )
            .await
            .map(|row| row.get::<_, bool>(0));
        match unlocked {
            Ok(true) => {}
            other => {
                tracing::warn!(
                    outcome = ?other.map_err(|e| e.to_string()),
                    username = %self.username,
                    "a password reset lock could not be released: its connection is closed"
                );
                drop(deadpool_postgres::Object::take(client));
            }
        }
    }
}

impl Drop for ResetLock {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

/// A request refused for coming too soon, with how long to wait (`retry_after`, as the state
/// refused on says); any other refusal as it is.
fn too_soon<E>(e: DomainError, retry_after: Option<i64>) -> ResetFailure<E> {
    match e {
        DomainError::Conflict { code, message } if code == RESET_TOO_SOON => {
            ResetFailure::TooSoon {
                retry_after_seconds: retry_after.unwrap_or(1),
                message,
            }
        }
        other => ResetFailure::Refused(other.into()),
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
            CommandError::Internal("a reset was decided for a user without an email".into())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::secrets::verify_password;
    use async_trait::async_trait;
    use bosun_domain::identity::{Email, PasswordHash, UserEvent};
    use bosun_eventstore::{
        AppendError, AppendResult, Filter, InMemoryEventStore, Page, RecordedEvent, StoreError,
        StreamAppend, StreamId, Subscription,
    };
    use bosun_projections::Freshness;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    /// An in-memory log whose appends fail while `failing` is set.
    #[derive(Clone, Default)]
    struct Flaky {
        inner: InMemoryEventStore,
        failing: Arc<AtomicBool>,
    }

    #[async_trait]
    impl EventStore for Flaky {
        async fn append_many(
            &self,
            appends: Vec<StreamAppend>,
        ) -> Result<Vec<AppendResult>, AppendError> {
            if self.failing.load(Ordering::SeqCst) {
                return Err(StoreError::Failed("the test's log is down".into()).into());
            }
            self.inner.append_many(appends).await
        }
        async fn read_stream(
            &self,
            stream: &StreamId,
            from_version: u64,
            max: usize,
        ) -> Result<Vec<RecordedEvent>, StoreError> {
            self.inner.read_stream(stream, from_version, max).await
        }
        async fn read_page(
            &self,
            from_position: u64,
            max: usize,
            filter: &Filter,
        ) -> Result<Page, StoreError> {
            self.inner.read_page(from_position, max, filter).await
        }
        async fn head(&self) -> Result<u64, StoreError> {
            self.inner.head().await
        }
        fn head_changes(&self) -> tokio::sync::watch::Receiver<u64> {
            self.inner.head_changes()
        }
        fn subscribe(&self, from_position: u64, filter: Filter) -> Subscription {
            self.inner.subscribe(from_position, filter)
        }
    }

    const OLD_HASH: &str = "$argon2id$old";

    /// Commands over an in-memory log holding user `ann` (with an email if `email`).
    async fn with_ann(email: bool) -> Commands<Flaky> {
        let commands = Commands::over(Flaky::default(), Freshness::none(), None);
        let registered = UserEvent::UserRegistered {
            username: Username::parse("ann").unwrap(),
            email: email.then(|| Email::parse("ann@example.org").unwrap()),
            admin: false,
            password_hash: PasswordHash(OLD_HASH.into()),
            registered_from: None,
        };
        commands
            .execute::<User>("ann", &Actor::System("test"), &Origin::default(), |_| {
                Ok(vec![registered.clone()])
            })
            .await
            .unwrap();
        commands
    }

    async fn stored(commands: &Commands<Flaky>) -> String {
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

    /// A mailer that keeps what it sends.
    #[derive(Clone, Default)]
    struct Outbox(Arc<Mutex<Vec<OutgoingMail>>>);

    impl Outbox {
        fn send(&self) -> impl FnOnce(OutgoingMail) -> std::future::Ready<Result<(), String>> {
            let outbox = self.clone();
            move |mail| {
                outbox.0.lock().unwrap().push(mail);
                std::future::ready(Ok(()))
            }
        }
        fn last(&self, label: &str) -> String {
            line(self.0.lock().unwrap().last().unwrap().body(), label)
        }
        fn len(&self) -> usize {
            self.0.lock().unwrap().len()
        }
    }

    /// A mail server that refuses everything.
    fn refused(_: OutgoingMail) -> std::future::Ready<Result<(), String>> {
        std::future::ready(Err("550 refused".into()))
    }

    async fn request(commands: &Commands<Flaky>, outbox: &Outbox) -> String {
        commands
            .request_password_reset(&Origin::default(), "ann", 60, outbox.send())
            .await
            .unwrap();
        outbox.last("token")
    }

    async fn password_of_ann(commands: &Commands<Flaky>) -> String {
        let (ann, _) = commands.load::<User>("ann").await.unwrap();
        ann.password_hash.unwrap().0
    }

    #[tokio::test]
    async fn the_token_and_the_new_password_go_only_into_the_mails() {
        let commands = with_ann(true).await;
        let outbox = Outbox::default();
        commands
            .request_password_reset(&Origin::default(), "ann", 60, outbox.send())
            .await
            .unwrap();
        let sent = outbox.0.lock().unwrap().pop().unwrap();
        assert_eq!(sent.to, "ann@example.org");
        let token = line(sent.body(), "token");
        assert!(!format!("{sent:?}").contains(&token));
        assert!(!stored(&commands).await.contains(&token));

        commands
            .reset_password(&Origin::default(), "ann", &token, outbox.send())
            .await
            .unwrap();
        let mail = outbox.0.lock().unwrap().pop().unwrap();
        let password = line(mail.body(), "password");
        assert_eq!(password.len(), 24);
        assert!(!format!("{mail:?}").contains(&password));
        let log = stored(&commands).await;
        assert!(!log.contains(&password) && !log.contains(&token));
        assert!(verify_password(&password, Some(password_of_ann(&commands).await)).await);

        // Once only.
        let again = commands
            .reset_password(&Origin::default(), "ann", &token, outbox.send())
            .await
            .unwrap_err();
        assert!(
            matches!(&again, ResetFailure::Refused(CommandError::Domain(DomainError::Conflict { code, .. })) if *code == bosun_domain::identity::RESET_TOKEN_USED),
            "{again:?}"
        );
        assert_eq!(outbox.len(), 0, "no mail for a refusal");
    }

    #[tokio::test]
    async fn a_mail_that_cannot_be_sent_changes_nothing() {
        let commands = with_ann(true).await;
        // A request whose mail is refused records no token, and does not count as a request.
        let before = stored(&commands).await;
        let failed = commands
            .request_password_reset(&Origin::default(), "ann", 60, refused)
            .await
            .unwrap_err();
        assert!(matches!(failed, ResetFailure::Mail(_)), "{failed:?}");
        assert_eq!(stored(&commands).await, before);
        let outbox = Outbox::default();
        let token = request(&commands, &outbox).await;
        // A reset whose mail is refused sets nothing: the old password and the token stay.
        let before = stored(&commands).await;
        let failed = commands
            .reset_password(&Origin::default(), "ann", &token, refused)
            .await
            .unwrap_err();
        assert!(matches!(failed, ResetFailure::Mail(_)), "{failed:?}");
        assert_eq!(stored(&commands).await, before);
        assert_eq!(password_of_ann(&commands).await, OLD_HASH);
        commands
            .reset_password(&Origin::default(), "ann", &token, outbox.send())
            .await
            .unwrap();
        assert_ne!(password_of_ann(&commands).await, OLD_HASH);
    }

    #[tokio::test]
    async fn a_mail_sent_whose_events_cannot_be_appended_leaves_the_old_password_and_the_token() {
        let commands = with_ann(true).await;
        let outbox = Outbox::default();
        let token = request(&commands, &outbox).await;
        let before = stored(&commands).await;
        commands.store.failing.store(true, Ordering::SeqCst);
        let failed = commands
            .reset_password(&Origin::default(), "ann", &token, outbox.send())
            .await
            .unwrap_err();
        assert!(
            matches!(failed, ResetFailure::NotRecorded(CommandError::Store(_))),
            "{failed:?}"
        );
        assert_eq!(outbox.len(), 2, "the mail went out");
        let unset = outbox.last("password");
        commands.store.failing.store(false, Ordering::SeqCst);
        assert_eq!(stored(&commands).await, before);
        assert_eq!(password_of_ann(&commands).await, OLD_HASH);
        // A retry with the same token works, and sets the password it mails, not the unset one.
        commands
            .reset_password(&Origin::default(), "ann", &token, outbox.send())
            .await
            .unwrap();
        let hash = password_of_ann(&commands).await;
        assert!(verify_password(&outbox.last("password"), Some(hash.clone())).await);
        assert!(!verify_password(&unset, Some(hash)).await);
    }

    #[tokio::test]
    async fn a_second_request_within_a_minute_is_too_soon_and_sends_nothing() {
        let commands = with_ann(true).await;
        let outbox = Outbox::default();
        let token = request(&commands, &outbox).await;
        let before = stored(&commands).await;
        let failed = commands
            .request_password_reset(&Origin::default(), "ann", 60, outbox.send())
            .await
            .unwrap_err();
        match failed {
            ResetFailure::TooSoon {
                retry_after_seconds,
                message,
            } => {
                assert!(
                    (1..=60).contains(&retry_after_seconds),
                    "{retry_after_seconds}"
                );
                assert!(message.contains("ann"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(outbox.len(), 1);
        assert_eq!(stored(&commands).await, before);
        // The token sent stays good.
        commands
            .reset_password(&Origin::default(), "ann", &token, outbox.send())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_refusal_of_the_final_append_is_answered_as_such_not_as_not_recorded() {
        // No read models: these calls run unlocked, so one can get in between another's check
        // and its append (here, from inside its mail).
        let commands = with_ann(true).await;
        let outbox = Outbox::default();
        let (inner, mails) = (commands.clone(), outbox.clone());
        let failed = commands
            .request_password_reset(&Origin::default(), "ann", 60, move |_mail| async move {
                inner
                    .request_password_reset(&Origin::default(), "ann", 60, mails.send())
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("{e:?}"))
            })
            .await
            .unwrap_err();
        assert!(
            matches!(failed, ResetFailure::TooSoon { retry_after_seconds, .. } if (1..=60).contains(&retry_after_seconds)),
            "{failed:?}"
        );
        let token = outbox.last("token");
        let (inner, mails) = (commands.clone(), outbox.clone());
        let used = token.clone();
        let failed = commands
            .reset_password(&Origin::default(), "ann", &token, move |_mail| async move {
                inner
                    .reset_password(&Origin::default(), "ann", &used, mails.send())
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("{e:?}"))
            })
            .await
            .unwrap_err();
        assert!(
            matches!(&failed, ResetFailure::Refused(CommandError::Domain(DomainError::Conflict { code, .. })) if *code == bosun_domain::identity::RESET_TOKEN_USED),
            "{failed:?}"
        );
        // The password set is the one the inner call mailed.
        assert!(
            verify_password(
                &outbox.last("password"),
                Some(password_of_ann(&commands).await)
            )
            .await
        );
    }

    #[tokio::test]
    async fn refusals_write_nothing() {
        let commands = with_ann(false).await;
        let before = stored(&commands).await;
        let outbox = Outbox::default();
        for result in [
            commands
                .request_password_reset(&Origin::default(), "ann", 60, outbox.send())
                .await
                .map(|_| ()),
            commands
                .request_password_reset(&Origin::default(), "nobody", 60, outbox.send())
                .await
                .map(|_| ()),
            commands
                .request_password_reset(&Origin::default(), "no such", 60, outbox.send())
                .await
                .map(|_| ()),
            commands
                .reset_password(
                    &Origin::default(),
                    "ann",
                    "bosun_never-issued",
                    outbox.send(),
                )
                .await
                .map(|_| ()),
        ] {
            assert!(matches!(result, Err(ResetFailure::Refused(_))));
        }
        assert_eq!(stored(&commands).await, before);
        assert_eq!(outbox.len(), 0);
    }

    #[tokio::test]
    async fn a_github_user_asks_for_no_reset_and_uses_none_even_with_an_email() {
        let commands = Commands::over(Flaky::default(), Freshness::none(), None);
        // An email (an admin set it) and a reset token from before: still no reset.
        let github_ann = Username::parse("github:ann").unwrap();
        let past = vec![
            UserEvent::UserRegistered {
                username: github_ann.clone(),
                email: Some(Email::parse("ann@example.org").unwrap()),
                admin: false,
                password_hash: PasswordHash(OLD_HASH.into()),
                registered_from: None,
            },
            UserEvent::PasswordResetRequested {
                username: github_ann.clone(),
                digest: digest("bosun_known-token"),
                expires_at: Utc::now() + chrono::Duration::hours(1),
                requested_at: Some(Utc::now() - chrono::Duration::hours(1)),
            },
        ];
        commands
            .execute::<User>(
                "github:ann",
                &Actor::System("test"),
                &Origin::default(),
                |_| Ok(past.clone()),
            )
            .await
            .unwrap();
        let before = stored(&commands).await;
        let outbox = Outbox::default();
        let requested = commands
            .request_password_reset(&Origin::default(), "github:ann", 60, outbox.send())
            .await
            .map(|_| ());
        let used = commands
            .reset_password(
                &Origin::default(),
                "github:ann",
                "bosun_known-token",
                outbox.send(),
            )
            .await
            .map(|_| ());
        for result in [requested, used] {
            match result {
                Err(ResetFailure::Refused(CommandError::Domain(DomainError::Forbidden {
                    code,
                    message,
                }))) => {
                    assert_eq!(code, Username::GITHUB_USER);
                    assert!(
                        message.contains("signs in through GitHub only"),
                        "{message}"
                    );
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(outbox.len(), 0, "no mail sent");
        assert_eq!(stored(&commands).await, before, "nothing written");
    }
}
