//! Runnable commands (Runnable's api-server): creating root runnables and forking them, their
//! name and start command, their files (as blobs), saving their images, removing and reaping
//! them. Reads are [`Queries`](crate::Queries)' (`queries/runnables.rs`); the reaper's schedule
//! is the runner's (`runner/src/runnables`).
//!
//! Who may act:
//! - A runnable is seen by its owner, an admin, and, once it has an image, anyone with the read
//!   scope; one not seen is a 404, as a removed or reaped one (and an id that is not a uuid).
//! - Changing it, reading, listing or writing its files, saving and removing it, starting,
//!   stopping and restarting it, and reading its output, is for its owner or an admin (403 for
//!   anyone else who sees it), with the write scope (the read scope to read). Anyone else sees
//!   its image's start command, not its current one.
//! - A user's runnables are removed with the user (`remove_user`), as their owner's registry
//!   holds them, so a later user of the same name owns none of them.
//! - How many a user owns is kept exact by their registry (`runnables.quota`: see
//!   `lifecycle.rs`); an admin is never limited.
//! - Forking is for any user with the write scope, from a parent they see: 404 otherwise, 409
//!   `parent_has_no_image` for one without an image (only its owner or an admin sees it). The
//!   fork is the caller's. A root runnable is an admin's (403).
//! - An app token does none of it (403); the reaper is `Actor::System("reaper")`.
//!
//! Every command checks who acts on the runnable's state as its stream has it (on every state
//! decided on), then lets the aggregate decide; writing, reading and listing files load it first
//! (to decide before storing bytes, or to read), the others check it once held.
//!
//! Blobs: the log is reached through the [`EventStore`] contract, but a file's bytes are
//! PostgreSQL's (`bosun_eventstore::blobs`, in the log's own database). So the three commands
//! that store or read bytes (creating a root runnable, writing a file, reading one) are on
//! `Commands<PgEventStore>` and call the store's blob methods (`self.store.put_blob`); the rest
//! runs over any log, the in-memory one of the unit tests too. A file's size is checked before
//! its bytes are stored, and the aggregate decides on the digest computed here before the blob
//! is stored, so a refused write stores nothing; the blob is stored before the event that names
//! it, so no event names a missing blob (a write whose append then fails leaves an unreferenced
//! blob; blobs are never deleted yet).
//!
//! Each handler's span records ids, paths and sizes, never a file's content.
//!
//! Starting, stopping and restarting one, and the sync a save of a running one waits for, are
//! `runs.rs`'s (that sync may be asked for alone too). The whole tree at once (with the files'
//! contents if asked), one entry of it, and changing a file's or folder's content and place in
//! one append, are `tree.rs`'s; renaming a runnable and starting or stopping it in one append,
//! `change.rs`'s (Runnable's APIs need them: `/compat/runnable`).
//!
//! Does not own: the rules of one runnable (domain), the blobs' table (`eventstore`), running a
//! runnable's process (the runner).

mod change;
mod files;
mod lifecycle;
mod runs;
mod tree;

pub use bosun_projections::read_models::runnables::{FileView, ImageView, RunnableView};
pub use change::RunnableChange;
pub use lifecycle::CreateRoot;
pub use tree::FileChange;

use crate::actor::{Actor, Origin};
use crate::error::CommandError;
use crate::execute::{Commands, Written};
use bosun_domain::identity::{Scope, Username};
use bosun_domain::runnables::{FileLimits, Runnable, RunnableEvent};
use bosun_domain::DomainError;
use bosun_eventstore::EventStore;
use std::time::Duration;
use uuid::Uuid;

/// The configured rules of runnables (`runnables.*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunnableRules {
    /// The limits of a runnable's files.
    pub limits: FileLimits,
    /// `reap_after_seconds`: how long a runnable without an image lives unaccessed.
    pub reap_after: Duration,
    /// `sync_wait_seconds`: how long a save of a running runnable waits for its node to sync
    /// the process's files (503 `sync_timeout` after).
    pub sync_wait: Duration,
    /// `quota.anonymous`: how many runnables an anonymous user may own (`None`: unlimited).
    pub quota_anonymous: Option<u32>,
    /// `quota.user`: how many runnables a registered user may own (`None`: unlimited).
    pub quota_user: Option<u32>,
}

impl RunnableRules {
    /// The least time between two reads counted as accesses: a minute, or a quarter of
    /// `reap_after` when that is shorter ([`bosun_domain::runnables::access_every`]).
    pub fn access_every(&self) -> Duration {
        bosun_domain::runnables::access_every(self.reap_after)
    }

    /// How many runnables `owner` may own when `actor` makes one for them: unlimited for an
    /// admin, else the anonymous or the registered users' quota.
    pub fn quota_for(&self, actor: &Actor, owner: &Username) -> Option<u32> {
        if actor.is_admin() {
            None
        } else if owner.is_anonymous() {
            self.quota_anonymous
        } else {
            self.quota_user
        }
    }
}

impl Default for RunnableRules {
    fn default() -> Self {
        RunnableRules {
            limits: FileLimits::default(),
            reap_after: Duration::from_secs(7 * 24 * 3600),
            sync_wait: Duration::from_secs(10),
            quota_anonymous: Some(5),
            quota_user: None,
        }
    }
}

/// What an actor does on a runnable, as [`require_on`] is asked it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RunnableAction {
    /// Read its files (`read`): its owner or an admin.
    ReadFiles,
    /// Change it, its files, save or remove it (`write`): its owner or an admin.
    Change,
}

pub(crate) fn no_runnable(id: impl std::fmt::Display) -> CommandError {
    DomainError::NotFound(format!("no runnable {id}")).into()
}

/// Whether `actor` sees a runnable owned by `owner`, with an image or not: an admin (the server
/// too), its owner, or anyone once it has an image. Scopes aside.
pub(crate) fn sees(actor: &Actor, owner: &str, has_image: bool) -> bool {
    match actor {
        Actor::User { username, .. } => actor.is_admin() || username == owner || has_image,
        Actor::System(_) => true,
        Actor::App(_) | Actor::Anonymous => false,
    }
}

/// `actor` sees runnable `id` (as `state`): 404 for no such runnable (never created, removed,
/// reaped) or one it may not see.
pub(crate) fn require_sees(actor: &Actor, id: Uuid, state: &Runnable) -> Result<(), CommandError> {
    let visible = state.is_active()
        && state
            .owner()
            .is_some_and(|owner| sees(actor, owner.as_str(), state.image().is_some()));
    if !visible {
        return Err(no_runnable(id));
    }
    Ok(())
}

/// `actor` may do `action` on runnable `id` (as `state`): the action's scope (403), then it
/// sees it (404), then it is its owner or an admin (403).
pub(crate) fn require_on(
    actor: &Actor,
    id: Uuid,
    state: &Runnable,
    action: RunnableAction,
) -> Result<(), CommandError> {
    actor.require(match action {
        RunnableAction::ReadFiles => Scope::Read,
        RunnableAction::Change => Scope::Write,
    })?;
    require_sees(actor, id, state)?;
    let owns = state.owner().is_some_and(|owner| actor.is(owner.as_str()));
    if !owns && !actor.is_admin() {
        return Err(CommandError::Forbidden(format!(
            "only runnable {id}'s owner or an admin may do this"
        )));
    }
    Ok(())
}

/// The view of a runnable's state at `version` (a write's answer).
pub(crate) fn answer(
    id: Uuid,
    state: &Runnable,
    version: i64,
) -> Result<RunnableView, CommandError> {
    let version = u64::try_from(version).map_err(|_| no_runnable(id))?;
    RunnableView::of_state(state, version).ok_or_else(|| no_runnable(id))
}

impl<S: EventStore> Commands<S> {
    /// Runnable `id` as its stream has it now, if `actor` may do `action` on it (404, then 403).
    pub(crate) async fn authorized_runnable(
        &self,
        actor: &Actor,
        id: Uuid,
        action: RunnableAction,
    ) -> Result<Runnable, CommandError> {
        let (state, _) = self.load::<Runnable>(&id.to_string()).await?;
        require_on(actor, id, &state, action)?;
        Ok(state)
    }

    /// Writes what `decide` makes of runnable `id`'s state, in one append: `actor` must be
    /// allowed `action` on every state decided on (404, then 403), and a state that moved
    /// meanwhile is decided again. Returns what `decide` answered, with the state after the
    /// events and its stream's version then.
    pub(crate) async fn execute_on_runnable<T>(
        &self,
        actor: &Actor,
        origin: &Origin,
        id: Uuid,
        action: RunnableAction,
        decide: impl Fn(&Runnable) -> Result<(Vec<RunnableEvent>, T), CommandError>,
    ) -> Result<((Runnable, i64, T), Written), CommandError> {
        self.execute_batch(
            self.hold::<Runnable>(&id.to_string()).await?,
            actor,
            origin,
            |held, batch| {
                require_on(actor, id, &held.state, action)?;
                let (events, decided) = decide(&held.state)?;
                let (state, version) = crate::apps::after(held, &events);
                batch.add(held, events)?;
                Ok((state, version, decided))
            },
        )
        .await
    }
}
