//! Restarting an app's units: `AppRestartRequested` raises the app's restart generation; the
//! workers then restart each unit started at a lower one, one at a time (the units' rolling
//! restart, the runner's). A restart is running while one of the app's units (neither stopped
//! nor in `error`) was started at a generation lower than its app's: read from the units read
//! model.
//!
//! An app has one restart generation, for all its processes: a restart restarts every process
//! of the app, for now, also when it names one (`process`, which must be one of the app's
//! catalog processes, and is recorded in the event).

use crate::actor::{Actor, AppAction, Origin};
use crate::error::CommandError;
use crate::execute::{Commands, Written};
use bosun_domain::apps::{App, AppCommand};
use bosun_domain::jobs::Catalog;
use bosun_domain::{Aggregate, DomainError};
use bosun_eventstore::EventStore;
use bosun_projections::read_models::units::{self as units_model, UnitView};
use std::collections::BTreeSet;

impl<S: EventStore> Commands<S> {
    /// Asks for a restart of app `app`'s units: 202 with its units as they are now (they
    /// restart after the answer), every one of them. The app has one restart generation, so
    /// every process restarts, also when `process` names one; a `process` that is not one of
    /// the app's processes in `catalog` (in any of its environments) is a 400 `process`.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), app = app, process = process.as_deref()))]
    pub async fn restart_app(
        &self,
        actor: &Actor,
        origin: &Origin,
        catalog: &Catalog,
        app: &str,
        process: Option<String>,
    ) -> Result<(Vec<UnitView>, Written), CommandError> {
        self.authorized_app(actor, app, AppAction::Restart).await?;
        if let Some(process) = &process {
            let processes: BTreeSet<&str> = catalog
                .processes(app)
                .into_iter()
                .map(|(_, name, _)| name)
                .collect();
            if !processes.contains(process.as_str()) {
                let known = if processes.is_empty() {
                    "the catalog gives it none".to_string()
                } else {
                    let names: Vec<&str> = processes.into_iter().collect();
                    format!("its processes: {}", names.join(", "))
                };
                return Err(DomainError::invalid(
                    "process",
                    format!("app {app} has no process {process:?} ({known})"),
                )
                .into());
            }
        }
        let (_, written) = self
            .execute_on_app(actor, origin, app, AppAction::Restart, |state| {
                Ok(state.handle(AppCommand::RequestRestart {
                    process: process.clone(),
                })?)
            })
            .await?;
        let client = self.read_models().await?;
        let units = units_model::of_app(&**client, app).await?;
        Ok((units, written))
    }

    /// Whether a restart of `state`'s units is running, computed for `state`'s restart
    /// generation: one of its units that is neither stopped nor in `error` runs an older
    /// generation than the app's. A unit in `error` (failing, waiting to be tried again) does not
    /// count: its next attempt starts it at the app's generation, and a crash-looping unit must
    /// not block swaps for ever. An app never restarted (generation 0) has none, without asking
    /// the read model.
    pub(crate) async fn restarting(&self, state: &App) -> Result<Restarting, CommandError> {
        let generation = state.restart_generation();
        let not_running = Restarting {
            generation,
            running: false,
        };
        let Some(name) = state.name() else {
            return Ok(not_running);
        };
        if generation == 0 {
            return Ok(not_running);
        }
        let client = self.read_models().await?;
        let units = units_model::of_app(&**client, name.as_str()).await?;
        Ok(Restarting {
            generation,
            running: units.iter().any(|u| {
                !matches!(u.state.as_str(), "stopped" | "error") && u.generation < generation
            }),
        })
    }
}

/// Whether a restart of an app's units is running, as computed for one restart generation of
/// the app: it says nothing of another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Restarting {
    /// The app's restart generation it was computed for.
    pub generation: u64,
    pub running: bool,
}

impl Restarting {
    /// Whether this answer is about `state`'s restart generation (else compute it again).
    pub fn holds_for(&self, state: &App) -> bool {
        state.restart_generation() == self.generation
    }
}
