//! Running a runnable, as its owner asks for it: start, stop and restart, and the sync a save of
//! a running one asks its node for first.
//!
//! - Start, stop, restart: its owner or an admin, with the write scope (404, then 403); each is
//!   an access. They record what is wanted (a start already wanted, a stop of one not wanted,
//!   change nothing); the runner on some node does it, and tells the runnable's stream how it
//!   went. Answered at once (202) with the runnable as it is then (`starting`, or still
//!   `running` until its runner stops it).
//! - A save of a runnable whose process runs first asks its node to sync the process's files
//!   back (`RunnableSyncRequested`), then waits, at most `runnables.sync_wait_seconds`, for the
//!   node's answer to that request (`RunnableFilesSynced` with its id), or for the run to end
//!   (`RunnableRunEnded`, or `RunnableRunStopped` for a stop, a restart or the node stopping)
//!   after a `RunnableFilesSynced` from its node since the request (the runner syncs a run it
//!   ends, before it says so). None in time is a 503 `sync_timeout`; a run that ends without
//!   that sync (its lease lost, the node gone, a sync back that failed, or one that found
//!   nothing to record) is a 503 `sync_lost`; either way no image is made. A removal ends the
//!   wait too: the save then finds no runnable (404).
//!
//! Does not own: the rules of a run (domain), running the process and syncing its files
//! (runner), reading its output (`queries/runnables.rs`).

use super::{answer, RunnableAction, RunnableRules, RunnableView};
use crate::actor::{Actor, Origin};
use crate::apps::now;
use crate::error::CommandError;
use crate::execute::{stream_id, Commands, Written};
use bosun_domain::runnables::{RunStopReason, Runnable, RunnableCommand, RunnableEvent};
use bosun_domain::{decode, Aggregate};
use bosun_eventstore::EventStore;
use chrono::{DateTime, Utc};
use std::collections::HashSet;
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

/// How often a wait for a sync reads the stream when no change of the log's head woke it (the
/// head's changes are a hint only).
const SYNC_POLL: Duration = Duration::from_millis(250);
/// Events read from the stream at once while waiting for a sync.
const SYNC_PAGE: usize = 100;

/// How one event after the sync request bears on the wait.
enum Seen {
    /// Nothing yet.
    Waiting,
    /// The files are synced (or the runnable is gone, which the save finds): save.
    Done,
    /// The run ended without its files synced since the request (`reason`).
    Lost(&'static str),
}

/// The wait of a save for the sync it asked for (`sync`): what the events after the request say.
struct SyncWait {
    sync: Uuid,
    /// The nodes that synced the runnable's files since the request.
    synced: HashSet<String>,
}

impl SyncWait {
    fn new(sync: Uuid) -> Self {
        SyncWait {
            sync,
            synced: HashSet::new(),
        }
    }

    fn see(&mut self, event: &RunnableEvent) -> Seen {
        match event {
            RunnableEvent::RunnableFilesSynced { sync, node, .. } => {
                if *sync == Some(self.sync) {
                    return Seen::Done;
                }
                self.synced.insert(node.clone());
                Seen::Waiting
            }
            RunnableEvent::RunnableRunEnded { node, synced, .. } => {
                self.ended(node, *synced, "ended")
            }
            RunnableEvent::RunnableRunStopped {
                node,
                reason,
                synced,
                ..
            } => match reason {
                RunStopReason::Stop | RunStopReason::Restart | RunStopReason::NodeStopped => {
                    self.ended(node, *synced, reason.as_str())
                }
                // Recorded after the removal, which ended the wait already.
                RunStopReason::Removed => Seen::Done,
                // Nothing is synced from a run whose lease is lost, or whose node is gone.
                RunStopReason::LeaseLost | RunStopReason::Lost => Seen::Lost(reason.as_str()),
            },
            RunnableEvent::RunnableRemoved { .. } | RunnableEvent::RunnableReaped { .. } => {
                Seen::Done
            }
            _ => Seen::Waiting,
        }
    }

    /// The run on `node` ended: its files are there if it says it synced them as it ended
    /// (after the request, as its end is), or that node synced them since the request.
    fn ended(&self, node: &str, synced: bool, reason: &'static str) -> Seen {
        if synced || self.synced.contains(node) {
            Seen::Done
        } else {
            Seen::Lost(reason)
        }
    }
}

impl<S: EventStore> Commands<S> {
    /// Asks for runnable `id` to run (202 with it): see the [module](self).
    #[tracing::instrument(skip_all, fields(actor = actor.name(), runnable = %id))]
    pub async fn start_runnable(
        &self,
        actor: &Actor,
        origin: &Origin,
        id: Uuid,
    ) -> Result<(RunnableView, Written), CommandError> {
        self.want_run(actor, origin, id, |at| RunnableCommand::Start { at })
            .await
    }

    /// Asks for runnable `id` to stop (202 with it): see the [module](self).
    #[tracing::instrument(skip_all, fields(actor = actor.name(), runnable = %id))]
    pub async fn stop_runnable(
        &self,
        actor: &Actor,
        origin: &Origin,
        id: Uuid,
    ) -> Result<(RunnableView, Written), CommandError> {
        self.want_run(actor, origin, id, |at| RunnableCommand::Stop { at })
            .await
    }

    /// Asks for runnable `id` to run again from scratch, or to start if stopped (202 with it):
    /// see the [module](self).
    #[tracing::instrument(skip_all, fields(actor = actor.name(), runnable = %id))]
    pub async fn restart_runnable(
        &self,
        actor: &Actor,
        origin: &Origin,
        id: Uuid,
    ) -> Result<(RunnableView, Written), CommandError> {
        self.want_run(actor, origin, id, |at| RunnableCommand::Restart { at })
            .await
    }

    async fn want_run(
        &self,
        actor: &Actor,
        origin: &Origin,
        id: Uuid,
        command: impl Fn(DateTime<Utc>) -> RunnableCommand,
    ) -> Result<(RunnableView, Written), CommandError> {
        let at = now();
        let ((state, version, ()), written) = self
            .execute_on_runnable(actor, origin, id, RunnableAction::Change, |state| {
                Ok((state.handle(command(at))?, ()))
            })
            .await?;
        Ok((answer(id, &state, version)?, written))
    }

    /// Before a save of runnable `id` by `actor` (allowed on it: 404, then 403): if a process
    /// of it runs, asks its node to sync the files back and waits for that, at most
    /// `rules.sync_wait`; 503 `sync_timeout` if no answer came in time, 503 `sync_lost` if the
    /// run ended without its files synced. Nothing to wait for when nothing runs. Asked for
    /// alone too (Runnable's `POST …/sync`, `/compat/runnable`): the files synced back now,
    /// with no image made.
    pub async fn sync_before_save(
        &self,
        actor: &Actor,
        origin: &Origin,
        rules: &RunnableRules,
        id: Uuid,
    ) -> Result<(), CommandError> {
        let sync = Uuid::new_v4();
        let at = now();
        // Subscribed before the request is appended, so no answer is missed.
        let mut head = self.store.head_changes();
        let ((_, version, ()), written) = self
            .execute_on_runnable(actor, origin, id, RunnableAction::Change, |state| {
                Ok((state.handle(RunnableCommand::RequestSync { sync, at })?, ()))
            })
            .await?;
        if written.position.is_none() {
            return Ok(());
        }
        let stream = stream_id::<Runnable>(&id.to_string())?;
        let mut next = u64::try_from(version).unwrap_or(0) + 1;
        let mut wait = SyncWait::new(sync);
        let start = Instant::now();
        // A wait too long to add is as good as none ending (the config bounds it anyway).
        let deadline = start
            .checked_add(rules.sync_wait)
            .unwrap_or(start + Duration::from_secs(86_400));
        loop {
            loop {
                let events = self.store.read_stream(&stream, next, SYNC_PAGE).await?;
                for recorded in &events {
                    next = recorded.version + 1;
                    let event: RunnableEvent = decode(&recorded.event_type, &recorded.data)
                        .map_err(|e| {
                            CommandError::Internal(format!(
                                "{stream} holds an event this version cannot read at version {}: {e}",
                                recorded.version
                            ))
                        })?;
                    match wait.see(&event) {
                        Seen::Waiting => {}
                        Seen::Done => return Ok(()),
                        Seen::Lost(reason) => {
                            tracing::warn!(runnable = %id, %sync, reason, "the run ended without its files synced: not saved");
                            return Err(CommandError::Unavailable {
                                code: "sync_lost",
                                message: format!(
                                    "runnable {id}'s run ended ({reason}) without its node syncing \
                                     its files: it was not saved, and what the process wrote since \
                                     its last sync may be lost; save it again"
                                ),
                            });
                        }
                    }
                }
                if events.len() < SYNC_PAGE {
                    break;
                }
            }
            let now = Instant::now();
            if now >= deadline {
                tracing::warn!(runnable = %id, %sync, "no node synced the runnable's files in time: not saved");
                return Err(CommandError::Unavailable {
                    code: "sync_timeout",
                    message: format!(
                        "runnable {id} runs, and its node did not sync its files within {} s \
                         (runnables.sync_wait_seconds): it was not saved; retry, or stop it first",
                        rules.sync_wait.as_secs()
                    ),
                });
            }
            // A head that moved, or a poll: either way the stream is read again.
            let pause = (deadline - now).min(SYNC_POLL);
            if let Ok(Err(_)) = tokio::time::timeout(pause, head.changed()).await {
                // The log's head is no longer followed: poll.
                tokio::time::sleep(pause).await;
            }
        }
    }
}
