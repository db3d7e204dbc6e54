//! Finding the PostgreSQL server binaries on this machine.

use std::path::{Path, PathBuf};

/// The directory holding both `initdb` and `postgres`: first from PATH (following links, since
/// initdb wants postgres beside its real location), then the newest `/usr/lib/postgresql/*/bin`.
pub(super) fn find() -> Option<PathBuf> {
    let from_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .filter_map(|dir| dir.join("initdb").canonicalize().ok())
        .filter_map(|initdb| initdb.parent().map(Path::to_path_buf));
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            Some((
                entry.file_name().to_str()?.parse().ok()?,
                entry.path().join("bin"),
            ))
        })
        .collect();
    debian.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
    from_path
        .chain(debian.into_iter().map(|(_, dir)| dir))
        .find(|dir| is_server_bin_dir(dir))
}

fn is_server_bin_dir(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("postgres").is_file()
}
