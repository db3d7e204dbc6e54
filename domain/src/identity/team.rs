//! The team aggregate, stream `team-<name>`. Its creator is its first member.

use super::values::{TeamName, Username};
use crate::aggregate::{Aggregate, DomainEvent};
use crate::error::DomainError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event_type", content = "data")]
pub enum TeamEvent {
    TeamCreated { name: TeamName, creator: Username },
    TeamMemberAdded { name: TeamName, username: Username },
    TeamMemberRemoved { name: TeamName, username: Username },
    TeamRemoved { name: TeamName },
}

impl DomainEvent for TeamEvent {
    fn event_type(&self) -> &'static str {
        match self {
            TeamEvent::TeamCreated { .. } => "TeamCreated",
            TeamEvent::TeamMemberAdded { .. } => "TeamMemberAdded",
            TeamEvent::TeamMemberRemoved { .. } => "TeamMemberRemoved",
            TeamEvent::TeamRemoved { .. } => "TeamRemoved",
        }
    }
}

#[derive(Clone, Debug)]
pub enum TeamCommand {
    Create {
        name: TeamName,
        creator: Username,
    },
    /// `user_exists`: whether the user to add is registered, read by the caller.
    AddMember {
        username: Username,
        user_exists: bool,
    },
    RemoveMember {
        username: Username,
    },
    Remove,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Team {
    pub name: Option<TeamName>,
    pub members: BTreeSet<Username>,
    pub active: bool,
}

impl Team {
    fn active_name(&self) -> Result<&TeamName, DomainError> {
        match (&self.name, self.active) {
            (Some(name), true) => Ok(name),
            _ => Err(DomainError::NotFound("no such team".into())),
        }
    }
}

impl Aggregate for Team {
    type Command = TeamCommand;
    type Event = TeamEvent;
    const CATEGORY: &'static str = "team";

    fn handle(&self, command: TeamCommand) -> Result<Vec<TeamEvent>, DomainError> {
        match command {
            TeamCommand::Create { name, creator } => {
                if self.active {
                    return Err(DomainError::conflict(
                        "team_exists",
                        format!("team {name} already exists"),
                    ));
                }
                Ok(vec![TeamEvent::TeamCreated { name, creator }])
            }
            TeamCommand::AddMember {
                username,
                user_exists,
            } => {
                let name = self.active_name()?.clone();
                if !user_exists {
                    return Err(DomainError::NotFound(format!("no user {username}")));
                }
                if self.members.contains(&username) {
                    return Ok(vec![]);
                }
                Ok(vec![TeamEvent::TeamMemberAdded { name, username }])
            }
            TeamCommand::RemoveMember { username } => {
                let name = self.active_name()?.clone();
                if !self.members.contains(&username) {
                    return Err(DomainError::NotFound(format!(
                        "{username} is not a member of team {name}"
                    )));
                }
                Ok(vec![TeamEvent::TeamMemberRemoved { name, username }])
            }
            TeamCommand::Remove => {
                let name = self.active_name()?.clone();
                Ok(vec![TeamEvent::TeamRemoved { name }])
            }
        }
    }

    fn apply(&mut self, event: &TeamEvent) {
        match event {
            TeamEvent::TeamCreated { name, creator } => {
                *self = Team {
                    name: Some(name.clone()),
                    members: [creator.clone()].into(),
                    active: true,
                };
            }
            TeamEvent::TeamMemberAdded { username, .. } => {
                self.members.insert(username.clone());
            }
            TeamEvent::TeamMemberRemoved { username, .. } => {
                self.members.remove(username);
            }
            TeamEvent::TeamRemoved { .. } => {
                self.active = false;
                self.members.clear();
            }
        }
    }

    fn exists(&self) -> bool {
        self.name.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;

    fn team(n: &str) -> TeamName {
        TeamName::parse(n).unwrap()
    }
    fn user(n: &str) -> Username {
        Username::parse(n).unwrap()
    }
    fn created() -> TeamEvent {
        TeamEvent::TeamCreated {
            name: team("ops"),
            creator: user("ann"),
        }
    }
    fn no_such_team() -> DomainError {
        DomainError::NotFound("no such team".into())
    }

    #[test]
    fn the_creator_is_a_member() {
        given::<Team>(&[])
            .when(TeamCommand::Create {
                name: team("ops"),
                creator: user("ann"),
            })
            .then(vec![created()]);
        assert_eq!(
            given::<Team>(&[created()]).state().members,
            [user("ann")].into()
        );
    }

    #[test]
    fn refuses_a_second_team_of_the_same_name() {
        let again = TeamCommand::Create {
            name: team("ops"),
            creator: user("bob"),
        };
        given::<Team>(&[created()])
            .when(again)
            .refused(DomainError::conflict(
                "team_exists",
                "team ops already exists",
            ));
    }

    #[test]
    fn adds_a_member_once_and_refuses_an_unknown_user() {
        let add = |name: &str, user_exists| TeamCommand::AddMember {
            username: user(name),
            user_exists,
        };
        given::<Team>(&[created()])
            .when(add("bob", true))
            .then(vec![TeamEvent::TeamMemberAdded {
                name: team("ops"),
                username: user("bob"),
            }]);
        given::<Team>(&[created()])
            .when(add("zed", false))
            .refused(DomainError::NotFound("no user zed".into()));
        given::<Team>(&[created()])
            .when(add("ann", true))
            .then_nothing();
    }

    #[test]
    fn removes_a_member_and_refuses_to_remove_a_non_member() {
        let remove = |name: &str| TeamCommand::RemoveMember {
            username: user(name),
        };
        given::<Team>(&[created()])
            .when(remove("ann"))
            .then(vec![TeamEvent::TeamMemberRemoved {
                name: team("ops"),
                username: user("ann"),
            }]);
        given::<Team>(&[created()])
            .when(remove("bob"))
            .refused(DomainError::NotFound(
                "bob is not a member of team ops".into(),
            ));
    }

    #[test]
    fn a_removed_team_accepts_nothing_but_creation() {
        let past = [created(), TeamEvent::TeamRemoved { name: team("ops") }];
        given::<Team>(&[created()])
            .when(TeamCommand::Remove)
            .then(vec![past[1].clone()]);
        given::<Team>(&past)
            .when(TeamCommand::Remove)
            .refused(no_such_team());
        given::<Team>(&past)
            .when(TeamCommand::AddMember {
                username: user("bob"),
                user_exists: true,
            })
            .refused(no_such_team());
        given::<Team>(&past)
            .when(TeamCommand::RemoveMember {
                username: user("ann"),
            })
            .refused(no_such_team());
        given::<Team>(&past)
            .when(TeamCommand::Create {
                name: team("ops"),
                creator: user("bob"),
            })
            .then(vec![TeamEvent::TeamCreated {
                name: team("ops"),
                creator: user("bob"),
            }]);
    }
}
