//! The server's secret key, from `data_key_file` (default `<data_dir>/data-key`): 32 random
//! bytes made on first start, readable by the owner only. Orchestration tokens are derived from
//! it, so every node of one database must read the same file.

use crate::config::Settings;
use anyhow::Context;
use std::io::{Read, Write};
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
pub fn load_or_create(settings: &Settings) -> anyhow::Result<Arc<[u8]>> {
    let path = path(settings);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut key = [0u8; LENGTH];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .context("reading /dev/urandom")?;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(mut file) => {
            file.write_all(&key)
                .and_then(|()| file.sync_all())
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(Arc::from(&key[..]))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // Another process may be writing it this instant.
            for _ in 0..50 {
                let bytes =
                    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                if bytes.len() >= LENGTH {
                    return Ok(Arc::from(bytes));
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            anyhow::bail!(
                "{} holds fewer than {LENGTH} bytes; it is not a data key",
                path.display()
            )
        }
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

/// What the runner runs with.
pub fn runner_setup(settings: &Settings) -> anyhow::Result<bosun_runner::Setup> {
    Ok(bosun_runner::Setup {
        catalog: Arc::new(settings.catalog.clone()),
        settings: settings.runner.clone(),
        notifications: settings.notifications.clone(),
        data_key: load_or_create(settings)?,
    })
}
