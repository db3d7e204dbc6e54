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
    fn given(events: &[TeamEvent], command: TeamCommand) -> Result<Vec<TeamEvent>, DomainError> {
        let mut t = Team::default();
        events.iter().for_each(|e| t.apply(e));
        t.handle(command)
    }

    #[test]
    fn the_creator_is_a_member() {
        let mut t = Team::default();
        t.apply(&created());
        assert!(t.members.contains(&user("ann")));
    }

    #[test]
    fn refuses_a_second_team_of_the_same_name() {
        let again = TeamCommand::Create {
            name: team("ops"),
            creator: user("bob"),
        };
        assert!(matches!(
            given(&[created()], again),
            Err(DomainError::Conflict {
                code: "team_exists",
                ..
            })
        ));
    }

    #[test]
    fn refuses_to_add_an_unknown_user_and_ignores_a_member_added_twice() {
        let unknown = TeamCommand::AddMember {
            username: user("zed"),
            user_exists: false,
        };
        assert!(matches!(
            given(&[created()], unknown),
            Err(DomainError::NotFound(_))
        ));
        let twice = TeamCommand::AddMember {
            username: user("ann"),
            user_exists: true,
        };
        assert_eq!(given(&[created()], twice).unwrap(), vec![]);
    }

    #[test]
    fn refuses_to_remove_a_non_member() {
        let result = given(
            &[created()],
            TeamCommand::RemoveMember {
                username: user("bob"),
            },
        );
        assert!(matches!(result, Err(DomainError::NotFound(_))));
    }

    #[test]
    fn a_removed_team_accepts_nothing_but_creation() {
        let past = [created(), TeamEvent::TeamRemoved { name: team("ops") }];
        assert!(matches!(
            given(&past, TeamCommand::Remove),
            Err(DomainError::NotFound(_))
        ));
        let add = TeamCommand::AddMember {
            username: user("bob"),
            user_exists: true,
        };
        assert!(matches!(given(&past, add), Err(DomainError::NotFound(_))));
        let create = TeamCommand::Create {
            name: team("ops"),
            creator: user("bob"),
        };
        assert!(given(&past, create).is_ok());
    }
}
