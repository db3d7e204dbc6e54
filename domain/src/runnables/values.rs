//! Runnable values that parse instead of validate: past `parse`, a value is valid.
//!
//! Owns: a runnable's id, name and start command, a content digest (sha256), a path in its file
//! tree (normalized, never leaving the tree), a file entry, the file limits and the digest of an
//! image's manifest.
//! Does not own: the bytes of a file (blobs, `eventstore`), the limits' configured values (`api`'s
//! config, passed in by the command handler), running the start command (`runner`).
//!
//! Deserialized without the checks, as the log is trusted (like the other values of the domain).

use crate::error::DomainError;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::fmt;
use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};
use uuid::Uuid;

/// The longest runnable name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// The longest start command, in characters (as JSON Schema's `maxLength` counts them).
pub const MAX_START_COMMAND_CHARS: usize = 4096;
/// The longest path in a runnable's tree, in bytes (well under Linux's `PATH_MAX`, so the tree
/// fits under any folder it is checked out in).
pub const MAX_PATH_BYTES: usize = 1024;
/// The longest component of a path, in bytes (Linux's `NAME_MAX`).
pub const MAX_PATH_COMPONENT_BYTES: usize = 255;

/// A runnable's id: the id of its stream `runnable-<uuid>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunnableId(Uuid);

impl RunnableId {
    pub fn new(id: Uuid) -> Self {
        RunnableId(id)
    }

    /// The id written as a uuid, or why not, with the field `field` (`id`, `from`…).
    pub fn parse(field: &'static str, text: &str) -> Result<Self, DomainError> {
        Uuid::parse_str(text)
            .map(RunnableId)
            .map_err(|_| DomainError::invalid(field, format!("{text:?} is not a runnable id")))
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl From<Uuid> for RunnableId {
    fn from(id: Uuid) -> Self {
        RunnableId(id)
    }
}

impl fmt::Display for RunnableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A runnable's name: 1 to 100 characters, no control characters. Not unique. Refused with the
/// field `name`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunnableName(String);

impl RunnableName {
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        let chars = value.chars().count();
        if chars == 0 || chars > MAX_NAME_CHARS {
            return Err(DomainError::invalid(
                "name",
                format!("must be 1 to {MAX_NAME_CHARS} characters"),
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(DomainError::invalid(
                "name",
                "may not hold control characters",
            ));
        }
        Ok(RunnableName(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunnableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What starts a runnable, run as `sh -c <command>` in its tree: 1 to 4096 characters, no NUL.
/// Refused with the field `start_command`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StartCommand(String);

impl StartCommand {
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        if value.is_empty() || value.chars().count() > MAX_START_COMMAND_CHARS {
            return Err(DomainError::invalid(
                "start_command",
                format!("must be 1 to {MAX_START_COMMAND_CHARS} characters"),
            ));
        }
        if value.contains('\0') {
            return Err(DomainError::invalid(
                "start_command",
                "may not hold a NUL character",
            ));
        }
        Ok(StartCommand(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StartCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The sha256 of some content, 64 lowercase hex digits: a blob's key, or an image's. Refused
/// with the field `digest`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Digest(String);

impl Digest {
    /// The digest of `content`.
    pub fn of(content: &[u8]) -> Self {
        Digest(hex::encode(Sha256::digest(content)))
    }

    pub fn parse(text: &str) -> Result<Self, DomainError> {
        let valid = text.len() == 64
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !valid {
            return Err(DomainError::invalid(
                "digest",
                "must be a sha256: 64 lowercase hex digits",
            ));
        }
        Ok(Digest(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A path in a runnable's tree, relative to its root, held normalized: no empty or `.`
/// component, no leading or trailing `/` (`a//b/./c/` is `a/b/c`). It never leaves the tree:
/// absolute paths and `..` components are refused, not resolved. Refused with the field `path`:
/// also one holding a control character (NUL, newline…), one not in Unicode NFC (so two
/// spellings of one name are never two files), one over [`MAX_PATH_BYTES`] or with a
/// component over [`MAX_PATH_COMPONENT_BYTES`].
///
/// Ordered as strings, so the files under a folder `a` are the paths from `a/` up to `a0`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FilePath(String);

impl FilePath {
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        let bad = |message: String| DomainError::invalid("path", message);
        if value.chars().any(char::is_control) {
            return Err(bad("may not hold control characters".into()));
        }
        if !is_nfc(value) {
            return Err(bad("must be in Unicode NFC".into()));
        }
        if value.starts_with('/') {
            return Err(bad(
                "must be relative to the runnable's tree, not absolute".into()
            ));
        }
        let mut components = Vec::new();
        for component in value.split('/') {
            match component {
                "" | "." => {}
                ".." => return Err(bad("may not hold a `..` component".into())),
                _ if component.len() > MAX_PATH_COMPONENT_BYTES => {
                    return Err(bad(format!(
                        "each component must be at most {MAX_PATH_COMPONENT_BYTES} bytes"
                    )))
                }
                _ => components.push(component),
            }
        }
        if components.is_empty() {
            return Err(bad("is empty".into()));
        }
        let path = components.join("/");
        if path.len() > MAX_PATH_BYTES {
            return Err(bad(format!("must be at most {MAX_PATH_BYTES} bytes")));
        }
        Ok(FilePath(path))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether it is strictly inside the folder `folder` (`a/b` is under `a`; `a` is not under
    /// `a`, nor `ab` under `a`).
    pub fn is_under(&self, folder: &FilePath) -> bool {
        self.0
            .strip_prefix(folder.as_str())
            .is_some_and(|rest| rest.starts_with('/'))
    }

    /// The folder it is in; `None` at the root of the tree.
    pub fn parent(&self) -> Option<FilePath> {
        self.0
            .rsplit_once('/')
            .map(|(parent, _)| FilePath(parent.to_string()))
    }

    /// Its folders, outermost first (`a/b/c`: `a`, `a/b`).
    pub fn ancestors(&self) -> impl Iterator<Item = FilePath> + '_ {
        self.0
            .match_indices('/')
            .map(|(i, _)| FilePath(self.0[..i].to_string()))
    }

    /// Its last component.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

/// Whether `value` is in Unicode Normalization Form C.
fn is_nfc(value: &str) -> bool {
    match is_nfc_quick(value.chars()) {
        IsNormalized::Yes => true,
        IsNormalized::No => false,
        IsNormalized::Maybe => value.nfc().eq(value.chars()),
    }
}

impl fmt::Display for FilePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A file of a runnable: where it is, the blob it holds and that blob's size in bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: FilePath,
    pub digest: Digest,
    pub size: u64,
}

/// The limits of a runnable's files (`runnables.*` in the config), passed in by the command
/// handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileLimits {
    /// The largest file, in bytes (413 `file_too_large`).
    pub max_file_bytes: u64,
    /// The most files one runnable holds (400 `files`).
    pub max_files: usize,
    /// The most bytes one runnable's files hold together (413 `runnable_too_large`).
    pub max_total_bytes: u64,
}

impl Default for FileLimits {
    fn default() -> Self {
        FileLimits {
            max_file_bytes: 1024 * 1024,
            max_files: 1000,
            max_total_bytes: 64 * 1024 * 1024,
        }
    }
}

impl FileLimits {
    /// A file of `size` bytes, or 413 `file_too_large`. The command handler checks it before
    /// storing the bytes, the aggregate again.
    pub fn check_file_size(&self, size: u64) -> Result<(), DomainError> {
        if size > self.max_file_bytes {
            return Err(DomainError::too_large(
                "file_too_large",
                format!(
                    "a file may hold at most {} bytes (runnables.max_file_bytes); this one holds {size}",
                    self.max_file_bytes
                ),
            ));
        }
        Ok(())
    }

    /// `count` files, or 400 `files`.
    pub(crate) fn check_count(&self, count: usize) -> Result<(), DomainError> {
        if count > self.max_files {
            return Err(DomainError::invalid(
                "files",
                format!(
                    "a runnable may hold at most {} files (runnables.max_files)",
                    self.max_files
                ),
            ));
        }
        Ok(())
    }

    /// Files of `total` bytes together, or 413 `runnable_too_large`.
    pub(crate) fn check_total(&self, total: u64) -> Result<(), DomainError> {
        if total > self.max_total_bytes {
            return Err(DomainError::too_large(
                "runnable_too_large",
                format!(
                    "a runnable's files may hold at most {} bytes together \
                     (runnables.max_total_bytes); these would hold {total}",
                    self.max_total_bytes
                ),
            ));
        }
        Ok(())
    }
}

/// The digest of an image's manifest: the sha256 of the canonical JSON
/// `{"files":[[path,digest,size],…],"start_command":…}`, files sorted by path. Equal files and
/// start command, equal digest.
pub fn manifest_digest(start_command: &StartCommand, files: &[FileEntry]) -> Digest {
    #[derive(Serialize)]
    struct Manifest<'a> {
        files: Vec<(&'a str, &'a str, u64)>,
        start_command: &'a str,
    }
    let mut listed: Vec<(&str, &str, u64)> = files
        .iter()
        .map(|f| (f.path.as_str(), f.digest.as_str(), f.size))
        .collect();
    listed.sort();
    let manifest = Manifest {
        files: listed,
        start_command: start_command.as_str(),
    };
    // Strings, numbers and arrays only: serializing cannot fail.
    let json = serde_json::to_vec(&manifest).unwrap_or_default();
    Digest::of(&json)
}
