//! Load → decide → append → wait for the read models.

use crate::actor::{metadata, Actor, Origin};
use crate::error::CommandError;
use crate::kept_states::KeptStates;
use bosun_domain::{decode, encode, Aggregate, DomainError};
use bosun_eventstore::{
    AppendError, EventStore, ExpectedVersion, NewEvent, PgEventStore, StreamId,
};
use bosun_projections::Freshness;
use deadpool_postgres::Pool;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Attempts at a command whose stream moved between load and append.
pub(crate) const ATTEMPTS: usize = 5;
/// How long a write waits for the read models before answering anyway.
const FRESHNESS_WAIT: Duration = Duration::from_secs(5);
const PAGE: usize = 1000;

/// What a command needs: the log, the read models' progress, and the read models themselves for
/// the few checks that read them.
///
/// Every write goes through the [`EventStore`] contract alone, so the command layer runs on any
/// store: PostgreSQL in production (the default `S`), the in-memory one in unit tests.
#[derive(Clone)]
pub struct Commands<S = PgEventStore> {
    /// The log.
    pub store: S,
    pub freshness: Freshness,
    /// The read models' database: for the views a write answers with (a job, an orchestration,
    /// a user), logins, and the first-admin check. None over a log nothing projects.
    read_models: Option<Pool>,
    /// Set once the log holds the reservations and the admin roster of the users registered
    /// before either existed (see `identity::backfill`).
    pub(crate) identity_ready: Arc<AtomicBool>,
    /// Seals secrets before they enter an event; none until [`Commands::with_sealer`].
    sealer: Option<Arc<crate::seal::Sealer>>,
    /// States as of a version, so a load reads only the events after it.
    kept: Arc<KeptStates>,
}

/// An aggregate's state kept by a writer between its commands, with the version it is at.
pub struct Held<A> {
    id: String,
    pub state: A,
    expected: ExpectedVersion,
    /// Loaded just now, not carried forward from earlier appends.
    fresh: bool,
}

impl<A> Held<A> {
    /// The aggregate's id (its stream's, after the category).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The version of the stream's last event as held; none for a stream with no events.
    pub fn version(&self) -> Option<u64> {
        match self.expected {
            ExpectedVersion::Exact(v) => Some(v),
            _ => None,
        }
    }

    /// The version the next event appended to the stream gets.
    pub fn next_version(&self) -> u64 {
        self.version().map_or(0, |v| v + 1)
    }

    /// The version an append decided on this state expects.
    pub(crate) fn expected(&self) -> ExpectedVersion {
        self.expected
    }

    /// 412 if the client's `If-Match` names this stream at another version: for a command
    /// that writes other streams before this one (a claim, a roster), to refuse before any.
    pub(crate) fn check_version(&self, origin: &Origin) -> Result<(), CommandError>
    where
        A: Aggregate,
    {
        origin.check_version(stream_id::<A>(&self.id)?.as_str(), self.version())
    }

    /// Loaded just now, not carried forward from earlier appends.
    pub(crate) fn is_fresh(&self) -> bool {
        self.fresh
    }
}

/// What a command wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// The position of the last event written; `None` when the command changed nothing.
    pub position: Option<u64>,
}

impl Written {
    /// This, then `later` (appended after it): the position of the last event of both.
    pub(crate) fn and(self, later: Written) -> Written {
        Written {
            position: later.position.max(self.position),
        }
    }
}

/// What a single append against a held version did.
pub(crate) enum Appended {
    Written(Written),
    /// Another writer appended first: nothing was written, and the held state was reloaded.
    Conflict,
}

impl Commands<PgEventStore> {
    /// Commands over the PostgreSQL log, whose database also holds the read models.
    pub fn new(store: PgEventStore, freshness: Freshness) -> Self {
        let read_models = store.pool().clone();
        Commands::over(store, freshness, Some(read_models))
    }
}

impl<S: EventStore> Commands<S> {
    /// Commands over any log. `read_models`: the database of the read models (none: the checks
    /// that read them fail, as nothing projects this log; with [`Freshness::none`], writes then
    /// wait for nothing).
    pub fn over(store: S, freshness: Freshness, read_models: Option<Pool>) -> Self {
        Commands {
            store,
            freshness,
            read_models,
            identity_ready: Default::default(),
            sealer: None,
            kept: Default::default(),
        }
    }

    /// These commands, sealing secrets with `sealer` (made from the server's data key).
    pub fn with_sealer(mut self, sealer: crate::seal::Sealer) -> Self {
        self.sealer = Some(Arc::new(sealer));
        self
    }

    /// The sealer; a command that stores a secret fails without one rather than store it in
    /// clear.
    pub fn sealer(&self) -> Result<&crate::seal::Sealer, CommandError> {
        self.sealer.as_deref().ok_or_else(|| {
            CommandError::Internal("no data key: secrets cannot be sealed or opened".into())
        })
    }

    /// Whether these commands have read models (not so over a log nothing projects).
    pub(crate) fn has_read_models(&self) -> bool {
        self.read_models.is_some()
    }

    /// A connection to the read models.
    pub(crate) async fn read_models(&self) -> Result<deadpool_postgres::Object, CommandError> {
        match &self.read_models {
            Some(pool) => Ok(pool.get().await?),
            None => Err(CommandError::Internal(
                "this command handler has no read models".into(),
            )),
        }
    }

    /// The aggregate `A` with id `id`, as its stream says now, and the stream's version: the
    /// state kept from an earlier load, with the events after it (see [`KeptStates`]).
    pub async fn load<A: Aggregate>(&self, id: &str) -> Result<(A, ExpectedVersion), CommandError> {
        let stream = stream_id::<A>(id)?;
        let kept = self.kept.get::<A>(stream.as_str());
        let kept_version = kept.as_ref().map(|k| k.version);
        // From the kept state's own last event, which must still be there.
        let (mut state, mut next, mut last_event) = match kept {
            Some(kept) => (kept.state, kept.version, kept.last_event),
            None => (A::default(), 0, Uuid::nil()),
        };
        let mut checking = kept_version.is_some();
        let mut reloaded = false;
        loop {
            let events = self.store.read_stream(&stream, next, PAGE).await?;
            let mut applying = &events[..];
            if checking {
                checking = false;
                match events.first() {
                    Some(first) if first.version == next && first.event_id == last_event => {
                        applying = &events[1..];
                        next += 1;
                    }
                    _ => {
                        tracing::warn!(%stream, version = next, "the log no longer holds the event a kept state applied; loading the stream from its start");
                        (state, next, reloaded) = (A::default(), 0, true);
                        continue;
                    }
                }
            }
            for recorded in applying {
                let event: A::Event =
                    decode(&recorded.event_type, &recorded.data).map_err(|e| {
                        CommandError::Internal(format!(
                            "{stream} holds an event this version cannot read at version {}: {e}",
                            recorded.version
                        ))
                    })?;
                state.apply(&event);
                next = recorded.version + 1;
                last_event = recorded.event_id;
            }
            if events.len() < PAGE {
                break;
            }
        }
        if next > 0 && (Some(next - 1) != kept_version || reloaded) {
            self.kept.put(stream.as_str(), &state, next - 1, last_event);
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
        self.execute_guarded(id, actor, origin, |_| Ok(()), decide)
            .await
    }

    /// `execute` for a command only some may give: `guard` (who may, decided on the aggregate
    /// itself, such as its creator) runs before `decide` on every state decided on, the reloaded
    /// ones too.
    pub async fn execute_guarded<A: Aggregate>(
        &self,
        id: &str,
        actor: &Actor,
        origin: &Origin,
        guard: impl Fn(&A) -> Result<(), CommandError>,
        decide: impl Fn(&A) -> Result<Vec<A::Event>, DomainError>,
    ) -> Result<(A, Written), CommandError> {
        let mut held = self.hold::<A>(id).await?;
        let written = self
            .decide_held(&mut held, actor, origin, Uuid::new_v4(), |state| {
                guard(state)?;
                Ok(decide(state)?)
            })
            .await?;
        self.settle(written).await;
        Ok((held.state, written))
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
        self.decide_held(held, actor, origin, attempt, |state| Ok(decide(state)?))
            .await
    }

    async fn decide_held<A: Aggregate>(
        &self,
        held: &mut Held<A>,
        actor: &Actor,
        origin: &Origin,
        attempt: Uuid,
        decide: impl Fn(&A) -> Result<Vec<A::Event>, CommandError>,
    ) -> Result<Written, CommandError> {
        for _ in 0..ATTEMPTS {
            let events = match decide(&held.state) {
                Ok(events) => events,
                Err(_) if !held.fresh => {
                    *held = self.hold(&held.id).await?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if events.is_empty() {
                // A command that changes nothing still answers to its precondition.
                if !held.fresh && origin.if_match.is_some() {
                    *held = self.hold(&held.id).await?;
                    continue;
                }
                origin.check_version(stream_id::<A>(&held.id)?.as_str(), held.version())?;
                return Ok(Written::default());
            }
            match self
                .append_held(held, actor, origin, attempt, events)
                .await?
            {
                Appended::Written(written) => return Ok(written),
                Appended::Conflict => {}
            }
        }
        Err(CommandError::Contended(
            stream_id::<A>(&held.id)?.to_string(),
        ))
    }

    /// Appends `events`, decided on `held`, once: against its version, with ids derived from
    /// `attempt`. The held state follows: the events applied, or, if another writer appended
    /// first, reloaded (and nothing written). For a command that decides on more than one
    /// stream, and so decides again itself when one of them moved.
    pub(crate) async fn append_held<A: Aggregate>(
        &self,
        held: &mut Held<A>,
        actor: &Actor,
        origin: &Origin,
        attempt: Uuid,
        events: Vec<A::Event>,
    ) -> Result<Appended, CommandError> {
        if events.is_empty() {
            return Ok(Appended::Written(Written::default()));
        }
        let stream = stream_id::<A>(&held.id)?;
        origin.check_version(stream.as_str(), held.version())?;
        let metadata = metadata(actor, origin);
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
        let next_version = held.next_version();
        match self.store.append(&stream, held.expected, new_events).await {
            Ok(result) if result.first_version == next_version => {
                events.iter().for_each(|e| held.state.apply(e));
                held.expected = ExpectedVersion::Exact(result.last_version);
                held.fresh = false;
                Ok(Appended::Written(Written {
                    position: Some(result.last_position),
                }))
            }
            // An earlier try of this attempt had committed: its events, not these, are in
            // the stream.
            Ok(result) => {
                *held = self.hold(&held.id).await?;
                Ok(Appended::Written(Written {
                    position: Some(result.last_position),
                }))
            }
            Err(AppendError::WrongExpectedVersion { .. }) => {
                *held = self.hold(&held.id).await?;
                Ok(Appended::Conflict)
            }
            Err(AppendError::Unstorable { field, reason }) => {
                Err(CommandError::Unstorable(format!("{field} {reason}")))
            }
            Err(AppendError::Refused(reason)) => Err(CommandError::Unstorable(reason)),
            Err(AppendError::Store(e)) => Err(CommandError::Store(e.to_string())),
            Err(e) => Err(CommandError::Internal(e.to_string())),
        }
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

/// The stream of `A`'s `id`. An id no stream can have names nothing that exists: a 404.
pub(crate) fn stream_id<A: Aggregate>(id: &str) -> Result<StreamId, CommandError> {
    StreamId::parse(format!("{}-{id}", A::CATEGORY)).map_err(|_| {
        CommandError::Domain(DomainError::NotFound(format!("no {} {id:?}", A::CATEGORY)))
    })
}
