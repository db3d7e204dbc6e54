//! The postmaster as an OS process: who it runs as, whether it runs, waiting for it, stopping it.

use super::{io, ManagedError};
use nix::sys::signal::{kill, Signal};
use nix::unistd::{Pid, User};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Who owns the cluster and runs the server: this process's user, or `postgres` when we are root.
pub(super) struct Owner {
    user: Option<User>,
}

impl Owner {
    pub fn for_postgres() -> Result<Self, ManagedError> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(Owner { user: None });
        }
        match User::from_name("postgres") {
            Ok(Some(user)) => Ok(Owner { user: Some(user) }),
            _ => Err(ManagedError::NoUnprivilegedUser),
        }
    }

    /// The unprivileged user the server runs as (name, uid, primary gid), when bosun is root.
    pub fn unprivileged(&self) -> Option<(&str, u32, u32)> {
        self.user
            .as_ref()
            .map(|u| (u.name.as_str(), u.uid.as_raw(), u.gid.as_raw()))
    }

    /// Hands `path` to the owner.
    pub fn give(&self, path: &Path) -> Result<(), ManagedError> {
        if let Some(user) = &self.user {
            std::os::unix::fs::chown(path, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
                .map_err(io("chown", path))?;
        }
        Ok(())
    }

    /// Makes `command` run as the owner.
    pub fn apply(&self, command: &mut Command) {
        use std::os::unix::process::CommandExt;
        if let Some(user) = &self.user {
            // std drops supplementary groups too when a root process sets the uid.
            command
                .uid(user.uid.as_raw())
                .gid(user.gid.as_raw())
                .env("HOME", &user.dir)
                .env("USER", &user.name);
        }
    }
}

/// The lines of `postmaster.pid`: pid, data dir, start time, port, socket dir, listen address,
/// shared memory key, status.
fn pid_file(cluster: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(cluster.join("postmaster.pid")).ok()?;
    Some(text.lines().map(str::to_string).collect())
}

fn alive(pid: i32) -> bool {
    if kill(Pid::from_raw(pid), None).is_err() {
        return false;
    }
    // A zombie answers kill(0) but is gone.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                != Some("Z")
        }
        Err(_) => true,
    }
}

fn is_postgres(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/comm")) {
        Ok(comm) => comm.trim().starts_with("postgres"),
        // Without /proc we cannot tell; trust the pid file.
        Err(_) => true,
    }
}

/// The pid of a postmaster running on `cluster`, if one is.
pub(super) fn running_postmaster(cluster: &Path) -> Option<i32> {
    let lines = pid_file(cluster)?;
    let pid: i32 = lines.first()?.trim().parse().ok()?;
    (alive(pid) && is_postgres(pid)).then_some(pid)
}

/// Removes lock files left by a server that is gone (after a machine restart its pid may now
/// belong to another process, which PostgreSQL would take for a running server).
pub(super) fn clear_stale_lock_files(cluster: &Path, socket_dir: &Path, port: u16) {
    for path in [
        cluster.join("postmaster.pid"),
        socket_dir.join(format!(".s.PGSQL.{port}.lock")),
    ] {
        if path.exists() {
            tracing::warn!(path = %path.display(), "removing a stale PostgreSQL lock file");
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Waits until the postmaster of `cluster` says it is ready for connections.
pub(super) fn wait_ready(
    cluster: &Path,
    mut child: Option<&mut Child>,
    log: &Path,
    timeout: Duration,
) -> Result<(), ManagedError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(child) = child.as_deref_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(ManagedError::Exited {
                    status: status.to_string(),
                    log: log.to_path_buf(),
                    tail: tail(log),
                });
            }
        }
        if pid_file(cluster).and_then(|lines| lines.get(7).map(|s| s.trim() == "ready"))
            == Some(true)
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(ManagedError::StartTimeout {
                seconds: timeout.as_secs(),
                log: log.to_path_buf(),
                tail: tail(log),
            });
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Fast shutdown (SIGINT: roll back open transactions, checkpoint, exit); immediate (SIGQUIT)
/// if that takes over 30 s.
pub(super) fn shutdown(cluster: &Path, mut child: Option<Child>) {
    let pid = child
        .as_ref()
        .map(|c| c.id() as i32)
        .or_else(|| pid_file(cluster).and_then(|l| l.first()?.trim().parse().ok()));
    let Some(pid) = pid else { return };
    for (signal, wait) in [(Signal::SIGINT, 30), (Signal::SIGQUIT, 10)] {
        if kill(Pid::from_raw(pid), signal).is_err() {
            break;
        }
        let deadline = Instant::now() + Duration::from_secs(wait);
        while Instant::now() < deadline {
            let gone = match child.as_mut() {
                Some(c) => matches!(c.try_wait(), Ok(Some(_)) | Err(_)),
                None => !alive(pid),
            };
            if gone {
                tracing::info!(pid, "stopped the managed PostgreSQL");
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        tracing::warn!(pid, ?signal, "PostgreSQL did not stop in time");
    }
}

/// The last lines of a log, for an error message.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}
