//! A node's writes to the stream of a unit it holds: the unit's state held between appends (so
//! an append reads nothing), each command appended as one attempt (the same event ids on every
//! try) and retried through an outage of the log for at most a third of a lease.
//!
//! Does not own: what is appended when (`unit`), the unit's rules (`bosun_domain::units`).

use super::Context;
use bosun_commands::{Actor, CommandError, Held};
use bosun_domain::units::{StopReason, Unit, UnitCommand, UnitId, UnitStart};
use bosun_domain::{Aggregate, DomainError};
use chrono::Utc;
use std::time::{Duration, Instant};
use uuid::Uuid;

pub(crate) const ACTOR: Actor = Actor::System("runner");

/// How an append went, for what the caller does next.
pub(crate) enum Recorded {
    Done,
    /// The unit no longer runs on this node (another took it over): nothing more may be said.
    Moved,
}

pub(crate) struct UnitStream {
    pub id: UnitId,
    held: Option<Held<Unit>>,
}

impl UnitStream {
    pub fn new(id: UnitId) -> Self {
        UnitStream { id, held: None }
    }

    /// The unit as this node last saw it (loaded at the first append).
    pub fn state(&self) -> Option<&Unit> {
        self.held.as_ref().map(|h| &h.state)
    }

    /// Loads the unit's state if it is not held yet.
    pub async fn load(&mut self, context: &Context) -> Result<&Unit, CommandError> {
        if self.held.is_none() {
            self.held = Some(context.commands.hold::<Unit>(&self.id.to_string()).await?);
        }
        match &self.held {
            Some(held) => Ok(&held.state),
            None => Err(CommandError::Internal(
                "the unit's state is not loaded".into(),
            )),
        }
    }

    /// Appends `command`, retrying an outage of the log for up to a third of a lease (the same
    /// attempt each time, so a try that did commit unseen is not written twice). A refusal
    /// saying the unit moved is `Moved`; any other refusal is an error.
    pub async fn append(
        &mut self,
        context: &Context,
        command: UnitCommand,
    ) -> Result<Recorded, CommandError> {
        let attempt = Uuid::new_v4();
        let give_up = Instant::now() + context.lease / 3;
        let mut pause = Duration::from_millis(50);
        loop {
            match self.append_once(context, attempt, &command).await {
                Err(e) if e.is_transient() && Instant::now() + pause < give_up => {
                    tracing::warn!(unit = %self.id, error = %e, "appending to the unit failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Ok(()) => return Ok(Recorded::Done),
                Err(CommandError::Domain(DomainError::Conflict {
                    code: "unit_moved", ..
                })) => return Ok(Recorded::Moved),
                Err(e) => return Err(e),
            }
        }
    }

    async fn append_once(
        &mut self,
        context: &Context,
        attempt: Uuid,
        command: &UnitCommand,
    ) -> Result<(), CommandError> {
        let held = match &mut self.held {
            Some(held) => held,
            None => self
                .held
                .insert(context.commands.hold::<Unit>(&self.id.to_string()).await?),
        };
        context
            .commands
            .execute_held(held, &ACTOR, &context.origin, attempt, |state: &Unit| {
                state.handle(command.clone())
            })
            .await
            .map(|_| ())
    }

    pub async fn start(
        &mut self,
        context: &Context,
        pid: u32,
        port: u16,
        generation: u64,
    ) -> Result<Recorded, CommandError> {
        let start = UnitStart {
            id: self.id.clone(),
            node: context.node.clone(),
            pid,
            port,
            address: format!("127.0.0.1:{port}"),
            generation,
        };
        let at = Utc::now();
        self.append(context, UnitCommand::Start { start, at }).await
    }

    pub async fn ready(&mut self, context: &Context, pid: u32) -> Result<Recorded, CommandError> {
        let command = UnitCommand::Ready {
            node: context.node.clone(),
            pid,
            at: Utc::now(),
        };
        self.append(context, command).await
    }

    pub async fn exit(
        &mut self,
        context: &Context,
        pid: u32,
        code: Option<i32>,
        signal: Option<i32>,
    ) -> Result<Recorded, CommandError> {
        let command = UnitCommand::Exit {
            node: context.node.clone(),
            pid,
            code,
            signal,
            at: Utc::now(),
        };
        self.append(context, command).await
    }

    pub async fn fail_start(
        &mut self,
        context: &Context,
        generation: u64,
        diagnostics: String,
    ) -> Result<Recorded, CommandError> {
        let command = UnitCommand::FailStart {
            id: self.id.clone(),
            node: context.node.clone(),
            generation,
            diagnostics,
            at: Utc::now(),
        };
        self.append(context, command).await
    }

    pub async fn stop(
        &mut self,
        context: &Context,
        reason: StopReason,
    ) -> Result<Recorded, CommandError> {
        let command = UnitCommand::Stop {
            node: context.node.clone(),
            reason,
            at: Utc::now(),
        };
        self.append(context, command).await
    }

    /// Records the unit stopped on `node`, a node that was lost, unless it moved on already.
    pub async fn lost(&mut self, context: &Context, node: &str) -> Result<Recorded, CommandError> {
        let command = UnitCommand::Lost {
            node: node.to_string(),
            at: Utc::now(),
        };
        self.append(context, command).await
    }
}
