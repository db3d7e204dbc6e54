//! A runnable's working tree on a node: a fresh folder per run under the node's own folder of
//! the work dir (both `0711`, this server's own; the work dir may be shared by every node of the
//! host), its files written there from their blobs, and what its process changed there since,
//! found by walking it against the manifest written (path → digest).
//!
//! **Removal** ([`remove_tree`]) is relative to open folders too, never through a link, one
//! folder open per level up to 64 (a folder deeper is moved, itself, up into the tree's own
//! folder and emptied from there): a process still running there (or swapping a folder for a
//! link to `/`) cannot make it change or remove anything outside the tree. Each node makes a
//! fresh folder of its own and holds a lock (`flock`) on its `.lock` while it lives
//! ([`lock_node_folder`]); at a node's start, the folders of this host's nodes whose lock is
//! free (or, with none, whose pid is gone) are removed ([`clean_work_dir`]): trees a crash left.
//!
//! **The walk** opens each folder and file relative to the folder it was listed in, and never
//! follows a symbolic link (nor reads what it points to), so a process that swaps things in its
//! tree while a sync runs cannot make it read outside the tree. Skipped, each with a reason: a
//! link, anything neither a regular file nor a folder, a name that is not UTF-8 or not a valid
//! path ([`FilePath::parse`]: control characters, not NFC, too long), a folder it cannot read,
//! and a file over `max_file_bytes` (never read whole: its size is looked at first, and a read
//! stops past the limit). Folders are not files: an empty one is nothing. A regular file whose
//! digest differs from the manifest's (or that the manifest does not have) is written; a file of
//! the manifest found nowhere is deleted (unless under a folder that could not be read, or
//! skipped as over the limit: it is still there). Past `max_files` changed files or
//! `max_total_bytes` changed bytes, the rest is skipped: they could not be kept anyway, and the
//! walk holds the changed contents in memory until they are stored. At most [`MAX_SKIPPED`]
//! skipped entries are kept (the first found), then one saying how many more. A folder is
//! opened when its turn comes, from its parent's descriptor: the walk holds as many open
//! folders as the tree is deep, however many folders wait.
//!
//! Does not own: storing the blobs or recording the changes (`run`), the limits' rules (the
//! domain applies them again to what is recorded).

use bosun_domain::runnables::{Digest, FileLimits, FilePath, SkippedFile, MAX_SKIPPED};
use nix::errno::Errno;
use nix::fcntl::{openat, renameat2, Flock, FlockArg, OFlag, RenameFlags};
use nix::sys::stat::Mode;
use nix::unistd::{unlinkat, UnlinkatFlags};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::io::Read as _;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// What a tree was materialized with, as later syncs recorded: path → digest.
pub(crate) type Manifest = BTreeMap<FilePath, Digest>;

/// A new or changed regular file, read.
#[derive(Debug)]
pub(crate) struct NewFile {
    pub path: FilePath,
    pub digest: Digest,
    pub content: Vec<u8>,
}

/// What the process changed in its tree.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// In path order.
    pub written: Vec<NewFile>,
    pub deleted: Vec<FilePath>,
    /// What is not kept, and why (`path` as found: it may not be a valid path): at most
    /// [`MAX_SKIPPED`], in path order, then [`SkippedFile::more`] if there were more.
    pub skipped: Vec<SkippedFile>,
    /// Skipped beyond those in `skipped`.
    more: u64,
}

impl Changes {
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.written.is_empty() && self.deleted.is_empty() && self.skipped.is_empty()
    }
}

/// Makes `work_dir` (and its parents) if need be: a folder of this server's user, not a link,
/// mode `0711` (the sandbox's user finds its tree there, lists nothing).
pub(crate) fn prepare_work_dir(work_dir: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(work_dir) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = work_dir.parent() {
                std::fs::create_dir_all(parent)?;
            }
            match std::fs::DirBuilder::new().mode(0o711).create(work_dir) {
                Ok(()) => {}
                // Made by another run meanwhile: checked below.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    }
    let metadata = std::fs::symlink_metadata(work_dir)?;
    if !metadata.is_dir() {
        return Err(std::io::Error::other(format!(
            "the runnables' work dir {} is not a folder",
            work_dir.display()
        )));
    }
    // Under a shared /tmp, one another user made first would let them into every tree.
    if metadata.uid() != nix::unistd::geteuid().as_raw() {
        return Err(std::io::Error::other(format!(
            "the runnables' work dir {} belongs to another user",
            work_dir.display()
        )));
    }
    if metadata.permissions().mode() & 0o7777 != 0o711 {
        std::fs::set_permissions(work_dir, std::fs::Permissions::from_mode(0o711))?;
    }
    Ok(())
}

/// A node's own folder of the work dir, made fresh by it and locked (`flock`, exclusive) for as
/// long as this is held: [`clean_work_dir`] removes only folders whose lock it can take.
#[derive(Debug)]
pub(crate) struct NodeFolder {
    path: PathBuf,
    /// Held for as long as the node lives; always `Some` but in a test's crash.
    _lock: Option<Flock<std::fs::File>>,
}

impl Drop for NodeFolder {
    /// The node stopped: its folder goes if its runs left it empty (their trees are removed as
    /// they end); one a run still holds is the next node's start to clean. The lock file goes
    /// first, while still locked: a folder without one is left to its pid's liveness, which is
    /// ours until we are done.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.path.join(LOCK));
        let _ = std::fs::remove_dir(&self.path);
    }
}

impl NodeFolder {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// As if its node crashed: the lock let go, the folder left as it is.
    #[cfg(test)]
    fn crash(mut self) {
        drop(self._lock.take());
        std::mem::forget(self);
    }
}

/// The lock file of a node's folder.
const LOCK: &str = ".lock";

/// Makes `node`'s folder of `work_dir` and locks it: `node-<host>-<pid>`, or with a suffix
/// `.<n>` when a folder of that name is there already (an earlier node's of the same name, left
/// to [`clean_work_dir`], or a live one's: another server of this process). Always a fresh
/// folder, so nothing a crash left is in it.
pub(crate) fn lock_node_folder(work_dir: &Path, node: &str) -> std::io::Result<NodeFolder> {
    prepare_work_dir(work_dir)?;
    let base = node_folder(node);
    for n in 0..10_000u32 {
        let name = if n == 0 {
            base.clone()
        } else {
            format!("{base}.{n}")
        };
        let path = work_dir.join(&name);
        match std::fs::DirBuilder::new().mode(0o711).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(path.join(LOCK))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => {
                return Ok(NodeFolder {
                    path,
                    _lock: Some(lock),
                })
            }
            Err((_, e)) => return Err(e.into()),
        }
    }
    Err(std::io::Error::other(format!(
        "no free folder name for node {node} in {}",
        work_dir.display()
    )))
}

/// Whether the node of folder `path` is gone: its lock could be taken (held meanwhile by
/// `held`, so no node takes it again while it is removed), or, with no lock file, no process
/// has its `pid`.
fn node_gone(path: &Path, pid: u32, held: &mut Option<Flock<std::fs::File>>) -> bool {
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path.join(LOCK));
    match opened {
        Ok(file) => match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => {
                *held = Some(lock);
                true
            }
            Err(_) => false,
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => !process_lives(pid),
        // A link, or unreadable: not ours to judge.
        Err(_) => false,
    }
}

/// A new empty folder under the node's own `folder` (see [`lock_node_folder`]) for one run of
/// runnable `id` (mode `0700`: the sandbox's user gets it with the tree).
pub(crate) fn fresh_tree(folder: &Path, id: &str, generation: u64) -> std::io::Result<PathBuf> {
    prepare_work_dir(folder)?;
    let short = uuid::Uuid::new_v4().simple().to_string();
    let tree = folder.join(format!("{id}-{generation}-{}", &short[..12]));
    std::fs::DirBuilder::new().mode(0o700).create(&tree)?;
    Ok(tree)
}

/// The name of `node`'s folder in the work dir: `node-<host>-<pid>` for a node named
/// `<host>:<pid>`, any character of the host but a letter, a digit, `.`, `-` or `_` as `_`.
pub(crate) fn node_folder(node: &str) -> String {
    let safe = |text: &str| -> String {
        text.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    match node.rsplit_once(':') {
        Some((host, pid)) if pid.parse::<u32>().is_ok() => format!("node-{}-{pid}", safe(host)),
        _ => format!("node-{}", safe(node)),
    }
}

/// The host's folder name and the pid of the node whose folder is `name`, if it is one's (its
/// suffix `.<n>`, if any, aside).
fn node_of_folder(name: &str) -> Option<(&str, u32)> {
    let (host, pid) = name.strip_prefix("node-")?.rsplit_once('-')?;
    let pid = pid.split_once('.').map_or(pid, |(pid, _)| pid);
    Some((host, pid.parse().ok()?))
}

/// Removes, in `work_dir`, the folders of the nodes of `node`'s host that are gone (their lock
/// free, or with none, no process with their pid): the trees a crash left. Not those of other
/// hosts (a work dir shared over a network), nor of a live node (this one's own among them: it
/// holds its lock). Returns the folders removed.
pub(crate) fn clean_work_dir(work_dir: &Path, node: &str) -> Vec<PathBuf> {
    // Only a work dir of this server's (one another user made is never used either).
    let ours = std::fs::symlink_metadata(work_dir)
        .is_ok_and(|m| m.is_dir() && m.uid() == nix::unistd::geteuid().as_raw());
    if !ours {
        return Vec::new();
    }
    let own = node_folder(node);
    let host = node_of_folder(&own).map(|(host, _)| host);
    let Ok(entries) = std::fs::read_dir(work_dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let Some((other, pid)) = node_of_folder(name) else {
            continue;
        };
        if Some(other) != host {
            continue;
        }
        let folder = work_dir.join(name);
        let mut held = None;
        if node_gone(&folder, pid, &mut held) {
            remove_tree(&folder);
            removed.push(folder);
        }
    }
    removed
}

/// Whether a process with `pid` exists (one of another user's too).
fn process_lives(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(e) => e != Errno::ESRCH,
    }
}

/// Writes `content` at `path` in `tree` (made fresh by [`fresh_tree`], before its process runs,
/// so nothing there is a link), its folders made as needed.
pub(crate) fn write_file(tree: &Path, path: &FilePath, content: &[u8]) -> std::io::Result<()> {
    let file = tree.join(path.as_str());
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&file, content)
}

/// Removes `tree` and all in it, whatever modes its process left on its folders (see the
/// [module](self)); what cannot be removed is said in the node's log.
pub(crate) fn remove_tree(tree: &Path) {
    if let Err(e) = remove_all(tree) {
        tracing::warn!(tree = %tree.display(), error = %e, "removing a runnable's tree failed");
    }
}

/// How a folder is opened to be emptied: never through a link, and even with no read or
/// search permission (it is given them through the descriptor itself).
const EMPTIED: OFlag = OFlag::O_PATH
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// A folder being emptied: its descriptor, what was in it when listed, and its name in the
/// folder below it on the stack (none for the tree itself).
struct Emptied {
    folder: Folder,
    names: Vec<(OsString, bool)>,
    name: Option<OsString>,
}

impl Emptied {
    fn open(parent: Option<&Folder>, name: &OsStr) -> std::io::Result<Emptied> {
        let folder = Folder::open(parent, name, EMPTIED)?;
        // This server's user's again, through the descriptor: whatever the path names now.
        std::fs::set_permissions(folder.proc_path(), std::fs::Permissions::from_mode(0o700))?;
        let names = list(&folder)?
            .into_iter()
            .map(|(name, kind)| (name, kind.is_dir()))
            .rev()
            .collect();
        Ok(Emptied {
            folder,
            names,
            name: None,
        })
    }
}

/// [`remove_tree`]: each folder emptied through its descriptor, then removed from its parent's.
fn remove_all(tree: &Path) -> std::io::Result<()> {
    let root = match Emptied::open(None, tree.as_os_str()) {
        Ok(root) => root,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        // Not a folder (a link, a file): only the entry itself goes.
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(nix::libc::ENOTDIR | nix::libc::ELOOP)
            ) =>
        {
            return std::fs::remove_file(tree);
        }
        Err(e) => return Err(e),
    };
    let mut first_error: Option<std::io::Error> = None;
    let mut stack = vec![root];
    let mut moved = 0u64;
    while let Some(top) = stack.last_mut() {
        let Some((name, is_dir)) = top.names.pop() else {
            let done = stack.pop().map(|done| done.name);
            if let (Some(Some(name)), Some(parent)) = (done, stack.last()) {
                if let Err(e) = unlink(&parent.folder, &name, true) {
                    first_error.get_or_insert(e);
                }
            }
            continue;
        };
        if !is_dir {
            match unlink(&top.folder, &name, false) {
                Ok(()) => continue,
                // A folder now: emptied below.
                Err(e) if e.raw_os_error() == Some(nix::libc::EISDIR) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                    continue;
                }
            }
        }
        if stack.len() >= MAX_OPEN {
            // As deep as it goes open: the folder is moved up into the tree's own, and emptied
            // from there in its turn.
            let (root, rest) = stack.split_at_mut(1);
            let top = rest.last().unwrap_or(&root[0]);
            match move_up(&top.folder, &name, &root[0].folder, &mut moved) {
                Ok(Some(up)) => root[0].names.push((up, true)),
                Ok(None) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
            continue;
        }
        let Some(top) = stack.last() else {
            break;
        };
        match Emptied::open(Some(&top.folder), &name) {
            Ok(mut inner) => {
                inner.name = Some(name);
                stack.push(inner);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // Not a folder (any more): the entry itself goes.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(nix::libc::ENOTDIR | nix::libc::ELOOP)
                ) =>
            {
                if let Err(e) = unlink(&top.folder, &name, false) {
                    first_error.get_or_insert(e);
                }
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match std::fs::remove_dir(tree) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// How many folders a removal holds open at most (see [`remove_all`]).
const MAX_OPEN: usize = 64;

/// Moves entry `name` of `folder` into `root` as `.rm-<n>` (a name not there yet, `moved`
/// counting them), the entry itself (a link is moved, not followed): its new name, or `None` if
/// it is gone already.
fn move_up(
    folder: &Folder,
    name: &OsStr,
    root: &Folder,
    moved: &mut u64,
) -> std::io::Result<Option<OsString>> {
    loop {
        *moved += 1;
        let up = OsString::from(format!(".rm-{moved}"));
        match renameat2(
            Some(folder.fd.as_raw_fd()),
            name,
            Some(root.fd.as_raw_fd()),
            up.as_os_str(),
            RenameFlags::RENAME_NOREPLACE,
        ) {
            Ok(()) => return Ok(Some(up)),
            Err(Errno::EEXIST) => continue,
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Removes entry `name` of `folder` (a folder, if `folder_entry`); gone already is done.
fn unlink(folder: &Folder, name: &OsStr, folder_entry: bool) -> std::io::Result<()> {
    let flag = if folder_entry {
        UnlinkatFlags::RemoveDir
    } else {
        UnlinkatFlags::NoRemoveDir
    };
    match unlinkat(Some(folder.fd.as_raw_fd()), name, flag) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// What changed in `tree` since `manifest`: see the [module](self).
///
/// Every folder and file is opened relative to the folder it was listed in (`openat`, never a
/// link followed), and a folder is listed through its open descriptor: a process that swaps a
/// folder or a file for a link while the walk runs (a sync while it runs) cannot make it read
/// anything outside the tree.
pub(crate) fn changes(
    tree: &Path,
    manifest: &Manifest,
    limits: &FileLimits,
) -> std::io::Result<Changes> {
    let mut changes = Changes::default();
    // Regular files with a valid path, whether changed or not: the others are deleted.
    let mut present: BTreeSet<FilePath> = BTreeSet::new();
    // Folders that could not be read: what the manifest has under them is not deleted.
    let mut unread: Vec<FilePath> = Vec::new();
    let mut changed_bytes: u64 = 0;
    // The root must be readable; a folder under it that is not is skipped. A folder waits by
    // its name, with its parent open (shared by its siblings), and is opened when its turn
    // comes: a parent stays open while a child of it waits, so no more folders are open at
    // once than the tree is deep.
    let root = Rc::new(Folder::open(None, tree.as_os_str(), FOLDER)?);
    let mut waiting: Vec<Waiting> = Vec::new();
    let mut next: Option<(Rc<Folder>, String)> = Some((root, String::new()));
    loop {
        let (folder, relative) = match next.take() {
            Some(first) => first,
            None => match waiting.pop() {
                None => break,
                Some(w) => match Folder::open(Some(&w.parent), &w.name, FOLDER) {
                    Ok(folder) => (Rc::new(folder), w.shown),
                    Err(e) => {
                        skip(
                            &mut changes,
                            &w.shown,
                            format!("the folder cannot be read: {e}"),
                        );
                        unread.push(w.path);
                        continue;
                    }
                },
            },
        };
        let entries = match list(&folder) {
            Ok(entries) => entries,
            Err(e) => {
                skip(
                    &mut changes,
                    &relative,
                    format!("the folder cannot be read: {e}"),
                );
                if let Ok(path) = FilePath::parse(&relative) {
                    unread.push(path);
                }
                continue;
            }
        };
        for (name, kind) in entries {
            let Some(text) = name.to_str() else {
                let shown = join(&relative, &name.to_string_lossy());
                skip(&mut changes, &shown, "its name is not UTF-8".into());
                continue;
            };
            let shown = join(&relative, text);
            if kind.is_symlink() {
                skip(
                    &mut changes,
                    &shown,
                    "a symbolic link (not followed)".into(),
                );
                continue;
            }
            if !kind.is_dir() && !kind.is_file() {
                skip(&mut changes, &shown, "not a regular file".into());
                continue;
            }
            let path = match FilePath::parse(&shown) {
                Ok(path) => path,
                Err(e) => {
                    skip(&mut changes, &shown, format!("not a valid path: {e}"));
                    continue;
                }
            };
            if kind.is_dir() {
                waiting.push(Waiting {
                    parent: folder.clone(),
                    name,
                    shown,
                    path,
                });
                continue;
            }
            present.insert(path.clone());
            let content = match read_file(&folder, text, limits.max_file_bytes) {
                Ok(Read::Content(content)) => content,
                Ok(Read::TooLarge(size)) => {
                    skip(&mut changes, &shown, over_file_limit(limits, size));
                    continue;
                }
                Ok(Read::NotAFile) => {
                    present.remove(&path);
                    skip(&mut changes, &shown, "not a regular file".into());
                    continue;
                }
                Err(e) => {
                    skip(&mut changes, &shown, format!("cannot be read: {e}"));
                    continue;
                }
            };
            let digest = Digest::of(&content);
            if manifest.get(&path) == Some(&digest) {
                continue;
            }
            if changes.written.len() >= limits.max_files {
                let reason = format!(
                    "more files changed than a runnable may hold (runnables.max_files: {})",
                    limits.max_files
                );
                skip(&mut changes, &shown, reason);
                continue;
            }
            let bytes = content.len() as u64;
            if changed_bytes + bytes > limits.max_total_bytes {
                let reason = format!(
                    "the files changed hold more than a runnable may (runnables.max_total_bytes: {})",
                    limits.max_total_bytes
                );
                skip(&mut changes, &shown, reason);
                continue;
            }
            changed_bytes += bytes;
            changes.written.push(NewFile {
                path,
                digest,
                content,
            });
        }
    }
    changes.written.sort_by(|a, b| a.path.cmp(&b.path));
    changes.deleted = manifest
        .keys()
        .filter(|path| !present.contains(*path))
        .filter(|path| !unread.iter().any(|folder| path.is_under(folder)))
        .cloned()
        .collect();
    changes.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    if changes.more > 0 {
        changes.skipped.push(SkippedFile::more(changes.more));
    }
    Ok(changes)
}

/// A folder the walk found, not opened yet.
struct Waiting {
    parent: Rc<Folder>,
    name: OsString,
    /// Its path in the tree, as shown and as a path.
    shown: String,
    path: FilePath,
}

/// How a folder is opened: never through a link.
const FOLDER: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);
/// How a file is opened: never through a link, and without waiting (a FIFO swapped in).
const FILE: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_NONBLOCK)
    .union(OFlag::O_CLOEXEC);

/// An open folder of a tree.
struct Folder {
    fd: OwnedFd,
}

impl Folder {
    /// `name` opened in `parent` (or as a path, with none) with `flags`.
    fn open(parent: Option<&Folder>, name: &OsStr, flags: OFlag) -> std::io::Result<Folder> {
        let fd = open_at(parent.map(|p| &p.fd), name, flags)?;
        #[cfg(test)]
        open_folders::opened();
        Ok(Folder { fd })
    }

    /// The path that names this very folder, whatever its path names now.
    fn proc_path(&self) -> String {
        format!("/proc/self/fd/{}", self.fd.as_raw_fd())
    }
}

#[cfg(test)]
impl Drop for Folder {
    fn drop(&mut self) {
        open_folders::closed();
    }
}

/// How many folders this thread holds open, and the most it held: the walk's and the removal's
/// bound, tested.
#[cfg(test)]
mod open_folders {
    use std::cell::Cell;

    thread_local! {
        static OPEN: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
    }

    pub fn opened() {
        OPEN.with(|c| {
            let (open, most) = c.get();
            c.set((open + 1, most.max(open + 1)));
        });
    }

    pub fn closed() {
        OPEN.with(|c| {
            let (open, most) = c.get();
            c.set((open.saturating_sub(1), most));
        });
    }

    /// The most held open since the last call.
    pub fn most() -> usize {
        OPEN.with(|c| {
            let (open, most) = c.get();
            c.set((open, open));
            most
        })
    }
}

/// `name` opened in `folder` (or as a path, with none) with `flags`.
fn open_at(folder: Option<&OwnedFd>, name: &OsStr, flags: OFlag) -> std::io::Result<OwnedFd> {
    let fd = openat(folder.map(|f| f.as_raw_fd()), name, flags, Mode::empty())?;
    // SAFETY: `openat` just returned it, open and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The entries of the open folder `folder`, by name, each with its own type (a link is a link),
/// sorted.
fn list(folder: &Folder) -> std::io::Result<Vec<(OsString, std::fs::FileType)>> {
    // The descriptor's own folder, whatever its path names now.
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(folder.proc_path())? {
        let entry = entry?;
        entries.push((entry.file_name(), entry.file_type()?));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}

/// What reading a file gave.
enum Read {
    Content(Vec<u8>),
    /// Over the limit: its size (never read whole).
    TooLarge(u64),
    /// Not a regular file any more (swapped meanwhile).
    NotAFile,
}

/// The content of file `name` of `folder`, if it holds at most `limit` bytes (it may grow
/// after its size is read: the read stops past the limit).
fn read_file(folder: &Folder, name: &str, limit: u64) -> std::io::Result<Read> {
    let fd = match open_at(Some(&folder.fd), OsStr::new(name), FILE) {
        Ok(fd) => fd,
        // A link now (O_NOFOLLOW).
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => return Ok(Read::NotAFile),
        Err(e) => return Err(e),
    };
    let mut file = std::fs::File::from(fd);
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Ok(Read::NotAFile);
    }
    if metadata.len() > limit {
        return Ok(Read::TooLarge(metadata.len()));
    }
    let mut content = Vec::new();
    (&mut file)
        .take(limit.saturating_add(1))
        .read_to_end(&mut content)?;
    if content.len() as u64 > limit {
        return Ok(Read::TooLarge(content.len() as u64));
    }
    Ok(Read::Content(content))
}

fn join(relative: &str, name: &str) -> String {
    if relative.is_empty() {
        name.to_string()
    } else {
        format!("{relative}/{name}")
    }
}

/// Skips `path`, kept among the first [`MAX_SKIPPED`] or only counted.
fn skip(changes: &mut Changes, path: &str, reason: String) {
    if changes.skipped.len() >= MAX_SKIPPED {
        changes.more += 1;
        return;
    }
    changes.skipped.push(SkippedFile {
        path: path.to_string(),
        reason,
    });
}

fn over_file_limit(limits: &FileLimits, size: u64) -> String {
    format!(
        "{size} bytes: over runnables.max_file_bytes ({})",
        limits.max_file_bytes
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    /// A folder of this test's, removed with it.
    struct Dir(PathBuf);

    impl Dir {
        fn new() -> Dir {
            let dir =
                std::env::temp_dir().join(format!("bosun-tree-test-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir).unwrap();
            Dir(dir)
        }

        fn write(&self, path: &str, content: &[u8]) {
            let file = self.0.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, content).unwrap();
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            remove_tree(&self.0);
        }
    }

    fn path(text: &str) -> FilePath {
        FilePath::parse(text).unwrap()
    }

    fn manifest(files: &[(&str, &[u8])]) -> Manifest {
        files
            .iter()
            .map(|(p, content)| (path(p), Digest::of(content)))
            .collect()
    }

    fn written(changes: &Changes) -> Vec<(&str, &[u8])> {
        changes
            .written
            .iter()
            .map(|f| (f.path.as_str(), f.content.as_slice()))
            .collect()
    }

    fn skipped(changes: &Changes) -> Vec<&str> {
        changes.skipped.iter().map(|s| s.path.as_str()).collect()
    }

    #[test]
    fn new_and_changed_files_are_written_and_missing_ones_deleted() {
        let dir = Dir::new();
        dir.write("same.txt", b"same");
        dir.write("changed.txt", b"after");
        dir.write("a/b/new.txt", b"new");
        std::fs::create_dir_all(dir.0.join("empty/folder")).unwrap();
        let before = manifest(&[
            ("same.txt", b"same"),
            ("changed.txt", b"before"),
            ("gone.txt", b"x"),
            ("a/gone.txt", b"y"),
        ]);
        let changes = changes(&dir.0, &before, &FileLimits::default()).unwrap();
        assert_eq!(
            written(&changes),
            vec![("a/b/new.txt", &b"new"[..]), ("changed.txt", &b"after"[..])]
        );
        assert_eq!(changes.written[0].digest, Digest::of(b"new"));
        assert_eq!(changes.deleted, vec![path("a/gone.txt"), path("gone.txt")]);
        assert!(changes.skipped.is_empty(), "{:?}", changes.skipped);
    }

    #[test]
    fn an_unchanged_tree_has_no_changes() {
        let dir = Dir::new();
        dir.write("x/y.txt", b"y");
        let before = manifest(&[("x/y.txt", b"y")]);
        assert!(changes(&dir.0, &before, &FileLimits::default())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn links_are_skipped_not_followed() {
        let dir = Dir::new();
        let outside = Dir::new();
        outside.write("secret", b"the server's secret");
        dir.write("kept.txt", b"k");
        std::os::unix::fs::symlink(outside.0.join("secret"), dir.0.join("link")).unwrap();
        std::os::unix::fs::symlink(&outside.0, dir.0.join("folder-link")).unwrap();
        // A file of the manifest replaced by a link is no longer a file.
        std::os::unix::fs::symlink("kept.txt", dir.0.join("was-a-file")).unwrap();
        let before = manifest(&[("kept.txt", b"k"), ("was-a-file", b"w")]);
        let changes = changes(&dir.0, &before, &FileLimits::default()).unwrap();
        assert!(changes.written.is_empty());
        assert_eq!(skipped(&changes), vec!["folder-link", "link", "was-a-file"]);
        assert!(changes
            .skipped
            .iter()
            .all(|s| s.reason.contains("symbolic link")));
        assert_eq!(changes.deleted, vec![path("was-a-file")]);
    }

    #[test]
    fn a_file_or_folder_swapped_for_a_link_during_the_walk_is_not_followed() {
        let dir = Dir::new();
        let outside = Dir::new();
        outside.write("secret", b"the server's secret");
        dir.write("a/file", b"a");
        let root = Folder::open(None, dir.0.as_os_str(), FOLDER).unwrap();
        let folder = Folder::open(Some(&root), OsStr::new("a"), FOLDER).unwrap();
        // Listed, then swapped: the open folder is still the one listed.
        std::fs::rename(dir.0.join("a"), dir.0.join("moved")).unwrap();
        std::os::unix::fs::symlink(&outside.0, dir.0.join("a")).unwrap();
        let names: Vec<OsString> = list(&folder).unwrap().into_iter().map(|e| e.0).collect();
        assert_eq!(names, vec![OsString::from("file")]);
        assert!(Folder::open(Some(&root), OsStr::new("a"), FOLDER).is_err());
        // A file swapped for a link is not read.
        std::fs::remove_file(dir.0.join("moved/file")).unwrap();
        std::os::unix::fs::symlink(outside.0.join("secret"), dir.0.join("moved/file")).unwrap();
        assert!(matches!(
            read_file(&folder, "file", 1024).unwrap(),
            Read::NotAFile
        ));
    }

    #[test]
    fn a_file_over_the_limit_is_skipped_unread_and_not_deleted() {
        let dir = Dir::new();
        dir.write("big.bin", &[7u8; 100]);
        dir.write("small.bin", &[1u8; 10]);
        let limits = FileLimits {
            max_file_bytes: 50,
            ..FileLimits::default()
        };
        let before = manifest(&[("big.bin", b"old")]);
        let changes = changes(&dir.0, &before, &limits).unwrap();
        assert_eq!(written(&changes), vec![("small.bin", &[1u8; 10][..])]);
        assert_eq!(skipped(&changes), vec!["big.bin"]);
        assert!(
            changes.skipped[0].reason.contains("max_file_bytes"),
            "{:?}",
            changes.skipped
        );
        assert!(changes.deleted.is_empty(), "it is still there");
    }

    #[test]
    fn names_that_are_not_paths_are_skipped() {
        let dir = Dir::new();
        let not_utf8 = std::ffi::OsStr::from_bytes(b"bad-\xff");
        std::fs::write(dir.0.join(not_utf8), b"x").unwrap();
        std::fs::write(dir.0.join("tab\there"), b"x").unwrap();
        // "é" as e and a combining accent: not NFC.
        std::fs::write(dir.0.join("cafe\u{301}"), b"x").unwrap();
        std::fs::create_dir(dir.0.join(std::ffi::OsStr::from_bytes(b"dir-\xfe"))).unwrap();
        std::fs::write(
            dir.0
                .join(std::ffi::OsStr::from_bytes(b"dir-\xfe"))
                .join("inside"),
            b"x",
        )
        .unwrap();
        dir.write("fine.txt", b"f");
        let changes = changes(&dir.0, &Manifest::new(), &FileLimits::default()).unwrap();
        assert_eq!(written(&changes), vec![("fine.txt", &b"f"[..])]);
        assert_eq!(changes.skipped.len(), 4, "{:?}", changes.skipped);
        let reasons: Vec<&str> = changes.skipped.iter().map(|s| s.reason.as_str()).collect();
        assert_eq!(
            reasons.iter().filter(|r| r.contains("not UTF-8")).count(),
            2,
            "{reasons:?}"
        );
        assert!(reasons.iter().any(|r| r.contains("control")), "{reasons:?}");
        assert!(reasons.iter().any(|r| r.contains("NFC")), "{reasons:?}");
    }

    #[test]
    fn a_fifo_is_not_a_file() {
        let dir = Dir::new();
        nix::unistd::mkfifo(&dir.0.join("pipe"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let changes = changes(&dir.0, &Manifest::new(), &FileLimits::default()).unwrap();
        assert!(changes.written.is_empty());
        assert_eq!(skipped(&changes), vec!["pipe"]);
        assert_eq!(changes.skipped[0].reason, "not a regular file");
    }

    #[test]
    fn past_the_count_and_total_limits_the_rest_is_skipped() {
        let dir = Dir::new();
        for name in ["a", "b", "c"] {
            dir.write(name, &[0u8; 10]);
        }
        let few = FileLimits {
            max_files: 2,
            ..FileLimits::default()
        };
        let changes = changes(&dir.0, &Manifest::new(), &few).unwrap();
        assert_eq!(changes.written.len(), 2);
        assert_eq!(skipped(&changes), vec!["c"]);
        let small = FileLimits {
            max_file_bytes: 10,
            max_total_bytes: 25,
            ..FileLimits::default()
        };
        let changes = super::changes(&dir.0, &Manifest::new(), &small).unwrap();
        assert_eq!(changes.written.len(), 2);
        assert!(changes.skipped[0].reason.contains("max_total_bytes"));
    }

    #[test]
    fn a_materialized_tree_reads_back_unchanged() {
        let dir = Dir::new();
        let files = [
            ("README.md", &b"# hi\n"[..]),
            ("src/lib/a.sh", &b"echo a\n"[..]),
        ];
        for (p, content) in files {
            write_file(&dir.0, &path(p), content).unwrap();
        }
        let changes = changes(&dir.0, &manifest(&files), &FileLimits::default()).unwrap();
        assert!(changes.is_empty(), "{changes:?}");
    }

    #[test]
    fn the_work_dir_is_made_searchable_only_and_each_tree_fresh() {
        let dir = Dir::new();
        let work = dir.0.join("work");
        let node = lock_node_folder(&work, "box-1:42").unwrap();
        let first = fresh_tree(node.path(), "r", 1).unwrap();
        let second = fresh_tree(node.path(), "r", 1).unwrap();
        assert_ne!(first, second);
        assert_eq!(first.parent(), Some(work.join("node-box-1-42").as_path()));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&work), 0o711);
        assert_eq!(mode(&work.join("node-box-1-42")), 0o711);
        assert_eq!(mode(&first), 0o700);
        std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o755)).unwrap();
        prepare_work_dir(&work).unwrap();
        assert_eq!(mode(&work), 0o711);
        // A file where it should be is refused.
        let file = dir.0.join("file");
        std::fs::write(&file, b"x").unwrap();
        assert!(prepare_work_dir(&file).is_err());
        // A tree its process locked up is still removed.
        write_file(&first, &path("a/b"), b"x").unwrap();
        std::fs::set_permissions(first.join("a"), std::fs::Permissions::from_mode(0o500)).unwrap();
        remove_tree(&first);
        assert!(!first.exists());
    }

    #[test]
    fn the_walk_holds_as_many_folders_open_as_the_tree_is_deep() {
        let dir = Dir::new();
        for i in 0..2000 {
            std::fs::create_dir(dir.0.join(format!("f{i:04}"))).unwrap();
        }
        dir.write("f0007/a/b/c.txt", b"c");
        open_folders::most();
        let changes = changes(&dir.0, &Manifest::new(), &FileLimits::default()).unwrap();
        assert_eq!(written(&changes), vec![("f0007/a/b/c.txt", &b"c"[..])]);
        // The root, f0007, a and b at most, however many siblings wait.
        let most = open_folders::most();
        assert!((1..=4).contains(&most), "{most} folders open at once");
    }

    #[test]
    fn removing_a_deep_tree_holds_a_bounded_number_of_folders_open() {
        let dir = Dir::new();
        let tree = dir.0.join("deep");
        std::fs::create_dir(&tree).unwrap();
        // 2000 folders deep (too long a path to make by name), a file and a link at the bottom.
        let mut folder = Folder::open(None, tree.as_os_str(), EMPTIED).unwrap();
        for _ in 0..2000 {
            nix::sys::stat::mkdirat(Some(folder.fd.as_raw_fd()), "d", Mode::S_IRWXU).unwrap();
            folder = Folder::open(Some(&folder), OsStr::new("d"), EMPTIED).unwrap();
        }
        let file = nix::fcntl::openat(
            Some(folder.fd.as_raw_fd()),
            "f",
            OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::S_IRUSR | Mode::S_IWUSR,
        )
        .unwrap();
        drop(unsafe { OwnedFd::from_raw_fd(file) });
        nix::unistd::symlinkat("/", Some(folder.fd.as_raw_fd()), "root").unwrap();
        drop(folder);
        open_folders::most();
        remove_tree(&tree);
        let most = open_folders::most();
        assert!(most <= MAX_OPEN, "{most} folders open at once");
        assert!(!tree.exists());
        assert!(Path::new("/etc").exists());
    }

    #[test]
    fn at_most_a_hundred_skipped_are_named_then_how_many_more() {
        let dir = Dir::new();
        for i in 0..150 {
            std::os::unix::fs::symlink("/etc", dir.0.join(format!("link-{i:03}"))).unwrap();
        }
        dir.write("kept.txt", b"k");
        let changes = changes(&dir.0, &Manifest::new(), &FileLimits::default()).unwrap();
        assert_eq!(written(&changes), vec![("kept.txt", &b"k"[..])]);
        assert_eq!(changes.skipped.len(), MAX_SKIPPED + 1);
        assert_eq!(changes.skipped[MAX_SKIPPED], SkippedFile::more(50));
        assert!(changes.skipped[..MAX_SKIPPED]
            .windows(2)
            .all(|w| w[0].path < w[1].path));
    }

    #[test]
    fn removing_a_tree_never_follows_its_links_and_opens_its_locked_folders() {
        let dir = Dir::new();
        let outside = Dir::new();
        outside.write("keep/secret", b"s");
        let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
        std::fs::set_permissions(
            outside.0.join("keep"),
            std::fs::Permissions::from_mode(0o500),
        )
        .unwrap();
        let tree = dir.0.join("tree");
        write_file(&tree, &path("a/b/c.txt"), b"c").unwrap();
        std::os::unix::fs::symlink(&outside.0, tree.join("to-outside")).unwrap();
        std::os::unix::fs::symlink(outside.0.join("keep"), tree.join("a/to-keep")).unwrap();
        std::os::unix::fs::symlink("/", tree.join("a/b/to-root")).unwrap();
        nix::unistd::mkfifo(&tree.join("a/pipe"), Mode::S_IRWXU).unwrap();
        std::fs::set_permissions(tree.join("a/b"), std::fs::Permissions::from_mode(0o000)).unwrap();
        std::fs::set_permissions(tree.join("a"), std::fs::Permissions::from_mode(0o500)).unwrap();
        for i in 0..500 {
            std::fs::create_dir(tree.join(format!("d{i:03}"))).unwrap();
        }
        open_folders::most();
        remove_tree(&tree);
        assert!(!tree.exists());
        assert!(open_folders::most() <= 3, "one folder open a level");
        // Nothing outside was changed.
        assert_eq!(std::fs::read(outside.0.join("keep/secret")).unwrap(), b"s");
        assert_eq!(mode(&outside.0.join("keep")), 0o500);
        assert_eq!(mode(Path::new("/")) & 0o777, 0o755);
        std::fs::set_permissions(
            outside.0.join("keep"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        // A tree that is a link: the link goes, not what it names.
        let link = dir.0.join("link");
        std::os::unix::fs::symlink(&outside.0, &link).unwrap();
        remove_tree(&link);
        assert!(std::fs::symlink_metadata(&link).is_err());
        assert!(outside.0.join("keep/secret").exists());
        // Gone already is done.
        remove_tree(&dir.0.join("nothing"));
    }

    #[test]
    fn a_nodes_folder_is_named_safely_after_it() {
        assert_eq!(node_folder("box-1:4242"), "node-box-1-4242");
        assert_eq!(node_folder("a/b c:7"), "node-a_b_c-7");
        assert_eq!(node_folder(".."), "node-..");
        assert_eq!(node_of_folder("node-box-1-4242"), Some(("box-1", 4242)));
        assert_eq!(node_of_folder("node-box-1-4242.3"), Some(("box-1", 4242)));
        assert_eq!(node_of_folder("node-x"), None);
        assert_eq!(node_of_folder("other"), None);
    }

    #[test]
    fn at_a_nodes_start_the_folders_of_its_hosts_gone_nodes_are_removed_never_a_locked_one() {
        let dir = Dir::new();
        let work = dir.0.join("work");
        // A pid nobody has: a child that ended, reaped.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        // A node of this process's pid that crashed (its lock let go), and one that runs.
        let crashed_own = lock_node_folder(&work, "box:7").unwrap();
        let crashed_tree = fresh_tree(crashed_own.path(), "r", 1).unwrap();
        write_file(&crashed_tree, &path("a/b.txt"), b"b").unwrap();
        std::fs::set_permissions(
            crashed_tree.join("a"),
            std::fs::Permissions::from_mode(0o500),
        )
        .unwrap();
        let crashed_path = crashed_own.path().to_path_buf();
        crashed_own.crash();
        // Another server of this process, of the same name: a folder of its own, locked.
        let other_server = lock_node_folder(&work, "box:7").unwrap();
        assert_eq!(other_server.path(), work.join("node-box-7.1"));
        let other_tree = fresh_tree(other_server.path(), "r", 1).unwrap();
        // Folders with no lock: judged by their pid.
        let unlocked_dead = work.join(format!("node-box-{dead}"));
        let unlocked_live = work.join("node-box-1");
        let elsewhere = work.join(format!("node-other-{dead}"));
        for folder in [&unlocked_dead, &unlocked_live, &elsewhere] {
            std::fs::create_dir_all(folder.join("t")).unwrap();
        }
        std::fs::write(work.join("stray.txt"), b"x").unwrap();
        // This node: a fresh folder, never one there already.
        let this = lock_node_folder(&work, "box:7").unwrap();
        assert_eq!(this.path(), work.join("node-box-7.2"));
        let mut removed = clean_work_dir(&work, "box:7");
        removed.sort();
        let mut expected = vec![crashed_path.clone(), unlocked_dead.clone()];
        expected.sort();
        assert_eq!(removed, expected);
        assert!(!crashed_path.exists() && !unlocked_dead.exists());
        assert!(other_tree.exists(), "a live server's, of this very name");
        assert!(this.path().join(LOCK).exists(), "its own");
        assert!(unlocked_live.exists(), "pid 1 lives");
        assert!(elsewhere.exists(), "another host's");
        assert!(work.join("stray.txt").exists());
        // A node that stops leaves nothing: its runs' trees went as they ended.
        let this_path = this.path().to_path_buf();
        drop(this);
        assert!(!this_path.exists(), "the folder of a node that stopped");
    }
}
