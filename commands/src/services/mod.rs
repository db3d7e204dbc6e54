//! Service commands (tsuru's service API): registering and managing services, and the intents
//! on their instances (create, bind, unbind, remove) with the outcomes the runner's service
//! calls record. Reads are [`Queries`](crate::Queries)' (`queries/services.rs`); the HTTP calls
//! to a service are the runner's (`runner/src/services`).
//!
//! Who may act:
//! - A service is seen by an admin or a member of one of its teams; one not seen is a 404, as
//!   a removed one. Managing it (update, remove, doc, grant, revoke) is for an admin or a member
//!   of one of its owner teams (the teams it was registered with), 403 otherwise. Registering
//!   one is for an admin or a member of every team it names.
//! - An instance is seen, and acted on, by an admin or a member of its teams (its team owner);
//!   one not seen is a 404. Creating one asks the same of its team owner; binding an app also
//!   asks [`Actor::require_on_app`] with [`AppAction::Manage`] on the app. Unbinding asks
//!   Manage on the app, and seeing the instance or its being bound to that app: whoever manages
//!   an app may unbind what is bound to it (as removing the app does first).
//!
//! Every intent is one atomic append ([`Commands::execute_batch`]) of the instance's request and
//! its pair on the other stream: a creation with `ServiceInstanceAdded` on the service (the
//! service counts its instances from the log, so a removal races no creation), a bind with
//! `AppInstanceBindRequested` on the app. Its outcome is recorded the same way
//! ([`Commands::record_service_call`], `calls.rs`), as `Actor::System("services")`.
//!
//! Secrets: the service password is sealed (`service-<name>/password`) before it enters an
//! event and opened only for a call; the variables a bind answers are sealed with the app's env
//! context (`app-<app>/env/<NAME>`). Neither is in an answer, a span field or a log line: each
//! handler's span records names only.
//!
//! Does not own: the rules of one service, instance or app (`domain`), the HTTP calls (runner).

mod calls;
mod instances;
mod secrets;
#[allow(clippy::module_inception)]
mod services;

pub use bosun_projections::read_models::services::{InstanceView, PendingCallRow, ServiceView};
pub use calls::{quoted, CallResult, Intent, ServiceCall, StatusTarget};
pub use instances::CreateInstance;
pub use secrets::Secrets;
pub use services::{RegisterService, UpdateService};

use crate::actor::{Actor, Origin};
use crate::error::CommandError;
use crate::execute::{Commands, Written};
use bosun_domain::identity::TeamName;
use bosun_domain::services::{
    instance_stream_id, Instance, InstanceName, Service, ServiceEvent, ServiceName,
};
use bosun_domain::DomainError;
use bosun_eventstore::EventStore;

/// The place a service's password is sealed for.
pub(crate) fn password_context(service: &str) -> String {
    format!("service-{service}/password")
}

pub(crate) fn no_service(service: &str) -> CommandError {
    DomainError::NotFound(format!("no service {service}")).into()
}

pub(crate) fn no_instance(service: &str, instance: &str) -> CommandError {
    DomainError::NotFound(format!("no instance {instance} of service {service}")).into()
}

/// Whether `actor` is an admin or a member of one of `teams`.
pub(crate) fn of_teams<'a>(actor: &Actor, teams: impl IntoIterator<Item = &'a TeamName>) -> bool {
    actor.is_admin() || teams.into_iter().any(|t| actor.is_member(t.as_str()))
}

/// `actor` sees service `service` (as `state`): 404 for no such service, a removed one, or one
/// none of whose teams is the actor's (unless an admin).
pub(crate) fn require_sees_service(
    actor: &Actor,
    service: &str,
    state: &Service,
) -> Result<(), CommandError> {
    if !state.is_active() || !of_teams(actor, state.teams()) {
        return Err(no_service(service));
    }
    Ok(())
}

/// `actor` may manage service `service` (as `state`): it sees it (404), and is an admin or a
/// member of one of its owner teams (403).
pub(crate) fn require_manages_service(
    actor: &Actor,
    service: &str,
    state: &Service,
) -> Result<(), CommandError> {
    require_sees_service(actor, service, state)?;
    if !of_teams(actor, state.owner_teams()) {
        let owners: Vec<&str> = state.owner_teams().iter().map(|t| t.as_str()).collect();
        return Err(CommandError::Forbidden(format!(
            "only a member of one of service {service}'s owner teams ({}) or an admin may do this",
            owners.join(", ")
        )));
    }
    Ok(())
}

/// `actor` sees instance `instance` of `service` (as `state`): 404 for no such instance (never
/// created, failed to be created, removed) or one none of whose teams is the actor's (unless an
/// admin). Seeing an instance is acting on it.
pub(crate) fn require_sees_instance(
    actor: &Actor,
    service: &str,
    instance: &str,
    state: &Instance,
) -> Result<(), CommandError> {
    if !state.exists() || !of_teams(actor, state.teams()) {
        return Err(no_instance(service, instance));
    }
    Ok(())
}

/// The names of a service and an instance in a path: a name none can have is none (404).
pub(crate) fn instance_names(
    service: &str,
    instance: &str,
) -> Result<(ServiceName, InstanceName), CommandError> {
    let service_name = ServiceName::parse(service).map_err(|_| no_service(service))?;
    let instance_name =
        InstanceName::parse(instance).map_err(|_| no_instance(service, instance))?;
    Ok((service_name, instance_name))
}

impl<S: EventStore> Commands<S> {
    /// Service `service` as its stream has it now, if `actor` sees it (404 otherwise).
    pub(crate) async fn visible_service(
        &self,
        actor: &Actor,
        service: &str,
    ) -> Result<Service, CommandError> {
        if ServiceName::parse(service).is_err() {
            return Err(no_service(service));
        }
        let (state, _) = self.load::<Service>(service).await?;
        require_sees_service(actor, service, &state)?;
        Ok(state)
    }

    /// Instance `instance` of `service` as its stream has it now, if `actor` sees it (404
    /// otherwise).
    pub(crate) async fn visible_instance(
        &self,
        actor: &Actor,
        service: &str,
        instance: &str,
    ) -> Result<Instance, CommandError> {
        let (service_name, instance_name) = instance_names(service, instance)?;
        let (state, _) = self
            .load::<Instance>(&instance_stream_id(&service_name, &instance_name))
            .await?;
        require_sees_instance(actor, service, instance, &state)?;
        Ok(state)
    }

    /// Writes what `decide` makes of service `service`'s state alone, in one append: `actor`
    /// must manage it on every state decided on (404, then 403). Returns the state after the
    /// events.
    pub(crate) async fn execute_on_service(
        &self,
        actor: &Actor,
        origin: &Origin,
        service: &str,
        decide: impl Fn(&Service) -> Result<Vec<ServiceEvent>, CommandError>,
    ) -> Result<(Service, Written), CommandError> {
        self.execute_batch(
            self.hold::<Service>(service).await?,
            actor,
            origin,
            |held, batch| {
                require_manages_service(actor, service, &held.state)?;
                let events = decide(&held.state)?;
                let (state, _) = crate::apps::after(held, &events);
                batch.add(held, events)?;
                Ok(state)
            },
        )
        .await
    }
}
