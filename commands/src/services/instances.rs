//! The intents on a service's instances: create one, remove it, bind it to an app, unbind it.
//! Each records what the service is to be asked, and its pair on the other stream, in one
//! atomic append, and returns the [`Intent`] the runner's service calls finish; the answer to
//! the caller comes once the outcome is in (or not, within the API's wait).
//!
//! - Create: the caller must see the service (404) and be an admin or a member of the team
//!   owner (403), which must exist (400 `team_owner`) and be granted the service (403
//!   `team_not_granted`, the service's rule); `InstanceCreationRequested` +
//!   `ServiceInstanceAdded` (the service counts it from then on, so it cannot be removed
//!   meanwhile).
//! - Remove: an admin or a member of the instance's teams (404 for one not seen);
//!   `InstanceRemovalRequested` (409 `instance_bound` while bound, the instance's rule).
//! - Bind: as remove, and [`AppAction::Manage`] on the app (404, then 403);
//!   `InstanceBindRequested` + `AppInstanceBindRequested` (the app then refuses its removal and a
//!   second bind of the same instance). The service is told the app's host: its first cname,
//!   else its name.
//! - Unbind: [`AppAction::Manage`] on the app (404, then 403), and an admin or a member of the
//!   instance's teams, or else the instance bound (or being bound) to that app as its stream
//!   says: whoever manages an app may unbind what is bound to it, as its removal does first
//!   (404 for an instance neither seen nor bound there); `InstanceUnbindRequested` (the app's
//!   variables go with the outcome).
//! - The instances bound to an app ([`Commands::app_bound_instances`]): for whoever may remove
//!   it, what to unbind first.
//!
//! Does not own: the outcomes (`calls.rs`), the rules of an instance or an app (domain).

use super::{instance_names, no_service, of_teams, require_sees_instance, Intent};
use crate::actor::{Actor, AppAction, Origin};
use crate::apps::{now, require_on};
use crate::error::CommandError;
use crate::execute::{Commands, Written};
use bosun_domain::apps::{check_description, App, AppCommand, AppName, Binding};
use bosun_domain::identity::{Team, TeamName};
use bosun_domain::services::{
    check_plan, instance_stream_id, Instance, InstanceCommand, InstanceName, InstanceRef, Service,
    ServiceCommand, ServiceName,
};
use bosun_domain::{Aggregate, DomainError};
use bosun_eventstore::EventStore;
use uuid::Uuid;

/// What `POST /v1/services/{service}/instances` asks for.
#[derive(Clone, Debug, Default)]
pub struct CreateInstance {
    pub name: String,
    /// Default: none (`""`), as the service decides.
    pub plan: Option<String>,
    pub team_owner: String,
    pub description: Option<String>,
}

fn team_owner_invalid(message: impl Into<String>) -> CommandError {
    DomainError::invalid("team_owner", message).into()
}

fn intent(service: &ServiceName, instance: &InstanceName, request_id: Uuid) -> Intent {
    Intent {
        service: service.as_str().to_string(),
        instance: instance.as_str().to_string(),
        request_id,
    }
}

/// The host a service is told an app answers to: its first cname, else its name.
fn app_host(app: &App) -> Result<String, CommandError> {
    match app.cnames().iter().next() {
        Some(cname) => Ok(cname.as_str().to_string()),
        None => Ok(app.active_name()?.as_str().to_string()),
    }
}

/// `actor` may unbind instance `instance` of `service` (as `state`) from app `app` (as
/// `app_state`): it manages the app (404, then 403), and sees the instance or the app has it
/// bound or being bound (404 for the instance otherwise).
fn require_may_unbind(
    actor: &Actor,
    service: &str,
    instance: &str,
    app: &str,
    state: &Instance,
    app_state: &App,
    instance_ref: &InstanceRef,
) -> Result<(), CommandError> {
    require_on(actor, app, app_state, AppAction::Manage)?;
    let bound_there = state.exists() && app_state.bindings().contains_key(instance_ref);
    if !bound_there {
        require_sees_instance(actor, service, instance, state)?;
    }
    Ok(())
}

impl<S: EventStore> Commands<S> {
    /// The instances bound to app `app`, as `(service, instance)`, for whoever may remove it
    /// (404, then 403, as [`Commands::remove_app`]): what its removal unbinds first. Those whose
    /// bind is pending are not among them (the app's removal refuses them, 409
    /// `app_has_bindings`).
    #[tracing::instrument(skip_all, fields(actor = actor.name(), app = app))]
    pub async fn app_bound_instances(
        &self,
        actor: &Actor,
        app: &str,
    ) -> Result<Vec<(String, String)>, CommandError> {
        let state = self.authorized_app(actor, app, AppAction::Manage).await?;
        // Refused before anything is unbound: removing would stop at the pending bind anyway,
        // with the app stripped of the others.
        let pending = state
            .bindings()
            .values()
            .filter(|b| **b == Binding::Pending)
            .count();
        if pending > 0 {
            return Err(DomainError::conflict(
                "app_has_bindings",
                format!("{pending} bind(s) of the app are still pending: try again once they end"),
            )
            .into());
        }
        Ok(state
            .bindings()
            .iter()
            .filter(|(_, binding)| **binding == Binding::Bound)
            .map(|(r, _)| {
                (
                    r.service.as_str().to_string(),
                    r.instance.as_str().to_string(),
                )
            })
            .collect())
    }

    /// Records the intent to create instance `input.name` of service `service`: see the
    /// [module](self).
    #[tracing::instrument(skip_all, fields(actor = actor.name(), service = service, instance = input.name.as_str()))]
    pub async fn request_instance(
        &self,
        actor: &Actor,
        origin: &Origin,
        service: &str,
        input: CreateInstance,
    ) -> Result<(Intent, Written), CommandError> {
        actor.require_writer()?;
        self.visible_service(actor, service).await?;
        let service_name = ServiceName::parse(service).map_err(|_| no_service(service))?;
        let name = InstanceName::parse(&input.name)?;
        let team_owner = TeamName::parse(&input.team_owner).map_err(|e| match e {
            DomainError::Invalid { message, .. } => team_owner_invalid(message),
            other => other.into(),
        })?;
        if !of_teams(actor, [&team_owner]) {
            return Err(CommandError::Forbidden(format!(
                "only a member of team {team_owner} (or an admin) may give it an instance"
            )));
        }
        let (team, _) = self.load::<Team>(team_owner.as_str()).await?;
        if !team.active {
            return Err(team_owner_invalid(format!("no team {team_owner}")));
        }
        let plan = input.plan.unwrap_or_default();
        check_plan(&plan)?;
        let description = input.description.unwrap_or_default();
        check_description(&description)?;
        let request_id = Uuid::new_v4();
        let at = now();
        let held = (
            self.hold::<Instance>(&instance_stream_id(&service_name, &name))
                .await?,
            self.hold::<Service>(service).await?,
        );
        self.execute_batch(held, actor, origin, |(instance, service_held), batch| {
            super::require_sees_service(actor, service, &service_held.state)?;
            let requested = instance.state.handle(InstanceCommand::Create {
                request_id,
                service: service_name.clone(),
                name: name.clone(),
                plan: plan.clone(),
                team_owner: team_owner.clone(),
                description: description.clone(),
                at,
            })?;
            let added = service_held.state.handle(ServiceCommand::AddInstance {
                instance: name.clone(),
                team_owner: team_owner.clone(),
            })?;
            batch.add(instance, requested)?;
            batch.add(service_held, added)?;
            Ok(intent(&service_name, &name, request_id))
        })
        .await
    }

    /// Refuses, writing nothing, what unbinding every app from instance `instance` of
    /// `service` and then removing it would refuse: the removal's rule (403 for the scope, 404
    /// for an instance the caller does not see, 409 while a call to the service is pending),
    /// then each bound app's unbind (404, then 403, for an app the caller does not manage).
    /// For callers that unbind all then remove (tsuru 1.x's `unbindall`), so that a refusal
    /// comes before the first unbind. Returns the bound apps, by name. A change between this
    /// check and the calls that follow is refused by them, as ever.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), service = service, instance = instance))]
    pub async fn check_removal_unbinding_all(
        &self,
        actor: &Actor,
        service: &str,
        instance: &str,
    ) -> Result<Vec<String>, CommandError> {
        actor.require_writer()?;
        let state = self.visible_instance(actor, service, instance).await?;
        let (_, instance_name) = instance_names(service, instance)?;
        let service_name = ServiceName::parse(service).map_err(|_| no_service(service))?;
        // The removal's rule on the state as it is: only its apps may stand in its way.
        match state.handle(InstanceCommand::RequestRemoval {
            request_id: Uuid::nil(),
            at: now(),
        }) {
            Ok(_)
            | Err(DomainError::Conflict {
                code: "instance_bound",
                ..
            }) => {}
            Err(refused) => return Err(refused.into()),
        }
        let instance_ref = InstanceRef {
            service: service_name,
            instance: instance_name,
        };
        let mut apps = Vec::with_capacity(state.apps().len());
        for app in state.apps() {
            let app_state = self
                .authorized_app(actor, app.as_str(), AppAction::Manage)
                .await?;
            require_may_unbind(
                actor,
                service,
                instance,
                app.as_str(),
                &state,
                &app_state,
                &instance_ref,
            )?;
            apps.push(app.as_str().to_string());
        }
        Ok(apps)
    }

    /// Records the intent to remove instance `instance` of service `service`: see the
    /// [module](self).
    #[tracing::instrument(skip_all, fields(actor = actor.name(), service = service, instance = instance))]
    pub async fn request_instance_removal(
        &self,
        actor: &Actor,
        origin: &Origin,
        service: &str,
        instance: &str,
    ) -> Result<(Intent, Written), CommandError> {
        actor.require_writer()?;
        self.visible_instance(actor, service, instance).await?;
        let (service_name, instance_name) = instance_names(service, instance)?;
        let request_id = Uuid::new_v4();
        let at = now();
        self.execute_batch(
            self.hold::<Instance>(&instance_stream_id(&service_name, &instance_name))
                .await?,
            actor,
            origin,
            |held, batch| {
                require_sees_instance(actor, service, instance, &held.state)?;
                let events = held
                    .state
                    .handle(InstanceCommand::RequestRemoval { request_id, at })?;
                batch.add(held, events)?;
                Ok(intent(&service_name, &instance_name, request_id))
            },
        )
        .await
    }

    /// Records the intent to bind instance `instance` of service `service` to app `app`
    /// (`restart`: its units restart with the variables): see the [module](self).
    #[tracing::instrument(skip_all, fields(actor = actor.name(), service = service, instance = instance, app = app))]
    pub async fn request_bind(
        &self,
        actor: &Actor,
        origin: &Origin,
        service: &str,
        instance: &str,
        app: &str,
        restart: bool,
    ) -> Result<(Intent, Written), CommandError> {
        actor.require_writer()?;
        self.visible_instance(actor, service, instance).await?;
        self.authorized_app(actor, app, AppAction::Manage).await?;
        let (service_name, instance_name) = instance_names(service, instance)?;
        let app_name = AppName::parse(app)?;
        let instance_ref = InstanceRef {
            service: service_name.clone(),
            instance: instance_name.clone(),
        };
        let request_id = Uuid::new_v4();
        let at = now();
        let held = (
            self.hold::<Instance>(&instance_stream_id(&service_name, &instance_name))
                .await?,
            self.hold::<App>(app).await?,
        );
        self.execute_batch(held, actor, origin, |(held, app_held), batch| {
            require_sees_instance(actor, service, instance, &held.state)?;
            require_on(actor, app, &app_held.state, AppAction::Manage)?;
            let requested = held.state.handle(InstanceCommand::RequestBind {
                request_id,
                app: app_name.clone(),
                app_host: app_host(&app_held.state)?,
                restart,
                at,
            })?;
            let pending = app_held.state.handle(AppCommand::RequestBind {
                instance: instance_ref.clone(),
            })?;
            batch.add(held, requested)?;
            batch.add(app_held, pending)?;
            Ok(intent(&service_name, &instance_name, request_id))
        })
        .await
    }

    /// Records the intent to unbind instance `instance` of service `service` from app `app`
    /// (`restart`: its units restart without the variables): see the [module](self).
    #[tracing::instrument(skip_all, fields(actor = actor.name(), service = service, instance = instance, app = app))]
    pub async fn request_unbind(
        &self,
        actor: &Actor,
        origin: &Origin,
        service: &str,
        instance: &str,
        app: &str,
        restart: bool,
    ) -> Result<(Intent, Written), CommandError> {
        actor.require_writer()?;
        self.authorized_app(actor, app, AppAction::Manage).await?;
        let (service_name, instance_name) = instance_names(service, instance)?;
        let instance_ref = InstanceRef {
            service: service_name.clone(),
            instance: instance_name.clone(),
        };
        let app_name = AppName::parse(app)?;
        let request_id = Uuid::new_v4();
        let at = now();
        // Who may unbind is decided on the held states (checked again on a reload); only the
        // instance is written to.
        let held = (
            self.hold::<Instance>(&instance_stream_id(&service_name, &instance_name))
                .await?,
            self.hold::<App>(app).await?,
        );
        self.execute_batch(held, actor, origin, |(held, app_held), batch| {
            require_may_unbind(
                actor,
                service,
                instance,
                app,
                &held.state,
                &app_held.state,
                &instance_ref,
            )?;
            let requested = held.state.handle(InstanceCommand::RequestUnbind {
                request_id,
                app: app_name.clone(),
                restart,
                at,
            })?;
            batch.add(held, requested)?;
            Ok(intent(&service_name, &instance_name, request_id))
        })
        .await
    }
}
