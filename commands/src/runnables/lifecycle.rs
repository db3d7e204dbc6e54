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
//!   user), so a later user of the same name owns none of them.
//! - Reap: the reaper (`Actor::System("reaper")`), with no one to authorize; the aggregate
//!   decides on the stream as it is now (no image, idle for `reap_after`), so a runnable
//!   accessed or saved since the read model listed it is left alone.
//!
//! Does not own: the rules of one runnable (domain), the reaper's schedule (runner).

use super::{answer, no_runnable, require_sees, RunnableAction, RunnableRules, RunnableView};
use crate::actor::{Actor, Origin};
use crate::apps::now;
use crate::error::CommandError;
use crate::execute::{Commands, Written};
use bosun_domain::identity::{Scope, Username};
use bosun_domain::runnables::{
    Digest, FileEntry, FilePath, ForkSource, Runnable, RunnableCommand, RunnableId, RunnableName,
    StartCommand,
};
use bosun_domain::{Aggregate, DomainError};
use bosun_eventstore::{EventStore, PgEventStore};
use chrono::{DateTime, SubsecRound, Utc};
use std::collections::BTreeMap;
use std::time::Duration;
use uuid::Uuid;

/// Who reaps idle runnables.
const REAPER: Actor = Actor::System("reaper");

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
        let ((state, version), written) = self
            .execute_batch(
                self.hold::<Runnable>(&id.to_string()).await?,
                actor,
                origin,
                |held, batch| {
                    let events = held.state.handle(command())?;
                    let after = crate::apps::after(held, &events);
                    batch.add(held, events)?;
                    Ok(after)
                },
            )
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
        let ((state, version), written) = self
            .execute_batch(
                self.hold::<Runnable>(&id.to_string()).await?,
                actor,
                origin,
                |held, batch| {
                    let events = held.state.handle(RunnableCommand::Fork {
                        id,
                        name: name.clone(),
                        owner: owner.clone(),
                        parent: source.clone(),
                        at,
                    })?;
                    let after = crate::apps::after(held, &events);
                    batch.add(held, events)?;
                    Ok(after)
                },
            )
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
        id: Uuid,
    ) -> Result<(RunnableView, Written), CommandError> {
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
        let (_, written) = self
            .execute_on_runnable(actor, origin, id, RunnableAction::Change, |state| {
                Ok((state.handle(RunnableCommand::Remove { at })?, ()))
            })
            .await?;
        Ok(written)
    }

    /// Removes every runnable `owner` owns, as the read models know them, for `actor` who has
    /// just removed the user `owner` (and so may remove their runnables): `RunnableRemoved`
    /// each, from `origin`. One gone meanwhile, or another's (a later user's of the name, should
    /// the read models lag), is left alone. Nothing without read models.
    pub(crate) async fn remove_runnables_of(
        &self,
        actor: &Actor,
        origin: &Origin,
        owner: &Username,
    ) -> Result<Written, CommandError> {
        if !self.has_read_models() {
            return Ok(Written::default());
        }
        let owned = {
            let client = self.read_models().await?;
            bosun_projections::read_models::runnables::owned(&**client, owner.as_str()).await?
        };
        let mut written = Written::default();
        for id in owned {
            let at = now();
            let removed = self
                .execute::<Runnable>(&id.to_string(), actor, origin, |state| {
                    if !state.is_active() || state.owner() != Some(owner) {
                        return Ok(vec![]);
                    }
                    state.handle(RunnableCommand::Remove { at })
                })
                .await;
            match removed {
                Ok((_, w)) => written = written.and(w),
                Err(CommandError::Domain(DomainError::NotFound(_))) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(written)
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
        let (_, written) = self
            .execute_unsettled::<Runnable>(&id.to_string(), &REAPER, &origin, |state| {
                state.handle(RunnableCommand::Reap { reap_after, now })
            })
            .await?;
        Ok(written.position.map(|_| written))
    }
}
