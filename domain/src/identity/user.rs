//! The user aggregate, stream `user-<username>`.
//!
//! Invariants: a stream holds one registered user at a time (a removed user's name may be
//! registered again, and the old user's tokens stay revoked); the last admin can be neither
//! removed nor demoted. What spans users is decided elsewhere in the log: that a name without
//! regard to case, or an email, belongs to one user by its [reservation](super::Reservation)
//! (`ANN` and `ann` are different user streams), and how many admins can be counted on by the
//! [admin roster](super::AdminRoster), which `commands` reads into `admin_count`.
//!
//! A user's SSH keys live on their stream too: a name names one key, and one key is under one
//! name (per user). So do password resets: the log keeps each reset token's digest, never the
//! token, with its expiry; a token works once, before it expires, and not after the password
//! changed in any way since it was issued. A user may be sent a token at most once a minute
//! ([`RESET_REQUEST_INTERVAL_SECONDS`]), and only the latest token works: a new one supersedes
//! every earlier one, which the state then forgets (the stream's state holds one token, however
//! many were ever asked for; the events stay).
//!
//! An anonymous user (`anon-<16 hex digits>`, [`Username::anonymous`]) has no password, no email,
//! no keys and no admin flag: it is created with `AnonymousUserCreated`, needs no reservation
//! (no registered name has a dash, and its random name is refused on a stream ever used), and
//! ends either removed or registered. A registration is first claimed on the anonymous user's
//! own stream, `AnonymousUserRegistering` with the name it is to become: from then on it may
//! register as that name only (409 [`REGISTRATION_PENDING`] for another), so no two named users
//! can come of one anonymous user, however its requests race or crash. Only a registration
//! refused because that name is someone else's gives the claim up
//! (`AnonymousUserRegistrationAbandoned`). `AnonymousUserRegistered` records the name it became,
//! and then its stream takes no more commands (its tokens stop working with it). The registered
//! user's `UserRegistered` names it in `registered_from`, so the same anonymous user registering
//! again after a crash between the two continues the registration rather than being refused.

use super::values::{Email, KeyName, PasswordHash, PublicKey, TokenDigest, Username};
use crate::aggregate::{Aggregate, DomainEvent};
use crate::error::DomainError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event_type", content = "data")]
pub enum UserEvent {
    UserRegistered {
        username: Username,
        email: Option<Email>,
        admin: bool,
        password_hash: PasswordHash,
        /// The anonymous user this one was registered from; absent for every other (and in
        /// events stored before anonymous users).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        registered_from: Option<Username>,
    },
    /// An anonymous user: no password, no email.
    AnonymousUserCreated {
        username: Username,
    },
    /// The anonymous user is registering as `registering_as`: it may become no other user
    /// unless this is abandoned.
    AnonymousUserRegistering {
        username: Username,
        registering_as: Username,
    },
    /// The registration as `registering_as` was refused, that name being someone else's: the
    /// anonymous user may choose another.
    AnonymousUserRegistrationAbandoned {
        username: Username,
        registering_as: Username,
    },
    /// The anonymous user registered as `registered_as` (whose `UserRegistered` names it): this
    /// stream is done, as if removed.
    AnonymousUserRegistered {
        username: Username,
        registered_as: Username,
    },
    /// Only the fields that changed are present. A cleared email is `email_cleared: true` (and
    /// no `email`): a flag of its own rather than `email: null`, so every event stored before
    /// emails could be cleared reads as it always did.
    UserUpdated {
        username: Username,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        email: Option<Email>,
        #[serde(default, skip_serializing_if = "is_false")]
        email_cleared: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        admin: Option<bool>,
    },
    PasswordChanged {
        username: Username,
        password_hash: PasswordHash,
    },
    UserRemoved {
        username: Username,
    },
    /// An SSH public key (public: not a secret) added under `name`.
    UserKeyAdded {
        username: Username,
        name: KeyName,
        key: PublicKey,
    },
    UserKeyRemoved {
        username: Username,
        name: KeyName,
    },
    /// A reset token was issued (and mailed to the user): only its digest is kept. It
    /// supersedes every token issued before it.
    PasswordResetRequested {
        username: Username,
        digest: TokenDigest,
        expires_at: DateTime<Utc>,
        /// When it was asked for; absent from the events recorded before requests were limited
        /// (which then limit nothing).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        requested_at: Option<DateTime<Utc>>,
    },
    /// The reset token was used; a `PasswordChanged` with the new password's hash follows.
    PasswordResetUsed {
        username: Username,
        digest: TokenDigest,
    },
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl DomainEvent for UserEvent {
    fn event_type(&self) -> &'static str {
        match self {
            UserEvent::UserRegistered { .. } => "UserRegistered",
            UserEvent::AnonymousUserCreated { .. } => "AnonymousUserCreated",
            UserEvent::AnonymousUserRegistering { .. } => "AnonymousUserRegistering",
            UserEvent::AnonymousUserRegistrationAbandoned { .. } => {
                "AnonymousUserRegistrationAbandoned"
            }
            UserEvent::AnonymousUserRegistered { .. } => "AnonymousUserRegistered",
            UserEvent::UserUpdated { .. } => "UserUpdated",
            UserEvent::PasswordChanged { .. } => "PasswordChanged",
            UserEvent::UserRemoved { .. } => "UserRemoved",
            UserEvent::UserKeyAdded { .. } => "UserKeyAdded",
            UserEvent::UserKeyRemoved { .. } => "UserKeyRemoved",
            UserEvent::PasswordResetRequested { .. } => "PasswordResetRequested",
            UserEvent::PasswordResetUsed { .. } => "PasswordResetUsed",
        }
    }
}

/// What an update does to a user's email.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum EmailChange {
    /// Left as it is (the field was absent).
    #[default]
    Keep,
    /// Removed (the field was `null`): the address is free for another user.
    Clear,
    Set(Email),
}

#[derive(Clone, Debug)]
pub enum UserCommand {
    /// The name and the email must be reserved for this user first. The name may not be an
    /// anonymous user's nor a reserved one ([`Username::parse_new`]); a GitHub user's
    /// (`github:<login>`) passes, for a GitHub sign-in (the edges refuse it), but never as an
    /// admin (403 [`Username::GITHUB_USER`]). `registered_from`: the anonymous user registering;
    /// if this user was registered from it already (a retry after a crash), the registration
    /// continues: only the password is set again.
    Register {
        username: Username,
        email: Option<Email>,
        admin: bool,
        password_hash: PasswordHash,
        registered_from: Option<Username>,
    },
    /// An anonymous user, on a stream never used (a name drawn twice is `user_exists`).
    CreateAnonymous {
        username: Username,
    },
    /// The anonymous user of this stream is to register as `registering_as` (a name
    /// [`Username::parse_new`] takes): no event if it is so already; 409
    /// [`REGISTRATION_PENDING`] if it is registering as another name. 403 `already_registered`
    /// for a user that is not anonymous.
    BeginRegistration {
        registering_as: Username,
    },
    /// The registration as `registering_as` is given up (that name is someone else's): no
    /// event unless that is the registration pending.
    AbandonRegistration {
        registering_as: Username,
    },
    /// The anonymous user of this stream was registered as `registered_as`, the registration
    /// pending: once done, done (no event the second time). 403 `already_registered` for a user
    /// that is not anonymous; 409 [`REGISTRATION_PENDING`] unless it is registering as that
    /// name.
    CompleteRegistration {
        registered_as: Username,
    },
    /// A new email must be reserved for this user first. `admin_count`: the admins that can be
    /// counted on, this user included. A GitHub user is never made an admin (403
    /// [`Username::GITHUB_USER`]; `admin: Some(false)` is fine).
    Update {
        email: EmailChange,
        admin: Option<bool>,
        password_hash: Option<PasswordHash>,
        admin_count: usize,
    },
    ChangePassword {
        password_hash: PasswordHash,
    },
    /// `admin_count`: the admins that can be counted on, this user included.
    Remove {
        admin_count: usize,
    },
    AddKey {
        name: KeyName,
        key: PublicKey,
    },
    RemoveKey {
        name: KeyName,
    },
    /// A reset token with this digest, good until `expires_at`, for a user with an email to
    /// send it to, asked for at `now`: refused (`too_many_requests`) within
    /// [`RESET_REQUEST_INTERVAL_SECONDS`] of the previous request.
    RequestPasswordReset {
        digest: TokenDigest,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    /// The reset token with this digest sets the password to `password_hash`'s, if it was
    /// issued, is unused and has not expired at `now`, and the user has an email to send the
    /// new password to.
    ResetPassword {
        digest: TokenDigest,
        password_hash: PasswordHash,
        now: DateTime<Utc>,
    },
}

/// The latest reset token as the log knows it (the only one that can work).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResetToken {
    pub digest: TokenDigest,
    pub expires_at: DateTime<Utc>,
    /// Used, or the password changed since it was issued.
    pub spent: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct User {
    pub username: Option<Username>,
    pub email: Option<Email>,
    pub admin: bool,
    pub password_hash: Option<PasswordHash>,
    /// Registered and not removed.
    pub active: bool,
    pub ever_registered: bool,
    /// SSH public keys by name.
    pub keys: BTreeMap<KeyName, PublicKey>,
    /// The latest reset token issued since the user was registered; the earlier ones were
    /// superseded by it and are forgotten.
    pub reset_token: Option<ResetToken>,
    /// When the latest reset was asked for (if its event says).
    pub reset_requested_at: Option<DateTime<Utc>>,
    /// An anonymous user (no password, no email).
    pub anonymous: bool,
    /// The anonymous user this one was registered from.
    pub registered_from: Option<Username>,
    /// What this anonymous user registered as (it is no longer active then).
    pub registered_as: Option<Username>,
    /// What this anonymous user is registering as, until it is done or abandoned.
    pub registering_as: Option<Username>,
}

/// A user stream as it is now: its state, and the version of its last event (none: no events).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UserStream {
    pub user: User,
    pub version: Option<u64>,
}

impl User {
    fn active_name(&self) -> Result<&Username, DomainError> {
        match (&self.username, self.active) {
            (Some(name), true) => Ok(name),
            _ => Err(DomainError::NotFound("no such user".into())),
        }
    }

    /// What `change` writes into `UserUpdated`: the new address, or whether it is cleared.
    /// Nothing for a change to what the user already has.
    fn email_update(&self, change: EmailChange) -> (Option<Email>, bool) {
        match change {
            EmailChange::Keep => (None, false),
            EmailChange::Set(email) if self.email.as_ref() == Some(&email) => (None, false),
            EmailChange::Set(email) => (Some(email), false),
            EmailChange::Clear => (None, self.email.is_some()),
        }
    }

    /// The active user's name if it is anonymous: 403 `already_registered` for one that is not
    /// (a registration is an anonymous user's).
    fn anonymous_name(&self) -> Result<&Username, DomainError> {
        let name = self.active_name()?;
        if !self.anonymous {
            return Err(DomainError::forbidden(
                ALREADY_REGISTERED,
                format!("you are already registered (as {name})"),
            ));
        }
        Ok(name)
    }

    /// The active user's name, unless it is anonymous: what an anonymous user may not do
    /// (a password, an email, keys, admin) is refused `registration_required`.
    fn registered_name(&self) -> Result<&Username, DomainError> {
        let name = self.active_name()?;
        if self.anonymous {
            return Err(DomainError::forbidden(
                REGISTRATION_REQUIRED,
                format!(
                    "user {name} is anonymous: it must register first (POST /v1/users/me/register)"
                ),
            ));
        }
        Ok(name)
    }

    /// The active user's name, unless it is a GitHub user's (`github:<login>`): they sign in
    /// through GitHub only, so a password of theirs (set, changed or reset) is refused 403
    /// `github_user`.
    fn password_holder(&self) -> Result<&Username, DomainError> {
        let name = self.active_name()?;
        if name.is_github() {
            return Err(DomainError::forbidden(
                Username::GITHUB_USER,
                format!(
                    "user {name} signs in through GitHub only: it has no password to set, change or reset"
                ),
            ));
        }
        Ok(name)
    }

    /// Registered, not removed, and an admin.
    pub fn is_admin(&self) -> bool {
        self.active && self.admin
    }

    /// How many seconds (at least 1) from `now` until another password reset may be asked for;
    /// `None` if it may be now.
    pub fn reset_request_retry_after(&self, now: DateTime<Utc>) -> Option<i64> {
        let next =
            self.reset_requested_at? + chrono::Duration::seconds(RESET_REQUEST_INTERVAL_SECONDS);
        let wait = next - now;
        // Rounded up: retrying after that many seconds is never too soon.
        (wait > chrono::Duration::zero()).then(|| ((wait.num_milliseconds() + 999) / 1000).max(1))
    }
}

/// The refusal of what an anonymous user may not do before it registers (403 at the API).
pub const REGISTRATION_REQUIRED: &str = "registration_required";
/// The refusal of a registration by a user who is not anonymous (403 at the API).
pub const ALREADY_REGISTERED: &str = "already_registered";
/// The refusal of an anonymous user's registration as a name other than the one it is
/// registering as already (409 at the API).
pub const REGISTRATION_PENDING: &str = "registration_pending";

/// The refusal of a reset token that was used, or whose password changed since (410 at the API).
pub const RESET_TOKEN_USED: &str = "reset_token_used";
/// The refusal of a reset token past its expiry (410 at the API).
pub const RESET_TOKEN_EXPIRED: &str = "reset_token_expired";
/// The refusal of a reset asked for too soon after the previous one (429 at the API).
pub const RESET_TOO_SOON: &str = "too_many_requests";
/// The least time between two reset requests of one user: a minute.
pub const RESET_REQUEST_INTERVAL_SECONDS: i64 = 60;

fn registration_pending(name: &Username, pending: &Username) -> DomainError {
    DomainError::conflict(
        REGISTRATION_PENDING,
        format!(
            "user {name} is registering as {pending} already: finish that registration (POST /v1/users/me/register with username {pending})"
        ),
    )
}

fn no_email(name: &Username) -> DomainError {
    DomainError::conflict(
        "no_email",
        format!("user {name} has no email address to send a password reset to"),
    )
}

/// The refusal of making the GitHub user `name` (`github:<login>`) an admin: its rights come
/// from the `authorization` lists of GitHub users and orgs, at every sign-in, never from the
/// admin flag (403 [`Username::GITHUB_USER`] at the API).
fn github_user_admin(name: &Username) -> DomainError {
    DomainError::forbidden(
        Username::GITHUB_USER,
        format!(
            "user {name} is a GitHub user: its rights come from GitHub's lists, it cannot be an admin"
        ),
    )
}

pub(crate) fn last_admin() -> DomainError {
    DomainError::conflict(
        "last_admin",
        "this is the last admin; make another user admin first",
    )
}

impl Aggregate for User {
    type Command = UserCommand;
    type Event = UserEvent;
    const CATEGORY: &'static str = "user";

    fn handle(&self, command: UserCommand) -> Result<Vec<UserEvent>, DomainError> {
        match command {
            UserCommand::Register {
                username,
                email,
                admin,
                password_hash,
                registered_from,
            } => {
                // A GitHub user's name is no one's to register: only a GitHub sign-in makes one
                // (every way to register checks `parse_new` at its edge), and it comes from no
                // anonymous user.
                if !username.is_github() || registered_from.is_some() {
                    Username::parse_new(username.as_str())?;
                }
                if admin && username.is_github() {
                    return Err(github_user_admin(&username));
                }
                if self.active {
                    let continued = registered_from.is_some()
                        && self.registered_from == registered_from
                        && self.username.as_ref() == Some(&username);
                    if continued {
                        // The password this try sent is the one that works.
                        return Ok(vec![UserEvent::PasswordChanged {
                            username,
                            password_hash,
                        }]);
                    }
                    return Err(DomainError::conflict(
                        "user_exists",
                        format!("user {username} already exists"),
                    ));
                }
                Ok(vec![UserEvent::UserRegistered {
                    username,
                    email,
                    admin,
                    password_hash,
                    registered_from,
                }])
            }
            UserCommand::CreateAnonymous { username } => {
                if !username.is_anonymous() {
                    return Err(DomainError::invalid(
                        "username",
                        "an anonymous user's name is anon- and 16 lowercase hex digits",
                    ));
                }
                if self.ever_registered {
                    return Err(DomainError::conflict(
                        "user_exists",
                        format!("user {username} already exists"),
                    ));
                }
                Ok(vec![UserEvent::AnonymousUserCreated { username }])
            }
            UserCommand::BeginRegistration { registering_as } => {
                let name = self.anonymous_name()?.clone();
                Username::parse_new(registering_as.as_str())?;
                match &self.registering_as {
                    Some(pending) if pending == &registering_as => Ok(vec![]),
                    Some(pending) => Err(registration_pending(&name, pending)),
                    None => Ok(vec![UserEvent::AnonymousUserRegistering {
                        username: name,
                        registering_as,
                    }]),
                }
            }
            UserCommand::AbandonRegistration { registering_as } => {
                let name = self.anonymous_name()?.clone();
                if self.registering_as.as_ref() != Some(&registering_as) {
                    return Ok(vec![]);
                }
                Ok(vec![UserEvent::AnonymousUserRegistrationAbandoned {
                    username: name,
                    registering_as,
                }])
            }
            UserCommand::CompleteRegistration { registered_as } => {
                if !self.active && self.registered_as.as_ref() == Some(&registered_as) {
                    return Ok(vec![]);
                }
                let name = self.anonymous_name()?.clone();
                match &self.registering_as {
                    Some(pending) if pending == &registered_as => {
                        Ok(vec![UserEvent::AnonymousUserRegistered {
                            username: name,
                            registered_as,
                        }])
                    }
                    Some(pending) => Err(registration_pending(&name, pending)),
                    None => Err(DomainError::conflict(
                        "registration_not_begun",
                        format!("user {name} is not registering as {registered_as}"),
                    )),
                }
            }
            UserCommand::Update {
                email,
                admin,
                password_hash,
                admin_count,
            } => {
                let name = self.active_name()?.clone();
                if password_hash.is_some() {
                    self.password_holder()?;
                }
                // Only promoting one: `admin: Some(false)` stays fine.
                if admin == Some(true) && name.is_github() {
                    return Err(github_user_admin(&name));
                }
                if password_hash.is_some()
                    || !matches!(email, EmailChange::Keep)
                    || admin == Some(true)
                {
                    self.registered_name()?;
                }
                let (email, email_cleared) = self.email_update(email);
                let admin = admin.filter(|a| *a != self.admin);
                if admin == Some(false) && admin_count <= 1 {
                    return Err(last_admin());
                }
                let mut events = Vec::new();
                if email.is_some() || email_cleared || admin.is_some() {
                    events.push(UserEvent::UserUpdated {
                        username: name.clone(),
                        email,
                        email_cleared,
                        admin,
                    });
                }
                if let Some(password_hash) = password_hash {
                    events.push(UserEvent::PasswordChanged {
                        username: name,
                        password_hash,
                    });
                }
                Ok(events)
            }
            UserCommand::ChangePassword { password_hash } => {
                self.password_holder()?;
                let name = self.registered_name()?.clone();
                Ok(vec![UserEvent::PasswordChanged {
                    username: name,
                    password_hash,
                }])
            }
            UserCommand::Remove { admin_count } => {
                let name = self.active_name()?.clone();
                if self.admin && admin_count <= 1 {
                    return Err(last_admin());
                }
                Ok(vec![UserEvent::UserRemoved { username: name }])
            }
            UserCommand::AddKey { name, key } => {
                let username = self.registered_name()?.clone();
                if self.keys.contains_key(&name) {
                    return Err(DomainError::conflict(
                        "key_name_taken",
                        format!("user {username} already has a key named {name}"),
                    ));
                }
                if let Some((other, _)) = self.keys.iter().find(|(_, k)| k.same_key_as(&key)) {
                    return Err(DomainError::conflict(
                        "key_exists",
                        format!("this key is already user {username}'s key {other}"),
                    ));
                }
                Ok(vec![UserEvent::UserKeyAdded {
                    username,
                    name,
                    key,
                }])
            }
            UserCommand::RemoveKey { name } => {
                let username = self.active_name()?.clone();
                if !self.keys.contains_key(&name) {
                    return Err(DomainError::NotFound(format!(
                        "user {username} has no key named {name}"
                    )));
                }
                Ok(vec![UserEvent::UserKeyRemoved { username, name }])
            }
            UserCommand::RequestPasswordReset {
                digest,
                expires_at,
                now,
            } => {
                let username = self.password_holder()?.clone();
                if self.email.is_none() {
                    return Err(no_email(&username));
                }
                if let Some(seconds) = self.reset_request_retry_after(now) {
                    return Err(DomainError::conflict(
                        RESET_TOO_SOON,
                        format!(
                            "a password reset of user {username} was asked for less than a minute ago; ask again in {seconds} s"
                        ),
                    ));
                }
                Ok(vec![UserEvent::PasswordResetRequested {
                    username,
                    digest,
                    expires_at,
                    requested_at: Some(now),
                }])
            }
            UserCommand::ResetPassword {
                digest,
                password_hash,
                now,
            } => {
                let username = self.password_holder()?.clone();
                let Some(token) = self.reset_token.as_ref().filter(|t| t.digest == digest) else {
                    return Err(DomainError::NotFound(format!(
                        "no such password reset token for user {username} (a newer request replaces every earlier token)"
                    )));
                };
                if token.spent {
                    return Err(DomainError::conflict(
                        RESET_TOKEN_USED,
                        "this reset token was used, or the password changed since it was issued; ask for a new one",
                    ));
                }
                if now >= token.expires_at {
                    return Err(DomainError::conflict(
                        RESET_TOKEN_EXPIRED,
                        "this reset token has expired; ask for a new one",
                    ));
                }
                if self.email.is_none() {
                    return Err(no_email(&username));
                }
                Ok(vec![
                    UserEvent::PasswordResetUsed {
                        username: username.clone(),
                        digest,
                    },
                    UserEvent::PasswordChanged {
                        username,
                        password_hash,
                    },
                ])
            }
        }
    }

    fn apply(&mut self, event: &UserEvent) {
        match event {
            UserEvent::UserRegistered {
                username,
                email,
                admin,
                password_hash,
                registered_from,
            } => {
                *self = User {
                    username: Some(username.clone()),
                    email: email.clone(),
                    admin: *admin,
                    password_hash: Some(password_hash.clone()),
                    active: true,
                    ever_registered: true,
                    registered_from: registered_from.clone(),
                    ..User::default()
                };
            }
            UserEvent::AnonymousUserCreated { username } => {
                *self = User {
                    username: Some(username.clone()),
                    active: true,
                    ever_registered: true,
                    anonymous: true,
                    ..User::default()
                };
            }
            UserEvent::AnonymousUserRegistering { registering_as, .. } => {
                self.registering_as = Some(registering_as.clone());
            }
            UserEvent::AnonymousUserRegistrationAbandoned { .. } => {
                self.registering_as = None;
            }
            UserEvent::AnonymousUserRegistered { registered_as, .. } => {
                self.active = false;
                self.registering_as = None;
                self.registered_as = Some(registered_as.clone());
            }
            UserEvent::UserUpdated {
                email,
                email_cleared,
                admin,
                ..
            } => {
                if let Some(email) = email {
                    self.email = Some(email.clone());
                }
                if *email_cleared {
                    self.email = None;
                }
                if let Some(admin) = admin {
                    self.admin = *admin;
                }
            }
            UserEvent::PasswordChanged { password_hash, .. } => {
                self.password_hash = Some(password_hash.clone());
                // A reset token issued before stops working: it was for the old password.
                if let Some(token) = &mut self.reset_token {
                    token.spent = true;
                }
            }
            UserEvent::UserRemoved { .. } => {
                self.active = false;
                self.admin = false;
                self.email = None;
                self.keys.clear();
                self.reset_token = None;
                self.reset_requested_at = None;
            }
            UserEvent::UserKeyAdded { name, key, .. } => {
                self.keys.insert(name.clone(), key.clone());
            }
            UserEvent::UserKeyRemoved { name, .. } => {
                self.keys.remove(name);
            }
            UserEvent::PasswordResetRequested {
                digest,
                expires_at,
                requested_at,
                ..
            } => {
                // Supersedes (and so forgets) every earlier token, expired or not.
                self.reset_token = Some(ResetToken {
                    digest: digest.clone(),
                    expires_at: *expires_at,
                    spent: false,
                });
                if requested_at.is_some() {
                    self.reset_requested_at = *requested_at;
                }
            }
            UserEvent::PasswordResetUsed { digest, .. } => {
                if let Some(token) = self.reset_token.as_mut().filter(|t| &t.digest == digest) {
                    token.spent = true;
                }
            }
        }
    }

    fn exists(&self) -> bool {
        self.ever_registered
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::{decode, encode};
    use crate::testing::given;

    fn name(n: &str) -> Username {
        Username::parse(n).unwrap()
    }

    fn email(e: &str) -> Email {
        Email::parse(e).unwrap()
    }

    fn hash() -> PasswordHash {
        PasswordHash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into())
    }

    fn registered(username: &str, email: Option<&str>, admin: bool) -> UserEvent {
        UserEvent::UserRegistered {
            username: name(username),
            email: email.map(|e| Email::parse(e).unwrap()),
            admin,
            password_hash: hash(),
            registered_from: None,
        }
    }

    fn removed(username: &str) -> UserEvent {
        UserEvent::UserRemoved {
            username: name(username),
        }
    }

    fn register(username: &str, email: Option<&str>) -> UserCommand {
        UserCommand::Register {
            username: name(username),
            email: email.map(|e| Email::parse(e).unwrap()),
            admin: false,
            password_hash: hash(),
            registered_from: None,
        }
    }

    fn set_email(email: &str) -> EmailChange {
        EmailChange::Set(Email::parse(email).unwrap())
    }

    /// An update of the email alone, by an admin among several.
    fn update_email(email: EmailChange) -> UserCommand {
        UserCommand::Update {
            email,
            admin: None,
            password_hash: None,
            admin_count: 2,
        }
    }

    fn updated(
        username: &str,
        email: Option<&str>,
        cleared: bool,
        admin: Option<bool>,
    ) -> UserEvent {
        UserEvent::UserUpdated {
            username: name(username),
            email: email.map(|e| Email::parse(e).unwrap()),
            email_cleared: cleared,
            admin,
        }
    }

    fn no_such_user() -> DomainError {
        DomainError::NotFound("no such user".into())
    }

    #[test]
    fn registers_a_new_user() {
        given::<User>(&[])
            .when(register("ann", Some("ann@example.org")))
            .then(vec![registered("ann", Some("ann@example.org"), false)]);
    }

    #[test]
    fn refuses_a_taken_username() {
        given::<User>(&[registered("ann", None, false)])
            .when(register("ann", None))
            .refused(DomainError::conflict(
                "user_exists",
                "user ann already exists",
            ));
    }

    #[test]
    fn a_removed_users_name_can_be_registered_again() {
        given::<User>(&[registered("ann", None, false), removed("ann")])
            .when(register("ann", Some("new@example.org")))
            .then(vec![registered("ann", Some("new@example.org"), false)]);
    }

    #[test]
    fn refuses_to_remove_the_last_admin() {
        let past = [registered("root", None, true)];
        given::<User>(&past)
            .when(UserCommand::Remove { admin_count: 1 })
            .refused(last_admin());
        given::<User>(&past)
            .when(UserCommand::Remove { admin_count: 2 })
            .then(vec![removed("root")]);
        // A user who is no admin needs none besides.
        given::<User>(&[registered("ann", None, false)])
            .when(UserCommand::Remove { admin_count: 0 })
            .then(vec![removed("ann")]);
    }

    #[test]
    fn refuses_to_demote_the_last_admin() {
        let past = [registered("root", None, true)];
        let demote = |admin_count| UserCommand::Update {
            email: EmailChange::Keep,
            admin: Some(false),
            password_hash: None,
            admin_count,
        };
        given::<User>(&past).when(demote(1)).refused(last_admin());
        given::<User>(&past)
            .when(demote(2))
            .then(vec![updated("root", None, false, Some(false))]);
        assert_eq!(
            last_admin(),
            DomainError::conflict(
                "last_admin",
                "this is the last admin; make another user admin first"
            )
        );
    }

    #[test]
    fn an_update_that_changes_nothing_writes_nothing() {
        let same = UserCommand::Update {
            email: set_email("A@example.org"),
            admin: Some(false),
            password_hash: None,
            admin_count: 1,
        };
        given::<User>(&[registered("ann", Some("a@example.org"), false)])
            .when(same)
            .then_nothing();
    }

    #[test]
    fn an_update_writes_what_changed_and_then_the_new_password() {
        let update = UserCommand::Update {
            email: set_email("New@Example.org"),
            admin: Some(true),
            password_hash: Some(hash()),
            admin_count: 1,
        };
        given::<User>(&[registered("ann", Some("a@example.org"), false)])
            .when(update)
            .then(vec![
                updated("ann", Some("new@example.org"), false, Some(true)),
                UserEvent::PasswordChanged {
                    username: name("ann"),
                    password_hash: hash(),
                },
            ]);
    }

    #[test]
    fn clearing_the_email_removes_it_and_keeping_it_changes_nothing() {
        let past = [registered("ann", Some("ann@example.org"), false)];
        let cleared = updated("ann", None, true, None);
        given::<User>(&past)
            .when(update_email(EmailChange::Clear))
            .then(vec![cleared.clone()]);
        let after = [past[0].clone(), cleared];
        assert_eq!(given::<User>(&after).state().email, None);
        // Cleared already, or left alone: nothing to write.
        given::<User>(&after)
            .when(update_email(EmailChange::Clear))
            .then_nothing();
        given::<User>(&past)
            .when(update_email(EmailChange::Keep))
            .then_nothing();
        // A new address after a clear is set again.
        let set = updated("ann", Some("new@example.org"), false, None);
        given::<User>(&after)
            .when(update_email(set_email("new@example.org")))
            .then(vec![set.clone()]);
        let again = [after[0].clone(), after[1].clone(), set];
        assert_eq!(
            given::<User>(&again).state().email,
            Some(email("new@example.org"))
        );
    }

    #[test]
    fn refuses_commands_to_unknown_or_removed_users() {
        let removed = [registered("ann", None, false), removed("ann")];
        given::<User>(&[])
            .when(UserCommand::Remove { admin_count: 5 })
            .refused(no_such_user());
        given::<User>(&removed)
            .when(UserCommand::Remove { admin_count: 5 })
            .refused(no_such_user());
        given::<User>(&removed)
            .when(UserCommand::ChangePassword {
                password_hash: hash(),
            })
            .refused(no_such_user());
        given::<User>(&removed)
            .when(update_email(set_email("x@example.org")))
            .refused(no_such_user());
    }

    #[test]
    fn a_removed_user_is_no_admin_and_has_no_email() {
        let past = [
            registered("root", Some("root@example.org"), true),
            removed("root"),
        ];
        let user = given::<User>(&past).state().clone();
        assert!(!user.is_admin() && !user.active && user.exists());
        assert_eq!(user.email, None);
        assert!(given::<User>(&past[..1]).state().is_admin());
    }

    #[test]
    fn events_round_trip_through_their_stored_form() {
        let event = updated("ann", None, false, Some(true));
        let (event_type, data) = encode(&event).unwrap();
        assert_eq!(event_type, "UserUpdated");
        assert_eq!(data, serde_json::json!({"username": "ann", "admin": true}));
        assert_eq!(decode::<UserEvent>(&event_type, &data).unwrap(), event);
        assert!(decode::<UserEvent>("TeamCreated", &data).is_err());
    }

    #[test]
    fn a_cleared_email_is_stored_as_a_flag_of_its_own() {
        let event = updated("ann", None, true, None);
        let (_, data) = encode(&event).unwrap();
        assert_eq!(
            data,
            serde_json::json!({"username": "ann", "email_cleared": true})
        );
        assert_eq!(decode::<UserEvent>("UserUpdated", &data).unwrap(), event);
    }

    #[test]
    fn updates_stored_before_emails_could_be_cleared_still_load_the_same() {
        // Given the shapes stored before `email_cleared` existed…
        let old_email = serde_json::json!({"username": "ann", "email": "new@example.org"});
        let old_admin = serde_json::json!({"username": "ann", "admin": true});
        // …when they load, then they mean what they meant: a new address, or only admin.
        let email_event = decode::<UserEvent>("UserUpdated", &old_email).unwrap();
        let admin_event = decode::<UserEvent>("UserUpdated", &old_admin).unwrap();
        assert_eq!(
            email_event,
            updated("ann", Some("new@example.org"), false, None)
        );
        assert_eq!(admin_event, updated("ann", None, false, Some(true)));
        let past = [
            registered("ann", Some("ann@example.org"), false),
            email_event,
            admin_event,
        ];
        let user = given::<User>(&past).state().clone();
        assert_eq!(
            (user.email, user.admin),
            (Some(email("new@example.org")), true)
        );
    }

    // ---- SSH keys ----

    const ED25519: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII+3z07g3FdvO+3v28bu2GWa2J4L648YyFv/WtM2LluA ann@laptop";
    const RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC9YH+6nluXqa51cc8NgxU28IuiBL9VSYuwofqcXWYpfHVovHOXe8Z9FiCoaHeevI5A0hXtmC70xqM4MycG9/glIzTX3rWFWMPDeyvmaIf6Q4vlXBnt4vsAwTiIs30GjsOkVRH8cFCvZ53S8RpuluLYfUW6GvPoTy4JH+Bu5KlKvw== ann@desk";

    fn key_name(n: &str) -> KeyName {
        KeyName::parse(n).unwrap()
    }

    fn key(k: &str) -> PublicKey {
        PublicKey::parse(k).unwrap()
    }

    fn add_key(n: &str, k: &str) -> UserCommand {
        UserCommand::AddKey {
            name: key_name(n),
            key: key(k),
        }
    }

    fn key_added(n: &str, k: &str) -> UserEvent {
        UserEvent::UserKeyAdded {
            username: name("ann"),
            name: key_name(n),
            key: key(k),
        }
    }

    #[test]
    fn adds_and_removes_a_key() {
        let past = [registered("ann", None, false), key_added("laptop", ED25519)];
        given::<User>(&past[..1])
            .when(add_key("laptop", ED25519))
            .then(vec![key_added("laptop", ED25519)]);
        assert_eq!(
            given::<User>(&past).state().keys.get(&key_name("laptop")),
            Some(&key(ED25519))
        );
        given::<User>(&past)
            .when(UserCommand::RemoveKey {
                name: key_name("laptop"),
            })
            .then(vec![UserEvent::UserKeyRemoved {
                username: name("ann"),
                name: key_name("laptop"),
            }]);
        // A second key under another name.
        given::<User>(&past)
            .when(add_key("desk", RSA))
            .then(vec![key_added("desk", RSA)]);
    }

    #[test]
    fn refuses_a_key_name_taken_and_a_key_already_held_under_another_name() {
        let past = [registered("ann", None, false), key_added("laptop", ED25519)];
        given::<User>(&past)
            .when(add_key("laptop", RSA))
            .refused(DomainError::conflict(
                "key_name_taken",
                "user ann already has a key named laptop",
            ));
        // The same key, even with another comment.
        let recommented = ED25519.replace("ann@laptop", "other");
        given::<User>(&past)
            .when(add_key("other", &recommented))
            .refused(DomainError::conflict(
                "key_exists",
                "this key is already user ann's key laptop",
            ));
    }

    #[test]
    fn refuses_to_remove_a_key_it_does_not_have_and_keys_of_unknown_users() {
        let past = [registered("ann", None, false)];
        given::<User>(&past)
            .when(UserCommand::RemoveKey {
                name: key_name("laptop"),
            })
            .refused(DomainError::NotFound(
                "user ann has no key named laptop".into(),
            ));
        given::<User>(&[])
            .when(add_key("laptop", ED25519))
            .refused(no_such_user());
    }

    #[test]
    fn a_removed_user_leaves_no_keys_behind_for_a_later_user_of_the_name() {
        let past = [
            registered("ann", None, false),
            key_added("laptop", ED25519),
            removed("ann"),
        ];
        given::<User>(&past)
            .when(add_key("laptop", ED25519))
            .refused(no_such_user());
        let again = [
            past[0].clone(),
            past[1].clone(),
            past[2].clone(),
            registered("ann", None, false),
        ];
        assert!(given::<User>(&again).state().keys.is_empty());
        given::<User>(&again)
            .when(add_key("laptop", ED25519))
            .then(vec![key_added("laptop", ED25519)]);
    }

    #[test]
    fn key_events_round_trip_and_keep_the_key_in_clear() {
        let event = key_added("laptop", ED25519);
        let (event_type, data) = encode(&event).unwrap();
        assert_eq!(event_type, "UserKeyAdded");
        assert_eq!(
            data,
            serde_json::json!({"username": "ann", "name": "laptop", "key": ED25519})
        );
        assert_eq!(decode::<UserEvent>(&event_type, &data).unwrap(), event);
    }

    // ---- Password resets ----

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    fn digest(n: &str) -> TokenDigest {
        TokenDigest(n.repeat(64 / n.len()))
    }

    fn request_reset(d: &str) -> UserCommand {
        request_reset_at(d, 0)
    }

    /// A request of token `d` at second `now`, good for an hour.
    fn request_reset_at(d: &str, now: i64) -> UserCommand {
        UserCommand::RequestPasswordReset {
            digest: digest(d),
            expires_at: at(now + 3600),
            now: at(now),
        }
    }

    fn reset_requested(d: &str) -> UserEvent {
        reset_requested_at(d, 0)
    }

    fn reset_requested_at(d: &str, now: i64) -> UserEvent {
        UserEvent::PasswordResetRequested {
            username: name("ann"),
            digest: digest(d),
            expires_at: at(now + 3600),
            requested_at: Some(at(now)),
        }
    }

    /// A request as recorded before requests were limited: no `requested_at`.
    fn old_reset_requested(d: &str) -> UserEvent {
        UserEvent::PasswordResetRequested {
            username: name("ann"),
            digest: digest(d),
            expires_at: at(3600),
            requested_at: None,
        }
    }

    fn no_such_token() -> DomainError {
        DomainError::NotFound(
            "no such password reset token for user ann (a newer request replaces every earlier token)"
                .into(),
        )
    }

    fn reset(d: &str, now: i64) -> UserCommand {
        UserCommand::ResetPassword {
            digest: digest(d),
            password_hash: hash(),
            now: at(now),
        }
    }

    fn reset_done(d: &str) -> Vec<UserEvent> {
        vec![
            UserEvent::PasswordResetUsed {
                username: name("ann"),
                digest: digest(d),
            },
            UserEvent::PasswordChanged {
                username: name("ann"),
                password_hash: hash(),
            },
        ]
    }

    fn used() -> DomainError {
        DomainError::conflict(
            RESET_TOKEN_USED,
            "this reset token was used, or the password changed since it was issued; ask for a new one",
        )
    }

    #[test]
    fn a_reset_is_requested_for_a_user_with_an_email_only() {
        given::<User>(&[registered("ann", Some("ann@example.org"), false)])
            .when(request_reset("a"))
            .then(vec![reset_requested("a")]);
        given::<User>(&[registered("ann", None, false)])
            .when(request_reset("a"))
            .refused(DomainError::conflict(
                "no_email",
                "user ann has no email address to send a password reset to",
            ));
        given::<User>(&[])
            .when(request_reset("a"))
            .refused(no_such_user());
    }

    #[test]
    fn a_reset_token_sets_the_new_password_once() {
        let past = [
            registered("ann", Some("ann@example.org"), false),
            reset_requested("a"),
        ];
        given::<User>(&past)
            .when(reset("a", 10))
            .then(reset_done("a"));
        let mut after = past.to_vec();
        after.extend(reset_done("a"));
        given::<User>(&after).when(reset("a", 20)).refused(used());
    }

    #[test]
    fn a_reset_token_refused_when_expired_never_issued_or_for_an_unknown_user() {
        let past = [
            registered("ann", Some("ann@example.org"), false),
            reset_requested("a"),
        ];
        given::<User>(&past)
            .when(reset("a", 3600))
            .refused(DomainError::conflict(
                RESET_TOKEN_EXPIRED,
                "this reset token has expired; ask for a new one",
            ));
        given::<User>(&past)
            .when(reset("b", 10))
            .refused(no_such_token());
        let removed = [past[0].clone(), past[1].clone(), removed("ann")];
        given::<User>(&removed)
            .when(reset("a", 10))
            .refused(no_such_user());
    }

    #[test]
    fn a_password_change_voids_the_reset_tokens_issued_before_it() {
        let mut past = vec![
            registered("ann", Some("ann@example.org"), false),
            reset_requested("a"),
            UserEvent::PasswordChanged {
                username: name("ann"),
                password_hash: hash(),
            },
        ];
        given::<User>(&past).when(reset("a", 10)).refused(used());
        // One issued after the change works.
        past.push(reset_requested_at("b", 100));
        given::<User>(&past)
            .when(reset("b", 110))
            .then(reset_done("b"));
    }

    #[test]
    fn a_reset_is_asked_for_at_most_once_a_minute() {
        let past = [
            registered("ann", Some("ann@example.org"), false),
            reset_requested_at("a", 0),
        ];
        given::<User>(&past)
            .when(request_reset_at("b", 30))
            .refused(DomainError::conflict(
            RESET_TOO_SOON,
            "a password reset of user ann was asked for less than a minute ago; ask again in 30 s",
        ));
        given::<User>(&past)
            .when(request_reset_at("b", 60))
            .then(vec![reset_requested_at("b", 60)]);
        let mut state = User::default();
        past.iter().for_each(|e| state.apply(e));
        assert_eq!(state.reset_request_retry_after(at(0)), Some(60));
        let just_after = at(59) + chrono::Duration::milliseconds(1);
        assert_eq!(state.reset_request_retry_after(just_after), Some(1));
        assert_eq!(state.reset_request_retry_after(at(60)), None);
        // Using the token does not make way for another request sooner.
        let mut used = past.to_vec();
        used.extend(reset_done("a"));
        given::<User>(&used)
            .when(request_reset_at("b", 10))
            .refused(DomainError::conflict(
            RESET_TOO_SOON,
            "a password reset of user ann was asked for less than a minute ago; ask again in 50 s",
        ));
        // A request recorded before requests were limited limits nothing.
        given::<User>(&[
            registered("ann", Some("ann@example.org"), false),
            old_reset_requested("a"),
        ])
        .when(request_reset_at("b", 1))
        .then(vec![reset_requested_at("b", 1)]);
    }

    #[test]
    fn a_new_reset_token_supersedes_the_earlier_ones_which_the_state_forgets() {
        let mut past = vec![registered("ann", Some("ann@example.org"), false)];
        for (i, d) in ["a", "b", "c", "d"].iter().enumerate() {
            past.push(reset_requested_at(d, i as i64 * 100));
        }
        // Only the latest works; the earlier ones, unexpired though they are, do not.
        for d in ["a", "b", "c"] {
            given::<User>(&past)
                .when(reset(d, 310))
                .refused(no_such_token());
        }
        given::<User>(&past)
            .when(reset("d", 310))
            .then(reset_done("d"));
        // The state holds the one latest token, however many were asked for.
        let mut state = User::default();
        past.iter().for_each(|e| state.apply(e));
        assert_eq!(
            state.reset_token,
            Some(ResetToken {
                digest: digest("d"),
                expires_at: at(300 + 3600),
                spent: false
            })
        );
        assert_eq!(state.reset_requested_at, Some(at(300)));
        // Old-shape requests, never limited, supersede each other alike.
        let mut old = vec![registered("ann", Some("ann@example.org"), false)];
        old.extend(["a", "b"].map(old_reset_requested));
        given::<User>(&old)
            .when(reset("a", 10))
            .refused(no_such_token());
        given::<User>(&old)
            .when(reset("b", 10))
            .then(reset_done("b"));
        // A request after the last one's token was used starts afresh.
        past.extend(reset_done("d"));
        past.push(reset_requested_at("e", 400));
        given::<User>(&past)
            .when(reset("d", 410))
            .refused(no_such_token());
        given::<User>(&past)
            .when(reset("e", 410))
            .then(reset_done("e"));
    }

    #[test]
    fn a_reset_needs_an_email_to_send_the_new_password_to() {
        let past = [
            registered("ann", Some("ann@example.org"), false),
            reset_requested("a"),
            updated("ann", None, true, None),
        ];
        given::<User>(&past)
            .when(reset("a", 10))
            .refused(DomainError::conflict(
                "no_email",
                "user ann has no email address to send a password reset to",
            ));
    }

    #[test]
    fn reset_events_keep_only_the_digest_of_the_token() {
        let event = reset_requested("a");
        let (event_type, data) = encode(&event).unwrap();
        assert_eq!(event_type, "PasswordResetRequested");
        assert_eq!(
            data,
            serde_json::json!({"username": "ann", "digest": "a".repeat(64), "expires_at": "2023-11-14T23:13:20Z", "requested_at": "2023-11-14T22:13:20Z"})
        );
        assert_eq!(decode::<UserEvent>(&event_type, &data).unwrap(), event);
        // One recorded before requests were limited reads as it always did.
        let old = serde_json::json!({"username": "ann", "digest": "a".repeat(64), "expires_at": "2023-11-14T23:13:20Z"});
        assert_eq!(
            decode::<UserEvent>(&event_type, &old).unwrap(),
            old_reset_requested("a")
        );
        assert_eq!(encode(&old_reset_requested("a")).unwrap().1, old);
        let (used_type, used_data) = encode(&reset_done("a")[0]).unwrap();
        assert_eq!(used_type, "PasswordResetUsed");
        assert_eq!(
            used_data,
            serde_json::json!({"username": "ann", "digest": "a".repeat(64)})
        );
    }

    // ---- Anonymous users ----

    const ANON: &str = "anon-0123456789abcdef";

    fn anonymous_created() -> UserEvent {
        UserEvent::AnonymousUserCreated {
            username: name(ANON),
        }
    }

    fn create_anonymous(username: &str) -> UserCommand {
        UserCommand::CreateAnonymous {
            username: name(username),
        }
    }

    /// `username` registering from the anonymous user [`ANON`].
    fn register_from_anon(username: &str) -> UserCommand {
        UserCommand::Register {
            username: name(username),
            email: Some(email("ann@example.org")),
            admin: false,
            password_hash: hash(),
            registered_from: Some(name(ANON)),
        }
    }

    fn registered_from_anon(username: &str) -> UserEvent {
        UserEvent::UserRegistered {
            username: name(username),
            email: Some(email("ann@example.org")),
            admin: false,
            password_hash: hash(),
            registered_from: Some(name(ANON)),
        }
    }

    fn anonymous_registered(as_user: &str) -> UserEvent {
        UserEvent::AnonymousUserRegistered {
            username: name(ANON),
            registered_as: name(as_user),
        }
    }

    fn registering(as_user: &str) -> UserEvent {
        UserEvent::AnonymousUserRegistering {
            username: name(ANON),
            registering_as: name(as_user),
        }
    }

    fn abandoned(as_user: &str) -> UserEvent {
        UserEvent::AnonymousUserRegistrationAbandoned {
            username: name(ANON),
            registering_as: name(as_user),
        }
    }

    fn begin(as_user: &str) -> UserCommand {
        UserCommand::BeginRegistration {
            registering_as: name(as_user),
        }
    }

    fn abandon(as_user: &str) -> UserCommand {
        UserCommand::AbandonRegistration {
            registering_as: name(as_user),
        }
    }

    fn pending_as(as_user: &str) -> DomainError {
        DomainError::conflict(
            REGISTRATION_PENDING,
            format!(
                "user {ANON} is registering as {as_user} already: finish that registration (POST /v1/users/me/register with username {as_user})"
            ),
        )
    }

    fn complete(as_user: &str) -> UserCommand {
        UserCommand::CompleteRegistration {
            registered_as: name(as_user),
        }
    }

    fn registration_required() -> DomainError {
        DomainError::forbidden(
            REGISTRATION_REQUIRED,
            format!(
                "user {ANON} is anonymous: it must register first (POST /v1/users/me/register)"
            ),
        )
    }

    #[test]
    fn creates_an_anonymous_user_with_no_password_and_no_email() {
        given::<User>(&[])
            .when(create_anonymous(ANON))
            .then(vec![anonymous_created()]);
        let user = given::<User>(&[anonymous_created()]).state().clone();
        assert!(user.active && user.anonymous && !user.is_admin());
        assert_eq!((user.password_hash, user.email), (None, None));
    }

    #[test]
    fn an_anonymous_name_drawn_twice_or_a_registered_name_is_refused() {
        given::<User>(&[anonymous_created()])
            .when(create_anonymous(ANON))
            .refused(DomainError::conflict(
                "user_exists",
                format!("user {ANON} already exists"),
            ));
        given::<User>(&[])
            .when(create_anonymous("ann"))
            .refused(DomainError::invalid(
                "username",
                "an anonymous user's name is anon- and 16 lowercase hex digits",
            ));
    }

    #[test]
    fn a_person_may_not_register_an_anonymous_or_reserved_name() {
        given::<User>(&[])
            .when(register(ANON, None))
            .refused(DomainError::invalid(
                "username",
                "may not start with \"anon-\": such names are anonymous users'",
            ));
        for reserved in ["me", "anonymous"] {
            given::<User>(&[])
                .when(register(reserved, None))
                .refused(DomainError::invalid(
                    "username",
                    format!("{reserved:?} is reserved: choose another name"),
                ));
        }
    }

    #[test]
    fn a_github_users_name_registers_only_from_no_anonymous_user() {
        given::<User>(&[])
            .when(register("github:ann", None))
            .then(vec![registered("github:ann", None, false)]);
        let from_anonymous = UserCommand::Register {
            username: name("github:ann"),
            email: None,
            admin: false,
            password_hash: hash(),
            registered_from: Some(name(ANON)),
        };
        assert!(matches!(
            given::<User>(&[]).state().handle(from_anonymous),
            Err(DomainError::Invalid {
                field: "username",
                ..
            })
        ));
    }

    #[test]
    fn a_github_user_has_no_password_to_set_change_or_reset() {
        // Even one holding an email (an admin set it) and a reset token (from before).
        let past = [
            UserEvent::UserRegistered {
                username: name("github:ann"),
                email: Some(email("ann@example.org")),
                admin: false,
                password_hash: hash(),
                registered_from: None,
            },
            UserEvent::PasswordResetRequested {
                username: name("github:ann"),
                digest: digest("a"),
                expires_at: at(3600),
                requested_at: Some(at(0)),
            },
        ];
        let refusal = DomainError::forbidden(
            Username::GITHUB_USER,
            "user github:ann signs in through GitHub only: it has no password to set, change or reset",
        );
        for command in [
            UserCommand::ChangePassword {
                password_hash: hash(),
            },
            UserCommand::Update {
                email: EmailChange::Keep,
                admin: None,
                password_hash: Some(hash()),
                admin_count: 1,
            },
            request_reset_at("b", 120),
            reset("a", 60),
        ] {
            given::<User>(&past).when(command).refused(refusal.clone());
        }
        // What is no password still changes.
        given::<User>(&past)
            .when(update_email(EmailChange::Clear))
            .then(vec![UserEvent::UserUpdated {
                username: name("github:ann"),
                email: None,
                email_cleared: true,
                admin: None,
            }]);
    }

    #[test]
    fn a_github_user_is_never_made_an_admin() {
        let past = [registered("github:ann", Some("ann@example.org"), false)];
        let refusal = DomainError::forbidden(
            Username::GITHUB_USER,
            "user github:ann is a GitHub user: its rights come from GitHub's lists, it cannot be an admin",
        );
        // Alone or with another change, which is then not made either.
        for email in [EmailChange::Keep, set_email("new@example.org")] {
            given::<User>(&past)
                .when(UserCommand::Update {
                    email,
                    admin: Some(true),
                    password_hash: None,
                    admin_count: 2,
                })
                .refused(refusal.clone());
        }
        // Nor registered as one.
        given::<User>(&[])
            .when(UserCommand::Register {
                username: name("github:ann"),
                email: None,
                admin: true,
                password_hash: hash(),
                registered_from: None,
            })
            .refused(refusal);
        // `admin: false` stays fine: nothing to write for a user who is no admin…
        given::<User>(&past)
            .when(UserCommand::Update {
                email: EmailChange::Keep,
                admin: Some(false),
                password_hash: None,
                admin_count: 1,
            })
            .then_nothing();
        given::<User>(&past)
            .when(UserCommand::Update {
                email: set_email("new@example.org"),
                admin: Some(false),
                password_hash: None,
                admin_count: 1,
            })
            .then(vec![updated(
                "github:ann",
                Some("new@example.org"),
                false,
                None,
            )]);
        // …and a GitHub user made an admin before this was refused is demoted.
        given::<User>(&[registered("github:ann", None, true)])
            .when(UserCommand::Update {
                email: EmailChange::Keep,
                admin: Some(false),
                password_hash: None,
                admin_count: 2,
            })
            .then(vec![updated("github:ann", None, false, Some(false))]);
    }

    #[test]
    fn an_anonymous_user_may_not_have_a_password_an_email_keys_or_admin() {
        let past = [anonymous_created()];
        given::<User>(&past)
            .when(UserCommand::ChangePassword {
                password_hash: hash(),
            })
            .refused(registration_required());
        given::<User>(&past)
            .when(update_email(set_email("a@example.org")))
            .refused(registration_required());
        given::<User>(&past)
            .when(UserCommand::Update {
                email: EmailChange::Keep,
                admin: Some(true),
                password_hash: None,
                admin_count: 1,
            })
            .refused(registration_required());
        given::<User>(&past)
            .when(add_key("laptop", ED25519))
            .refused(registration_required());
        // It may be removed.
        given::<User>(&past)
            .when(UserCommand::Remove { admin_count: 0 })
            .then(vec![removed(ANON)]);
    }

    #[test]
    fn a_user_registered_from_an_anonymous_one_records_it() {
        given::<User>(&[])
            .when(register_from_anon("ann"))
            .then(vec![registered_from_anon("ann")]);
        let user = given::<User>(&[registered_from_anon("ann")])
            .state()
            .clone();
        assert_eq!(user.registered_from, Some(name(ANON)));
        assert!(!user.anonymous);
    }

    #[test]
    fn the_same_anonymous_user_registering_again_continues_with_the_new_password() {
        // Given ann registered from ANON (then a crash, say), when ANON registers as ann
        // again, then only the password is set: the registration goes on.
        given::<User>(&[registered_from_anon("ann")])
            .when(register_from_anon("ann"))
            .then(vec![UserEvent::PasswordChanged {
                username: name("ann"),
                password_hash: hash(),
            }]);
        // Anyone else registering the name is refused as ever.
        let taken = DomainError::conflict("user_exists", "user ann already exists");
        given::<User>(&[registered_from_anon("ann")])
            .when(register("ann", None))
            .refused(taken.clone());
        let other = UserCommand::Register {
            username: name("ann"),
            email: None,
            admin: false,
            password_hash: hash(),
            registered_from: Some(name("anon-ffffffffffffffff")),
        };
        given::<User>(&[registered_from_anon("ann")])
            .when(other)
            .refused(taken.clone());
        // Nor does an anonymous user take over a user registered otherwise.
        given::<User>(&[registered("ann", None, false)])
            .when(register_from_anon("ann"))
            .refused(taken);
    }

    #[test]
    fn a_registration_claims_its_name_on_the_anonymous_stream_first() {
        given::<User>(&[anonymous_created()])
            .when(begin("ann"))
            .then(vec![registering("ann")]);
        let pending = [anonymous_created(), registering("ann")];
        assert_eq!(
            given::<User>(&pending).state().registering_as,
            Some(name("ann"))
        );
        // The same name again continues; another is refused, naming the one to finish with.
        given::<User>(&pending).when(begin("ann")).then_nothing();
        given::<User>(&pending)
            .when(begin("bob"))
            .refused(pending_as("ann"));
        given::<User>(&pending)
            .when(complete("bob"))
            .refused(pending_as("ann"));
        given::<User>(&pending)
            .when(complete("ann"))
            .then(vec![anonymous_registered("ann")]);
        // Nothing completes that did not begin.
        given::<User>(&[anonymous_created()])
            .when(complete("ann"))
            .refused(DomainError::conflict(
                "registration_not_begun",
                format!("user {ANON} is not registering as ann"),
            ));
    }

    #[test]
    fn an_abandoned_registration_frees_the_anonymous_user_to_choose_another_name() {
        let pending = [anonymous_created(), registering("ann")];
        // Only the registration pending is abandoned.
        given::<User>(&pending).when(abandon("bob")).then_nothing();
        given::<User>(&pending)
            .when(abandon("ann"))
            .then(vec![abandoned("ann")]);
        let after = [anonymous_created(), registering("ann"), abandoned("ann")];
        assert_eq!(given::<User>(&after).state().registering_as, None);
        given::<User>(&after).when(abandon("ann")).then_nothing();
        given::<User>(&after)
            .when(begin("bob"))
            .then(vec![registering("bob")]);
    }

    #[test]
    fn only_an_anonymous_user_begins_a_registration_and_as_a_name_a_person_may_take() {
        given::<User>(&[registered("ann", None, false)])
            .when(begin("bob"))
            .refused(DomainError::forbidden(
                ALREADY_REGISTERED,
                "you are already registered (as ann)",
            ));
        given::<User>(&[])
            .when(begin("bob"))
            .refused(no_such_user());
        given::<User>(&[anonymous_created()])
            .when(begin("me"))
            .refused(DomainError::invalid(
                "username",
                "\"me\" is reserved: choose another name",
            ));
    }

    #[test]
    fn an_anonymous_user_that_registered_is_done_and_takes_no_more_commands() {
        let past = [anonymous_created(), registering("ann")];
        given::<User>(&past)
            .when(complete("ann"))
            .then(vec![anonymous_registered("ann")]);
        let after = [
            anonymous_created(),
            registering("ann"),
            anonymous_registered("ann"),
        ];
        let user = given::<User>(&after).state().clone();
        assert!(!user.active && user.exists());
        assert_eq!(user.registered_as, Some(name("ann")));
        assert_eq!(user.registering_as, None);
        // Done once: again is nothing; as another name, or anything else, it is no more.
        given::<User>(&after).when(complete("ann")).then_nothing();
        given::<User>(&after)
            .when(complete("bob"))
            .refused(no_such_user());
        given::<User>(&after)
            .when(UserCommand::Remove { admin_count: 0 })
            .refused(no_such_user());
        given::<User>(&after)
            .when(begin("bob"))
            .refused(no_such_user());
        given::<User>(&after)
            .when(create_anonymous(ANON))
            .refused(DomainError::conflict(
                "user_exists",
                format!("user {ANON} already exists"),
            ));
    }

    #[test]
    fn a_registered_user_cannot_register_again() {
        given::<User>(&[registered("ann", None, false)])
            .when(complete("bob"))
            .refused(DomainError::forbidden(
                ALREADY_REGISTERED,
                "you are already registered (as ann)",
            ));
        given::<User>(&[])
            .when(complete("bob"))
            .refused(no_such_user());
    }

    #[test]
    fn anonymous_events_round_trip_and_old_registrations_read_as_not_from_one() {
        for event in [
            anonymous_created(),
            registering("ann"),
            abandoned("ann"),
            anonymous_registered("ann"),
            registered_from_anon("ann"),
        ] {
            let (event_type, data) = encode(&event).unwrap();
            assert_eq!(decode::<UserEvent>(&event_type, &data).unwrap(), event);
        }
        assert_eq!(
            encode(&anonymous_registered("ann")).unwrap(),
            (
                "AnonymousUserRegistered".to_string(),
                serde_json::json!({"username": ANON, "registered_as": "ann"})
            )
        );
        assert_eq!(
            encode(&registering("ann")).unwrap(),
            (
                "AnonymousUserRegistering".to_string(),
                serde_json::json!({"username": ANON, "registering_as": "ann"})
            )
        );
        // A registration stored before anonymous users: no `registered_from`, and none written.
        let old = serde_json::json!({"username": "ann", "email": null, "admin": false,
                                     "password_hash": hash().0});
        let event = decode::<UserEvent>("UserRegistered", &old).unwrap();
        assert_eq!(event, registered("ann", None, false));
        assert_eq!(encode(&event).unwrap().1, old);
    }
}
