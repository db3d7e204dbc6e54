//! Signing up in one call: an anonymous user made and registered at once, by a caller with no
//! credentials. What Runnable's `POST /users` with an email asks for (`/compat/runnable`):
//! [`Commands::create_anonymous_user`] then [`Commands::register_anonymous`], as one decision
//! and one atomic append (`batch.rs`), so a refusal or a failure leaves nothing behind (no
//! anonymous user, no token).
//!
//! The append holds what the two would leave:
//! - `user-<anon-…>`: `AnonymousUserCreated`, `AnonymousUserRegistering` and
//!   `AnonymousUserRegistered` (a fresh random name, as the anonymous user's);
//! - the reservations of the name (without regard to case) and of the email, claimed for the
//!   user's registration at the exact version of its stream it gets in the same append;
//! - `runnable_owner-<name>`: `RunnableOwnerReopened` if a removed user of the name closed it;
//! - `user-<name>`: `UserRegistered`, `registered_from` the anonymous user;
//! - `token-<id>`: `TokenIssued`, a session token of the new user (as a registration's).
//!
//! Not in it, as nothing needs them: the anonymous user's own token (no one ever holds one, so
//! no one acts as that user) and the hand-over of its runnables (it owns none). Every event
//! records the actor `anonymous` (the caller has no credentials) and the request's origin.
//!
//! Refused before anything is written, as registering refuses: 400 for a name that may not be
//! a new user's, 409 `user_exists` for an active user of the name or one another user holds or
//! is being given without regard to case, 409 `email_taken` for an email so held. A stream that
//! moved meanwhile is decided again. Whoever may sign up (anonymous users turned on, the rate
//! per address) is the API's to decide first, as for anonymous users.
//!
//! One step is not in the append: when the name was a removed user's whose runnables' cleanup
//! is left (it failed, or is still under way), that cleanup (owed by the removal) runs first,
//! once the sign-up is known to go through, as any registration of the name runs it.
//!
//! Does not own: the two steps apart (`anonymous.rs`), the claims' rules (`reservations.rs`,
//! domain), issuing tokens otherwise (`tokens.rs`).

use super::reservations::{name_key, reservation_id};
use super::secrets::{hash_password, new_token};
use super::tokens::DEFAULT_SESSION_SECONDS;
use super::{IssuedToken, Registration};
use crate::actor::{Actor, Origin};
use crate::batch::{Batch, BatchAppended};
use crate::error::CommandError;
use crate::execute::{Commands, Held, Written, ATTEMPTS};
use bosun_domain::identity::{
    PasswordHash, Reservation, ReservationCommand, ReservationKind, Scopes, Token, TokenCommand,
    TokenDigest, TokenKind, User, UserCommand, UserStream, Username,
};
use bosun_domain::runnables::{RunnableOwner, RunnableOwnerCommand};
use bosun_domain::Aggregate;
use bosun_eventstore::EventStore;
use bosun_projections::read_models::identity::UserView;
use chrono::{DateTime, Utc};
use rand_core::{OsRng, RngCore};
use uuid::Uuid;

/// Who cleans up after a removed user of the name, as registering does.
const IDENTITY: Actor = Actor::System("identity");

/// The streams one attempt decides on, as loaded for it.
struct Loaded {
    anonymous: Held<User>,
    named: Held<User>,
    name_claim: (Held<Reservation>, UserStream),
    email_claim: (Held<Reservation>, UserStream),
    registry: Held<RunnableOwner>,
    token: Held<Token>,
}

/// What a sign-up asks for, as checked and hashed.
struct Wanted<'a> {
    anonymous: &'a Username,
    username: &'a Username,
    registration: &'a Registration,
    password_hash: &'a PasswordHash,
    token_id: Uuid,
    token_digest: &'a TokenDigest,
    now: DateTime<Utc>,
}

/// The events of a claim of `value` by `holder` for its event at version `slot`, decided on
/// `held` (whose current holder's stream is `current`): 409 if another user holds it.
fn claim(
    (held, current): &(Held<Reservation>, UserStream),
    kind: ReservationKind,
    value: &str,
    holder: &Username,
    slot: u64,
    batch: &mut Batch,
) -> Result<(), CommandError> {
    let events = held.state.handle(ReservationCommand::Claim {
        kind,
        value: value.to_string(),
        holder: holder.clone(),
        claim: Uuid::new_v4(),
        slot,
        current: current.clone(),
    })?;
    batch.add(held, events)
}

/// Every event of the sign-up `wanted`, decided on `loaded`: see the [module](self).
fn decide(loaded: &Loaded, wanted: &Wanted<'_>) -> Result<Batch, CommandError> {
    let username = wanted.username;
    let email = &wanted.registration.email;
    let mut batch = Batch::new();
    let slot = loaded.named.next_version();
    claim(
        &loaded.name_claim,
        ReservationKind::Username,
        &name_key(username),
        username,
        slot,
        &mut batch,
    )?;
    claim(
        &loaded.email_claim,
        ReservationKind::Email,
        email.as_str(),
        username,
        slot,
        &mut batch,
    )?;
    let reopened = loaded.registry.state.handle(RunnableOwnerCommand::Reopen {
        registered_at: slot,
    })?;
    batch.add(&loaded.registry, reopened)?;
    let mut anonymous = loaded.anonymous.state.clone();
    let mut made = Vec::new();
    for command in [
        UserCommand::CreateAnonymous {
            username: wanted.anonymous.clone(),
        },
        UserCommand::BeginRegistration {
            registering_as: username.clone(),
        },
        UserCommand::CompleteRegistration {
            registered_as: username.clone(),
        },
    ] {
        let events = anonymous.handle(command)?;
        events.iter().for_each(|e| anonymous.apply(e));
        made.extend(events);
    }
    batch.add(&loaded.anonymous, made)?;
    let registered = loaded.named.state.handle(UserCommand::Register {
        username: username.clone(),
        email: Some(email.clone()),
        admin: false,
        password_hash: wanted.password_hash.clone(),
        registered_from: Some(wanted.anonymous.clone()),
    })?;
    batch.add(&loaded.named, registered)?;
    let issued = loaded.token.state.handle(TokenCommand::Issue {
        token_id: wanted.token_id,
        username: username.clone(),
        kind: TokenKind::Session,
        digest: wanted.token_digest.clone(),
        description: "registration".into(),
        scopes: Scopes::all(),
        expires_in: Some(DEFAULT_SESSION_SECONDS),
        now: wanted.now,
        app: None,
    })?;
    batch.add(&loaded.token, issued)?;
    Ok(batch)
}

impl<S: EventStore> Commands<S> {
    /// A reservation of `value` as it is now, with the stream of the user holding it (none if
    /// no one does).
    async fn reservation_with_holder(
        &self,
        kind: ReservationKind,
        value: &str,
    ) -> Result<(Held<Reservation>, UserStream), CommandError> {
        let held = self
            .hold::<Reservation>(&reservation_id(kind, value))
            .await?;
        let current = match &held.state.claim {
            Some(claim) => self.user_stream(claim.holder.as_str()).await?,
            None => UserStream::default(),
        };
        Ok((held, current))
    }

    /// Every stream a sign-up as `username` (`email`) by the anonymous user `anonymous` decides
    /// on, with token `token_id`.
    async fn load_sign_up(
        &self,
        anonymous: &Username,
        username: &Username,
        email: &str,
        token_id: Uuid,
    ) -> Result<Loaded, CommandError> {
        Ok(Loaded {
            anonymous: self.hold::<User>(anonymous.as_str()).await?,
            named: self.hold::<User>(username.as_str()).await?,
            name_claim: self
                .reservation_with_holder(ReservationKind::Username, &name_key(username))
                .await?,
            email_claim: self
                .reservation_with_holder(ReservationKind::Email, email)
                .await?,
            registry: self.hold::<RunnableOwner>(username.as_str()).await?,
            token: self.hold::<Token>(&token_id.to_string()).await?,
        })
    }

    /// A caller with no credentials signs up as `registration.username`: an anonymous user
    /// made and registered, and a session token of the new user, in one append; see the
    /// [module](self). Answers the new user and its token.
    #[tracing::instrument(skip_all, fields(username = registration.username.as_str()))]
    pub async fn sign_up(
        &self,
        origin: &Origin,
        registration: Registration,
    ) -> Result<(UserView, IssuedToken, Written), CommandError> {
        let username = registration.username.clone();
        // Refused before the password is hashed; the user's stream refuses it too.
        Username::parse_new(username.as_str())?;
        let password_hash = hash_password(&registration.password).await?;
        self.identity_backfill(origin).await?;
        let secret = new_token();
        let token_id = Uuid::new_v4();
        let attempt = Uuid::new_v4();
        let now = Utc::now();
        let mut cleaned = false;
        for _ in 0..ATTEMPTS {
            let mut random = [0u8; 8];
            OsRng.fill_bytes(&mut random);
            let anonymous = Username::anonymous(random);
            let loaded = self
                .load_sign_up(&anonymous, &username, registration.email.as_str(), token_id)
                .await?;
            if loaded.anonymous.version().is_some() {
                // A name drawn before (2^-64): draw again.
                continue;
            }
            let wanted = Wanted {
                anonymous: &anonymous,
                username: &username,
                registration: &registration,
                password_hash: &password_hash,
                token_id,
                token_digest: &secret.digest,
                now,
            };
            let batch = decide(&loaded, &wanted)?;
            // A removed user of the name: what its removal's cleanup left goes first (as the
            // system), then all is decided again on the streams as that leaves them.
            let removed_at = match (&loaded.named.state.username, loaded.named.state.active) {
                (Some(_), false) => loaded.named.version(),
                _ => None,
            };
            if let (Some(removed_at), false) = (removed_at, cleaned) {
                self.remove_runnables_of(&IDENTITY, origin, &username, removed_at)
                    .await?;
                cleaned = true;
                continue;
            }
            match self
                .append_batch(batch, &Actor::Anonymous, origin, attempt)
                .await?
            {
                BatchAppended::Written(written) => {
                    self.settle(written).await;
                    let token = IssuedToken {
                        token: secret.secret,
                        token_id,
                        user: username.as_str().to_string(),
                        kind: TokenKind::Session,
                        description: "registration".into(),
                        scopes: Scopes::all(),
                        expires_at: Some(now + chrono::Duration::seconds(DEFAULT_SESSION_SECONDS)),
                        app: None,
                        created_at: now,
                        holder_admin: Some(false),
                    };
                    return Ok((self.user_view(username.as_str()).await?, token, written));
                }
                // A stream moved meanwhile: nothing was written; decided again.
                BatchAppended::Conflict { .. } => continue,
            }
        }
        Err(CommandError::Contended(format!("user-{username}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{commands, head, new_event, origin};
    use bosun_domain::identity::{Email, Password, UserEvent};
    use bosun_domain::DomainError;

    fn name(n: &str) -> Username {
        Username::parse(n).unwrap()
    }

    fn registration(username: &str, email: &str) -> Registration {
        Registration {
            username: name(username),
            password: Password::parse("password", "a-password").unwrap(),
            email: Email::parse(email).unwrap(),
        }
    }

    fn registered(username: &str, email: &str) -> UserEvent {
        UserEvent::UserRegistered {
            username: name(username),
            email: Some(Email::parse(email).unwrap()),
            admin: false,
            password_hash: PasswordHash("$argon2id$…".into()),
            registered_from: None,
        }
    }

    fn conflict(e: CommandError) -> &'static str {
        match e {
            CommandError::Domain(DomainError::Conflict { code, .. }) => code,
            e => panic!("{e:?}"),
        }
    }

    #[tokio::test]
    async fn a_sign_up_is_decided_on_every_stream_for_one_append() {
        let (commands, _) = commands();
        let anonymous = name("anon-00112233445566ff");
        let registration = registration("ann", "ann@example.org");
        let token_id = Uuid::nil();
        let loaded = commands
            .load_sign_up(
                &anonymous,
                &registration.username,
                "ann@example.org",
                token_id,
            )
            .await
            .unwrap();
        let digest = new_token().digest;
        let wanted = Wanted {
            anonymous: &anonymous,
            username: &registration.username,
            registration: &registration,
            password_hash: &PasswordHash("$argon2id$…".into()),
            token_id,
            token_digest: &digest,
            now: Utc::now(),
        };
        let batch = decide(&loaded, &wanted).unwrap();
        let streams: Vec<String> = batch.streams().map(|s| s.to_string()).collect();
        let email = format!(
            "reservation-{}",
            reservation_id(ReservationKind::Email, "ann@example.org")
        );
        assert_eq!(
            streams,
            [
                "reservation-username-ann".to_string(),
                email,
                format!("user-{anonymous}"),
                "user-ann".to_string(),
                format!("token-{token_id}"),
            ]
        );
    }

    #[tokio::test]
    async fn a_taken_name_or_email_is_refused_writing_nothing() {
        let (commands, log) = commands();
        commands.identity_backfill(&origin()).await.unwrap();
        let anonymous = name("anon-00112233445566ff");
        let token_id = Uuid::new_v4();
        // Held by bob (their claims, their user).
        let bob = registration("bob", "bob@example.org");
        let loaded = commands
            .load_sign_up(&anonymous, &bob.username, "bob@example.org", token_id)
            .await
            .unwrap();
        let digest = new_token().digest;
        let hash = PasswordHash("$argon2id$…".into());
        let wanted = Wanted {
            anonymous: &anonymous,
            username: &bob.username,
            registration: &bob,
            password_hash: &hash,
            token_id,
            token_digest: &digest,
            now: Utc::now(),
        };
        let batch = decide(&loaded, &wanted).unwrap();
        commands
            .append_batch(batch, &Actor::Anonymous, &origin(), Uuid::new_v4())
            .await
            .unwrap();
        let before = head(&log).await;
        for (username, email, code) in [
            ("bob", "other@example.org", "user_exists"),
            ("BOB", "other@example.org", "user_exists"),
            ("carol", "bob@example.org", "email_taken"),
        ] {
            let refused = commands
                .sign_up(&origin(), registration(username, email))
                .await
                .err()
                .unwrap();
            assert_eq!(conflict(refused), code, "{username} {email}");
            assert_eq!(head(&log).await, before, "{username} {email}");
        }
    }

    #[tokio::test]
    async fn a_name_taken_just_before_the_append_leaves_nothing_of_the_sign_up() {
        let (commands, log) = commands();
        commands.identity_backfill(&origin()).await.unwrap();
        // Another node registers ann (an older version: no claim) just before the append.
        log.before_append_to(
            "user-ann",
            "user-ann",
            vec![new_event(&registered("ann", "ann@example.org"))],
        );
        let before = head(&log).await;
        let refused = commands
            .sign_up(&origin(), registration("ann", "ann@example.org"))
            .await
            .err()
            .unwrap();
        assert_eq!(conflict(refused), "user_exists");
        assert_eq!(log.pending(), 0);
        // The other node's registration alone: no anonymous user, claim or token of ours.
        assert_eq!(head(&log).await, before + 1);
    }
}
