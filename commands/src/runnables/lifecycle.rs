//! Creating, forking, changing, saving, removing and reaping a runnable.
//!
//! - Create a root runnable: an admin (403), who owns it; its name, start command and files are
//!   checked (400), each file's size (413 `file_too_large`) and the tree as the aggregate keeps
//!   it (400 `files`, 413 `runnable_too_large`) before any byte is stored; then its blobs, then
//!   `RunnableCreated`. On `Commands<PgEventStore>`: it stores blobs (see the [module](super)).
//! - Fork: any user with the write scope (403), from a parent they see (400 `from` for an id
//!   that is not one, 404), with an image (409 `parent_has_no_image`); the fork is theirs,
//!   named as asked or as its parent, with its parent's image's files and start command (the
//!   same digests: no byte is copied).
//! - Update (name, start command), save, remove: its owner or an admin (404, then 403); values
//!   equal to the current ones, or an image of the same files and start command, change nothing.
//! - A removed user's runnables: removed with them (`RunnableRemoved` by whoever removed the
//!   user), as their registry holds them and, for those created before registries existed (in
//!   none), as the read models list them; then their registry is closed
//!   (`RunnableOwnerClosed`), so a fork of theirs still under way is refused rather than left
//!   behind, and a later user of the same name owns none of them. Registering that name
//!   reopens it ([`Commands::reopen_runnables_of`], removing first what a failed cleanup left).
//!   The runnables from before registries count towards no quota: a user who has some may own
//!   that many more than `runnables.quota` until they are removed or reaped.
//! - Reap: the reaper (`Actor::System("reaper")`), with no one to authorize; the aggregate
//!   decides on the stream as it is now (no image, idle for `reap_after`), so a runnable
//!   accessed or saved since the read model listed it is left alone.
//! - Owners' registries (`runnable_owner-<username>`, the domain's `RunnableOwner`): creating
//!   and forking take a place on the owner's in the same atomic append as `RunnableCreated`
//!   (403 `runnable_quota_exceeded` past [`RunnableRules::quota_for`]: `runnables.quota`, none
//!   for an admin), so forks racing for the last place cannot all have it; removing and reaping
//!   release it in the same append as `RunnableRemoved` / `RunnableReaped`. An anonymous user
//!   who registers hands them over ([`Commands::hand_over_runnables`]).
//!
//! Does not own: the rules of one runnable and of a registry (domain), the reaper's schedule
//! (runner), registration itself (`identity`).

use super::{
    answer, no_runnable, require_on, require_sees, RunnableAction, RunnableRules, RunnableView,
};
use crate::actor::{Actor, Origin};
use crate::apps::now;
use crate::batch::{Batch, BatchAppended};
use crate::error::CommandError;
use crate::execute::{Appended, Commands, Written, ATTEMPTS};
use bosun_domain::identity::{Scope, Username};
use bosun_domain::runnables::{
    Digest, FileEntry, FilePath, ForkSource, Runnable, RunnableCommand, RunnableEvent, RunnableId,
    RunnableName, RunnableOwner, RunnableOwnerCommand, StartCommand,
};
use bosun_domain::{Aggregate, DomainError};
use bosun_eventstore::{EventStore, PgEventStore};
use chrono::{DateTime, SubsecRound, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use uuid::Uuid;

/// Who reaps idle runnables.
const REAPER: Actor = Actor::System("reaper");
/// Who hands an anonymous user's runnables over when they register.
const IDENTITY: Actor = Actor::System("identity");

/// What `POST /v1/runnables` asks for from an admin: a root runnable. Its `Debug` shows the
/// files' paths and sizes, never their content.
#[derive(Clone, Default)]
pub struct CreateRoot {
    pub name: String,
    pub start_command: String,
    /// Each file's path in the tree and its content.
    pub files: Vec<(String, Vec<u8>)>,
}

impl std::fmt::Debug for CreateRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let files: Vec<(&str, usize)> = self
            .files
            .iter()
            .map(|(path, content)| (path.as_str(), content.len()))
            .collect();
        f.debug_struct("CreateRoot")
            .field("name", &self.name)
            .field("start_command", &self.start_command)
            .field("files", &files)
            .finish()
    }
}

/// The one a new runnable belongs to: the user acting (a 403 for anyone else).
fn new_owner(actor: &Actor) -> Result<Username, CommandError> {
    let Some(owner) = actor.username() else {
        return Err(CommandError::Forbidden(
            "only a user can own a runnable".into(),
        ));
    };
    Ok(Username::parse(owner)?)
}

/// A root runnable's file at `path`: 400 `files` naming it for a path that is not one.
fn file_path(path: &str) -> Result<FilePath, CommandError> {
    FilePath::parse(path).map_err(|e| match e {
        DomainError::Invalid { message, .. } => {
            DomainError::invalid("files", format!("{path:?}: the path {message}")).into()
        }
        other => other.into(),
    })
}

impl Commands<PgEventStore> {
    /// Creates a root runnable (201 with it): see the [module](self).
    #[tracing::instrument(skip_all, fields(actor = actor.name(), name = request.name.as_str(), files = request.files.len()))]
    pub async fn create_root_runnable(
        &self,
        actor: &Actor,
        origin: &Origin,
        rules: &RunnableRules,
        request: CreateRoot,
    ) -> Result<(RunnableView, Written), CommandError> {
        actor.require(Scope::Write)?;
        actor.require_admin()?;
        let owner = new_owner(actor)?;
        let name = RunnableName::parse(&request.name)?;
        let start_command = StartCommand::parse(&request.start_command)?;
        let mut files = Vec::with_capacity(request.files.len());
        // The distinct contents, by digest: each stored once.
        let mut contents: BTreeMap<Digest, &[u8]> = BTreeMap::new();
        for (path, content) in &request.files {
            let path = file_path(path)?;
            let size = content.len() as u64;
            rules.limits.check_file_size(size)?;
            let digest = Digest::of(content);
            contents.insert(digest.clone(), content);
            files.push(FileEntry { path, digest, size });
        }
        let id = RunnableId::new(Uuid::new_v4());
        let at = now();
        let command = || RunnableCommand::CreateRoot {
            id,
            name: name.clone(),
            owner: owner.clone(),
            start_command: start_command.clone(),
            files: files.clone(),
            limits: rules.limits,
            at,
        };
        // Decided once before any byte is stored: a refused tree stores nothing.
        Runnable::default().handle(command())?;
        for (digest, content) in &contents {
            self.store_blob(digest, content).await?;
        }
        let held = (
            self.hold::<Runnable>(&id.to_string()).await?,
            self.hold::<RunnableOwner>(owner.as_str()).await?,
        );
        let ((state, version), written) = self
            .execute_batch(held, actor, origin, |(held, registry), batch| {
                let events = held.state.handle(command())?;
                let taken = registry.state.handle(RunnableOwnerCommand::Take {
                    runnable: id,
                    limit: rules.quota_for(actor, &owner),
                })?;
                let after = crate::apps::after(held, &events);
                batch.add(held, events)?;
                batch.add(registry, taken)?;
                Ok(after)
            })
            .await?;
        Ok((answer(id.as_uuid(), &state, version)?, written))
    }

    /// Stores `content` as a blob under `digest`, computed from it by the caller.
    pub(crate) async fn store_blob(
        &self,
        digest: &Digest,
        content: &[u8],
    ) -> Result<(), CommandError> {
        self.store.put_blob(digest.as_str(), content).await?;
        Ok(())
    }
}

impl<S: EventStore> Commands<S> {
    /// Forks runnable `from` for the caller (201 with the fork): see the [module](self).
    #[tracing::instrument(skip_all, fields(actor = actor.name(), from = from))]
    pub async fn fork_runnable(
        &self,
        actor: &Actor,
        origin: &Origin,
        rules: &RunnableRules,
        from: &str,
        name: Option<String>,
    ) -> Result<(RunnableView, Written), CommandError> {
        actor.require(Scope::Write)?;
        let owner = new_owner(actor)?;
        let parent_id = RunnableId::parse("from", from)?;
        let name = name.as_deref().map(RunnableName::parse).transpose()?;
        let (parent, _) = self.load::<Runnable>(&parent_id.to_string()).await?;
        require_sees(actor, parent_id.as_uuid(), &parent)?;
        let source = ForkSource::of(&parent)?;
        let name = match name.or_else(|| parent.name().cloned()) {
            Some(name) => name,
            None => return Err(no_runnable(parent_id)),
        };
        let id = RunnableId::new(Uuid::new_v4());
        let at = now();
        let held = (
            self.hold::<Runnable>(&id.to_string()).await?,
            self.hold::<RunnableOwner>(owner.as_str()).await?,
        );
        let ((state, version), written) = self
            .execute_batch(held, actor, origin, |(held, registry), batch| {
                let events = held.state.handle(RunnableCommand::Fork {
                    id,
                    name: name.clone(),
                    owner: owner.clone(),
                    parent: source.clone(),
                    at,
                })?;
                let taken = registry.state.handle(RunnableOwnerCommand::Take {
                    runnable: id,
                    limit: rules.quota_for(actor, &owner),
                })?;
                let after = crate::apps::after(held, &events);
                batch.add(held, events)?;
                batch.add(registry, taken)?;
                Ok(after)
            })
            .await?;
        Ok((answer(id.as_uuid(), &state, version)?, written))
    }

    /// Changes a runnable's name or start command (200 with it); values equal to the current
    /// ones change nothing. Its image keeps the start command it was saved with.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), runnable = %id))]
    pub async fn update_runnable(
        &self,
        actor: &Actor,
        origin: &Origin,
        id: Uuid,
        name: Option<String>,
        start_command: Option<String>,
    ) -> Result<(RunnableView, Written), CommandError> {
        // Parsed here, refused (400) only once the runnable is found and the actor allowed on
        // it (404, then 403), inside the decision.
        let name = name.as_deref().map(RunnableName::parse).transpose();
        let start_command = start_command
            .as_deref()
            .map(StartCommand::parse)
            .transpose();
        let at = now();
        let ((state, version, ()), written) = self
            .execute_on_runnable(actor, origin, id, RunnableAction::Change, |state| {
                let events = state.handle(RunnableCommand::Update {
                    name: name.clone()?,
                    start_command: start_command.clone()?,
                    at,
                })?;
                Ok((events, ()))
            })
            .await?;
        Ok((answer(id, &state, version)?, written))
    }

    /// Makes a runnable's image from its files and start command, replacing the one it had
    /// (200 with it); the same files and start command again change nothing.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), runnable = %id))]
    pub async fn save_runnable(
        &self,
        actor: &Actor,
        origin: &Origin,
        rules: &RunnableRules,
        id: Uuid,
    ) -> Result<(RunnableView, Written), CommandError> {
        // A running process's files first (`runs.rs`): 503 `sync_timeout` if its node is silent.
        self.sync_before_save(actor, origin, rules, id).await?;
        let at = now();
        let ((state, version, ()), written) = self
            .execute_on_runnable(actor, origin, id, RunnableAction::Change, |state| {
                Ok((state.handle(RunnableCommand::Save { at })?, ()))
            })
            .await?;
        Ok((answer(id, &state, version)?, written))
    }

    /// Removes a runnable (204). Its forks keep what they forked; its blobs stay.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), runnable = %id))]
    pub async fn remove_runnable(
        &self,
        actor: &Actor,
        origin: &Origin,
        id: Uuid,
    ) -> Result<Written, CommandError> {
        let at = now();
        let written = self
            .end_runnable(actor, origin, id, None, |state| {
                require_on(actor, id, state, RunnableAction::Change)?;
                Ok(state.handle(RunnableCommand::Remove { at })?)
            })
            .await?;
        self.settle(written).await;
        Ok(written)
    }

    /// Removes every runnable `owner` owns and closes their registry, for `actor` who removed
    /// the user `owner` at version `removed_at` of their stream (and so may remove their
    /// runnables), from `origin`: `RunnableRemoved` each, released from the registry in the same
    /// append, then `RunnableOwnerClosed` at the version the registry was read empty at. A fork
    /// of theirs still under way that takes a place before the close is removed too (the close
    /// conflicts and the registry is read again); one after it is refused (`owner_removed`).
    /// Called again once done, it writes nothing; once a later user of the name reopened the
    /// registry, it leaves what it holds alone (theirs). Does not wait for the read models.
    pub(crate) async fn remove_runnables_of(
        &self,
        actor: &Actor,
        origin: &Origin,
        owner: &Username,
        removed_at: u64,
    ) -> Result<Written, CommandError> {
        // Runnables created before registries existed are in none: the read models' list is
        // the only one of them, so those are removed as well (the first round). Removing one
        // releases nothing: the registry does not hold it (no event).
        let mut unregistered: BTreeSet<RunnableId> = match self.has_read_models() {
            true => {
                let client = self.read_models().await?;
                bosun_projections::read_models::runnables::owned(&**client, owner.as_str())
                    .await?
                    .into_iter()
                    .map(RunnableId::new)
                    .collect()
            }
            false => BTreeSet::new(),
        };
        let attempt = Uuid::new_v4();
        let mut written = Written::default();
        for _ in 0..=ATTEMPTS {
            let mut registry = self.hold::<RunnableOwner>(owner.as_str()).await?;
            if registry.state.reopened_since(removed_at) {
                return Ok(written);
            }
            let mut ids = std::mem::take(&mut unregistered);
            ids.extend(registry.state.runnables().iter().copied());
            if ids.is_empty() {
                let closed = registry
                    .state
                    .handle(RunnableOwnerCommand::Close { removed_at })?;
                match self
                    .append_held(&mut registry, actor, origin, attempt, closed)
                    .await?
                {
                    Appended::Written(w) => return Ok(written.and(w)),
                    // A fork took a place meanwhile: it is removed in the next round.
                    Appended::Conflict => continue,
                }
            }
            for id in ids {
                let at = now();
                written = written.and(
                    self.end_runnable(actor, origin, id.as_uuid(), Some(owner), |state| {
                        // Another's (the registry is theirs): left alone, and released here.
                        if !state.is_active() || state.owner() != Some(owner) {
                            return Ok(vec![]);
                        }
                        Ok(state.handle(RunnableCommand::Remove { at })?)
                    })
                    .await?,
                );
            }
        }
        Err(CommandError::Contended(format!(
            "{}-{owner}",
            RunnableOwner::CATEGORY
        )))
    }

    /// Readies `owner`'s registry for their registration, the event at version `registered_at`
    /// of their stream, before that event is appended (so a crash between the two leaves no
    /// registered user with a closed registry). `previous_removal`: the version of the stream's
    /// last event when it holds a removed user of the name; what that removal's cleanup left (it
    /// failed, or is still under way) is removed first, as the system, so the new user inherits
    /// none of it. Then `RunnableOwnerReopened` if it was closed. Nothing for a name never used.
    pub(crate) async fn reopen_runnables_of(
        &self,
        origin: &Origin,
        owner: &Username,
        previous_removal: Option<u64>,
        registered_at: u64,
    ) -> Result<Written, CommandError> {
        let mut written = Written::default();
        if let Some(removed_at) = previous_removal {
            written = self
                .remove_runnables_of(&IDENTITY, origin, owner, removed_at)
                .await?;
        }
        let attempt = Uuid::new_v4();
        for _ in 0..ATTEMPTS {
            let mut registry = self.hold::<RunnableOwner>(owner.as_str()).await?;
            let reopened = registry
                .state
                .handle(RunnableOwnerCommand::Reopen { registered_at })?;
            match self
                .append_held(&mut registry, &IDENTITY, origin, attempt, reopened)
                .await?
            {
                Appended::Written(w) => return Ok(written.and(w)),
                Appended::Conflict => continue,
            }
        }
        Err(CommandError::Contended(format!(
            "{}-{owner}",
            RunnableOwner::CATEGORY
        )))
    }

    /// Reaps runnable `id` if, as its stream says now, it has no image and has not been
    /// accessed for `reap_after` at `now` (`RunnableReaped`, by the reaper); `None` when it is
    /// not due (accessed or saved since, already gone). Does not wait for the read models.
    #[tracing::instrument(skip_all, fields(runnable = %id))]
    pub async fn reap_runnable(
        &self,
        id: Uuid,
        reap_after: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<Written>, CommandError> {
        let origin = Origin {
            request_id: Some(Uuid::new_v4().to_string()),
            source: Some("reaper".into()),
            ..Origin::default()
        };
        let now = now.trunc_subsecs(6);
        let written = self
            .end_runnable(&REAPER, &origin, id, None, |state| {
                Ok(state.handle(RunnableCommand::Reap { reap_after, now })?)
            })
            .await?;
        Ok(written.position.map(|_| written))
    }

    /// Appends what `decide` makes of runnable `id`'s state (removing or reaping it, or no
    /// event) in one append with its release from its owner's registry (`registry_of`'s if
    /// given), so its place there is given back exactly when it ends. Decided again when either
    /// stream moved meanwhile (its owner changed, a fork took a place). A runnable that is gone,
    /// or not the registry's user's, is released too, should the registry still hold it. Does
    /// not wait for the read models.
    async fn end_runnable(
        &self,
        actor: &Actor,
        origin: &Origin,
        id: Uuid,
        registry_of: Option<&Username>,
        decide: impl Fn(&Runnable) -> Result<Vec<RunnableEvent>, CommandError>,
    ) -> Result<Written, CommandError> {
        let attempt = Uuid::new_v4();
        for _ in 0..ATTEMPTS {
            let held = self.hold::<Runnable>(&id.to_string()).await?;
            let Some(holder) = registry_of.or(held.state.owner()).cloned() else {
                // Never created: nothing to release, and the decision says what it is.
                return match decide(&held.state)?.is_empty() {
                    true => Ok(Written::default()),
                    false => Err(no_runnable(id)),
                };
            };
            let registry = self.hold::<RunnableOwner>(holder.as_str()).await?;
            let events = decide(&held.state)?;
            let (after, _) = crate::apps::after(&held, &events);
            let mut batch = Batch::new();
            batch.add(&held, events)?;
            if !after.is_active() || after.owner() != Some(&holder) {
                batch.add(
                    &registry,
                    registry.state.handle(RunnableOwnerCommand::Release {
                        runnable: RunnableId::new(id),
                    })?,
                )?;
            }
            match self.append_batch(batch, actor, origin, attempt).await? {
                BatchAppended::Written(written) => return Ok(written),
                BatchAppended::Conflict { .. } => {}
            }
        }
        Err(CommandError::Contended(format!("runnable-{id}")))
    }

    /// Hands every runnable `from` owns over to `to` (an anonymous user who registered as `to`),
    /// as the system: one atomic append of `from`'s `RunnableOwnerHandedOver` (which closes its
    /// registry: `from` makes no more runnables), `to`'s `RunnableOwnerReceived` and each
    /// runnable's `RunnableOwnerChanged`. Planned again when a stream moved meanwhile (a fork of
    /// `from`'s racing it). Called again once done (after a crash, say), it writes nothing.
    /// Waits for the read models, so the runnables read as `to`'s once it answers. No
    /// authorization of its own: for the registration path only (`identity::anonymous`).
    #[tracing::instrument(skip_all, fields(from = from.as_str(), to = to.as_str()))]
    pub(crate) async fn hand_over_runnables(
        &self,
        origin: &Origin,
        from: &Username,
        to: &Username,
    ) -> Result<Written, CommandError> {
        if from == to {
            return Err(CommandError::Internal(format!(
                "{from}'s runnables handed over to themselves"
            )));
        }
        let attempt = Uuid::new_v4();
        let at = now();
        for _ in 0..ATTEMPTS {
            let giver = self.hold::<RunnableOwner>(from.as_str()).await?;
            let handed_over = giver
                .state
                .handle(RunnableOwnerCommand::HandOver { to: to.clone() })?;
            if handed_over.is_empty() {
                // Handed over to `to` already.
                return Ok(Written::default());
            }
            let ids: Vec<RunnableId> = giver.state.runnables().iter().copied().collect();
            let receiver = self.hold::<RunnableOwner>(to.as_str()).await?;
            let received = receiver.state.handle(RunnableOwnerCommand::Receive {
                from: from.clone(),
                runnables: ids.clone(),
            })?;
            let mut batch = Batch::new();
            batch.add(&giver, handed_over)?;
            batch.add(&receiver, received)?;
            for id in &ids {
                let runnable = self.hold::<Runnable>(&id.to_string()).await?;
                let changed = runnable.state.handle(RunnableCommand::ChangeOwner {
                    from: from.clone(),
                    to: to.clone(),
                    at,
                })?;
                batch.add(&runnable, changed)?;
            }
            match self.append_batch(batch, &IDENTITY, origin, attempt).await? {
                BatchAppended::Written(written) => {
                    self.settle(written).await;
                    return Ok(written);
                }
                BatchAppended::Conflict { .. } => {}
            }
        }
        Err(CommandError::Contended(format!(
            "{}-{from}",
            RunnableOwner::CATEGORY
        )))
    }
}
