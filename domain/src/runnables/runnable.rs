//! The runnable aggregate, stream `runnable-<uuid>`: a file tree with a start command, its
//! image (a saved snapshot of both), its owner and when it was last accessed.
//!
//! Rules it keeps:
//! - An id is one runnable, once (409 `runnable_exists`); a removed or reaped runnable refuses
//!   every other command with 404 (`Reap` is no event instead).
//! - A fork starts from its parent's image: its files and start command; a parent without an
//!   image cannot be forked (409 `parent_has_no_image`).
//! - Files keep the limits: one file at most `max_file_bytes` (413 `file_too_large`), at most
//!   `max_files` (400 `files`), at most `max_total_bytes` together (413 `runnable_too_large`,
//!   checked only when a write makes the total grow: one over the limit, the limit lowered
//!   since, may still shrink a file).
//! - A path is a file or a folder, never both: a file is not written where a folder is, nor
//!   under a file (409 `path_conflict`). Folders are not stored: they are the files' parents.
//! - A folder is deleted only when asked for recursively (400 `recursive`).
//! - Saving makes its image from its files and start command, replacing the one it had; the
//!   same files and start command again is no event.
//! - A read is an access at most once every `access_every` ([`access_every`]: a minute, or a
//!   quarter of `reap_after` when that is shorter); its owner's other events are one too (a
//!   change, a file written or deleted, a save, a start, stop or restart), not the runner's
//!   (a running process syncing its files does not hold the reaper off) nor a change of owner.
//! - It is reaped only without an image and once its last access is `reap_after` old.
//! - Its run ([`Run`]): a start is a new generation unless it is wanted running already; a
//!   restart always is; a stop is no event unless it is wanted running. A runner's word on a
//!   run is taken only for the run on record: a start of the generation wanted (409
//!   `run_not_wanted`; 409 `run_moved` while another node's run is live on record; a failed
//!   start likewise), an end or a stop from the node of the run on record, of its generation,
//!   and a sync from the node of the live run on record (409 `run_moved`);
//!   once removed, its run still ends. A run that ends on its
//!   own or cannot start is not started again; one a runner stopped while still wanted is
//!   starting again (on whichever node takes it).
//! - A sync keeps what passes the checks of a write, and names what it skipped (at most
//!   [`MAX_SKIPPED`](super::MAX_SKIPPED), then how many more).
//!
//! Not its: who may act on it (`commands`: the owner, an admin; anyone sees one with an image),
//! storing the bytes (blobs), the parent's state (read by the handler into a [`ForkSource`]).

use super::run::{cap_skipped, Run, RunPhase, RunStopReason, SkippedFile};
use super::values::{
    manifest_digest, Digest, FileEntry, FileLimits, FilePath, RunnableId, RunnableName,
    StartCommand,
};
use crate::aggregate::{Aggregate, DomainEvent};
use crate::error::DomainError;
use crate::identity::Username;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use uuid::Uuid;

/// The longest least time between two reads counted as accesses (`RunnableAccessed`).
pub const ACCESS_EVERY_AT_MOST: Duration = Duration::from_secs(60);

/// The least time between two reads counted as accesses, for runnables reaped after
/// `reap_after` unaccessed: [`ACCESS_EVERY_AT_MOST`], or a quarter of `reap_after` when that is
/// shorter, so a runnable read all the time is never idle long enough to be reaped.
pub fn access_every(reap_after: Duration) -> Duration {
    ACCESS_EVERY_AT_MOST.min(reap_after / 4)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event_type", content = "data")]
pub enum RunnableEvent {
    /// A root runnable (`parent` none, made by an admin) or a fork (its parent's image's files
    /// and start command). `files` sorted by path.
    RunnableCreated {
        id: RunnableId,
        name: RunnableName,
        owner: Username,
        parent: Option<RunnableId>,
        start_command: StartCommand,
        files: Vec<FileEntry>,
        at: DateTime<Utc>,
    },
    /// Each `Some` changed.
    RunnableUpdated {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<RunnableName>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start_command: Option<StartCommand>,
        at: DateTime<Utc>,
    },
    /// A new file, or new content for one.
    RunnableFileWritten {
        path: FilePath,
        digest: Digest,
        size: u64,
        at: DateTime<Utc>,
    },
    /// Every file removed (a file, or every file under a folder), sorted.
    RunnableFilesDeleted {
        paths: Vec<FilePath>,
        at: DateTime<Utc>,
    },
    /// A read counted as an access (at most one every [`access_every`]).
    RunnableAccessed {
        at: DateTime<Utc>,
    },
    /// Its image is now these files (sorted by path) and start command; `digest` is the
    /// manifest's ([`manifest_digest`]).
    RunnableImageSaved {
        digest: Digest,
        start_command: StartCommand,
        files: Vec<FileEntry>,
        at: DateTime<Utc>,
    },
    RunnableRemoved {
        at: DateTime<Utc>,
    },
    /// Removed by the reaper: no image, and not accessed since `last_access`.
    RunnableReaped {
        last_access: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    /// Its anonymous owner `from` registered as `to` (or handed it over).
    RunnableOwnerChanged {
        from: Username,
        to: Username,
        at: DateTime<Utc>,
    },
    /// Its owner wants it running: `generation` is the previous one plus 1.
    RunnableStartRequested {
        generation: u64,
        at: DateTime<Utc>,
    },
    /// Its owner wants it running again from scratch: `generation` is the previous one plus 1.
    RunnableRestartRequested {
        generation: u64,
        at: DateTime<Utc>,
    },
    /// Its owner wants it stopped.
    RunnableStopRequested {
        at: DateTime<Utc>,
    },
    /// A runner (`node`) started the run of `generation` as process `pid`.
    RunnableRunStarted {
        generation: u64,
        node: String,
        pid: u32,
        at: DateTime<Utc>,
    },
    /// The run ended on its own (exit `code`, or killed by `signal`): it is not started again.
    /// `synced`: the files it left are in the log (synced back after it ended).
    RunnableRunEnded {
        generation: u64,
        node: String,
        code: Option<i32>,
        signal: Option<i32>,
        #[serde(default)]
        synced: bool,
        at: DateTime<Utc>,
    },
    /// A runner stopped the run, or found it gone (`Lost`). `synced`: the files it left are in
    /// the log (synced back once it stopped; never for a lost one).
    RunnableRunStopped {
        generation: u64,
        node: String,
        reason: RunStopReason,
        #[serde(default)]
        synced: bool,
        at: DateTime<Utc>,
    },
    /// A runner could not start the run of `generation`: it is not tried again.
    RunnableRunFailed {
        generation: u64,
        node: String,
        diagnostics: String,
        at: DateTime<Utc>,
    },
    /// A save of the running runnable asks its node to sync its files first (`sync` names the
    /// answer to wait for).
    RunnableSyncRequested {
        sync: Uuid,
        at: DateTime<Utc>,
    },
    /// What the run changed in its tree, as `node` found it: files `written` (sorted by path),
    /// `deleted` (sorted), and those it could not keep (`skipped`). `sync`: the request it
    /// answers, if any. Not an access.
    RunnableFilesSynced {
        node: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sync: Option<Uuid>,
        written: Vec<FileEntry>,
        deleted: Vec<FilePath>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        skipped: Vec<SkippedFile>,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for RunnableEvent {
    fn event_type(&self) -> &'static str {
        match self {
            RunnableEvent::RunnableCreated { .. } => "RunnableCreated",
            RunnableEvent::RunnableUpdated { .. } => "RunnableUpdated",
            RunnableEvent::RunnableFileWritten { .. } => "RunnableFileWritten",
            RunnableEvent::RunnableFilesDeleted { .. } => "RunnableFilesDeleted",
            RunnableEvent::RunnableAccessed { .. } => "RunnableAccessed",
            RunnableEvent::RunnableImageSaved { .. } => "RunnableImageSaved",
            RunnableEvent::RunnableRemoved { .. } => "RunnableRemoved",
            RunnableEvent::RunnableReaped { .. } => "RunnableReaped",
            RunnableEvent::RunnableOwnerChanged { .. } => "RunnableOwnerChanged",
            RunnableEvent::RunnableStartRequested { .. } => "RunnableStartRequested",
            RunnableEvent::RunnableRestartRequested { .. } => "RunnableRestartRequested",
            RunnableEvent::RunnableStopRequested { .. } => "RunnableStopRequested",
            RunnableEvent::RunnableRunStarted { .. } => "RunnableRunStarted",
            RunnableEvent::RunnableRunEnded { .. } => "RunnableRunEnded",
            RunnableEvent::RunnableRunStopped { .. } => "RunnableRunStopped",
            RunnableEvent::RunnableRunFailed { .. } => "RunnableRunFailed",
            RunnableEvent::RunnableSyncRequested { .. } => "RunnableSyncRequested",
            RunnableEvent::RunnableFilesSynced { .. } => "RunnableFilesSynced",
        }
    }
}

/// A runnable's image: the snapshot its forks start from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub digest: Digest,
    pub saved_at: DateTime<Utc>,
    pub start_command: StartCommand,
    /// Sorted by path.
    pub files: Vec<FileEntry>,
}

/// What a fork needs of its parent, read by the command handler from the parent's stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForkSource {
    pub id: RunnableId,
    pub image: Option<Image>,
}

impl ForkSource {
    /// The parent `parent`, or 404 if it is not (or no longer) a runnable.
    pub fn of(parent: &Runnable) -> Result<ForkSource, DomainError> {
        Ok(ForkSource {
            id: parent.active_id()?,
            image: parent.image.clone(),
        })
    }
}

#[derive(Clone, Debug)]
pub enum RunnableCommand {
    /// A root runnable, by an admin (checked by the command handler). `files`: their blobs
    /// stored by the handler; a path given twice, or both a file and a folder, is refused
    /// (400 `files`).
    CreateRoot {
        id: RunnableId,
        name: RunnableName,
        owner: Username,
        start_command: StartCommand,
        files: Vec<FileEntry>,
        limits: FileLimits,
        at: DateTime<Utc>,
    },
    /// A fork of `parent` for `owner`; `name`: the one asked for, or the handler's default
    /// (the parent's).
    Fork {
        id: RunnableId,
        name: RunnableName,
        owner: Username,
        parent: ForkSource,
        at: DateTime<Utc>,
    },
    /// A value equal to the current one is no change; no change at all is no event.
    Update {
        name: Option<RunnableName>,
        start_command: Option<StartCommand>,
        at: DateTime<Utc>,
    },
    /// Its blob stored by the handler. The same content again is no event but an access (at
    /// most one every `access_every`).
    WriteFile {
        path: FilePath,
        digest: Digest,
        size: u64,
        limits: FileLimits,
        access_every: Duration,
        at: DateTime<Utc>,
    },
    /// The file at `path`, or every file under the folder `path` if `recursive`; nothing there
    /// is 404.
    DeleteFiles {
        path: FilePath,
        recursive: bool,
        at: DateTime<Utc>,
    },
    /// A read (a file's content, a listing of its files): `RunnableAccessed` unless the last
    /// access is less than `every` ago ([`access_every`]).
    Access {
        every: Duration,
        at: DateTime<Utc>,
    },
    /// Make its image from its files and start command.
    Save {
        at: DateTime<Utc>,
    },
    Remove {
        at: DateTime<Utc>,
    },
    /// By the reaper: `RunnableReaped` if it has no image and its last access is at least
    /// `reap_after` before `now`; otherwise (also when already gone) no event.
    Reap {
        reap_after: Duration,
        now: DateTime<Utc>,
    },
    /// Its owner wants it running: no event if wanted already.
    Start {
        at: DateTime<Utc>,
    },
    /// Its owner wants it running again from scratch (also when stopped: it starts).
    Restart {
        at: DateTime<Utc>,
    },
    /// Its owner wants it stopped: no event if not wanted already.
    Stop {
        at: DateTime<Utc>,
    },
    /// Its owner `from` is now `to` (409 `owner_changed` if `from` is not its owner); no event
    /// if `to` owns it already.
    ChangeOwner {
        from: Username,
        to: Username,
        at: DateTime<Utc>,
    },
    /// A save asks its node to sync its files first: `RunnableSyncRequested` while a process
    /// runs, else no event.
    RequestSync {
        sync: Uuid,
        at: DateTime<Utc>,
    },
    /// Runner: `node` started the run of `generation` (409 `run_not_wanted` unless it is
    /// active, wanted, and `generation` is the one wanted; 409 `run_moved` while another
    /// node's run is live on record: it is recorded lost first).
    RunStarted {
        generation: u64,
        node: String,
        pid: u32,
        at: DateTime<Utc>,
    },
    /// Runner: the run ended on its own (409 `run_moved` unless the run on record is `node`'s
    /// of `generation`; no event once it ended).
    RunEnded {
        generation: u64,
        node: String,
        code: Option<i32>,
        signal: Option<i32>,
        /// Its files were synced back after it ended.
        synced: bool,
        at: DateTime<Utc>,
    },
    /// Runner: it stopped the run (409 `run_moved` as for `RunEnded`; no event once it ended).
    RunStopped {
        generation: u64,
        node: String,
        reason: RunStopReason,
        /// Its files were synced back once it stopped.
        synced: bool,
        at: DateTime<Utc>,
    },
    /// Runner: the run of `generation` could not start (409 `run_not_wanted` unless it is the
    /// generation wanted).
    RunFailed {
        generation: u64,
        node: String,
        diagnostics: String,
        at: DateTime<Utc>,
    },
    /// Runner: `node`, which ran it, is gone: `RunnableRunStopped { reason: Lost }` if the run
    /// on record runs on `node`, else no event.
    RunLost {
        node: String,
        at: DateTime<Utc>,
    },
    /// Runner: what the run changed in its tree (409 `run_moved` unless the run on record is
    /// `node`'s). Each write is kept if it passes the checks of `WriteFile` (in order, after
    /// the deletions), else skipped; `skipped`: what the runner could not read as a file (a
    /// link, a name that is no path, a file over the limit), recorded first; at most
    /// [`MAX_SKIPPED`](super::MAX_SKIPPED) of them all, then one saying how many more. No event if
    /// nothing changed, nothing was skipped and no `sync` is answered. No event on a removed
    /// runnable.
    SyncFiles {
        node: String,
        sync: Option<Uuid>,
        written: Vec<FileEntry>,
        deleted: Vec<FilePath>,
        skipped: Vec<SkippedFile>,
        limits: FileLimits,
        at: DateTime<Utc>,
    },
}

/// A runnable's state, folded from its stream.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Runnable {
    id: Option<RunnableId>,
    name: Option<RunnableName>,
    owner: Option<Username>,
    parent: Option<RunnableId>,
    start_command: Option<StartCommand>,
    files: BTreeMap<FilePath, FileEntry>,
    image: Option<Image>,
    last_access: Option<DateTime<Utc>>,
    created_at: Option<DateTime<Utc>>,
    removed: bool,
    run: Run,
}

fn no_such_runnable() -> DomainError {
    DomainError::NotFound("no such runnable".into())
}

fn run_moved(message: String) -> DomainError {
    DomainError::conflict("run_moved", message)
}

fn path_conflict(message: String) -> DomainError {
    DomainError::conflict("path_conflict", message)
}

impl Runnable {
    /// Its id once created (also after its removal).
    pub fn id(&self) -> Option<RunnableId> {
        self.id
    }

    pub fn name(&self) -> Option<&RunnableName> {
        self.name.as_ref()
    }

    pub fn owner(&self) -> Option<&Username> {
        self.owner.as_ref()
    }

    /// The runnable it was forked from; `None` for a root runnable.
    pub fn parent(&self) -> Option<RunnableId> {
        self.parent
    }

    pub fn start_command(&self) -> Option<&StartCommand> {
        self.start_command.as_ref()
    }

    /// Its files by path (folders are their parents).
    pub fn files(&self) -> &BTreeMap<FilePath, FileEntry> {
        &self.files
    }

    /// The file at `path`, if one is there.
    pub fn file(&self, path: &FilePath) -> Option<&FileEntry> {
        self.files.get(path)
    }

    /// The files under the folder `folder`, in path order.
    pub fn files_under<'a>(
        &'a self,
        folder: &'a FilePath,
    ) -> impl Iterator<Item = &'a FileEntry> + 'a {
        let start = format!("{}/", folder.as_str());
        self.files
            .iter()
            .skip_while(move |(path, _)| path.as_str() < start.as_str())
            .take_while(move |(path, _)| path.is_under(folder))
            .map(|(_, entry)| entry)
    }

    /// Whether `path` is a folder: some file is under it.
    pub fn is_folder(&self, path: &FilePath) -> bool {
        self.files_under(path).next().is_some()
    }

    pub fn image(&self) -> Option<&Image> {
        self.image.as_ref()
    }

    /// When it was last accessed: created, changed, or read (at most once a minute).
    pub fn last_access(&self) -> Option<DateTime<Utc>> {
        self.last_access
    }

    pub fn created_at(&self) -> Option<DateTime<Utc>> {
        self.created_at
    }

    /// Its run: wanted or not, the generation, the run on record.
    pub fn run(&self) -> &Run {
        &self.run
    }

    /// The bytes its files hold together.
    pub fn total_bytes(&self) -> u64 {
        self.files.values().map(|f| f.size).sum()
    }

    /// Created and neither removed nor reaped: it takes commands.
    pub fn is_active(&self) -> bool {
        self.id.is_some() && !self.removed
    }

    /// Its id, if it takes commands; 404 otherwise.
    pub fn active_id(&self) -> Result<RunnableId, DomainError> {
        match self.id {
            Some(id) if !self.removed => Ok(id),
            _ => Err(no_such_runnable()),
        }
    }

    /// Its files, sorted by path.
    fn entries(&self) -> Vec<FileEntry> {
        self.files.values().cloned().collect()
    }

    /// A file may be at `path`: no file is at one of its folders, and it is not a folder.
    fn check_room_for(&self, path: &FilePath) -> Result<(), DomainError> {
        if let Some(file) = path.ancestors().find(|a| self.files.contains_key(a)) {
            return Err(path_conflict(format!(
                "{file} is a file: {path} cannot be under it"
            )));
        }
        if self.is_folder(path) {
            return Err(path_conflict(format!(
                "{path} is a folder: delete it first to write a file there"
            )));
        }
        Ok(())
    }

    /// An access at `at`, unless the last one is less than `every` ago.
    fn access(&self, every: Duration, at: DateTime<Utc>) -> Vec<RunnableEvent> {
        let recent = self.last_access.is_some_and(|last| {
            (at - last)
                .to_std()
                .map(|since| since < every)
                // `at` before the last access: as recent as can be.
                .unwrap_or(true)
        });
        if recent {
            vec![]
        } else {
            vec![RunnableEvent::RunnableAccessed { at }]
        }
    }

    /// Whether writing `entry` changes its files (`false`: that content is there already), or
    /// why it may not be written: the checks of `WriteFile`.
    fn check_write(&self, entry: &FileEntry, limits: &FileLimits) -> Result<bool, DomainError> {
        limits.check_file_size(entry.size)?;
        let current = self.files.get(&entry.path);
        if current.is_some_and(|f| f.digest == entry.digest && f.size == entry.size) {
            return Ok(false);
        }
        if current.is_none() {
            self.check_room_for(&entry.path)?;
            limits.check_count(self.files.len() + 1)?;
        }
        // Checked only when it grows: a runnable over the limit (lowered since) may still
        // shrink a file, or replace one by one no larger.
        let before = self.total_bytes();
        let total = before - current.map_or(0, |f| f.size) + entry.size;
        if total > before {
            limits.check_total(total)?;
        }
        Ok(true)
    }

    /// What a sync keeps: the deletions of files it holds, then each write that passes
    /// [`check_write`](Self::check_write) on the tree as the ones kept before it left it (the
    /// others added to `skipped`). `(written, deleted, skipped)`.
    fn sync_files(
        &self,
        written: Vec<FileEntry>,
        deleted: Vec<FilePath>,
        mut skipped: Vec<SkippedFile>,
        limits: &FileLimits,
    ) -> (Vec<FileEntry>, Vec<FilePath>, Vec<SkippedFile>) {
        let mut tree = self.clone();
        let mut gone = Vec::new();
        for path in deleted {
            if tree.files.remove(&path).is_some() {
                gone.push(path);
            }
        }
        let mut kept = Vec::new();
        for entry in written {
            match tree.check_write(&entry, limits) {
                Ok(true) => {
                    tree.files.insert(entry.path.clone(), entry.clone());
                    kept.push(entry);
                }
                Ok(false) => {}
                Err(e) => skipped.push(SkippedFile {
                    path: entry.path.to_string(),
                    reason: e.to_string(),
                }),
            }
        }
        (kept, gone, cap_skipped(skipped))
    }

    /// 409 `run_not_wanted` unless it is active and wanted running at `generation`.
    fn check_wanted(&self, generation: u64) -> Result<(), DomainError> {
        let why = if !self.is_active() {
            "it is removed".to_string()
        } else if !self.run.wanted {
            "it is not wanted running".to_string()
        } else if generation != self.run.generation {
            format!("generation {} is wanted now", self.run.generation)
        } else {
            return Ok(());
        };
        Err(DomainError::conflict(
            "run_not_wanted",
            format!("the run of generation {generation} is not wanted: {why}"),
        ))
    }

    /// 409 `run_moved` unless the run on record is `node`'s of `generation`.
    fn check_run(&self, node: &str, generation: u64) -> Result<(), DomainError> {
        if self.run.is_run(node, generation) {
            return Ok(());
        }
        Err(run_moved(format!(
            "the run of this runnable on record is not {node}'s of generation {generation}"
        )))
    }

    /// Not wanted running any more: one still starting is stopped at once, a running one when
    /// its runner stops it.
    fn stop_wanted(&mut self, at: DateTime<Utc>) {
        self.run.wanted = false;
        if self.run.phase == RunPhase::Starting {
            self.run.enter(RunPhase::Stopped, at);
        }
    }

    /// The files of a new root runnable, sorted, or why not.
    fn check_root_files(
        files: Vec<FileEntry>,
        limits: &FileLimits,
    ) -> Result<Vec<FileEntry>, DomainError> {
        limits.check_count(files.len())?;
        let mut tree = BTreeMap::new();
        for file in files {
            limits.check_file_size(file.size)?;
            if tree.contains_key(&file.path) {
                return Err(DomainError::invalid(
                    "files",
                    format!("{} is given twice", file.path),
                ));
            }
            tree.insert(file.path.clone(), file);
        }
        limits.check_total(tree.values().map(|f| f.size).sum())?;
        for path in tree.keys() {
            if let Some(file) = path.ancestors().find(|a| tree.contains_key(a)) {
                return Err(DomainError::invalid(
                    "files",
                    format!("{file} is a file: {path} cannot be under it"),
                ));
            }
        }
        Ok(tree.into_values().collect())
    }
}

impl Aggregate for Runnable {
    type Command = RunnableCommand;
    type Event = RunnableEvent;
    const CATEGORY: &'static str = "runnable";

    fn handle(&self, command: RunnableCommand) -> Result<Vec<RunnableEvent>, DomainError> {
        let exists =
            || DomainError::conflict("runnable_exists", "a runnable with this id already exists");
        match command {
            RunnableCommand::CreateRoot {
                id,
                name,
                owner,
                start_command,
                files,
                limits,
                at,
            } => {
                if self.exists() {
                    return Err(exists());
                }
                let files = Runnable::check_root_files(files, &limits)?;
                Ok(vec![RunnableEvent::RunnableCreated {
                    id,
                    name,
                    owner,
                    parent: None,
                    start_command,
                    files,
                    at,
                }])
            }
            RunnableCommand::Fork {
                id,
                name,
                owner,
                parent,
                at,
            } => {
                if self.exists() {
                    return Err(exists());
                }
                let Some(image) = parent.image else {
                    return Err(DomainError::conflict(
                        "parent_has_no_image",
                        format!(
                            "runnable {} has no image to fork: its owner must save it first",
                            parent.id
                        ),
                    ));
                };
                Ok(vec![RunnableEvent::RunnableCreated {
                    id,
                    name,
                    owner,
                    parent: Some(parent.id),
                    start_command: image.start_command,
                    files: image.files,
                    at,
                }])
            }
            RunnableCommand::Reap { reap_after, now } => {
                let (Some(last_access), true, None) =
                    (self.last_access, self.is_active(), &self.image)
                else {
                    return Ok(vec![]);
                };
                let idle = (now - last_access)
                    .to_std()
                    .is_ok_and(|idle| idle >= reap_after);
                if !idle {
                    return Ok(vec![]);
                }
                Ok(vec![RunnableEvent::RunnableReaped {
                    last_access,
                    at: now,
                }])
            }
            // The runner's: a removed runnable's run still ends.
            _ if !self.exists() => Err(no_such_runnable()),
            RunnableCommand::RunStarted {
                generation,
                node,
                pid,
                at,
            } => {
                self.check_wanted(generation)?;
                if self.run.live && self.run.is_run(&node, generation) && self.run.pid == Some(pid)
                {
                    return Ok(vec![]);
                }
                // Another node's run on record is stopped first (`RunLost`): two never run.
                if self.run.live && !self.run.is_on(&node) {
                    return Err(run_moved(format!(
                        "the run of this runnable on record is another node's, not {node}'s"
                    )));
                }
                Ok(vec![RunnableEvent::RunnableRunStarted {
                    generation,
                    node,
                    pid,
                    at,
                }])
            }
            RunnableCommand::RunEnded {
                generation,
                node,
                code,
                signal,
                synced,
                at,
            } => {
                self.check_run(&node, generation)?;
                if !self.run.live {
                    return Ok(vec![]);
                }
                Ok(vec![RunnableEvent::RunnableRunEnded {
                    generation,
                    node,
                    code,
                    signal,
                    synced,
                    at,
                }])
            }
            RunnableCommand::RunStopped {
                generation,
                node,
                reason,
                synced,
                at,
            } => {
                self.check_run(&node, generation)?;
                if !self.run.live {
                    return Ok(vec![]);
                }
                Ok(vec![RunnableEvent::RunnableRunStopped {
                    generation,
                    node,
                    reason,
                    synced,
                    at,
                }])
            }
            RunnableCommand::RunFailed {
                generation,
                node,
                diagnostics,
                at,
            } => {
                self.check_wanted(generation)?;
                // Another node's run on record is stopped first (`RunLost`), as for a start.
                if self.run.live && !self.run.is_on(&node) {
                    return Err(run_moved(format!(
                        "the run of this runnable on record is another node's, not {node}'s"
                    )));
                }
                let diagnostics = if diagnostics.contains('\0') {
                    diagnostics.replace('\0', "\u{FFFD}")
                } else {
                    diagnostics
                };
                Ok(vec![RunnableEvent::RunnableRunFailed {
                    generation,
                    node,
                    diagnostics,
                    at,
                }])
            }
            RunnableCommand::RunLost { node, at } => {
                let (true, true, Some(generation)) = (
                    self.run.live,
                    self.run.is_on(&node),
                    self.run.run_generation,
                ) else {
                    return Ok(vec![]);
                };
                Ok(vec![RunnableEvent::RunnableRunStopped {
                    generation,
                    node,
                    reason: RunStopReason::Lost,
                    synced: false,
                    at,
                }])
            }
            RunnableCommand::SyncFiles {
                node,
                sync,
                written,
                deleted,
                skipped,
                limits,
                at,
            } => {
                if !self.is_active() {
                    return Ok(vec![]);
                }
                // Only from its live run: one that ended (or moved) syncs nothing more.
                if !self.run.live || !self.run.is_on(&node) {
                    return Err(run_moved(format!(
                        "the run of this runnable on record is not {node}'s: its files are not synced from there"
                    )));
                }
                let (written, deleted, skipped) =
                    self.sync_files(written, deleted, skipped, &limits);
                // Nothing changed, skipped or answered: nothing to say.
                if written.is_empty() && deleted.is_empty() && skipped.is_empty() && sync.is_none()
                {
                    return Ok(vec![]);
                }
                Ok(vec![RunnableEvent::RunnableFilesSynced {
                    node,
                    sync,
                    written,
                    deleted,
                    skipped,
                    at,
                }])
            }
            _ if !self.is_active() => Err(no_such_runnable()),
            RunnableCommand::Start { at } => {
                let on = matches!(self.run.phase, RunPhase::Starting | RunPhase::Running);
                if self.run.wanted && on {
                    return Ok(vec![]);
                }
                Ok(vec![RunnableEvent::RunnableStartRequested {
                    generation: self.run.generation + 1,
                    at,
                }])
            }
            RunnableCommand::Restart { at } => Ok(vec![RunnableEvent::RunnableRestartRequested {
                generation: self.run.generation + 1,
                at,
            }]),
            RunnableCommand::Stop { at } => {
                // Not wanted: stopped, or a stop asked for already (the runner is on it).
                if !self.run.wanted {
                    return Ok(vec![]);
                }
                Ok(vec![RunnableEvent::RunnableStopRequested { at }])
            }
            RunnableCommand::ChangeOwner { from, to, at } => {
                let Some(owner) = &self.owner else {
                    return Err(no_such_runnable());
                };
                // A retried hand-over finds it done.
                if *owner == to {
                    return Ok(vec![]);
                }
                if *owner != from {
                    return Err(DomainError::conflict(
                        "owner_changed",
                        format!("this runnable is {owner}'s, not {from}'s"),
                    ));
                }
                Ok(vec![RunnableEvent::RunnableOwnerChanged { from, to, at }])
            }
            RunnableCommand::RequestSync { sync, at } => {
                if !self.run.live {
                    return Ok(vec![]);
                }
                Ok(vec![RunnableEvent::RunnableSyncRequested { sync, at }])
            }
            RunnableCommand::Update {
                name,
                start_command,
                at,
            } => {
                let name = name.filter(|n| self.name.as_ref() != Some(n));
                let start_command =
                    start_command.filter(|c| self.start_command.as_ref() != Some(c));
                if name.is_none() && start_command.is_none() {
                    return Ok(vec![]);
                }
                Ok(vec![RunnableEvent::RunnableUpdated {
                    name,
                    start_command,
                    at,
                }])
            }
            RunnableCommand::WriteFile {
                path,
                digest,
                size,
                limits,
                access_every,
                at,
            } => {
                let entry = FileEntry { path, digest, size };
                if !self.check_write(&entry, &limits)? {
                    return Ok(self.access(access_every, at));
                }
                Ok(vec![RunnableEvent::RunnableFileWritten {
                    path: entry.path,
                    digest: entry.digest,
                    size,
                    at,
                }])
            }
            RunnableCommand::DeleteFiles {
                path,
                recursive,
                at,
            } => {
                if self.files.contains_key(&path) {
                    return Ok(vec![RunnableEvent::RunnableFilesDeleted {
                        paths: vec![path],
                        at,
                    }]);
                }
                let paths: Vec<FilePath> =
                    self.files_under(&path).map(|f| f.path.clone()).collect();
                if paths.is_empty() {
                    return Err(DomainError::NotFound(format!("no file or folder {path}")));
                }
                if !recursive {
                    return Err(DomainError::invalid(
                        "recursive",
                        format!(
                            "{path} is a folder of {} file(s): delete it with recursive=true",
                            paths.len()
                        ),
                    ));
                }
                Ok(vec![RunnableEvent::RunnableFilesDeleted { paths, at }])
            }
            RunnableCommand::Access { every, at } => Ok(self.access(every, at)),
            RunnableCommand::Save { at } => {
                let Some(start_command) = self.start_command.clone() else {
                    return Err(no_such_runnable());
                };
                let files = self.entries();
                let digest = manifest_digest(&start_command, &files);
                if self.image.as_ref().is_some_and(|i| i.digest == digest) {
                    return Ok(vec![]);
                }
                Ok(vec![RunnableEvent::RunnableImageSaved {
                    digest,
                    start_command,
                    files,
                    at,
                }])
            }
            RunnableCommand::Remove { at } => Ok(vec![RunnableEvent::RunnableRemoved { at }]),
        }
    }

    fn apply(&mut self, event: &RunnableEvent) {
        match event {
            RunnableEvent::RunnableCreated {
                id,
                name,
                owner,
                parent,
                start_command,
                files,
                at,
            } => {
                *self = Runnable {
                    id: Some(*id),
                    name: Some(name.clone()),
                    owner: Some(owner.clone()),
                    parent: *parent,
                    start_command: Some(start_command.clone()),
                    files: files.iter().map(|f| (f.path.clone(), f.clone())).collect(),
                    image: None,
                    last_access: Some(*at),
                    created_at: Some(*at),
                    removed: false,
                    run: Run::default(),
                };
            }
            RunnableEvent::RunnableUpdated {
                name,
                start_command,
                at,
            } => {
                if let Some(name) = name {
                    self.name = Some(name.clone());
                }
                if let Some(start_command) = start_command {
                    self.start_command = Some(start_command.clone());
                }
                self.last_access = Some(*at);
            }
            RunnableEvent::RunnableFileWritten {
                path,
                digest,
                size,
                at,
            } => {
                self.files.insert(
                    path.clone(),
                    FileEntry {
                        path: path.clone(),
                        digest: digest.clone(),
                        size: *size,
                    },
                );
                self.last_access = Some(*at);
            }
            RunnableEvent::RunnableFilesDeleted { paths, at } => {
                for path in paths {
                    self.files.remove(path);
                }
                self.last_access = Some(*at);
            }
            RunnableEvent::RunnableAccessed { at } => {
                self.last_access = Some(*at);
            }
            RunnableEvent::RunnableImageSaved {
                digest,
                start_command,
                files,
                at,
            } => {
                self.image = Some(Image {
                    digest: digest.clone(),
                    saved_at: *at,
                    start_command: start_command.clone(),
                    files: files.clone(),
                });
                self.last_access = Some(*at);
            }
            RunnableEvent::RunnableRemoved { at } | RunnableEvent::RunnableReaped { at, .. } => {
                self.removed = true;
                self.stop_wanted(*at);
            }
            RunnableEvent::RunnableOwnerChanged { to, .. } => {
                self.owner = Some(to.clone());
            }
            RunnableEvent::RunnableStartRequested { generation, at }
            | RunnableEvent::RunnableRestartRequested { generation, at } => {
                self.run.wanted = true;
                self.run.generation = *generation;
                self.run.enter(RunPhase::Starting, *at);
                self.last_access = Some(*at);
            }
            RunnableEvent::RunnableStopRequested { at } => {
                self.stop_wanted(*at);
                self.last_access = Some(*at);
            }
            RunnableEvent::RunnableRunStarted {
                generation,
                node,
                pid,
                at,
            } => {
                let run = &mut self.run;
                run.node = Some(node.clone());
                run.pid = Some(*pid);
                run.run_generation = Some(*generation);
                run.live = true;
                run.exit_code = None;
                run.signal = None;
                run.diagnostics = None;
                run.enter(RunPhase::Running, *at);
            }
            RunnableEvent::RunnableRunEnded {
                generation,
                code,
                signal,
                at,
                ..
            } => {
                let run = &mut self.run;
                run.live = false;
                run.pid = None;
                run.exit_code = *code;
                run.signal = *signal;
                // Ended on its own: not started again, unless a newer generation is wanted.
                if *generation == run.generation {
                    run.wanted = false;
                }
                if run.wanted {
                    run.enter(RunPhase::Starting, *at);
                } else if *code == Some(0) {
                    run.enter(RunPhase::Stopped, *at);
                } else {
                    run.enter(RunPhase::Error, *at);
                }
            }
            RunnableEvent::RunnableRunStopped { at, .. } => {
                let run = &mut self.run;
                run.live = false;
                run.pid = None;
                if run.wanted {
                    run.enter(RunPhase::Starting, *at);
                } else {
                    run.enter(RunPhase::Stopped, *at);
                }
            }
            RunnableEvent::RunnableRunFailed {
                generation,
                node,
                diagnostics,
                at,
            } => {
                let run = &mut self.run;
                run.wanted = false;
                run.node = Some(node.clone());
                run.pid = None;
                run.run_generation = Some(*generation);
                run.live = false;
                run.exit_code = None;
                run.signal = None;
                run.diagnostics = Some(diagnostics.clone());
                run.enter(RunPhase::Error, *at);
            }
            RunnableEvent::RunnableSyncRequested { .. } => {}
            RunnableEvent::RunnableFilesSynced {
                written, deleted, ..
            } => {
                // Not an access: a running process syncing must not hold the reaper off.
                for path in deleted {
                    self.files.remove(path);
                }
                for entry in written {
                    self.files.insert(entry.path.clone(), entry.clone());
                }
            }
        }
    }

    fn exists(&self) -> bool {
        self.id.is_some()
    }
}
