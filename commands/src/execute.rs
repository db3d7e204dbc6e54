//! Load → decide → append → wait for the read models.

use crate::actor::{metadata, Actor, Origin};
use crate::error::CommandError;
use bosun_domain::{decode, encode, Aggregate, DomainError};
use bosun_eventstore::{
    AppendError, EventStore, ExpectedVersion, NewEvent, PgEventStore, StreamId,
};
use bosun_projections::Freshness;
use std::time::Duration;
use uuid::Uuid;

/// Attempts at a command whose stream moved between load and append.
const ATTEMPTS: usize = 5;
/// How long a write waits for the read models before answering anyway.
const FRESHNESS_WAIT: Duration = Duration::from_secs(5);
const PAGE: usize = 1000;

/// What a command needs: the log, and the read models' progress.
#[derive(Clone)]
pub struct Commands {
    pub store: PgEventStore,
    pub freshness: Freshness,
    /// This process's queue for the cross-node identity lock.
    pub(crate) identity_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// An aggregate's state kept by a writer between its commands, with the version it is at.
pub struct Held<A> {
    id: String,
    pub state: A,
    expected: ExpectedVersion,
    /// Loaded just now, not carried forward from earlier appends.
    fresh: bool,
}

/// What a command wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// The position of the last event written; `None` when the command changed nothing.
    pub position: Option<u64>,
}

impl Commands {
    pub fn new(store: PgEventStore, freshness: Freshness) -> Self {
        Commands {
            store,
            freshness,
            identity_lock: Default::default(),
        }
    }

    /// The aggregate `A` with id `id`, as its stream says now, and the stream's version.
    pub async fn load<A: Aggregate>(&self, id: &str) -> Result<(A, ExpectedVersion), CommandError> {
        let stream = stream_id::<A>(id)?;
        let mut state = A::default();
        let mut next = 0;
        loop {
            let events = self.store.read_stream(&stream, next, PAGE).await?;
            for recorded in &events {
                let event: A::Event =
                    decode(&recorded.event_type, &recorded.data).map_err(|e| {
                        CommandError::Internal(format!(
                            "{stream} holds an event this version cannot read at version {}: {e}",
                            recorded.version
                        ))
                    })?;
                state.apply(&event);
                next = recorded.version + 1;
            }
            if events.len() < PAGE {
                break;
            }
        }
        let expected = if next == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(next - 1)
        };
        Ok((state, expected))
    }

    /// Runs `decide` on the current state of `A`'s stream `id` and appends what it returns with
    /// the exact expected version, reloading and deciding again if another writer got there
    /// first. Returns the state after the command.
    pub async fn execute<A: Aggregate>(
        &self,
        id: &str,
        actor: &Actor,
        origin: &Origin,
        decide: impl Fn(&A) -> Result<Vec<A::Event>, DomainError>,
    ) -> Result<(A, Written), CommandError> {
        let (state, written) = self.execute_unsettled(id, actor, origin, decide).await?;
        self.settle(written).await;
        Ok((state, written))
    }

    /// `execute` without waiting for the read models: for writers nobody reads after, such as a
    /// worker appending output, which must not wait on projections between chunks.
    pub async fn execute_unsettled<A: Aggregate>(
        &self,
        id: &str,
        actor: &Actor,
        origin: &Origin,
        decide: impl Fn(&A) -> Result<Vec<A::Event>, DomainError>,
    ) -> Result<(A, Written), CommandError> {
        let mut held = self.hold::<A>(id).await?;
        let written = self
            .execute_held(&mut held, actor, origin, Uuid::new_v4(), decide)
            .await?;
        Ok((held.state, written))
    }

    /// Loads `A`'s stream `id` for a writer that keeps it between commands.
    pub async fn hold<A: Aggregate>(&self, id: &str) -> Result<Held<A>, CommandError> {
        let (state, expected) = self.load::<A>(id).await?;
        Ok(Held {
            id: id.to_string(),
            state,
            expected,
            fresh: true,
        })
    }

    /// `execute_unsettled` on a state the caller holds: decided on it and appended against its
    /// version, without reading the stream again. Only when another writer appended in between
    /// (or the held state refuses, which a newer one might not) is the stream reloaded. A worker
    /// appending a job's output this way reads nothing per chunk; reloading the whole stream each
    /// time made a job's output quadratic.
    ///
    /// The events' ids are derived from `attempt`: a caller that retries the same command after
    /// an unknown outcome (the log failed to answer) passes the same `attempt` again, so if the
    /// first try did commit, the retry gets its result instead of writing the events twice.
    pub async fn execute_held<A: Aggregate>(
        &self,
        held: &mut Held<A>,
        actor: &Actor,
        origin: &Origin,
        attempt: Uuid,
        decide: impl Fn(&A) -> Result<Vec<A::Event>, DomainError>,
    ) -> Result<Written, CommandError> {
        let stream = stream_id::<A>(&held.id)?;
        let metadata = metadata(actor, origin);
        for _ in 0..ATTEMPTS {
            let events = match decide(&held.state) {
                Ok(events) => events,
                Err(_) if !held.fresh => {
                    *held = self.hold(&held.id).await?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if events.is_empty() {
                return Ok(Written::default());
            }
            let mut new_events = Vec::with_capacity(events.len());
            for (index, event) in events.iter().enumerate() {
                let (event_type, data) = encode(event)
                    .map_err(|e| CommandError::Internal(format!("cannot encode an event: {e}")))?;
                let event_id = Uuid::new_v5(&attempt, &(index as u64).to_be_bytes());
                new_events.push(
                    NewEvent::new(event_type, data)
                        .with_id(event_id)
                        .with_metadata(metadata.clone()),
                );
            }
            let next_version = match held.expected {
                ExpectedVersion::Exact(v) => v + 1,
                _ => 0,
            };
            match self.store.append(&stream, held.expected, new_events).await {
                Ok(result) if result.first_version == next_version => {
                    events.iter().for_each(|e| held.state.apply(e));
                    held.expected = ExpectedVersion::Exact(result.last_version);
                    held.fresh = false;
                    return Ok(Written {
                        position: Some(result.last_position),
                    });
                }
                // An earlier try of this attempt had committed: its events, not these, are in
                // the stream.
                Ok(result) => {
                    *held = self.hold(&held.id).await?;
                    return Ok(Written {
                        position: Some(result.last_position),
                    });
                }
                Err(AppendError::WrongExpectedVersion { .. }) => {
                    *held = self.hold(&held.id).await?;
                }
                Err(AppendError::Unstorable { field, reason }) => {
                    return Err(CommandError::Unstorable(format!("{field} {reason}")))
                }
                Err(AppendError::Refused(reason)) => return Err(CommandError::Unstorable(reason)),
                Err(AppendError::Store(e)) => return Err(CommandError::Store(e.to_string())),
                Err(e) => return Err(CommandError::Internal(e.to_string())),
            }
        }
        Err(CommandError::Contended(stream.to_string()))
    }

    /// Waits until the read models have applied `written`, so the caller's next read (on any
    /// node) sees it.
    pub async fn settle(&self, written: Written) {
        if let Some(position) = written.position {
            if let Err(e) = self.freshness.wait_for(position, FRESHNESS_WAIT).await {
                tracing::warn!(error = %e, "answering a write before the read models caught up");
            }
        }
    }

    /// Waits until the read models have applied the first event of `A`'s stream `id` (it exists
    /// in their view); a 503 if they do not within the bound.
    pub async fn settle_stream<A: Aggregate>(&self, id: &str) -> Result<(), CommandError> {
        let stream = stream_id::<A>(id)?;
        let Some(first) = self.store.read_stream(&stream, 0, 1).await?.pop() else {
            return Ok(());
        };
        self.freshness
            .wait_for(first.position, FRESHNESS_WAIT)
            .await
            .map_err(|e| CommandError::Store(e.to_string()))
    }

    /// Waits until the read models hold everything in the log now: for checks that read them.
    pub async fn catch_up(&self) -> Result<(), CommandError> {
        let head = self.store.head().await?;
        self.freshness
            .wait_for(head, FRESHNESS_WAIT)
            .await
            .map_err(|e| CommandError::Internal(e.to_string()))
    }
}

fn stream_id<A: Aggregate>(id: &str) -> Result<StreamId, CommandError> {
    StreamId::parse(format!("{}-{id}", A::CATEGORY))
        .map_err(|e| CommandError::Internal(format!("bad stream id: {e}")))
}
