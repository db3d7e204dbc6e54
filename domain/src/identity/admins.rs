//! The admin roster, stream `identity-admins`: whom a step-down can count on, so the last admin
//! can be neither removed nor demoted, without a lock across nodes and without a read model.
//!
//! An admin's flag lives in their user stream; the roster adds what spans users. Its candidates
//! are the users who became admins (a user who is no longer one is skipped when counted), and
//! for each the latest *slot* a step-down was claimed for: a demotion or a removal of an admin
//! is appended to their stream only after its claim, and only at the version the claim names.
//! Claims are appended with the roster's exact version, so two step-downs never both count on
//! each other. An admin is counted on if their stream says admin and has passed every slot
//! claimed for them; a claim still pending may land, so its admin is not counted, which is
//! safe: the roster may count too few admins (a crash between two appends), never too many.

use super::user::{last_admin, UserStream};
use super::values::Username;
use crate::aggregate::{Aggregate, DomainEvent};
use crate::error::DomainError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event_type", content = "data")]
pub enum AdminRosterEvent {
    /// The roster begins with the admins the log held then.
    AdminRosterStarted { admins: Vec<Username> },
    /// A user became an admin (their stream says so already).
    AdminJoined { username: Username },
    /// The admin may step down (be demoted or removed) with the event at version `slot` of
    /// their stream, and with no other.
    AdminStepDownClaimed { username: Username, slot: u64 },
}

impl DomainEvent for AdminRosterEvent {
    fn event_type(&self) -> &'static str {
        match self {
            AdminRosterEvent::AdminRosterStarted { .. } => "AdminRosterStarted",
            AdminRosterEvent::AdminJoined { .. } => "AdminJoined",
            AdminRosterEvent::AdminStepDownClaimed { .. } => "AdminStepDownClaimed",
        }
    }
}

#[derive(Clone, Debug)]
pub enum AdminRosterCommand {
    /// Begins the roster with `admins`, unless it has begun.
    Start {
        admins: Vec<Username>,
    },
    Join {
        username: Username,
    },
    /// `username`, an admin whose stream is at `slot - 1`, steps down. `others`: the streams of
    /// the other candidates as they are now.
    StepDown {
        username: Username,
        slot: u64,
        others: Vec<(Username, UserStream)>,
    },
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct AdminRoster {
    pub started: bool,
    /// Each candidate, with the latest slot a step-down was claimed for.
    pub candidates: BTreeMap<Username, Option<u64>>,
}

impl AdminRoster {
    /// Whether `username`, whose stream is `stream`, is an admin that can be counted on.
    pub fn counts(&self, username: &Username, stream: &UserStream) -> bool {
        let Some(claimed) = self.candidates.get(username) else {
            return false;
        };
        stream.user.is_admin()
            && claimed.is_none_or(|slot| stream.version.is_some_and(|v| v >= slot))
    }

    /// How many of `others` other than `username` can be counted on.
    pub fn others_counted(&self, username: &Username, others: &[(Username, UserStream)]) -> usize {
        others
            .iter()
            .filter(|(other, stream)| other != username && self.counts(other, stream))
            .count()
    }

    fn require_started(&self) -> Result<(), DomainError> {
        if self.started {
            Ok(())
        } else {
            Err(DomainError::NotFound(
                "the admin roster has not begun".into(),
            ))
        }
    }
}

impl Aggregate for AdminRoster {
    type Command = AdminRosterCommand;
    type Event = AdminRosterEvent;
    const CATEGORY: &'static str = "identity";

    fn handle(&self, command: AdminRosterCommand) -> Result<Vec<AdminRosterEvent>, DomainError> {
        match command {
            AdminRosterCommand::Start { admins } => {
                if self.started {
                    return Ok(vec![]);
                }
                Ok(vec![AdminRosterEvent::AdminRosterStarted { admins }])
            }
            AdminRosterCommand::Join { username } => {
                self.require_started()?;
                if self.candidates.contains_key(&username) {
                    return Ok(vec![]);
                }
                Ok(vec![AdminRosterEvent::AdminJoined { username }])
            }
            AdminRosterCommand::StepDown {
                username,
                slot,
                others,
            } => {
                self.require_started()?;
                if self.others_counted(&username, &others) == 0 {
                    return Err(last_admin());
                }
                Ok(vec![AdminRosterEvent::AdminStepDownClaimed {
                    username,
                    slot,
                }])
            }
        }
    }

    fn apply(&mut self, event: &AdminRosterEvent) {
        match event {
            AdminRosterEvent::AdminRosterStarted { admins } => {
                self.started = true;
                for admin in admins {
                    self.candidates.entry(admin.clone()).or_insert(None);
                }
            }
            AdminRosterEvent::AdminJoined { username } => {
                self.candidates.entry(username.clone()).or_insert(None);
            }
            AdminRosterEvent::AdminStepDownClaimed { username, slot } => {
                // The highest slot: a claim made on an older picture of the stream cannot land
                // (its slot is taken), but it must not hide one that still can.
                let claimed = self.candidates.entry(username.clone()).or_insert(None);
                *claimed = Some(claimed.map_or(*slot, |c| c.max(*slot)));
            }
        }
    }

    fn exists(&self) -> bool {
        self.started
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{PasswordHash, User, UserEvent};
    use crate::testing::given;

    fn name(n: &str) -> Username {
        Username::parse(n).unwrap()
    }

    /// `username`'s stream: registered (an admin or not), then `more` events.
    fn stream(username: &str, admin: bool, more: &[UserEvent]) -> (Username, UserStream) {
        let mut events = vec![UserEvent::UserRegistered {
            username: name(username),
            email: None,
            admin,
            password_hash: PasswordHash("$argon2id$…".into()),
            registered_from: None,
        }];
        events.extend_from_slice(more);
        let mut user = User::default();
        events.iter().for_each(|e| user.apply(e));
        let version = Some(events.len() as u64 - 1);
        (name(username), UserStream { user, version })
    }

    fn password_changed(username: &str) -> UserEvent {
        UserEvent::PasswordChanged {
            username: name(username),
            password_hash: PasswordHash("$argon2id$…".into()),
        }
    }

    fn started(admins: &[&str]) -> AdminRosterEvent {
        AdminRosterEvent::AdminRosterStarted {
            admins: admins.iter().map(|a| name(a)).collect(),
        }
    }

    fn step_down(
        username: &str,
        slot: u64,
        others: Vec<(Username, UserStream)>,
    ) -> AdminRosterCommand {
        AdminRosterCommand::StepDown {
            username: name(username),
            slot,
            others,
        }
    }

    fn claimed(username: &str, slot: u64) -> AdminRosterEvent {
        AdminRosterEvent::AdminStepDownClaimed {
            username: name(username),
            slot,
        }
    }

    #[test]
    fn the_roster_starts_once() {
        given::<AdminRoster>(&[])
            .when(AdminRosterCommand::Start {
                admins: vec![name("root")],
            })
            .then(vec![started(&["root"])]);
        given::<AdminRoster>(&[started(&["root"])])
            .when(AdminRosterCommand::Start { admins: vec![] })
            .then_nothing();
    }

    #[test]
    fn an_admin_steps_down_counting_on_another() {
        given::<AdminRoster>(&[started(&["root", "bob"])])
            .when(step_down("root", 1, vec![stream("bob", true, &[])]))
            .then(vec![claimed("root", 1)]);
    }

    #[test]
    fn refuses_the_step_down_of_the_last_admin_that_can_be_counted_on() {
        let past = [started(&["root", "bob"])];
        // No one else; bob no longer an admin; only root itself.
        for others in [
            vec![],
            vec![stream("bob", false, &[])],
            vec![stream("root", true, &[])],
        ] {
            given::<AdminRoster>(&past)
                .when(step_down("root", 1, others))
                .refused(last_admin());
        }
        // Bob an admin but not on the roster (he became one and his node died before he joined
        // it): too few are counted, never too many.
        given::<AdminRoster>(&[started(&["root"])])
            .when(step_down("root", 1, vec![stream("bob", true, &[])]))
            .refused(last_admin());
    }

    #[test]
    fn two_admins_stepping_down_at_once_cannot_both_count_on_the_other() {
        // Bob's step-down was claimed for his event 1, not appended yet: he may still go.
        let past = [started(&["root", "bob"]), claimed("bob", 1)];
        given::<AdminRoster>(&past)
            .when(step_down("root", 1, vec![stream("bob", true, &[])]))
            .refused(last_admin());
        // Once his stream has passed that slot and he is still an admin (his event 1 was
        // something else), he counts again.
        given::<AdminRoster>(&past)
            .when(step_down(
                "root",
                1,
                vec![stream("bob", true, &[password_changed("bob")])],
            ))
            .then(vec![claimed("root", 1)]);
    }

    #[test]
    fn the_highest_slot_claimed_counts() {
        // A claim made on an older picture of bob's stream does not hide one that may still land.
        let past = [
            started(&["root", "bob"]),
            claimed("bob", 3),
            claimed("bob", 2),
        ];
        let bob_at_2 = stream(
            "bob",
            true,
            &[password_changed("bob"), password_changed("bob")],
        );
        given::<AdminRoster>(&past)
            .when(step_down("root", 1, vec![bob_at_2]))
            .refused(last_admin());
        assert_eq!(
            given::<AdminRoster>(&past).state().candidates[&name("bob")],
            Some(3)
        );
    }

    #[test]
    fn a_new_admin_joins_once_and_only_a_begun_roster() {
        given::<AdminRoster>(&[started(&["root"])])
            .when(AdminRosterCommand::Join {
                username: name("bob"),
            })
            .then(vec![AdminRosterEvent::AdminJoined {
                username: name("bob"),
            }]);
        given::<AdminRoster>(&[started(&["root"])])
            .when(AdminRosterCommand::Join {
                username: name("root"),
            })
            .then_nothing();
        let not_begun = DomainError::NotFound("the admin roster has not begun".into());
        given::<AdminRoster>(&[])
            .when(AdminRosterCommand::Join {
                username: name("bob"),
            })
            .refused(not_begun.clone());
        given::<AdminRoster>(&[])
            .when(step_down("root", 1, vec![stream("bob", true, &[])]))
            .refused(not_begun);
    }
}
