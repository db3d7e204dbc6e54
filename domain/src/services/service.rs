//! The service aggregate, stream `service-<name>`: a service API registered with Bosun (tsuru's
//! service), where it answers, its password (sealed), its teams, its documentation and the
//! instances it counts.
//!
//! Rules it keeps:
//! - A name is one service at a time (409 `service_exists`); a removed service's name may be
//!   registered again, and the new service starts afresh.
//! - A removed (or never registered) service refuses every other command with 404.
//! - It has teams from the start; those it was registered with own it (`owner_teams`) and
//!   cannot be revoked (409 `owner_team`).
//! - Instances are created only for a team it is granted to (403 `team_not_granted`), one per
//!   name (409 `instance_exists`); it is not removed while it counts any (409
//!   `service_has_instances`, counting them: its managers may not see them all).
//! - A new endpoint comes with the password again (400 `password`), so the password stored is
//!   never sent to a host it was not given for.
//!
//! Who may manage it, whether a team exists and the instances' own life are not its: the
//! command handler checks membership, passes the team's existence in, and pairs
//! `ServiceInstanceAdded` / `ServiceInstanceDropped` with the instance's events.

use super::values::{check_doc, Endpoint, InstanceName, ServiceName};
use crate::aggregate::{Aggregate, DomainEvent};
use crate::error::DomainError;
use crate::identity::TeamName;
use crate::sealed::Sealed;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event_type", content = "data")]
pub enum ServiceEvent {
    /// Its `teams` own it. `password` sealed with the data key by the command handler.
    ServiceRegistered {
        name: ServiceName,
        endpoint: Endpoint,
        password: Sealed,
        teams: Vec<TeamName>,
        doc: String,
        at: DateTime<Utc>,
    },
    /// Each `Some` changed (a new password is always a change).
    ServiceUpdated {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint: Option<Endpoint>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<Sealed>,
        at: DateTime<Utc>,
    },
    ServiceDocSet {
        doc: String,
        at: DateTime<Utc>,
    },
    ServiceTeamGranted {
        team: TeamName,
    },
    ServiceTeamRevoked {
        team: TeamName,
    },
    /// An instance of it was requested (beside its `InstanceCreationRequested`).
    ServiceInstanceAdded {
        instance: InstanceName,
    },
    /// An instance of it is gone: its creation failed or it was removed.
    ServiceInstanceDropped {
        instance: InstanceName,
    },
    ServiceRemoved {
        at: DateTime<Utc>,
    },
}

impl DomainEvent for ServiceEvent {
    fn event_type(&self) -> &'static str {
        match self {
            ServiceEvent::ServiceRegistered { .. } => "ServiceRegistered",
            ServiceEvent::ServiceUpdated { .. } => "ServiceUpdated",
            ServiceEvent::ServiceDocSet { .. } => "ServiceDocSet",
            ServiceEvent::ServiceTeamGranted { .. } => "ServiceTeamGranted",
            ServiceEvent::ServiceTeamRevoked { .. } => "ServiceTeamRevoked",
            ServiceEvent::ServiceInstanceAdded { .. } => "ServiceInstanceAdded",
            ServiceEvent::ServiceInstanceDropped { .. } => "ServiceInstanceDropped",
            ServiceEvent::ServiceRemoved { .. } => "ServiceRemoved",
        }
    }
}

#[derive(Clone, Debug)]
pub enum ServiceCommand {
    /// `teams`: registered teams the caller may name (checked by the command handler); at
    /// least one, given twice counts once. `password` sealed by the command handler after
    /// `check_service_password`.
    Register {
        name: ServiceName,
        endpoint: Endpoint,
        password: Sealed,
        teams: Vec<TeamName>,
        doc: String,
        at: DateTime<Utc>,
    },
    /// An endpoint equal to the current one is no change; a password always is; no change at
    /// all is no event. A changed endpoint needs a password (400 `password`).
    Update {
        endpoint: Option<Endpoint>,
        password: Option<Sealed>,
        at: DateTime<Utc>,
    },
    /// The same doc again is no event.
    SetDoc {
        doc: String,
        at: DateTime<Utc>,
    },
    /// `team_exists`: whether the team is registered, read by the command handler.
    GrantTeam {
        team: TeamName,
        team_exists: bool,
    },
    RevokeTeam {
        team: TeamName,
    },
    AddInstance {
        instance: InstanceName,
        team_owner: TeamName,
    },
    /// An instance it does not count is no event.
    DropInstance {
        instance: InstanceName,
    },
    Remove {
        at: DateTime<Utc>,
    },
}

/// A service's state, folded from its stream.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Service {
    name: Option<ServiceName>,
    endpoint: Option<Endpoint>,
    password: Option<Sealed>,
    teams: BTreeSet<TeamName>,
    owner_teams: BTreeSet<TeamName>,
    doc: String,
    instances: BTreeSet<InstanceName>,
    created_at: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
    removed: bool,
}

fn no_such_service() -> DomainError {
    DomainError::NotFound("no such service".into())
}

impl Service {
    /// Its name once registered (also after its removal).
    pub fn name(&self) -> Option<&ServiceName> {
        self.name.as_ref()
    }

    pub fn endpoint(&self) -> Option<&Endpoint> {
        self.endpoint.as_ref()
    }

    /// Its password, sealed with the data key (opened by `commands` to call it).
    pub fn password(&self) -> Option<&Sealed> {
        self.password.as_ref()
    }

    /// The teams whose members see it and create instances of it; `owner_teams` among them.
    pub fn teams(&self) -> &BTreeSet<TeamName> {
        &self.teams
    }

    /// The teams it was registered with: their members manage it.
    pub fn owner_teams(&self) -> &BTreeSet<TeamName> {
        &self.owner_teams
    }

    pub fn doc(&self) -> &str {
        &self.doc
    }

    /// Its instances: requested and not yet gone.
    pub fn instances(&self) -> &BTreeSet<InstanceName> {
        &self.instances
    }

    pub fn created_at(&self) -> Option<DateTime<Utc>> {
        self.created_at
    }

    /// When it was registered or last changed by an event that carries a time.
    pub fn updated_at(&self) -> Option<DateTime<Utc>> {
        self.updated_at
    }

    /// Registered and not removed: it takes commands.
    pub fn is_active(&self) -> bool {
        self.name.is_some() && !self.removed
    }

    /// Its name, if it takes commands; 404 otherwise.
    pub fn active_name(&self) -> Result<&ServiceName, DomainError> {
        match &self.name {
            Some(name) if !self.removed => Ok(name),
            _ => Err(no_such_service()),
        }
    }

    /// Whether instances of it may be created for `team` (it is granted to it).
    pub fn may_use(&self, team: &TeamName) -> bool {
        self.is_active() && self.teams.contains(team)
    }
}

impl Aggregate for Service {
    type Command = ServiceCommand;
    type Event = ServiceEvent;
    const CATEGORY: &'static str = "service";

    fn handle(&self, command: ServiceCommand) -> Result<Vec<ServiceEvent>, DomainError> {
        match command {
            ServiceCommand::Register {
                name,
                endpoint,
                password,
                teams,
                doc,
                at,
            } => {
                if self.is_active() {
                    return Err(DomainError::conflict(
                        "service_exists",
                        format!("service {name} already exists"),
                    ));
                }
                let mut seen = BTreeSet::new();
                let teams: Vec<TeamName> = teams
                    .into_iter()
                    .filter(|team| seen.insert(team.clone()))
                    .collect();
                if teams.is_empty() {
                    return Err(DomainError::invalid("teams", "give at least one team"));
                }
                check_doc(&doc)?;
                Ok(vec![ServiceEvent::ServiceRegistered {
                    name,
                    endpoint,
                    password,
                    teams,
                    doc,
                    at,
                }])
            }
            _ if !self.is_active() => Err(no_such_service()),
            ServiceCommand::Update {
                endpoint,
                password,
                at,
            } => {
                let endpoint = endpoint.filter(|e| self.endpoint.as_ref() != Some(e));
                if endpoint.is_some() && password.is_none() {
                    return Err(DomainError::invalid(
                        "password",
                        "a new endpoint needs the service's password again",
                    ));
                }
                if endpoint.is_none() && password.is_none() {
                    return Ok(vec![]);
                }
                Ok(vec![ServiceEvent::ServiceUpdated {
                    endpoint,
                    password,
                    at,
                }])
            }
            ServiceCommand::SetDoc { doc, at } => {
                check_doc(&doc)?;
                if doc == self.doc {
                    return Ok(vec![]);
                }
                Ok(vec![ServiceEvent::ServiceDocSet { doc, at }])
            }
            ServiceCommand::GrantTeam { team, team_exists } => {
                if !team_exists {
                    return Err(DomainError::NotFound(format!("no team {team}")));
                }
                if self.teams.contains(&team) {
                    return Ok(vec![]);
                }
                Ok(vec![ServiceEvent::ServiceTeamGranted { team }])
            }
            ServiceCommand::RevokeTeam { team } => {
                if !self.teams.contains(&team) {
                    return Err(DomainError::NotFound(format!(
                        "team {team} has no access to this service"
                    )));
                }
                if self.owner_teams.contains(&team) {
                    return Err(DomainError::conflict(
                        "owner_team",
                        format!("team {team} owns the service and cannot be revoked"),
                    ));
                }
                Ok(vec![ServiceEvent::ServiceTeamRevoked { team }])
            }
            ServiceCommand::AddInstance {
                instance,
                team_owner,
            } => {
                if !self.teams.contains(&team_owner) {
                    return Err(DomainError::forbidden(
                        "team_not_granted",
                        format!("team {team_owner} has no access to this service"),
                    ));
                }
                if self.instances.contains(&instance) {
                    return Err(DomainError::conflict(
                        "instance_exists",
                        format!("instance {instance} already exists"),
                    ));
                }
                Ok(vec![ServiceEvent::ServiceInstanceAdded { instance }])
            }
            ServiceCommand::DropInstance { instance } => {
                if !self.instances.contains(&instance) {
                    return Ok(vec![]);
                }
                Ok(vec![ServiceEvent::ServiceInstanceDropped { instance }])
            }
            ServiceCommand::Remove { at } => {
                // Counted, not named: its managers may not see every instance.
                match self.instances.len() {
                    0 => {}
                    1 => {
                        return Err(DomainError::conflict(
                            "service_has_instances",
                            "the service has 1 instance: remove it first",
                        ))
                    }
                    n => {
                        return Err(DomainError::conflict(
                            "service_has_instances",
                            format!("the service has {n} instances: remove them first"),
                        ))
                    }
                }
                Ok(vec![ServiceEvent::ServiceRemoved { at }])
            }
        }
    }

    fn apply(&mut self, event: &ServiceEvent) {
        match event {
            ServiceEvent::ServiceRegistered {
                name,
                endpoint,
                password,
                teams,
                doc,
                at,
            } => {
                let teams: BTreeSet<TeamName> = teams.iter().cloned().collect();
                *self = Service {
                    name: Some(name.clone()),
                    endpoint: Some(endpoint.clone()),
                    password: Some(password.clone()),
                    owner_teams: teams.clone(),
                    teams,
                    doc: doc.clone(),
                    created_at: Some(*at),
                    updated_at: Some(*at),
                    ..Service::default()
                };
            }
            ServiceEvent::ServiceUpdated {
                endpoint,
                password,
                at,
            } => {
                if let Some(endpoint) = endpoint {
                    self.endpoint = Some(endpoint.clone());
                }
                if let Some(password) = password {
                    self.password = Some(password.clone());
                }
                self.updated_at = Some(*at);
            }
            ServiceEvent::ServiceDocSet { doc, at } => {
                self.doc = doc.clone();
                self.updated_at = Some(*at);
            }
            ServiceEvent::ServiceTeamGranted { team } => {
                self.teams.insert(team.clone());
            }
            ServiceEvent::ServiceTeamRevoked { team } => {
                self.teams.remove(team);
            }
            ServiceEvent::ServiceInstanceAdded { instance } => {
                self.instances.insert(instance.clone());
            }
            ServiceEvent::ServiceInstanceDropped { instance } => {
                self.instances.remove(instance);
            }
            ServiceEvent::ServiceRemoved { at } => {
                self.removed = true;
                self.updated_at = Some(*at);
            }
        }
    }

    fn exists(&self) -> bool {
        self.name.is_some()
    }
}
