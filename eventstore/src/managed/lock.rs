//! Advisory file locks (flock) between bosun processes sharing a data directory. The kernel
//! drops them when a process dies, however it dies, so a killed process never blocks another.

use super::ManagedError;
use nix::libc;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;

/// A held lock; dropping it closes the file and releases the lock.
pub(super) struct LockFile {
    _file: File,
}

impl LockFile {
    pub fn exclusive(path: &Path) -> Result<Self, ManagedError> {
        Self::blocking(path, libc::LOCK_EX)
    }

    pub fn shared(path: &Path) -> Result<Self, ManagedError> {
        Self::blocking(path, libc::LOCK_SH)
    }

    fn blocking(path: &Path, operation: libc::c_int) -> Result<Self, ManagedError> {
        Self::lock(path, operation)?
            .ok_or_else(|| super::io("lock", path)(std::io::ErrorKind::WouldBlock.into()))
    }

    /// `None` when another process holds the lock.
    pub fn try_exclusive(path: &Path) -> Result<Option<Self>, ManagedError> {
        Self::lock(path, libc::LOCK_EX | libc::LOCK_NB)
    }

    fn lock(path: &Path, operation: libc::c_int) -> Result<Option<Self>, ManagedError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(super::io("open", path))?;
        loop {
            // SAFETY: flock on a file descriptor we own; no memory is involved.
            if unsafe { libc::flock(file.as_raw_fd(), operation) } == 0 {
                return Ok(Some(LockFile { _file: file }));
            }
            let error = std::io::Error::last_os_error();
            match error.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EWOULDBLOCK) if operation & libc::LOCK_NB != 0 => return Ok(None),
                _ => return Err(super::io("lock", path)(error)),
            }
        }
    }
}
