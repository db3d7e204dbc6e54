//! The user aggregate, stream `user-<username>`.
//!
//! Invariants: a name is registered once, without regard to case (a removed user's name may be
//! registered again, and the old user's tokens stay revoked); an email belongs to one user; the
//! last admin can be neither removed nor demoted. Uniqueness of names and emails and the admin
//! count span users (`ANN` and `ann` are different streams), so the command carries those
//! facts, read by `commands` under the identity lock.

use super::values::{Email, PasswordHash, Username};
use crate::aggregate::{Aggregate, DomainEvent};
use crate::error::DomainError;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event_type", content = "data")]
pub enum UserEvent {
    UserRegistered {
        username: Username,
        email: Option<Email>,
        admin: bool,
        password_hash: PasswordHash,
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
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl DomainEvent for UserEvent {
    fn event_type(&self) -> &'static str {
        match self {
            UserEvent::UserRegistered { .. } => "UserRegistered",
            UserEvent::UserUpdated { .. } => "UserUpdated",
            UserEvent::PasswordChanged { .. } => "PasswordChanged",
            UserEvent::UserRemoved { .. } => "UserRemoved",
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
    Register {
        username: Username,
        email: Option<Email>,
        admin: bool,
        password_hash: PasswordHash,
        email_owner: Option<Username>,
        /// The existing user whose name equals `username` without regard to case, if any.
        name_holder: Option<Username>,
    },
    Update {
        email: EmailChange,
        admin: Option<bool>,
        password_hash: Option<PasswordHash>,
        email_owner: Option<Username>,
        admin_count: usize,
    },
    ChangePassword {
        password_hash: PasswordHash,
    },
    Remove {
        admin_count: usize,
    },
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
    fn email_update(
        &self,
        change: EmailChange,
        owner: &Option<Username>,
        me: &Username,
    ) -> Result<(Option<Email>, bool), DomainError> {
        match change {
            EmailChange::Keep => Ok((None, false)),
            EmailChange::Set(email) if self.email.as_ref() == Some(&email) => Ok((None, false)),
            EmailChange::Set(email) => {
                email_taken(&email, owner, me)?;
                Ok((Some(email), false))
            }
            EmailChange::Clear => Ok((None, self.email.is_some())),
        }
    }
}

fn email_taken(email: &Email, owner: &Option<Username>, me: &Username) -> Result<(), DomainError> {
    match owner {
        Some(other) if other != me => Err(DomainError::conflict(
            "email_taken",
            format!("the email {} belongs to another user", email.as_str()),
        )),
        _ => Ok(()),
    }
}

/// Refuses a name another user holds in another case (`ANN` beside `ann`). The same name in the
/// same case is this stream's own state, checked by the caller.
fn name_taken(username: &Username, holder: &Option<Username>) -> Result<(), DomainError> {
    match holder {
        Some(other) if other.same_name_as(username) => Err(DomainError::conflict(
            "user_exists",
            format!("user {other} already exists (names are compared without regard to case)"),
        )),
        _ => Ok(()),
    }
}

fn last_admin() -> DomainError {
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
                email_owner,
                name_holder,
            } => {
                if self.active {
                    return Err(DomainError::conflict(
                        "user_exists",
                        format!("user {username} already exists"),
                    ));
                }
                name_taken(&username, &name_holder)?;
                if let Some(email) = &email {
                    email_taken(email, &email_owner, &username)?;
                }
                Ok(vec![UserEvent::UserRegistered {
                    username,
                    email,
                    admin,
                    password_hash,
                }])
            }
            UserCommand::Update {
                email,
                admin,
                password_hash,
                email_owner,
                admin_count,
            } => {
                let name = self.active_name()?.clone();
                let (email, email_cleared) = self.email_update(email, &email_owner, &name)?;
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
                let name = self.active_name()?.clone();
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
        }
    }

    fn apply(&mut self, event: &UserEvent) {
        match event {
            UserEvent::UserRegistered {
                username,
                email,
                admin,
                password_hash,
            } => {
                *self = User {
                    username: Some(username.clone()),
                    email: email.clone(),
                    admin: *admin,
                    password_hash: Some(password_hash.clone()),
                    active: true,
                    ever_registered: true,
                };
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
            }
            UserEvent::UserRemoved { .. } => {
                self.active = false;
                self.admin = false;
                self.email = None;
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

    fn name(n: &str) -> Username {
        Username::parse(n).unwrap()
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
        }
    }

    /// Given these events, when this command: the events or the error.
    fn given(events: &[UserEvent], command: UserCommand) -> Result<Vec<UserEvent>, DomainError> {
        let mut user = User::default();
        events.iter().for_each(|e| user.apply(e));
        user.handle(command)
    }

    fn register(username: &str, email: Option<&str>, email_owner: Option<&str>) -> UserCommand {
        UserCommand::Register {
            username: name(username),
            email: email.map(|e| Email::parse(e).unwrap()),
            admin: false,
            password_hash: hash(),
            email_owner: email_owner.map(name),
            name_holder: None,
        }
    }

    fn set_email(email: &str) -> EmailChange {
        EmailChange::Set(Email::parse(email).unwrap())
    }

    /// An update of the email alone, by an admin among several.
    fn update_email(email: EmailChange, email_owner: Option<&str>) -> UserCommand {
        UserCommand::Update {
            email,
            admin: None,
            password_hash: None,
            email_owner: email_owner.map(name),
            admin_count: 2,
        }
    }

    /// The user after these events.
    fn folded(events: &[UserEvent]) -> User {
        let mut user = User::default();
        events.iter().for_each(|e| user.apply(e));
        user
    }

    fn code(result: Result<Vec<UserEvent>, DomainError>) -> &'static str {
        match result {
            Err(DomainError::Conflict { code, .. }) => code,
            Err(DomainError::NotFound(_)) => "not_found",
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn registers_a_new_user() {
        let events = given(&[], register("ann", Some("ann@example.org"), None)).unwrap();
        assert_eq!(
            events,
            vec![registered("ann", Some("ann@example.org"), false)]
        );
    }

    #[test]
    fn refuses_a_taken_username() {
        let result = given(
            &[registered("ann", None, false)],
            register("ann", None, None),
        );
        assert_eq!(code(result), "user_exists");
    }

    #[test]
    fn refuses_a_name_that_differs_only_in_case_from_a_users() {
        // Given `ann` registered (stream user-ann), the stream user-ANN is empty: the holder of
        // the name comes with the command.
        let when = |holder: &str| UserCommand::Register {
            username: name("ANN"),
            email: None,
            admin: false,
            password_hash: hash(),
            email_owner: None,
            name_holder: Some(name(holder)),
        };
        assert_eq!(code(given(&[], when("ann"))), "user_exists");
        assert_eq!(code(given(&[], when("Ann"))), "user_exists");
        // A holder of another name (which the caller should not pass) does not block it.
        assert!(given(&[], when("bob")).is_ok());
        assert!(given(&[], register("ANN", None, None)).is_ok());
    }

    #[test]
    fn a_removed_users_name_can_be_registered_again() {
        let past = [
            registered("ann", None, false),
            UserEvent::UserRemoved {
                username: name("ann"),
            },
        ];
        assert!(given(&past, register("ann", None, None)).is_ok());
    }

    #[test]
    fn refuses_an_email_another_user_holds() {
        let result = given(&[], register("ann", Some("x@example.org"), Some("bob")));
        assert_eq!(code(result), "email_taken");
        let update = UserCommand::Update {
            email: set_email("x@example.org"),
            admin: None,
            password_hash: None,
            email_owner: Some(name("bob")),
            admin_count: 1,
        };
        assert_eq!(
            code(given(&[registered("ann", None, false)], update)),
            "email_taken"
        );
    }

    #[test]
    fn refuses_to_remove_the_last_admin() {
        let past = [registered("root", None, true)];
        assert_eq!(
            code(given(&past, UserCommand::Remove { admin_count: 1 })),
            "last_admin"
        );
        assert!(given(&past, UserCommand::Remove { admin_count: 2 }).is_ok());
    }

    #[test]
    fn refuses_to_demote_the_last_admin() {
        let past = [registered("root", None, true)];
        let demote = |admin_count| UserCommand::Update {
            email: EmailChange::Keep,
            admin: Some(false),
            password_hash: None,
            email_owner: None,
            admin_count,
        };
        assert_eq!(code(given(&past, demote(1))), "last_admin");
        assert_eq!(
            given(&past, demote(2)).unwrap(),
            vec![UserEvent::UserUpdated {
                username: name("root"),
                email: None,
                email_cleared: false,
                admin: Some(false)
            }]
        );
    }

    #[test]
    fn an_update_that_changes_nothing_writes_nothing() {
        let past = [registered("ann", Some("a@example.org"), false)];
        let same = UserCommand::Update {
            email: set_email("A@example.org"),
            admin: Some(false),
            password_hash: None,
            email_owner: Some(name("ann")),
            admin_count: 1,
        };
        assert_eq!(given(&past, same).unwrap(), vec![]);
    }

    #[test]
    fn clearing_the_email_removes_it_and_keeping_it_changes_nothing() {
        let past = [registered("ann", Some("ann@example.org"), false)];
        let cleared = given(&past, update_email(EmailChange::Clear, None)).unwrap();
        assert_eq!(
            cleared,
            vec![UserEvent::UserUpdated {
                username: name("ann"),
                email: None,
                email_cleared: true,
                admin: None
            }]
        );
        let after: Vec<UserEvent> = past.iter().cloned().chain(cleared).collect();
        assert_eq!(folded(&after).email, None);
        // Cleared already, or left alone: nothing to write.
        assert_eq!(
            given(&after, update_email(EmailChange::Clear, None)).unwrap(),
            vec![]
        );
        assert_eq!(
            given(&past, update_email(EmailChange::Keep, None)).unwrap(),
            vec![]
        );
        // A new address after a clear is set again.
        let set = given(&after, update_email(set_email("new@example.org"), None)).unwrap();
        let again: Vec<UserEvent> = after.iter().cloned().chain(set).collect();
        assert_eq!(
            folded(&again).email,
            Some(Email::parse("new@example.org").unwrap())
        );
    }

    #[test]
    fn refuses_commands_to_unknown_or_removed_users() {
        let removed = [
            registered("ann", None, false),
            UserEvent::UserRemoved {
                username: name("ann"),
            },
        ];
        assert_eq!(
            code(given(&[], UserCommand::Remove { admin_count: 5 })),
            "not_found"
        );
        assert_eq!(
            code(given(&removed, UserCommand::Remove { admin_count: 5 })),
            "not_found"
        );
        let change = UserCommand::ChangePassword {
            password_hash: hash(),
        };
        assert_eq!(code(given(&removed, change)), "not_found");
    }

    #[test]
    fn events_round_trip_through_their_stored_form() {
        let event = UserEvent::UserUpdated {
            username: name("ann"),
            email: None,
            email_cleared: false,
            admin: Some(true),
        };
        let (event_type, data) = encode(&event).unwrap();
        assert_eq!(event_type, "UserUpdated");
        assert_eq!(data, serde_json::json!({"username": "ann", "admin": true}));
        assert_eq!(decode::<UserEvent>(&event_type, &data).unwrap(), event);
        assert!(decode::<UserEvent>("TeamCreated", &data).is_err());
    }

    #[test]
    fn a_cleared_email_is_stored_as_a_flag_of_its_own() {
        let event = UserEvent::UserUpdated {
            username: name("ann"),
            email: None,
            email_cleared: true,
            admin: None,
        };
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
        let email = decode::<UserEvent>("UserUpdated", &old_email).unwrap();
        let admin = decode::<UserEvent>("UserUpdated", &old_admin).unwrap();
        assert_eq!(
            email,
            UserEvent::UserUpdated {
                username: name("ann"),
                email: Some(Email::parse("new@example.org").unwrap()),
                email_cleared: false,
                admin: None,
            }
        );
        assert_eq!(
            admin,
            UserEvent::UserUpdated {
                username: name("ann"),
                email: None,
                email_cleared: false,
                admin: Some(true),
            }
        );
        let past = [
            registered("ann", Some("ann@example.org"), false),
            email,
            admin,
        ];
        let user = folded(&past);
        assert_eq!(
            (user.email, user.admin),
            (Some(Email::parse("new@example.org").unwrap()), true)
        );
    }
}
