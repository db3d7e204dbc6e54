//! Reading services, their documentation and their instances, and the pending service calls
//! the runner's reactor finishes.
//!
//! A service is read by an admin or a member of one of its teams; an instance by an admin or a
//! member of its teams (its team owner), even once its team lost the service. What a caller may
//! not read is a 404, as a missing one; a list holds only what it may read, and a service shows
//! only the instances the caller may read. Any reader needs the read scope; an app token reads
//! none of it. No password is read here (the read models hold none).
//!
//! Does not own: the writes (`commands/src/services`), the tables (`projections`).

use super::Queries;
use crate::actor::Actor;
use crate::error::CommandError;
use crate::services::{no_instance, no_service};
use bosun_projections::read_models::services::{
    self as model, InstanceView, PendingCallRow, ServiceView,
};
use std::time::Duration;
use tokio_postgres::GenericClient;

/// The teams whose services and instances `actor` reads: `None` for all (an admin, the
/// server). Asks the read scope.
fn readable_teams(actor: &Actor) -> Result<Option<Vec<String>>, CommandError> {
    actor.require_reader()?;
    if actor.is_admin() {
        return Ok(None);
    }
    match actor {
        Actor::User { teams, .. } => Ok(Some(teams.clone())),
        _ => Ok(Some(vec![])),
    }
}

/// Whether `teams` (a service's or an instance's) include one of `readable` (`None`: all).
fn reads(readable: &Option<Vec<String>>, teams: &[String]) -> bool {
    match readable {
        None => true,
        Some(readable) => teams.iter().any(|t| readable.contains(t)),
    }
}

/// The names of the instances of `service` that one of `readable` may read.
async fn readable_instances(
    client: &impl GenericClient,
    service: &str,
    readable: &Option<Vec<String>>,
) -> Result<Vec<String>, CommandError> {
    Ok(model::instances(client, service, readable.as_deref())
        .await?
        .into_iter()
        .map(|i| i.name)
        .collect())
}

impl Queries {
    /// The services the caller may read, by name, each with the instances it may read.
    pub async fn services(&self, actor: &Actor) -> Result<Vec<ServiceView>, CommandError> {
        let readable = readable_teams(actor)?;
        let client = self.client().await?;
        let mut services = model::services(&**client, readable.as_deref()).await?;
        for service in &mut services {
            service.instances = readable_instances(&**client, &service.name, &readable).await?;
        }
        Ok(services)
    }

    /// Service `name`, with the instances the caller may read; 404 if it may not read it.
    pub async fn service(&self, actor: &Actor, name: &str) -> Result<ServiceView, CommandError> {
        let readable = readable_teams(actor)?;
        let client = self.client().await?;
        let mut service = model::service(&**client, name)
            .await?
            .filter(|s| reads(&readable, &s.teams))
            .ok_or_else(|| no_service(name))?;
        service.instances = readable_instances(&**client, name, &readable).await?;
        Ok(service)
    }

    /// Service `name`'s documentation (`""` for none); 404 if the caller may not read it.
    pub async fn service_doc(&self, actor: &Actor, name: &str) -> Result<String, CommandError> {
        let readable = readable_teams(actor)?;
        let client = self.client().await?;
        if !model::service(&**client, name)
            .await?
            .is_some_and(|s| reads(&readable, &s.teams))
        {
            return Err(no_service(name));
        }
        model::doc(&**client, name)
            .await?
            .ok_or_else(|| no_service(name))
    }

    /// The instances of `service` the caller may read, by name. 404 for no such service, or
    /// one the caller may not read and has no instance of.
    pub async fn instances(
        &self,
        actor: &Actor,
        service: &str,
    ) -> Result<Vec<InstanceView>, CommandError> {
        let readable = readable_teams(actor)?;
        let client = self.client().await?;
        let Some(view) = model::service(&**client, service).await? else {
            return Err(no_service(service));
        };
        let instances = model::instances(&**client, service, readable.as_deref()).await?;
        if instances.is_empty() && !reads(&readable, &view.teams) {
            return Err(no_service(service));
        }
        Ok(instances)
    }

    /// Instance `instance` of `service`, with its pending call; 404 if the caller may not read
    /// it.
    pub async fn instance(
        &self,
        actor: &Actor,
        service: &str,
        instance: &str,
    ) -> Result<InstanceView, CommandError> {
        let readable = readable_teams(actor)?;
        model::instance(&**self.client().await?, service, instance)
            .await?
            .filter(|i| reads(&readable, &i.teams))
            .ok_or_else(|| no_instance(service, instance))
    }

    /// At most `limit` calls to services whose outcome is not recorded and that are due now,
    /// the longest due first: those whose `retry_at` has come, and those never tried again
    /// once `grace` has passed since they were requested. For the runner's reactor (the server
    /// itself), not a caller's read.
    pub async fn pending_service_calls(
        &self,
        limit: i64,
        grace: Duration,
    ) -> Result<Vec<PendingCallRow>, CommandError> {
        Ok(model::pending_calls(&**self.client().await?, limit, grace.as_secs_f64()).await?)
    }
}
