//! A runnable's files: writing one (its bytes a blob), reading one, listing a folder, deleting
//! a file or a folder. Each is for the runnable's owner or an admin (404, then 403), and an
//! access.
//!
//! - Write: the path is checked (400 `path`: empty, absolute, `..`, control characters, not
//!   NFC, too long) and the size (413 `file_too_large`) before anything else; the aggregate
//!   decides on the digest computed here (409 `path_conflict`, 400 `files`, 413
//!   `runnable_too_large`) before the blob is stored, then `RunnableFileWritten`. The same
//!   content again stores and writes nothing but an access. Answers whether the file is new
//!   (201) or replaced one (200). [`Commands::check_runnable_write`] checks who and the path
//!   alone, for the route to refuse before it reads a body.
//! - Read: the file's bytes from its blob (404 for no file there, a folder too); an access
//!   (`RunnableAccessed`, at most once every [`RunnableRules::access_every`]).
//! - List: the files and folders right under a path, from the runnable's stream (so a write
//!   just answered is listed); an access as a read is.
//! - Delete: a file, or a folder with `recursive` (400 `recursive` without; 404 for nothing
//!   there). The blobs stay (an image or a fork may name them).
//!
//! Writing and reading bytes are on `Commands<PgEventStore>` (see the [module](super)).
//!
//! Does not own: reading a body no further than the limit (`api`), reading runnables
//! (`queries/runnables.rs`).

use super::{no_runnable, FileView, RunnableAction, RunnableRules};
use crate::actor::{Actor, Origin};
use crate::apps::now;
use crate::error::CommandError;
use crate::execute::{Commands, Written};
use bosun_domain::runnables::{Digest, FilePath, Runnable, RunnableCommand, RunnableEvent};
use bosun_domain::{Aggregate, DomainError};
use bosun_eventstore::{EventStore, PgEventStore};
use bosun_projections::read_models::runnables::children;
use uuid::Uuid;

/// The files and folders right under `path` in runnable `id`'s tree (as `state`), as
/// [`Commands::runnable_files`] lists them: `None`, `""` or `/` its top, the file alone when
/// `path` is one; 404 for a path that is neither a file nor a folder, 400 `path` for one that
/// is not a path.
pub(super) fn listing(
    state: &Runnable,
    id: Uuid,
    path: Option<&str>,
) -> Result<Vec<FileView>, CommandError> {
    let under = match path {
        None | Some("") | Some("/") => None,
        Some(path) => Some(FilePath::parse(path)?),
    };
    let listed = children(
        state
            .files()
            .values()
            .map(|f| (f.path.as_str(), f.digest.as_str(), f.size)),
        under.as_ref().map_or("", |p| p.as_str()),
    );
    if let (Some(under), true) = (&under, listed.is_empty()) {
        return Err(
            DomainError::NotFound(format!("no file or folder {under} in runnable {id}")).into(),
        );
    }
    Ok(listed)
}

impl Commands<PgEventStore> {
    /// Writes `content` at `path` in runnable `id`'s tree: see the [module](self). Returns the
    /// file, and whether it is new.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), runnable = %id, path = path, bytes = content.len()))]
    pub async fn write_runnable_file(
        &self,
        actor: &Actor,
        origin: &Origin,
        rules: &RunnableRules,
        id: Uuid,
        path: &str,
        content: Vec<u8>,
    ) -> Result<(FileView, bool, Written), CommandError> {
        let state = self
            .authorized_runnable(actor, id, RunnableAction::Change)
            .await?;
        let path = FilePath::parse(path)?;
        let size = content.len() as u64;
        rules.limits.check_file_size(size)?;
        let digest = Digest::of(&content);
        let at = now();
        let command = || RunnableCommand::WriteFile {
            path: path.clone(),
            digest: digest.clone(),
            size,
            limits: rules.limits,
            access_every: rules.access_every(),
            at,
        };
        // Decided once before the bytes are stored: a refused write stores nothing, and the
        // same content again (its blob stored already) stores nothing either.
        let writes = state
            .handle(command())?
            .iter()
            .any(|e| matches!(e, RunnableEvent::RunnableFileWritten { .. }));
        if writes {
            self.store_blob(&digest, &content).await?;
        }
        let ((_, _, created), written) = self
            .execute_on_runnable(actor, origin, id, RunnableAction::Change, |state| {
                let created = state.file(&path).is_none();
                Ok((state.handle(command())?, created))
            })
            .await?;
        let view = FileView {
            path: path.as_str().to_string(),
            dir: false,
            size,
            digest: Some(digest.as_str().to_string()),
        };
        Ok((view, created, written))
    }

    /// The content of the file at `path` in runnable `id`'s tree, an access from `origin`: see
    /// the [module](self).
    #[tracing::instrument(skip_all, fields(actor = actor.name(), runnable = %id, path = path))]
    pub async fn runnable_file(
        &self,
        actor: &Actor,
        origin: &Origin,
        rules: &RunnableRules,
        id: Uuid,
        path: &str,
    ) -> Result<Vec<u8>, CommandError> {
        let state = self
            .authorized_runnable(actor, id, RunnableAction::ReadFiles)
            .await?;
        let path = FilePath::parse(path)?;
        let Some(file) = state.file(&path) else {
            let what = if state.is_folder(&path) {
                format!("{path} is a folder of runnable {id}: list it with ?path=")
            } else {
                format!("no file {path} in runnable {id}")
            };
            return Err(DomainError::NotFound(what).into());
        };
        let Some(content) = self.store.blob(file.digest.as_str()).await? else {
            return Err(CommandError::Internal(format!(
                "the blob {} of {path} in runnable {id} is missing",
                file.digest
            )));
        };
        self.access_runnable(actor, origin, rules, id).await?;
        Ok(content)
    }
}

impl<S: EventStore> Commands<S> {
    /// Whether `actor` may write a file at `path` in runnable `id`'s tree, as
    /// [`write_runnable_file`](Commands::write_runnable_file) checks first (404 for an id that
    /// is not a runnable's or one not seen, 403, then 400 `path`): for the route to refuse a
    /// write before it reads the body. The size, the limits and the tree are the write's.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), runnable = id, path = path))]
    pub async fn check_runnable_write(
        &self,
        actor: &Actor,
        id: &str,
        path: &str,
    ) -> Result<(), CommandError> {
        let id = Uuid::parse_str(id).map_err(|_| no_runnable(id))?;
        self.authorized_runnable(actor, id, RunnableAction::Change)
            .await?;
        FilePath::parse(path)?;
        Ok(())
    }

    /// The files and folders right under `path` in runnable `id`'s tree (`None`, `""` or `/`:
    /// its top), by path, as its stream has them now; the file alone when `path` is one. An
    /// access from `origin` (as reading a file is). 404 for a runnable the caller may not see,
    /// or a path that is neither a file nor a folder; 403 for one who sees it but is neither
    /// its owner nor an admin; 400 `path` for a path that is not one.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), runnable = %id, path = path))]
    pub async fn runnable_files(
        &self,
        actor: &Actor,
        origin: &Origin,
        rules: &RunnableRules,
        id: Uuid,
        path: Option<&str>,
    ) -> Result<Vec<FileView>, CommandError> {
        let state = self
            .authorized_runnable(actor, id, RunnableAction::ReadFiles)
            .await?;
        let listed = listing(&state, id, path)?;
        self.access_runnable(actor, origin, rules, id).await?;
        Ok(listed)
    }

    /// A read of runnable `id` by `actor`: `RunnableAccessed` from `origin` unless the last
    /// access is less than [`RunnableRules::access_every`] ago.
    pub(super) async fn access_runnable(
        &self,
        actor: &Actor,
        origin: &Origin,
        rules: &RunnableRules,
        id: Uuid,
    ) -> Result<Written, CommandError> {
        let at = now();
        let every = rules.access_every();
        let (_, written) = self
            .execute_on_runnable(actor, origin, id, RunnableAction::ReadFiles, |state| {
                Ok((state.handle(RunnableCommand::Access { every, at })?, ()))
            })
            .await?;
        Ok(written)
    }

    /// Deletes the file at `path` in runnable `id`'s tree, or the folder there and everything
    /// under it if `recursive` (204): see the [module](self).
    #[tracing::instrument(skip_all, fields(actor = actor.name(), runnable = %id, path = path, recursive = recursive))]
    pub async fn delete_runnable_files(
        &self,
        actor: &Actor,
        origin: &Origin,
        id: Uuid,
        path: &str,
        recursive: bool,
    ) -> Result<Written, CommandError> {
        // Parsed here, refused (400) only once the runnable is found and the actor allowed on
        // it (404, then 403), inside the decision.
        let path = FilePath::parse(path);
        let at = now();
        let (_, written) = self
            .execute_on_runnable(actor, origin, id, RunnableAction::Change, |state| {
                let events = state.handle(RunnableCommand::DeleteFiles {
                    path: path.clone()?,
                    recursive,
                    at,
                })?;
                Ok((events, ()))
            })
            .await?;
        Ok(written)
    }
}
