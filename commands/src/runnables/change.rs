//! Changing a runnable's name and start command and whether it runs, in one decision and one
//! append: what Runnable's `PUT /users/me/runnables/{id}` `{running, name, …}` asks for at once
//! (`/compat/runnable`), where `/v1` asks for each apart (`PATCH /v1/runnables/{id}`, then
//! `…/start` or `…/stop`).
//!
//! The same rules as those: its owner or an admin, with the write scope (404, then 403); the
//! name and start command are checked as an update checks them (400), and values equal to the
//! current ones change nothing; then a start or a stop is wanted as `runs.rs` records it (a
//! start already wanted, or a stop of one not wanted, changes nothing; the runner does it).
//! Each part is decided on the state the earlier part leaves, and the events of all of them
//! are appended together against the runnable's stream: a part refused writes none of them.
//!
//! Does not own: the rules of a runnable (domain), running its process (the runner).

use super::{answer, RunnableAction, RunnableView};
use crate::actor::{Actor, Origin};
use crate::apps::now;
use crate::error::CommandError;
use crate::execute::{Commands, Written};
use bosun_domain::runnables::{RunnableCommand, RunnableName, StartCommand};
use bosun_domain::Aggregate;
use bosun_eventstore::EventStore;
use uuid::Uuid;

/// What [`Commands::change_runnable`] changes; `None` leaves that part as it is.
#[derive(Clone, Debug, Default)]
pub struct RunnableChange {
    /// Its new name.
    pub name: Option<String>,
    /// Its new start command (its image keeps the one it was saved with).
    pub start_command: Option<String>,
    /// Wanted running (`true`: a start) or not (`false`: a stop).
    pub running: Option<bool>,
}

impl<S: EventStore> Commands<S> {
    /// Changes runnable `id` as `change` says, in one append (200 with it): see the
    /// [module](self).
    #[tracing::instrument(skip_all, fields(actor = actor.name(), runnable = %id, running = change.running))]
    pub async fn change_runnable(
        &self,
        actor: &Actor,
        origin: &Origin,
        id: Uuid,
        change: RunnableChange,
    ) -> Result<(RunnableView, Written), CommandError> {
        // Parsed here, refused (400) only once the runnable is found and the actor allowed on
        // it (404, then 403), inside the decision.
        let name = change.name.as_deref().map(RunnableName::parse).transpose();
        let start_command = change
            .start_command
            .as_deref()
            .map(StartCommand::parse)
            .transpose();
        let at = now();
        let ((state, version, ()), written) = self
            .execute_on_runnable(actor, origin, id, RunnableAction::Change, |state| {
                let mut after = state.clone();
                let mut events = after.handle(RunnableCommand::Update {
                    name: name.clone()?,
                    start_command: start_command.clone()?,
                    at,
                })?;
                events.iter().for_each(|e| after.apply(e));
                let run = match change.running {
                    Some(true) => Some(RunnableCommand::Start { at }),
                    Some(false) => Some(RunnableCommand::Stop { at }),
                    None => None,
                };
                if let Some(run) = run {
                    events.extend(after.handle(run)?);
                }
                Ok((events, ()))
            })
            .await?;
        Ok((answer(id, &state, version)?, written))
    }
}
