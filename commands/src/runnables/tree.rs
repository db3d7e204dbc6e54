//! A runnable's whole tree at once, and changing one of its files or folders in place: what
//! Runnable's file API (`/compat/runnable`) asks for beside `files.rs`' one-path operations.
//!
//! - Listing: every file and every folder of the tree, at any depth, or those right under one
//!   folder (as `files.rs` lists them), by path, as its stream has them now, each file with
//!   its bytes if asked: the stream read and the caller authorized once, one access, as
//!   listing a folder is. Its owner or an admin (404, then 403), with the read scope. One
//!   entry (a file or a folder) alike, `None` for a path that is neither (and then no access).
//! - Change: new content for a file, a new path for a file or a folder (every file under a
//!   folder goes with it), or both, in one append: either all of it is recorded or nothing.
//!   Its owner or an admin (404, then 403), with the write scope. The path must be a file or a
//!   folder (404); content is for a file only (400 `content`); the new path must be free (409
//!   `path_conflict` for a file or folder there, and for a folder moved into itself) and one a
//!   write could take (400 `path`, 409 `path_conflict` under a file). A move is the deletion of
//!   the old paths and then the writes of the same digests at the new ones (no byte is copied),
//!   so the limits (`runnables.max_files`, `max_total_bytes`) are checked on the tree as the
//!   move leaves it; new content is checked and stored as a write's (413 `file_too_large`
//!   before anything, the blob before the event that names it). The same path and no content
//!   (or the same content) change nothing but an access.
//!
//! Does not own: the one-path reads and writes (`files.rs`), the rules of a tree (domain).

use super::files::listing;
use super::{FileView, RunnableAction, RunnableRules};
use crate::actor::{Actor, Origin};
use crate::apps::now;
use crate::error::CommandError;
use crate::execute::{Commands, Written};
use bosun_domain::runnables::{Digest, FilePath, Runnable, RunnableCommand, RunnableEvent};
use bosun_domain::{Aggregate, DomainError};
use bosun_eventstore::{EventStore, PgEventStore};
use bosun_projections::read_models::runnables::children;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use uuid::Uuid;

/// What [`Commands::change_runnable_file`] changes of a file or folder. Its `Debug` shows the
/// content's size, never the content.
#[derive(Clone, Default)]
pub struct FileChange {
    /// Its new path in the tree (`None`: it stays where it is).
    pub to: Option<String>,
    /// A file's new content (`None`: unchanged).
    pub content: Option<Vec<u8>>,
}

impl std::fmt::Debug for FileChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileChange")
            .field("to", &self.to)
            .field("content_bytes", &self.content.as_ref().map(Vec::len))
            .finish()
    }
}

/// A file or folder of a listing, with the file's bytes when they were asked for.
type Listed = (FileView, Option<Vec<u8>>);

/// Every file and folder of `state`'s tree, by path: each folder's entries after it.
fn whole_tree(state: &Runnable) -> Vec<FileView> {
    let files: Vec<(&str, &str, u64)> = state
        .files()
        .values()
        .map(|f| (f.path.as_str(), f.digest.as_str(), f.size))
        .collect();
    let mut tree = Vec::new();
    let mut folders = vec![String::new()];
    while let Some(folder) = folders.pop() {
        let listed = children(files.iter().copied(), &folder);
        // Depth first, in path order: the folders found are visited in reverse order of
        // their paths off the stack, so pushed in reverse.
        for entry in listed.iter().rev().filter(|e| e.dir) {
            folders.push(entry.path.clone());
        }
        tree.extend(listed);
    }
    tree.sort_by(|a, b| a.path.cmp(&b.path));
    tree
}

/// The entry of `path` in `state`'s tree, a file or a folder; `None` for neither.
fn entry_of(state: &Runnable, path: &FilePath) -> Option<FileView> {
    if let Some(file) = state.file(path) {
        return Some(FileView {
            path: path.as_str().to_string(),
            dir: false,
            size: file.size,
            digest: Some(file.digest.as_str().to_string()),
        });
    }
    let size: u64 = state.files_under(path).map(|f| f.size).sum();
    state.is_folder(path).then(|| FileView {
        path: path.as_str().to_string(),
        dir: true,
        size,
        digest: None,
    })
}

/// New content for a file: its digest and size.
#[derive(Clone)]
struct NewContent {
    digest: Digest,
    size: u64,
}

/// The events changing `from` in runnable `id` (as `state`) to `to` with `content`: see the
/// [module](self). Returns the events, and the entry at its new path after them.
fn change_events(
    state: &Runnable,
    id: Uuid,
    from: &FilePath,
    to: &FilePath,
    content: Option<&NewContent>,
    rules: &RunnableRules,
    at: DateTime<Utc>,
) -> Result<(Vec<RunnableEvent>, FileView), CommandError> {
    let is_file = state.file(from).is_some();
    if !is_file && !state.is_folder(from) {
        return Err(
            DomainError::NotFound(format!("no file or folder {from} in runnable {id}")).into(),
        );
    }
    if content.is_some() && !is_file {
        return Err(DomainError::invalid(
            "content",
            format!("{from} is a folder of runnable {id}: a folder has no content"),
        )
        .into());
    }
    let write = |tree: &Runnable, path: FilePath, digest: Digest, size: u64| {
        tree.handle(RunnableCommand::WriteFile {
            path,
            digest,
            size,
            limits: rules.limits,
            access_every: rules.access_every(),
            at,
        })
    };
    let mut tree = state.clone();
    let mut events = Vec::new();
    let mut record = |tree: &mut Runnable, new: Vec<RunnableEvent>| {
        for event in &new {
            tree.apply(event);
        }
        events.extend(new);
    };
    if to == from {
        if let (Some(content), Some(_)) = (content, state.file(from)) {
            let new = write(&tree, from.clone(), content.digest.clone(), content.size)?;
            record(&mut tree, new);
        } else {
            let new = tree.handle(RunnableCommand::Access {
                every: rules.access_every(),
                at,
            })?;
            record(&mut tree, new);
        }
    } else {
        if to.is_under(from) {
            return Err(DomainError::conflict(
                "path_conflict",
                format!("{from} cannot be moved into itself ({to})"),
            )
            .into());
        }
        if state.file(to).is_some() || state.is_folder(to) {
            return Err(DomainError::conflict(
                "path_conflict",
                format!("{to} is taken already in runnable {id}: move or delete it first"),
            )
            .into());
        }
        // Each file's new path, digest and size.
        let moved: Vec<(FilePath, Digest, u64)> = match state.file(from) {
            Some(file) => {
                let (digest, size) = match content {
                    Some(c) => (c.digest.clone(), c.size),
                    None => (file.digest.clone(), file.size),
                };
                vec![(to.clone(), digest, size)]
            }
            None => state
                .files_under(from)
                .map(|file| {
                    let rest = file
                        .path
                        .as_str()
                        .strip_prefix(from.as_str())
                        .unwrap_or_default();
                    let path = FilePath::parse(&format!("{to}{rest}"))?;
                    Ok((path, file.digest.clone(), file.size))
                })
                .collect::<Result<_, DomainError>>()?,
        };
        let deleted = tree.handle(RunnableCommand::DeleteFiles {
            path: from.clone(),
            recursive: !is_file,
            at,
        })?;
        record(&mut tree, deleted);
        for (path, digest, size) in moved {
            let written = write(&tree, path, digest, size)?;
            record(&mut tree, written);
        }
    }
    let entry = entry_of(&tree, to).ok_or_else(|| {
        CommandError::Internal(format!("{to} is not in runnable {id} after its change"))
    })?;
    Ok((events, entry))
}

impl<S: EventStore> Commands<S> {
    /// The file or folder at `path` in runnable `id`'s tree (a folder with the total size of
    /// the files under it), or `None` for neither (400 `path` for a path that is not one). An
    /// access from `origin` when it is there, as reading a file is. Its owner or an admin (404,
    /// then 403), with the read scope.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), runnable = %id, path = path))]
    pub async fn runnable_entry(
        &self,
        actor: &Actor,
        origin: &Origin,
        rules: &RunnableRules,
        id: Uuid,
        path: &str,
    ) -> Result<Option<FileView>, CommandError> {
        let state = self
            .authorized_runnable(actor, id, RunnableAction::ReadFiles)
            .await?;
        let Some(entry) = entry_of(&state, &FilePath::parse(path)?) else {
            return Ok(None);
        };
        self.access_runnable(actor, origin, rules, id).await?;
        Ok(Some(entry))
    }
}

impl Commands<PgEventStore> {
    /// Runnable `id`'s files and folders, each file with its bytes if `contents`: the whole
    /// tree at any depth for `under: None`; right under `under` for `Some` (as
    /// [`Commands::runnable_files`] lists it: `""` or `/` its top, 404 for a path that is
    /// neither a file nor a folder, 400 `path` for one that is not a path). By path, as its
    /// stream has them now, read once and authorized once (its owner or an admin: 404, then
    /// 403, with the read scope); one access from `origin`, as reading a file is. Each distinct
    /// content is read from its blob once.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), runnable = %id, under = under, contents = contents))]
    pub async fn runnable_listing(
        &self,
        actor: &Actor,
        origin: &Origin,
        rules: &RunnableRules,
        id: Uuid,
        under: Option<&str>,
        contents: bool,
    ) -> Result<Vec<Listed>, CommandError> {
        let state = self
            .authorized_runnable(actor, id, RunnableAction::ReadFiles)
            .await?;
        let listed = match under {
            None => whole_tree(&state),
            Some(path) => listing(&state, id, Some(path))?,
        };
        let mut read: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut answer = Vec::with_capacity(listed.len());
        for entry in listed {
            let digest = match (&entry.digest, contents && !entry.dir) {
                (Some(digest), true) => digest.clone(),
                _ => {
                    answer.push((entry, None));
                    continue;
                }
            };
            if !read.contains_key(&digest) {
                let Some(bytes) = self.store.blob(&digest).await? else {
                    return Err(CommandError::Internal(format!(
                        "the blob {digest} of {} in runnable {id} is missing",
                        entry.path
                    )));
                };
                read.insert(digest.clone(), bytes);
            }
            let bytes = read.get(&digest).cloned();
            answer.push((entry, bytes));
        }
        self.access_runnable(actor, origin, rules, id).await?;
        Ok(answer)
    }

    /// Changes the file or folder at `path` in runnable `id`'s tree as `change` says, in one
    /// append: see the [module](self). Returns its entry at its new path.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), runnable = %id, path = path, to = change.to.as_deref(), bytes = change.content.as_ref().map(Vec::len)))]
    pub async fn change_runnable_file(
        &self,
        actor: &Actor,
        origin: &Origin,
        rules: &RunnableRules,
        id: Uuid,
        path: &str,
        change: FileChange,
    ) -> Result<(FileView, Written), CommandError> {
        let state = self
            .authorized_runnable(actor, id, RunnableAction::Change)
            .await?;
        let from = FilePath::parse(path)?;
        let to = match change.to.as_deref() {
            Some(to) => FilePath::parse(to)?,
            None => from.clone(),
        };
        let content = match &change.content {
            Some(bytes) => {
                let size = bytes.len() as u64;
                rules.limits.check_file_size(size)?;
                Some(NewContent {
                    digest: Digest::of(bytes),
                    size,
                })
            }
            None => None,
        };
        let at = now();
        // Decided once before the bytes are stored: a refused change stores nothing.
        let (events, _) = change_events(&state, id, &from, &to, content.as_ref(), rules, at)?;
        let writes = events
            .iter()
            .any(|e| matches!(e, RunnableEvent::RunnableFileWritten { .. }));
        if let (Some(new), Some(bytes), true) = (&content, &change.content, writes) {
            self.store_blob(&new.digest, bytes).await?;
        }
        let ((_, _, entry), written) = self
            .execute_on_runnable(actor, origin, id, RunnableAction::Change, |state| {
                change_events(state, id, &from, &to, content.as_ref(), rules, at)
            })
            .await?;
        Ok((entry, written))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bosun_domain::runnables::{FileEntry, RunnableId, RunnableName, StartCommand};

    fn path(p: &str) -> FilePath {
        FilePath::parse(p).unwrap()
    }

    /// A root runnable holding `files` (path, content).
    fn runnable(files: &[(&str, &str)]) -> Runnable {
        let mut state = Runnable::default();
        let events = state
            .handle(RunnableCommand::CreateRoot {
                id: RunnableId::new(Uuid::nil()),
                name: RunnableName::parse("r").unwrap(),
                owner: bosun_domain::identity::Username::parse("ann").unwrap(),
                start_command: StartCommand::parse("true").unwrap(),
                files: files
                    .iter()
                    .map(|(p, c)| FileEntry {
                        path: path(p),
                        digest: Digest::of(c.as_bytes()),
                        size: c.len() as u64,
                    })
                    .collect(),
                limits: Default::default(),
                at: Utc::now(),
            })
            .unwrap();
        for event in &events {
            state.apply(event);
        }
        state
    }

    fn after(state: &Runnable, events: &[RunnableEvent]) -> Runnable {
        let mut state = state.clone();
        for event in events {
            state.apply(event);
        }
        state
    }

    fn paths(state: &Runnable) -> Vec<String> {
        state
            .files()
            .keys()
            .map(|p| p.as_str().to_string())
            .collect()
    }

    fn change(
        state: &Runnable,
        from: &str,
        to: &str,
        content: Option<&str>,
    ) -> Result<(Vec<RunnableEvent>, FileView), CommandError> {
        let content = content.map(|c| NewContent {
            digest: Digest::of(c.as_bytes()),
            size: c.len() as u64,
        });
        change_events(
            state,
            Uuid::nil(),
            &path(from),
            &path(to),
            content.as_ref(),
            &RunnableRules::default(),
            Utc::now(),
        )
    }

    #[test]
    fn the_tree_lists_every_file_and_folder_at_any_depth() {
        let state = runnable(&[("a.txt", "1"), ("src/b/c.py", "22"), ("src/d.py", "333")]);
        let tree: Vec<(String, bool, u64)> = whole_tree(&state)
            .into_iter()
            .map(|e| (e.path, e.dir, e.size))
            .collect();
        assert_eq!(
            tree,
            [
                ("a.txt".to_string(), false, 1),
                ("src".to_string(), true, 5),
                ("src/b".to_string(), true, 2),
                ("src/b/c.py".to_string(), false, 2),
                ("src/d.py".to_string(), false, 3),
            ]
        );
    }

    #[test]
    fn a_folder_moves_with_every_file_under_it_keeping_their_digests() {
        let state = runnable(&[("src/b/c.py", "22"), ("src/d.py", "333"), ("x", "x")]);
        let (events, entry) = change(&state, "src", "lib", None).unwrap();
        let moved = after(&state, &events);
        assert_eq!(paths(&moved), ["lib/b/c.py", "lib/d.py", "x"]);
        assert_eq!(
            moved.file(&path("lib/d.py")).unwrap().digest,
            Digest::of(b"333")
        );
        assert_eq!(
            (entry.path.as_str(), entry.dir, entry.size),
            ("lib", true, 5)
        );
    }

    #[test]
    fn a_file_moves_with_new_content_in_one_change() {
        let state = runnable(&[("a.txt", "1")]);
        let (events, entry) = change(&state, "a.txt", "b/a.md", Some("new")).unwrap();
        let moved = after(&state, &events);
        assert_eq!(paths(&moved), ["b/a.md"]);
        assert_eq!(
            moved.file(&path("b/a.md")).unwrap().digest,
            Digest::of(b"new")
        );
        assert_eq!(entry.size, 3);
    }

    #[test]
    fn a_move_onto_a_taken_path_or_into_itself_is_refused() {
        let state = runnable(&[("a.txt", "1"), ("src/d.py", "333")]);
        for (from, to) in [("a.txt", "src"), ("a.txt", "src/d.py"), ("src", "src/in")] {
            match change(&state, from, to, None) {
                Err(CommandError::Domain(DomainError::Conflict { code, .. })) => {
                    assert_eq!(code, "path_conflict", "{from} → {to}")
                }
                other => panic!("{from} → {to}: {:?}", other.map(|(e, _)| e)),
            }
        }
    }

    #[test]
    fn content_is_for_a_file_and_the_path_must_be_there() {
        let state = runnable(&[("src/d.py", "333")]);
        assert!(matches!(
            change(&state, "src", "src", Some("x")),
            Err(CommandError::Domain(DomainError::Invalid {
                field: "content",
                ..
            }))
        ));
        assert!(matches!(
            change(&state, "nope", "other", None),
            Err(CommandError::Domain(DomainError::NotFound(_)))
        ));
    }
}
