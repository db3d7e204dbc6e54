//! Anonymous users: made with no credentials (a random `anon-…` name and a token that expires),
//! and registered later as a named user who keeps their runnables.
//!
//! Registration is four steps, each its own append, in this order: the anonymous user's
//! `AnonymousUserRegistering` with the name, at its stream's version (from then on it may
//! register as that name only: another is 409 `registration_pending`, naming it); the named
//! user (through [`Commands::register_from`], with the name and email reservations of any
//! registration, and `registered_from` naming the anonymous user); the hand-over of the
//! anonymous user's runnables ([`Commands::hand_over_runnables`]); then the anonymous user's
//! `AnonymousUserRegistered`, after which its stream takes no command and its tokens no longer
//! work. So of two requests racing with one token and two names, one claims its name first and
//! the other is refused before it writes anything, and a crash between two steps leaves the
//! anonymous user with its token and its claim: registering again as that name continues from
//! the named user its first try made, rather than being refused the name, and no other name
//! can leave that user behind.
//!
//! A name or an email another user holds is refused before the claim, with nothing written. If
//! one is taken in the moment between, the claim stays for an email (the same name again, with
//! another email, goes on) and is abandoned for the name (`AnonymousUserRegistrationAbandoned`:
//! the caller may choose another): a refusal `user_exists` means no user of that name was
//! registered from this anonymous user, so nothing is left behind.
//!
//! Does not own: what an anonymous user may do (each command asks
//! [`Actor::require_registered`], each read [`Actor::require_reader`]), the rate of creation (the
//! API's), the runnables' hand-over (`runnables`).

use super::reservations::name_key;
use super::tokens::DEFAULT_SESSION_SECONDS;
use super::{IssuedToken, NewUser};
use crate::actor::{Actor, Origin};
use crate::error::CommandError;
use crate::execute::{Commands, Held, Written, ATTEMPTS};
use bosun_domain::identity::{
    Email, Password, ReservationKind, Scope, Scopes, TokenKind, User, UserCommand, Username,
    ALREADY_REGISTERED,
};
use bosun_domain::{Aggregate, DomainError};
use bosun_eventstore::EventStore;
use bosun_projections::read_models::identity::UserView;
use rand_core::{OsRng, RngCore};
use uuid::Uuid;

/// How long an anonymous user's token works unless configured (`runnables.anonymous_token_ttl_seconds`): 7 days.
pub const DEFAULT_ANONYMOUS_TOKEN_SECONDS: i64 = 7 * 24 * 3600;

/// What `POST /v1/users/me/register` asks for. Its `Debug` leaves the password out.
#[derive(Debug)]
pub struct Registration {
    pub username: Username,
    pub password: Password,
    pub email: Email,
}

/// The anonymous user acting: 403 `already_registered` for any other caller (a token of a
/// registered user; an app token or none is refused before, as any write is).
pub fn require_anonymous(actor: &Actor) -> Result<Username, CommandError> {
    actor.require(Scope::Write)?;
    if !actor.is_anonymous_user() {
        return Err(
            DomainError::forbidden(ALREADY_REGISTERED, "you are already registered").into(),
        );
    }
    Ok(Username::parse(actor.name())?)
}

/// The session actor of `username`, a user in no team and no admin, for the events of issuing
/// its token (as a login records them).
fn session_actor(username: &Username, token_id: Uuid) -> Actor {
    Actor::User {
        username: username.as_str().to_string(),
        admin: false,
        teams: vec![],
        token_id,
        scopes: Scopes::all(),
    }
}

impl<S: EventStore> Commands<S> {
    /// A new anonymous user and a session token of it that works for `token_seconds`. Anyone
    /// may (the API limits how often); the events record the actor `anonymous`.
    #[tracing::instrument(skip_all, fields(username = tracing::field::Empty))]
    pub async fn create_anonymous_user(
        &self,
        origin: &Origin,
        token_seconds: i64,
    ) -> Result<(UserView, IssuedToken, Written), CommandError> {
        let mut created = None;
        for _ in 0..ATTEMPTS {
            let mut random = [0u8; 8];
            OsRng.fill_bytes(&mut random);
            let username = Username::anonymous(random);
            let attempt = self
                .execute::<User>(username.as_str(), &Actor::Anonymous, origin, |user| {
                    user.handle(UserCommand::CreateAnonymous {
                        username: username.clone(),
                    })
                })
                .await;
            match attempt {
                Ok((_, written)) => {
                    created = Some((username, written));
                    break;
                }
                // A name drawn before (2^-64): draw again.
                Err(CommandError::Domain(DomainError::Conflict {
                    code: "user_exists",
                    ..
                })) => continue,
                Err(e) => return Err(e),
            }
        }
        let Some((username, written)) = created else {
            return Err(CommandError::Contended("anonymous user names".into()));
        };
        tracing::Span::current().record("username", username.as_str());
        // If issuing the token fails, the anonymous user stays, with no token: no one can act
        // as it, and it owns nothing. It is left so (the caller makes another); nothing reaps it.
        let token_id = Uuid::new_v4();
        let (token, issued) = self
            .issue(
                &session_actor(&username, token_id),
                origin,
                token_id,
                username.clone(),
                TokenKind::Session,
                "anonymous".into(),
                Scopes::all(),
                Some(token_seconds),
                None,
            )
            .await?;
        let written = written.and(issued);
        self.settle(written).await;
        Ok((self.user_view(username.as_str()).await?, token, written))
    }

    /// The anonymous caller registers as `registration.username`: see the [module](self). It
    /// answers the new user and a new session token of theirs; the caller's token no longer
    /// works. 403 `already_registered` for a caller who is not anonymous, 409
    /// `already_registered` naming the user for one who registered already (a retry whose
    /// answer was lost), 409 `user_exists` if the named user stops being the one it became.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), username = registration.username.as_str()))]
    pub async fn register_anonymous(
        &self,
        actor: &Actor,
        origin: &Origin,
        registration: Registration,
    ) -> Result<(UserView, IssuedToken, Written), CommandError> {
        let anonymous = require_anonymous(actor)?;
        let username = registration.username;
        // Refused before the password is hashed; the user's stream refuses it too.
        Username::parse_new(username.as_str())?;
        let (caller, _) = self.load::<User>(anonymous.as_str()).await?;
        if let Some(became) = caller.registered_as.as_ref().filter(|_| !caller.active) {
            // Registered already (its token still let through, the read models not yet caught
            // up): a retry whose first try's answer was lost learns whom to log in as.
            return Err(DomainError::conflict(
                ALREADY_REGISTERED,
                format!("user {anonymous} registered as {became} already: log in as {became}"),
            )
            .into());
        }
        if !caller.active {
            // Removed since its token was checked: as that token is now.
            return Err(CommandError::Unauthenticated);
        }
        // Another name pending is refused before anything is checked or written.
        caller.handle(UserCommand::BeginRegistration {
            registering_as: username.clone(),
        })?;
        // A try that got as far as the named user continues with that user's email, so it
        // claims no other address it would not keep.
        let named = self.hold::<User>(username.as_str()).await?;
        let continued =
            named.state.active && named.state.registered_from.as_ref() == Some(&anonymous);
        let email = match continued {
            true => named.state.email.clone(),
            false => Some(registration.email),
        };
        if caller.registering_as.is_none() {
            self.check_registrable(&named, &username, email.as_ref(), continued)
                .await?;
        }
        let (_, mut written) = self
            .execute::<User>(anonymous.as_str(), actor, origin, |user| {
                user.handle(UserCommand::BeginRegistration {
                    registering_as: username.clone(),
                })
            })
            .await
            .map_err(|e| match e {
                // Registered or removed meanwhile (by a request racing this one).
                CommandError::Domain(DomainError::NotFound(_)) => CommandError::Unauthenticated,
                e => e,
            })?;
        let user = NewUser {
            username: username.clone(),
            password: registration.password,
            email,
            admin: false,
        };
        let registered = self
            .register_from(actor, origin, &user, Some(&anonymous))
            .await;
        if let Err(CommandError::Domain(DomainError::Conflict {
            code: "user_exists",
            ..
        })) = &registered
        {
            // The name is someone else's: no user of it came from this anonymous user, which
            // may now choose another.
            self.abandon_registration(actor, origin, &anonymous, &username)
                .await;
        }
        written = written.and(registered?);
        // The steps below go by name: the named user is checked to be still the one this
        // caller became (not removed and registered again by someone else meanwhile), so
        // neither the runnables nor the token go to another account.
        self.require_became(actor, origin, &anonymous, &username)
            .await?;
        written = written.and(
            self.hand_over_runnables(origin, &anonymous, &username)
                .await?,
        );
        let (_, completed) = self
            .execute::<User>(anonymous.as_str(), actor, origin, |user| {
                user.handle(UserCommand::CompleteRegistration {
                    registered_as: username.clone(),
                })
            })
            .await?;
        written = written.and(completed);
        self.require_became(actor, origin, &anonymous, &username)
            .await?;
        let token_id = Uuid::new_v4();
        let (token, issued) = self
            .issue(
                &session_actor(&username, token_id),
                origin,
                token_id,
                username.clone(),
                TokenKind::Session,
                "registration".into(),
                Scopes::all(),
                Some(DEFAULT_SESSION_SECONDS),
                None,
            )
            .await?;
        let written = written.and(issued);
        self.settle(written).await;
        Ok((self.user_view(username.as_str()).await?, token, written))
    }

    /// Whether `username` (whose stream is `named`) with `email` could be registered now, as
    /// [`Commands::register_from`] would check it, writing nothing: 409 `user_exists` or
    /// `email_taken` for a name or an address another user holds or is being given.
    async fn check_registrable(
        &self,
        named: &Held<User>,
        username: &Username,
        email: Option<&Email>,
        continued: bool,
    ) -> Result<(), CommandError> {
        if named.state.active && !continued {
            return Err(DomainError::conflict(
                "user_exists",
                format!("user {username} already exists"),
            )
            .into());
        }
        let slot = named.next_version();
        self.check_claim(
            ReservationKind::Username,
            &name_key(username),
            username,
            slot,
        )
        .await?;
        if let Some(email) = email {
            self.check_claim(ReservationKind::Email, email.as_str(), username, slot)
                .await?;
        }
        Ok(())
    }

    /// Gives up `anonymous`'s registration as `username` (if it is the one pending). A failure
    /// is logged, not answered: the caller hears why its registration was refused, and may
    /// then only finish with that name.
    /// 409 `user_exists` unless `username` is an active user registered from `anonymous`,
    /// abandoning the caller's claim of it (as for a name taken meanwhile).
    async fn require_became(
        &self,
        actor: &Actor,
        origin: &Origin,
        anonymous: &Username,
        username: &Username,
    ) -> Result<(), CommandError> {
        let (named, _) = self.load::<User>(username.as_str()).await?;
        let became = became(&named, anonymous, username);
        if became.is_err() {
            self.abandon_registration(actor, origin, anonymous, username)
                .await;
        }
        became
    }

    async fn abandon_registration(
        &self,
        actor: &Actor,
        origin: &Origin,
        anonymous: &Username,
        username: &Username,
    ) {
        let abandoned = self
            .execute::<User>(anonymous.as_str(), actor, origin, |user| {
                user.handle(UserCommand::AbandonRegistration {
                    registering_as: username.clone(),
                })
            })
            .await;
        if let Err(e) = abandoned {
            tracing::warn!(error = %e, "a registration refused its name could not be abandoned");
        }
    }
}

/// 409 `user_exists` unless `named` (the stream of `username`) is an active user registered
/// from `anonymous`: the account a registration of `anonymous` as `username` made.
fn became(named: &User, anonymous: &Username, username: &Username) -> Result<(), CommandError> {
    if named.active && named.registered_from.as_ref() == Some(anonymous) {
        return Ok(());
    }
    Err(DomainError::conflict("user_exists", format!("user {username} already exists")).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Username {
        Username::parse(s).unwrap()
    }

    fn user(active: bool, registered_from: Option<&str>) -> User {
        User {
            username: Some(name("ann")),
            active,
            registered_from: registered_from.map(name),
            ..User::default()
        }
    }

    fn code(result: Result<(), CommandError>) -> Option<&'static str> {
        match result {
            Err(CommandError::Domain(DomainError::Conflict { code, .. })) => Some(code),
            _ => None,
        }
    }

    #[tokio::test]
    async fn a_retry_after_a_lost_answer_hears_whom_to_log_in_as() {
        use crate::tests::{append, commands, head, origin, user};
        use bosun_domain::identity::UserEvent;
        let (commands, log) = commands();
        let anon = name("anon-00112233445566ff");
        // Registered as ann; its token still lets it through (the read models lag).
        append(
            &log,
            &format!("user-{anon}"),
            &[
                UserEvent::AnonymousUserCreated {
                    username: anon.clone(),
                },
                UserEvent::AnonymousUserRegistering {
                    username: anon.clone(),
                    registering_as: name("ann"),
                },
                UserEvent::AnonymousUserRegistered {
                    username: anon.clone(),
                    registered_as: name("ann"),
                },
            ],
        )
        .await;
        let before = head(&log).await;
        let registration = Registration {
            username: name("ann"),
            password: Password::parse("password", "ann-password").unwrap(),
            email: Email::parse("ann@example.org").unwrap(),
        };
        let refused = commands
            .register_anonymous(&user(anon.as_str()), &origin(), registration)
            .await
            .err()
            .unwrap();
        match refused {
            CommandError::Domain(DomainError::Conflict { code, message }) => {
                assert_eq!(code, ALREADY_REGISTERED);
                assert!(message.contains("log in as ann"), "{message}");
            }
            e => panic!("{e:?}"),
        }
        assert_eq!(head(&log).await, before);
    }

    #[test]
    fn only_the_user_registered_from_the_caller_is_the_one_it_became() {
        let anon = name("anon-00112233445566ff");
        let other = "anon-ffeeddccbbaa9988";
        assert!(became(&user(true, Some(anon.as_str())), &anon, &name("ann")).is_ok());
        // Removed since, registered by another anonymous user, by no anonymous user, or none.
        for named in [
            user(false, Some(anon.as_str())),
            user(true, Some(other)),
            user(true, None),
            User::default(),
        ] {
            assert_eq!(
                code(became(&named, &anon, &name("ann"))),
                Some("user_exists"),
                "{named:?}"
            );
        }
    }
}
