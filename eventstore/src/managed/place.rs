//! Where the cluster lives: in the data directory, unless the unprivileged user the server runs
//! as (when bosun is root) cannot reach it there. Then it goes under [`RELOCATED_ROOT`], in a
//! folder named after a stable hash of the canonical data directory, and `postgres.location` in
//! the data directory records which folder, so every process sharing the data directory, now
//! and after a reboot, finds the same cluster.

use super::process::Owner;
use super::{io, ManagedError};
use sha2::{Digest, Sha256};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Where clusters go when their data directory is out of the server user's reach. Not under
/// /tmp: the data must survive a reboot.
pub const RELOCATED_ROOT: &str = "/var/lib/bosun/clusters";
/// In the data directory: the absolute path of the folder holding the cluster, when it is not
/// the data directory itself.
pub const LOCATION_FILE: &str = "postgres.location";

/// The folder that holds `postgres/` (the cluster) and `run/` (the socket directory) for
/// `data_dir` (canonical). Called under the data directory's start lock.
pub(super) fn home(data_dir: &Path, owner: &Owner) -> Result<PathBuf, ManagedError> {
    let record = data_dir.join(LOCATION_FILE);
    let access = owner.unprivileged().map(|(name, uid, gid)| Access {
        name: name.to_string(),
        uid,
        gid,
    });
    if let Some(recorded) = read_record(&record)? {
        if let Some(access) = &access {
            prepare(&recorded, access).map_err(|reason| ManagedError::Unreachable {
                user: access.name.clone(),
                data_dir: data_dir.to_path_buf(),
                detail: format!(
                    "its cluster is in {} (recorded in {}), and {reason}",
                    recorded.display(),
                    record.display()
                ),
            })?;
        }
        return Ok(recorded);
    }
    let Some(access) = access else {
        // The server runs as this process's user, who made the data directory.
        return Ok(data_dir.to_path_buf());
    };
    let Some(blocked) = access.blocked(data_dir) else {
        return Ok(data_dir.to_path_buf());
    };
    let unreachable = |why: String| ManagedError::Unreachable {
        user: access.name.clone(),
        data_dir: data_dir.to_path_buf(),
        detail: format!("it cannot enter {blocked}; {why}"),
    };
    if data_dir.join("postgres.initialized").exists() {
        return Err(unreachable(format!(
            "the cluster was made in {} before, so it is not moved elsewhere (or, to move it: \
             stop every bosun process using it, move the whole data directory with `mv` to a \
             folder {} can reach, and point data_dir there)",
            data_dir.join("postgres").display(),
            access.name
        )));
    }
    let leftover = data_dir.join("postgres");
    if leftover.exists() {
        // An initdb that failed here, before this place was moved.
        tracing::warn!(path = %leftover.display(), "removing a cluster whose initdb never finished");
        fs::remove_dir_all(&leftover).map_err(io("remove", &leftover))?;
    }
    let home = free_place(data_dir).map_err(&unreachable)?;
    prepare(&home, &access)
        .map_err(|reason| unreachable(format!("nor can it use {}: {reason}", home.display())))?;
    write_record(&record, &home)?;
    // Loud: the database no longer lives under the data directory (back up, and keep on a
    // volume, that folder too).
    tracing::warn!(
        data_dir = %data_dir.display(),
        cluster = %home.display(),
        "the postgres user cannot reach the data directory ({blocked}); the managed PostgreSQL goes to {}, recorded in {}",
        home.display(),
        record.display()
    );
    Ok(home)
}

/// The first name under [`RELOCATED_ROOT`] for `data_dir` that nothing uses yet: its hash, or
/// the hash and a number when an earlier data directory of the same path (since removed) left
/// a cluster there, which is never touched.
fn free_place(data_dir: &Path) -> Result<PathBuf, String> {
    let hash = place_name(data_dir);
    let root = Path::new(RELOCATED_ROOT);
    (1..=100)
        .map(|n| match n {
            1 => root.join(&hash),
            n => root.join(format!("{hash}-{n}")),
        })
        .find(|candidate| fs::symlink_metadata(candidate).is_err())
        .ok_or_else(|| format!("every folder {}/{hash}* is taken", root.display()))
}

/// 16 hex digits of the SHA-256 of the path: the same on every build and machine.
fn place_name(data_dir: &Path) -> String {
    hex::encode(&Sha256::digest(data_dir.as_os_str().as_bytes())[..8])
}

/// Makes `home` and its missing ancestors (mode 0755, so the server user can pass), and checks
/// that the server user can reach it.
fn prepare(home: &Path, access: &Access) -> Result<(), String> {
    let missing: Vec<&Path> = home.ancestors().take_while(|p| !p.exists()).collect();
    for dir in missing.into_iter().rev() {
        match fs::create_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("creating {} failed: {e}", dir.display())),
        }
        // Not left to the umask: a umask of 077 would lock the server user out.
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("setting the mode of {} failed: {e}", dir.display()))?;
    }
    match access.blocked(home) {
        Some(blocked) => Err(format!("it cannot enter {blocked}")),
        None => Ok(()),
    }
}

fn read_record(record: &Path) -> Result<Option<PathBuf>, ManagedError> {
    let text = match fs::read_to_string(record) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("read", record)(e)),
    };
    let path = PathBuf::from(text.trim_end_matches('\n'));
    if !path.is_absolute() {
        return Err(io("read", record)(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "it should hold the absolute path of the folder holding the cluster, not {text:?}"
            ),
        )));
    }
    Ok(Some(path))
}

/// Written whole, then renamed into place, so a reader sees the old state or the new one.
fn write_record(record: &Path, home: &Path) -> Result<(), ManagedError> {
    let temp = record.with_extension(format!("tmp-{}", std::process::id()));
    let mut text = home.as_os_str().as_bytes().to_vec();
    text.push(b'\n');
    fs::write(&temp, text)
        .and_then(|()| fs::File::open(&temp)?.sync_all())
        .and_then(|()| fs::rename(&temp, record))
        .map_err(io("write", record))
}

/// Who the server runs as. Only the primary group counts: a root process that sets a uid for a
/// child drops the supplementary groups (std's `Command::uid` does), so the server has no other.
pub(super) struct Access {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// A directory the server user cannot pass through, with what says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Blocked {
    pub dir: PathBuf,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let user = nix::unistd::User::from_uid(self.uid.into())
            .ok()
            .flatten()
            .map_or_else(|| self.uid.to_string(), |u| u.name);
        let group = nix::unistd::Group::from_gid(self.gid.into())
            .ok()
            .flatten()
            .map_or_else(|| self.gid.to_string(), |g| g.name);
        write!(
            f,
            "{} (mode {:04o}, owner {user}, group {group})",
            self.dir.display(),
            self.mode
        )
    }
}

impl Access {
    /// The first directory from `/` down to `path` itself that this user may not search (no
    /// `x` for it among the owner, group or other bits that apply to it); `None` if it can
    /// reach `path`. A part that does not exist yet does not block (it is made later). ACLs are
    /// not read.
    pub fn blocked(&self, path: &Path) -> Option<Blocked> {
        let mut chain: Vec<&Path> = path.ancestors().collect();
        chain.reverse();
        for dir in chain {
            let Ok(meta) = fs::metadata(dir) else {
                return None;
            };
            let mode = meta.mode();
            if !self.may_search(meta.uid(), meta.gid(), mode) {
                return Some(Blocked {
                    dir: dir.to_path_buf(),
                    mode: mode & 0o7777,
                    uid: meta.uid(),
                    gid: meta.gid(),
                });
            }
        }
        None
    }

    /// The kernel's rule: the owner bits if the user owns it, else the group bits if it is in
    /// the group, else the other bits.
    fn may_search(&self, uid: u32, gid: u32, mode: u32) -> bool {
        let bit = if uid == self.uid {
            0o100
        } else if gid == self.gid {
            0o010
        } else {
            0o001
        };
        mode & bit != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn postgres() -> Access {
        Access {
            name: "postgres".into(),
            uid: 101,
            gid: 104,
        }
    }

    #[test]
    fn the_bits_that_apply_are_the_owners_then_the_groups_then_the_others() {
        let p = postgres();
        assert!(p.may_search(101, 0, 0o700));
        assert!(
            !p.may_search(101, 104, 0o077),
            "the owner bits decide alone"
        );
        assert!(p.may_search(0, 104, 0o710));
        assert!(!p.may_search(0, 104, 0o701), "the group bits decide alone");
        assert!(p.may_search(0, 0, 0o711));
        assert!(!p.may_search(0, 0, 0o750));
        assert!(
            !p.may_search(0, 0, 0o744),
            "r without x does not let it pass"
        );
    }

    #[test]
    fn a_private_folder_on_the_way_blocks_and_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("private");
        let inner = private.join("bosun-data");
        fs::create_dir_all(&inner).unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
        // Nobody's uid: the test's own user owns these folders.
        let stranger = Access {
            name: "stranger".into(),
            uid: 4_000_000_001,
            gid: 4_000_000_001,
        };
        let blocked = stranger.blocked(&inner).expect("blocked");
        assert_eq!(blocked.dir, private);
        assert_eq!(blocked.mode, 0o700);
        let shown = blocked.to_string();
        assert!(shown.contains("mode 0700"), "{shown}");
        assert_eq!(stranger.blocked(dir.path()), None);
        // Not there yet: it is made later, so it does not block.
        fs::set_permissions(&private, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(stranger.blocked(&inner.join("not/yet")), None);
    }

    #[test]
    fn the_place_is_named_after_the_data_directory_and_stable() {
        // The first 8 bytes of SHA-256("/root/checkout/bosun-data"): fixed forever.
        assert_eq!(
            place_name(Path::new("/root/checkout/bosun-data")),
            "c6751740828889e3"
        );
        assert_ne!(
            place_name(Path::new("/root/other/bosun-data")),
            "c6751740828889e3"
        );
        let place = free_place(Path::new("/root/checkout/bosun-data")).unwrap();
        assert!(place.starts_with(RELOCATED_ROOT), "{}", place.display());
        assert!(
            place
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("c6751740828889e3"),
            "{}",
            place.display()
        );
    }

    #[test]
    fn a_record_holds_an_absolute_path() {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join(LOCATION_FILE);
        assert_eq!(read_record(&record).unwrap(), None);
        write_record(&record, Path::new("/var/lib/bosun/clusters/x")).unwrap();
        assert_eq!(
            read_record(&record).unwrap(),
            Some(PathBuf::from("/var/lib/bosun/clusters/x"))
        );
        fs::write(&record, "relative/x\n").unwrap();
        let error = read_record(&record).unwrap_err().to_string();
        assert!(error.contains("absolute"), "{error}");
    }
}
