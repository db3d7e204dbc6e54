//! A node's reads and writes of the stream of a runnable it runs: its state held between
//! appends, each command appended as one attempt (the same event ids on every try) and retried
//! through an outage of the log for at most a third of a lease; and a look at what others
//! appended since (a stop, a restart, a removal, a sync asked for by a save), reading only the
//! new events.
//!
//! Does not own: what is appended when (`run`), the runnable's rules (`bosun_domain::runnables`).

use crate::units::Context;
use bosun_commands::{Actor, CommandError, Held};
use bosun_domain::runnables::{Runnable, RunnableCommand, RunnableEvent, RunnableId};
use bosun_domain::{decode, Aggregate, DomainError};
use bosun_eventstore::{EventStore, StreamId};
use std::time::{Duration, Instant};
use uuid::Uuid;

pub(crate) const ACTOR: Actor = Actor::System("runner");
/// Events read per page when looking at what is new.
const PAGE: usize = 100;

/// How an append went, for what the caller does next.
pub(crate) enum Recorded {
    Done,
    /// The run is no longer this node's, or no longer wanted (`run_moved`, `run_not_wanted`):
    /// it must end, and nothing more be said of it.
    Refused,
}

pub(crate) struct RunnableStream {
    pub id: RunnableId,
    held: Option<Held<Runnable>>,
    /// The version from which the stream's events have not been looked at yet.
    looked: u64,
}

impl RunnableStream {
    pub fn new(id: RunnableId) -> Self {
        RunnableStream {
            id,
            held: None,
            looked: 0,
        }
    }

    fn stream(&self) -> Result<StreamId, CommandError> {
        StreamId::parse(format!("{}-{}", Runnable::CATEGORY, self.id))
            .map_err(|e| CommandError::Internal(e.to_string()))
    }

    /// The runnable as this node last saw it.
    pub fn state(&self) -> Option<&Runnable> {
        self.held.as_ref().map(|h| &h.state)
    }

    /// Loads the runnable's state; what is in the stream now counts as looked at.
    pub async fn load(&mut self, context: &Context) -> Result<&Runnable, CommandError> {
        let held = context
            .commands
            .hold::<Runnable>(&self.id.to_string())
            .await?;
        self.looked = held.next_version();
        Ok(&self.held.insert(held).state)
    }

    /// Reads what was appended since the last look (and loads the state again if anything
    /// was): the syncs asked for meanwhile, in order.
    pub async fn look(&mut self, context: &Context) -> Result<Vec<Uuid>, CommandError> {
        if self.held.is_none() {
            self.load(context).await?;
            return Ok(Vec::new());
        }
        let stream = self.stream()?;
        let mut syncs = Vec::new();
        loop {
            let events = context
                .commands
                .store
                .read_stream(&stream, self.looked, PAGE)
                .await?;
            for recorded in &events {
                if recorded.event_type == "RunnableSyncRequested" {
                    if let Ok(RunnableEvent::RunnableSyncRequested { sync, .. }) =
                        decode::<RunnableEvent>(&recorded.event_type, &recorded.data)
                    {
                        syncs.push(sync);
                    }
                }
                self.looked = recorded.version + 1;
            }
            if events.len() < PAGE {
                break;
            }
        }
        let behind = self
            .held
            .as_ref()
            .is_none_or(|held| held.next_version() < self.looked);
        if behind {
            // `looked` stays where the read stopped: what was appended since (a sync asked
            // for) is read at the next look, though the state loaded holds it already.
            let held = context
                .commands
                .hold::<Runnable>(&self.id.to_string())
                .await?;
            self.held = Some(held);
        }
        Ok(syncs)
    }

    /// Appends `command`, retrying an outage of the log for up to a third of a lease (the same
    /// attempt each time, so a try that did commit unseen is not written twice). A refusal
    /// saying the run moved or is not wanted is `Refused`; any other refusal is an error.
    pub async fn append(
        &mut self,
        context: &Context,
        command: RunnableCommand,
    ) -> Result<Recorded, CommandError> {
        let attempt = Uuid::new_v4();
        let give_up = Instant::now() + context.lease / 3;
        let mut pause = Duration::from_millis(50);
        loop {
            match self.append_once(context, attempt, &command).await {
                Err(e) if e.is_transient() && Instant::now() + pause < give_up => {
                    tracing::warn!(runnable = %self.id, error = %e, "appending to the runnable failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Ok(()) => return Ok(Recorded::Done),
                Err(CommandError::Domain(DomainError::Conflict {
                    code: "run_moved" | "run_not_wanted",
                    message,
                })) => {
                    tracing::info!(runnable = %self.id, message, "the run is not this node's any more");
                    return Ok(Recorded::Refused);
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn append_once(
        &mut self,
        context: &Context,
        attempt: Uuid,
        command: &RunnableCommand,
    ) -> Result<(), CommandError> {
        let held = match &mut self.held {
            Some(held) => held,
            None => self.held.insert(
                context
                    .commands
                    .hold::<Runnable>(&self.id.to_string())
                    .await?,
            ),
        };
        context
            .commands
            .execute_held(
                held,
                &ACTOR,
                &context.origin,
                attempt,
                |state: &Runnable| state.handle(command.clone()),
            )
            .await
            .map(|_| ())
    }
}
