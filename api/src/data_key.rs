//! The server's secret key, from `data_key_file` (default `<data_dir>/data-key`): 32 random
//! bytes made on first start, readable by the owner only. Orchestration tokens are derived from
//! it, so every node of one database must read the same file. In memory it is a
//! [`SecretSlice`]: wiped when dropped, and its Debug shows nothing of it.

use crate::config::Settings;
use anyhow::Context;
use secrecy::{ExposeSecret, ExposeSecretMut, SecretBox, SecretSlice};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;

const LENGTH: usize = 32;

pub fn path(settings: &Settings) -> PathBuf {
    settings
        .data_key_file
        .clone()
        .unwrap_or_else(|| settings.data_dir.join("data-key"))
}

/// The key, made if the file does not exist yet (two processes starting at once agree: only
/// one creates it, the other reads it).
pub fn load_or_create(path: &std::path::Path) -> anyhow::Result<Arc<SecretSlice<u8>>> {
    let path = path.to_path_buf();
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    if let Some(key) = read(&path)? {
        return Ok(key);
    }
    let mut key = SecretBox::new(Box::new([0u8; LENGTH]));
    getrandom::fill(key.expose_secret_mut())
        .map_err(|e| anyhow::anyhow!("the system gave no random bytes for a data key: {e}"))?;
    // Written whole to a file of its own, then linked into place: a crash never leaves a short
    // key behind, and of two processes starting at once one links and the other reads its key.
    let temp = path.with_extension(format!("tmp-{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .and_then(|mut file| {
            file.write_all(key.expose_secret())
                .and_then(|()| file.sync_all())
        });
    let linked = written.and_then(|()| std::fs::hard_link(&temp, &path));
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => Ok(Arc::new(SecretSlice::from(key.expose_secret().to_vec()))),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read(&path)?.with_context(|| format!("{} vanished while being read", path.display()))
        }
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

/// The key in `path`, if the file exists; an error if it is not a key.
fn read(path: &std::path::Path) -> anyhow::Result<Option<Arc<SecretSlice<u8>>>> {
    match std::fs::read(path).map(SecretSlice::from) {
        Ok(bytes) if bytes.expose_secret().len() >= LENGTH => Ok(Some(Arc::new(bytes))),
        Ok(_) => anyhow::bail!(
            "{} holds fewer than {LENGTH} bytes; it is not a data key (remove it to make a new one)",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// What the runner runs with.
pub fn runner_setup(settings: &Settings) -> anyhow::Result<bosun_runner::Setup> {
    Ok(bosun_runner::Setup {
        catalog: Arc::new(settings.catalog.clone()),
        settings: settings.runner.clone(),
        notifications: settings.notifications.clone(),
        services: settings
            .services
            .runner(&settings.http_tasks.allow_insecure_hosts),
        runnables: settings.runnables.runner(),
        data_key: load_or_create(&path(settings))?,
    })
}

#[cfg(test)]
mod tests {
    use super::load_or_create;
    use secrecy::ExposeSecret;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn made_once_owner_only_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/data-key");
        let key = load_or_create(&path).unwrap();
        assert_eq!(key.expose_secret().len(), 32);
        assert!(format!("{key:?}").contains("REDACTED"), "{key:?}");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            load_or_create(&path).unwrap().expose_secret(),
            key.expose_secret(),
            "the same key on the next start"
        );
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");
    }

    #[test]
    fn a_short_file_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data-key");
        std::fs::write(&path, b"short").unwrap();
        let error = load_or_create(&path).unwrap_err().to_string();
        assert!(
            error.contains("data-key") && error.contains("not a data key"),
            "{error}"
        );
    }
}
