//! Platforms, the admins': added enabled, disabled (no new app may use one) and removed. A
//! platform some app still runs on is not removed (409 `platform_in_use`): that is read from the
//! apps read model once it holds the whole log, so an app created on the platform while it is
//! being removed may still slip through (the app keeps running; it can be moved to another
//! platform).

use super::PlatformView;
use crate::actor::{Actor, Origin};
use crate::error::CommandError;
use crate::execute::{Commands, Written};
use bosun_domain::apps::{Platform, PlatformCommand, PlatformName};
use bosun_domain::identity::Scope;
use bosun_domain::{Aggregate, DomainError};
use bosun_eventstore::EventStore;
use bosun_projections::read_models::apps as model;

fn require_admin(actor: &Actor) -> Result<(), CommandError> {
    actor.require(Scope::Write)?;
    actor.require_admin()
}

/// A platform named in a path: a name no platform can have is no platform (404).
fn platform_in_path(name: &str) -> Result<PlatformName, CommandError> {
    PlatformName::parse(name)
        .map_err(|_| DomainError::NotFound(format!("no platform {name}")).into())
}

fn view(name: &PlatformName, state: &Platform) -> PlatformView {
    PlatformView {
        name: name.as_str().to_string(),
        disabled: state.disabled(),
    }
}

impl<S: EventStore> Commands<S> {
    /// Adds platform `name`, enabled (201); 409 `platform_exists`.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), platform = name))]
    pub async fn add_platform(
        &self,
        actor: &Actor,
        origin: &Origin,
        name: &str,
    ) -> Result<(PlatformView, Written), CommandError> {
        require_admin(actor)?;
        let name = PlatformName::parse(name)?;
        let (state, written) = self
            .execute::<Platform>(name.as_str(), actor, origin, |state| {
                state.handle(PlatformCommand::Add { name: name.clone() })
            })
            .await?;
        Ok((view(&name, &state), written))
    }

    /// Enables or disables platform `name` (200); 404 for no such platform.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), platform = name, disabled))]
    pub async fn update_platform(
        &self,
        actor: &Actor,
        origin: &Origin,
        name: &str,
        disabled: bool,
    ) -> Result<(PlatformView, Written), CommandError> {
        require_admin(actor)?;
        let name = platform_in_path(name)?;
        let (state, written) = self
            .execute::<Platform>(name.as_str(), actor, origin, |state| {
                state.handle(PlatformCommand::Update { disabled })
            })
            .await?;
        Ok((view(&name, &state), written))
    }

    /// Removes platform `name` (204): 404 for no such platform, 409 `platform_in_use` while an
    /// app runs on it, as the apps read model says once caught up with the log (see the
    /// [module](self)).
    #[tracing::instrument(skip_all, fields(actor = actor.name(), platform = name))]
    pub async fn remove_platform(
        &self,
        actor: &Actor,
        origin: &Origin,
        name: &str,
    ) -> Result<Written, CommandError> {
        require_admin(actor)?;
        let name = platform_in_path(name)?;
        let (state, _) = self.load::<Platform>(name.as_str()).await?;
        if !state.is_active() {
            return Err(DomainError::NotFound(format!("no platform {name}")).into());
        }
        self.catch_up().await?;
        let client = self.read_models().await?;
        let in_use = model::apps_on_platform(&**client, name.as_str()).await?;
        drop(client);
        if in_use > 0 {
            return Err(DomainError::conflict(
                "platform_in_use",
                format!("{in_use} app(s) run on platform {name}: move or remove them first"),
            )
            .into());
        }
        let (_, written) = self
            .execute::<Platform>(name.as_str(), actor, origin, |state| {
                state.handle(PlatformCommand::Remove)
            })
            .await?;
        Ok(written)
    }
}
