//! Registering a service and managing it: its endpoint and password, its documentation, the
//! teams that may use it, its removal.
//!
//! - Register: an admin, or a member of every team named (403); each team must exist (400
//!   `teams` naming it); the endpoint is https, or http to one of `allow_insecure_hosts` (400
//!   `endpoint`); the password (1 to 256 characters) is sealed with `service-<name>/password`
//!   before it enters `ServiceRegistered`, and never shown again.
//! - Update, doc, grant, revoke, remove: an admin or a member of an owner team (403; 404 for a
//!   service not seen). A granted team must exist (404); an owner team cannot be revoked and a
//!   service with instances cannot be removed (409, the domain's rules).
//!
//! The answers are built from the service's state as written; its instances are those the
//! caller sees, read from their streams.
//!
//! Does not own: who reads services (`queries/services.rs`), the rules of one service (domain).

use super::{no_service, of_teams, password_context, require_manages_service, ServiceView};
use crate::actor::{Actor, Origin};
use crate::apps::now;
use crate::error::CommandError;
use crate::execute::{Commands, Written};
use bosun_domain::identity::{Team, TeamName};
use bosun_domain::services::{
    check_doc, check_service_password, instance_stream_id, Endpoint, Instance, Service,
    ServiceCommand, ServiceName,
};
use bosun_domain::{Aggregate, DomainError};
use bosun_eventstore::EventStore;
use secrecy::{ExposeSecret, SecretString};

/// What `POST /v1/services` asks for. Its `Debug` never shows the password.
pub struct RegisterService {
    pub name: String,
    pub endpoint: String,
    pub password: SecretString,
    pub teams: Vec<String>,
    pub doc: Option<String>,
}

impl std::fmt::Debug for RegisterService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisterService")
            .field("name", &self.name)
            .field("endpoint", &self.endpoint)
            .field("password", &"…")
            .field("teams", &self.teams)
            .field("doc", &self.doc.as_ref().map(|d| d.len()))
            .finish()
    }
}

/// What `PATCH /v1/services/{service}` asks for: each `Some` changes. Its `Debug` never shows
/// the password.
#[derive(Default)]
pub struct UpdateService {
    pub endpoint: Option<String>,
    pub password: Option<SecretString>,
}

impl std::fmt::Debug for UpdateService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdateService")
            .field("endpoint", &self.endpoint)
            .field("password", &self.password.as_ref().map(|_| "…"))
            .finish()
    }
}

/// A team named in a service's `teams`: 400 `teams` for a name no team can have.
fn team_in_teams(team: &str) -> Result<TeamName, CommandError> {
    TeamName::parse(team).map_err(|e| match e {
        DomainError::Invalid { message, .. } => {
            DomainError::invalid("teams", format!("{team}: {message}")).into()
        }
        other => other.into(),
    })
}

/// A team named in a path: a name no team can have is no team (404).
fn team_in_path(team: &str) -> Result<TeamName, CommandError> {
    TeamName::parse(team).map_err(|_| DomainError::NotFound(format!("no team {team}")).into())
}

impl<S: EventStore> Commands<S> {
    /// Registers a service (201 with it): see the [module](self).
    #[tracing::instrument(skip_all, fields(actor = actor.name(), service = input.name.as_str()))]
    pub async fn register_service(
        &self,
        actor: &Actor,
        origin: &Origin,
        input: RegisterService,
        insecure_hosts: &[String],
    ) -> Result<(ServiceView, Written), CommandError> {
        actor.require_writer()?;
        let name = ServiceName::parse(&input.name)?;
        let teams = input
            .teams
            .iter()
            .map(|t| team_in_teams(t))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(team) = teams.iter().find(|t| !of_teams(actor, [*t])) {
            return Err(CommandError::Forbidden(format!(
                "only a member of every team named ({team} is not yours) or an admin may \
                 register a service"
            )));
        }
        for team in &teams {
            let (state, _) = self.load::<Team>(team.as_str()).await?;
            if !state.active {
                return Err(DomainError::invalid("teams", format!("no team {team}")).into());
            }
        }
        let endpoint = Endpoint::parse(&input.endpoint, insecure_hosts)?;
        check_service_password(input.password.expose_secret())?;
        let doc = input.doc.unwrap_or_default();
        check_doc(&doc)?;
        let password = self.sealer()?.seal(
            &password_context(name.as_str()),
            input.password.expose_secret(),
        )?;
        let at = now();
        let (state, written) = self
            .execute_batch(
                self.hold::<Service>(name.as_str()).await?,
                actor,
                origin,
                |held, batch| {
                    let events = held.state.handle(ServiceCommand::Register {
                        name: name.clone(),
                        endpoint: endpoint.clone(),
                        password: password.clone(),
                        teams: teams.clone(),
                        doc: doc.clone(),
                        at,
                    })?;
                    let (state, _) = crate::apps::after(held, &events);
                    batch.add(held, events)?;
                    Ok(state)
                },
            )
            .await?;
        Ok((self.service_answer(actor, &state).await?, written))
    }

    /// Changes a service's endpoint or password (200 with it). Its endpoint again changes
    /// nothing; a password given always changes.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), service = service))]
    pub async fn update_service(
        &self,
        actor: &Actor,
        origin: &Origin,
        service: &str,
        input: UpdateService,
        insecure_hosts: &[String],
    ) -> Result<(ServiceView, Written), CommandError> {
        actor.require_writer()?;
        self.managed_service(actor, service).await?;
        let endpoint = input
            .endpoint
            .as_deref()
            .map(|e| Endpoint::parse(e, insecure_hosts))
            .transpose()?;
        let password = match &input.password {
            Some(password) => {
                check_service_password(password.expose_secret())?;
                Some(
                    self.sealer()?
                        .seal(&password_context(service), password.expose_secret())?,
                )
            }
            None => None,
        };
        let at = now();
        let (state, written) = self
            .execute_on_service(actor, origin, service, |state| {
                Ok(state.handle(ServiceCommand::Update {
                    endpoint: endpoint.clone(),
                    password: password.clone(),
                    at,
                })?)
            })
            .await?;
        Ok((self.service_answer(actor, &state).await?, written))
    }

    /// Removes a service (204); 409 `service_has_instances` while it has any.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), service = service))]
    pub async fn remove_service(
        &self,
        actor: &Actor,
        origin: &Origin,
        service: &str,
    ) -> Result<Written, CommandError> {
        actor.require_writer()?;
        self.managed_service(actor, service).await?;
        let at = now();
        let (_, written) = self
            .execute_on_service(actor, origin, service, |state| {
                Ok(state.handle(ServiceCommand::Remove { at })?)
            })
            .await?;
        Ok(written)
    }

    /// Sets a service's documentation (at most 64 KiB); the same again changes nothing.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), service = service, bytes = doc.len()))]
    pub async fn set_service_doc(
        &self,
        actor: &Actor,
        origin: &Origin,
        service: &str,
        doc: String,
    ) -> Result<Written, CommandError> {
        actor.require_writer()?;
        self.managed_service(actor, service).await?;
        check_doc(&doc)?;
        let at = now();
        let (_, written) = self
            .execute_on_service(actor, origin, service, |state| {
                Ok(state.handle(ServiceCommand::SetDoc {
                    doc: doc.clone(),
                    at,
                })?)
            })
            .await?;
        Ok(written)
    }

    /// Lets team `team` use service `service` (204); granting it again changes nothing.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), service = service, team = team))]
    pub async fn grant_service_team(
        &self,
        actor: &Actor,
        origin: &Origin,
        service: &str,
        team: &str,
    ) -> Result<Written, CommandError> {
        actor.require_writer()?;
        self.managed_service(actor, service).await?;
        let team = team_in_path(team)?;
        let (registered, _) = self.load::<Team>(team.as_str()).await?;
        let team_exists = registered.active;
        let (_, written) = self
            .execute_on_service(actor, origin, service, |state| {
                Ok(state.handle(ServiceCommand::GrantTeam {
                    team: team.clone(),
                    team_exists,
                })?)
            })
            .await?;
        Ok(written)
    }

    /// Takes team `team`'s use of service `service` away (204); its instances stay.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), service = service, team = team))]
    pub async fn revoke_service_team(
        &self,
        actor: &Actor,
        origin: &Origin,
        service: &str,
        team: &str,
    ) -> Result<Written, CommandError> {
        actor.require_writer()?;
        self.managed_service(actor, service).await?;
        let team = team_in_path(team)?;
        let (_, written) = self
            .execute_on_service(actor, origin, service, |state| {
                Ok(state.handle(ServiceCommand::RevokeTeam { team: team.clone() })?)
            })
            .await?;
        Ok(written)
    }

    /// Service `service` as its stream has it now, if `actor` manages it (404, then 403).
    async fn managed_service(&self, actor: &Actor, service: &str) -> Result<Service, CommandError> {
        let state = self.visible_service(actor, service).await?;
        require_manages_service(actor, service, &state)?;
        Ok(state)
    }

    /// The answer of a write on a service: its state as written, with the instances `actor`
    /// sees (an admin all of them; anyone else those of their teams, read from the instances'
    /// streams, never a read model that may lag).
    pub(crate) async fn service_answer(
        &self,
        actor: &Actor,
        state: &Service,
    ) -> Result<ServiceView, CommandError> {
        let name = state.active_name()?.clone();
        let mut instances = Vec::with_capacity(state.instances().len());
        for instance in state.instances() {
            let visible = actor.is_admin() || {
                let (held, _) = self
                    .load::<Instance>(&instance_stream_id(&name, instance))
                    .await?;
                held.exists() && of_teams(actor, held.teams())
            };
            if visible {
                instances.push(instance.as_str().to_string());
            }
        }
        let created_at = state
            .created_at()
            .ok_or_else(|| no_service(name.as_str()))?;
        Ok(ServiceView {
            name: name.as_str().to_string(),
            endpoint: state
                .endpoint()
                .map(|e| e.as_str().to_string())
                .ok_or_else(|| no_service(name.as_str()))?,
            teams: state
                .teams()
                .iter()
                .map(|t| t.as_str().to_string())
                .collect(),
            owner_teams: state
                .owner_teams()
                .iter()
                .map(|t| t.as_str().to_string())
                .collect(),
            instances,
            created_at,
            updated_at: state.updated_at().unwrap_or(created_at),
        })
    }
}
