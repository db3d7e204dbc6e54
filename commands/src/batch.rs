//! Commands that decide on two or more aggregates at once, possibly of different types, and write
//! what they decide in one atomic append to all their streams
//! ([`EventStore::append_many`](bosun_eventstore::EventStore::append_many)): each stream against
//! the exact version its state was decided on, all of it written or none.
//!
//! [`Commands::execute_batch`] is the whole loop: it takes the states held together (a [`Held`],
//! a tuple of them, or a `Vec` of them: a [`HeldSet`]), runs `decide` on them, which adds each
//! aggregate's events to a [`Batch`], and appends the batch; if any stream moved meanwhile,
//! nothing was written, every state is reloaded and `decide` runs again, up to `ATTEMPTS` times
//! (then [`CommandError::Contended`] naming the stream that kept moving). The events get the
//! metadata of every command's events and ids derived from one attempt uuid, unique across the
//! streams; the read models are settled before it returns.
//!
//! ```ignore
//! // Swapping two apps: one decision, the same event on both streams, in one append.
//! let held = (self.hold::<App>(a).await?, self.hold::<App>(b).await?);
//! let ((), written) = self
//!     .execute_batch(held, actor, origin, |(one, two), batch| {
//!         let swapped = one.state.swap_with(&two.state, cname_only)?; // DomainError → 4xx
//!         batch.add(one, vec![swapped.clone()])?;
//!         batch.add(two, vec![swapped])?;
//!         Ok(())
//!     })
//!     .await?;
//!
//! // Creating an app and taking its owner's quota: two aggregates of different types.
//! let held = (self.hold::<App>(name).await?, self.hold::<Quota>(owner).await?);
//! let (app, written) = self
//!     .execute_batch(held, actor, origin, |(app, quota), batch| {
//!         batch.add(quota, quota.state.handle(QuotaCommand::Take { .. })?)?;
//!         let created = app.state.handle(AppCommand::Create { .. })?;
//!         let mut after = app.state.clone();
//!         created.iter().for_each(|e| after.apply(e));
//!         batch.add(app, created)?;
//!         Ok(after)
//!     })
//!     .await?;
//! ```
//!
//! `decide` may add nothing (the command changes nothing): nothing is appended and `Written` has
//! no position. It must add only states of the set it is given, as those are what a conflict
//! reloads. A caller with a loop of its own uses [`Commands::append_batch`], which appends once
//! and reports a conflict: passing the same attempt again after an unknown outcome (the log
//! failed to answer) gets the first try's result if it did commit, not a second copy.

use crate::actor::{metadata, Actor, Origin};
use crate::error::CommandError;
use crate::execute::{stream_id, Commands, Held, Written, ATTEMPTS};
use bosun_domain::{encode, Aggregate};
use bosun_eventstore::{
    AppendError, EventStore, ExpectedVersion, NewEvent, StreamAppend, StreamId,
};
use serde_json::Value;
use std::future::Future;
use uuid::Uuid;

/// The events decided on several held states, to append together.
#[derive(Debug, Default)]
pub struct Batch {
    parts: Vec<Part>,
}

#[derive(Debug)]
struct Part {
    stream: StreamId,
    expected: ExpectedVersion,
    /// Encoded: event type and data.
    events: Vec<(String, Value)>,
}

impl Batch {
    pub fn new() -> Self {
        Batch::default()
    }

    /// `events`, decided on `held`, to be appended to its stream against the version it holds.
    /// No events adds nothing. Adding to a stream already in the batch adds its events after the
    /// earlier ones, if decided on the same version.
    pub fn add<A: Aggregate>(
        &mut self,
        held: &Held<A>,
        events: Vec<A::Event>,
    ) -> Result<(), CommandError> {
        if events.is_empty() {
            return Ok(());
        }
        let stream = stream_id::<A>(held.id())?;
        let mut encoded = Vec::with_capacity(events.len());
        for event in &events {
            encoded.push(
                encode(event)
                    .map_err(|e| CommandError::Internal(format!("cannot encode an event: {e}")))?,
            );
        }
        match self.parts.iter_mut().find(|p| p.stream == stream) {
            Some(part) if part.expected == held.expected() => part.events.extend(encoded),
            Some(part) => {
                return Err(CommandError::Internal(format!(
                    "{stream} was decided on at {} and at {} in one batch",
                    part.expected,
                    held.expected()
                )))
            }
            None => self.parts.push(Part {
                stream,
                expected: held.expected(),
                events: encoded,
            }),
        }
        Ok(())
    }

    /// Nothing to append.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// The streams the batch appends to, in order.
    pub fn streams(&self) -> impl Iterator<Item = &StreamId> {
        self.parts.iter().map(|p| &p.stream)
    }
}

/// What one append of a batch did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchAppended {
    /// Every part written (or, for a retried attempt, written by its first try).
    Written(Written),
    /// `stream` was not at the version its state was decided on: nothing was written.
    Conflict { stream: String },
}

/// States held together by a command that decides on all of them: a [`Held`], a tuple of up to
/// four [`HeldSet`]s (so of different aggregate types), or a `Vec` of [`Held`]s of one type.
pub trait HeldSet: Send {
    /// Every state was loaded just now (a refusal by an older one may not stand: reload first).
    fn fresh(&self) -> bool;

    /// 412 if the client's `If-Match` names one of the streams at another version than held:
    /// checked on the states decided on, whether or not the decision writes to that stream.
    fn check_versions(&self, origin: &Origin) -> Result<(), CommandError>;

    /// Loads every state again from its stream.
    fn reload<S: EventStore>(
        &mut self,
        commands: &Commands<S>,
    ) -> impl Future<Output = Result<(), CommandError>> + Send;
}

impl<A: Aggregate + Send> HeldSet for Held<A> {
    fn fresh(&self) -> bool {
        self.is_fresh()
    }

    fn check_versions(&self, origin: &Origin) -> Result<(), CommandError> {
        self.check_version(origin)
    }

    async fn reload<S: EventStore>(&mut self, commands: &Commands<S>) -> Result<(), CommandError> {
        let reloaded = commands.hold::<A>(self.id()).await?;
        *self = reloaded;
        Ok(())
    }
}

impl<A: Aggregate + Send> HeldSet for Vec<Held<A>> {
    fn fresh(&self) -> bool {
        self.iter().all(Held::is_fresh)
    }

    fn check_versions(&self, origin: &Origin) -> Result<(), CommandError> {
        self.iter().try_for_each(|held| held.check_version(origin))
    }

    async fn reload<S: EventStore>(&mut self, commands: &Commands<S>) -> Result<(), CommandError> {
        for held in self.iter_mut() {
            held.reload(commands).await?;
        }
        Ok(())
    }
}

macro_rules! held_tuple {
    ($($h:ident $i:tt),+) => {
        impl<$($h: HeldSet),+> HeldSet for ($($h,)+) {
            fn fresh(&self) -> bool {
                true $(&& self.$i.fresh())+
            }

            fn check_versions(&self, origin: &Origin) -> Result<(), CommandError> {
                $(self.$i.check_versions(origin)?;)+
                Ok(())
            }

            async fn reload<S: EventStore>(
                &mut self,
                commands: &Commands<S>,
            ) -> Result<(), CommandError> {
                $(self.$i.reload(commands).await?;)+
                Ok(())
            }
        }
    };
}

held_tuple!(H0 0, H1 1);
held_tuple!(H0 0, H1 1, H2 2);
held_tuple!(H0 0, H1 1, H2 2, H3 3);

impl<S: EventStore> Commands<S> {
    /// Runs `decide` on the states `held` and appends every event it adds to the batch in one
    /// atomic append, each stream against the version its state holds; if one of them moved,
    /// reloads them all and decides again. Returns what `decide` returned on the states whose
    /// events were written, once the read models have them. See the [module](self).
    pub async fn execute_batch<H: HeldSet, T>(
        &self,
        mut held: H,
        actor: &Actor,
        origin: &Origin,
        decide: impl Fn(&H, &mut Batch) -> Result<T, CommandError>,
    ) -> Result<(T, Written), CommandError> {
        let attempt = Uuid::new_v4();
        let mut contended = None;
        for _ in 0..ATTEMPTS {
            let mut batch = Batch::new();
            let decided = match decide(&held, &mut batch) {
                Ok(decided) => decided,
                Err(_) if !held.fresh() => {
                    held.reload(self).await?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            held.check_versions(origin)?;
            match self.append_batch(batch, actor, origin, attempt).await? {
                BatchAppended::Written(written) => {
                    self.settle(written).await;
                    return Ok((decided, written));
                }
                BatchAppended::Conflict { stream } => {
                    contended = Some(stream);
                    held.reload(self).await?;
                }
            }
        }
        Err(CommandError::Contended(
            contended.unwrap_or_else(|| "streams of this command".into()),
        ))
    }

    /// Appends `batch` once, in one atomic append, with the metadata of `actor` and `origin` and
    /// event ids derived from `attempt` (the same attempt retried after an unknown outcome gets
    /// the first try's result, not a second copy). A conflict writes nothing and is reported,
    /// for the caller to reload and decide again; it does not wait for the read models.
    pub async fn append_batch(
        &self,
        batch: Batch,
        actor: &Actor,
        origin: &Origin,
        attempt: Uuid,
    ) -> Result<BatchAppended, CommandError> {
        if batch.is_empty() {
            return Ok(BatchAppended::Written(Written::default()));
        }
        let metadata = metadata(actor, origin);
        // One numbering over every part: the ids are unique across the streams.
        let mut index = 0u64;
        let mut parts = Vec::with_capacity(batch.parts.len());
        for part in batch.parts {
            let current = match part.expected {
                ExpectedVersion::Exact(v) => Some(v),
                _ => None,
            };
            origin.check_version(part.stream.as_str(), current)?;
            let mut events = Vec::with_capacity(part.events.len());
            for (event_type, data) in part.events {
                let event_id = Uuid::new_v5(&attempt, &index.to_be_bytes());
                index += 1;
                events.push(
                    NewEvent::new(event_type, data)
                        .with_id(event_id)
                        .with_metadata(metadata.clone()),
                );
            }
            parts.push(StreamAppend::new(part.stream, part.expected, events));
        }
        match self.store.append_many(parts).await {
            Ok(results) => Ok(BatchAppended::Written(Written {
                position: results.iter().map(|r| r.last_position).max(),
            })),
            Err(AppendError::WrongExpectedVersion { stream, .. }) => Ok(BatchAppended::Conflict {
                stream: stream.to_string(),
            }),
            Err(AppendError::Unstorable { field, reason }) => {
                Err(CommandError::Unstorable(format!("{field} {reason}")))
            }
            Err(AppendError::Refused(reason)) => Err(CommandError::Unstorable(reason)),
            Err(AppendError::Store(e)) => Err(CommandError::Store(e.to_string())),
            Err(e) => Err(CommandError::Internal(e.to_string())),
        }
    }
}
