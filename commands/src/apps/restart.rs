//! Restarting an app's units: `AppRestartRequested` raises the app's restart generation; the
//! workers then restart each unit started at a lower one, one at a time (the units' rolling
//! restart, the runner's). A restart is running while one of the app's units (not stopped) was
//! started at a generation lower than its app's: read from the units read model.

use super::require_on;
use crate::actor::{Actor, Origin};
use crate::error::CommandError;
use crate::execute::{Commands, Written};
use bosun_domain::apps::{App, AppCommand};
use bosun_domain::identity::Scope;
use bosun_domain::Aggregate;
use bosun_eventstore::EventStore;
use bosun_projections::read_models::units::{self as units_model, UnitView};

impl<S: EventStore> Commands<S> {
    /// Asks for a restart of app `app`'s units (all, or those of `process`): 202 with its units
    /// as they are now (they restart after the answer).
    #[tracing::instrument(skip_all, fields(actor = actor.name(), app = app, process = process.as_deref()))]
    pub async fn restart_app(
        &self,
        actor: &Actor,
        origin: &Origin,
        app: &str,
        process: Option<String>,
    ) -> Result<(Vec<UnitView>, Written), CommandError> {
        self.authorized_app(actor, app, Scope::Write).await?;
        let ((), written) = self
            .execute_batch(
                self.hold::<App>(app).await?,
                actor,
                origin,
                |held, batch| {
                    require_on(actor, app, &held.state, Scope::Write)?;
                    let events = held.state.handle(AppCommand::RequestRestart {
                        process: process.clone(),
                    })?;
                    batch.add(held, events)
                },
            )
            .await?;
        let client = self.read_models().await?;
        let mut units = units_model::of_app(&**client, app).await?;
        if let Some(process) = &process {
            units.retain(|u| &u.process == process);
        }
        Ok((units, written))
    }

    /// Whether a restart of `state`'s units is running: one of its units that is not stopped
    /// runs an older restart generation than the app's. An app never restarted (generation 0)
    /// has none, without asking the read model.
    pub(crate) async fn restarting(&self, state: &App) -> Result<bool, CommandError> {
        let generation = state.restart_generation();
        let Some(name) = state.name() else {
            return Ok(false);
        };
        if generation == 0 {
            return Ok(false);
        }
        let client = self.read_models().await?;
        let units = units_model::of_app(&**client, name.as_str()).await?;
        Ok(units
            .iter()
            .any(|u| u.state != "stopped" && u.generation < generation))
    }
}
