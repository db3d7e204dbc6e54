//! The managed local PostgreSQL: what Bosun runs when no `database.url` is configured.
//!
//! Layout under the data directory:
//!
//! ```text
//! postgres/              the cluster (initdb'd on first start)
//! postgres.initialized   written after initdb succeeded; without it a half-made cluster is redone
//! postgres.location      only when the cluster is elsewhere (below): the folder holding it
//! postgres.log           the server's output
//! postgres.lock          held while a process starts or stops the server
//! postgres.users         every process using the server holds a shared lock on it
//! run/                   the private Unix socket directory (no TCP listener)
//! ```
//!
//! When bosun is root and the `postgres` user cannot reach the data directory (an ancestor it
//! may not enter, such as `/root` or a `mktemp -d` folder, mode 0700), `postgres/` and `run/` go
//! to `/var/lib/bosun/clusters/<hash of the data directory>/` instead, recorded in
//! `postgres.location` (see [`place`]).
//!
//! Any number of `bosun` processes may share one data directory: the first starts the server,
//! the others use it, and the last one out stops it. A server left running by a process killed
//! with SIGKILL is adopted by the next one; a stale pid file is cleared. PostgreSQL refuses to
//! run as root, so when Bosun is root the cluster belongs to, and the server runs as, the
//! unprivileged `postgres` user.

mod binaries;
mod lock;
pub mod place;
mod process;

use lock::LockFile;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const PORT: u16 = 5432;
const SUPERUSER: &str = "bosun";
const START_TIMEOUT: Duration = Duration::from_secs(60);
const START_ATTEMPTS: u32 = 5;
/// `sun_path` holds 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;

#[derive(Debug, thiserror::Error)]
pub enum ManagedError {
    #[error(
        "PostgreSQL server binaries (initdb and postgres) were not found on PATH or under \
         /usr/lib/postgresql/*/bin. Install them (Debian/Ubuntu: `apt-get install postgresql`), \
         or set database.url (BOSUN_DATABASE__URL) to use an existing PostgreSQL server"
    )]
    BinariesNotFound,
    #[error(
        "bosun runs as root and PostgreSQL refuses to; no unprivileged user `postgres` exists to run \
         it as. Create one (`useradd --system postgres`), or set database.url to use an existing server"
    )]
    NoUnprivilegedUser,
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "bosun runs as root, so the managed PostgreSQL runs as the unprivileged user {user}, \
         which cannot use the data directory {data_dir}: {detail}. Make the folder reachable \
         for {user} (search permission, `x`, on every folder down to the data directory: \
         `chmod o+x FOLDER`, or `chgrp` it to {user}'s primary group and `chmod g+x`), set \
         data_dir (BOSUN_DATA_DIR) to a folder {user} can reach, or set database.url \
         (BOSUN_DATABASE__URL) to use an existing PostgreSQL server"
    )]
    Unreachable {
        user: String,
        data_dir: PathBuf,
        detail: String,
    },
    #[error(
        "{marker} says the cluster was made, but {cluster} is missing; restore it, or remove \
         {marker} to make a new, empty cluster"
    )]
    ClusterMissing { marker: PathBuf, cluster: PathBuf },
    #[error("initdb failed ({status}):\n{output}")]
    Initdb { status: String, output: String },
    #[error("PostgreSQL did not become ready within {seconds} s; last lines of {log}:\n{tail}")]
    StartTimeout {
        seconds: u64,
        log: PathBuf,
        tail: String,
    },
    #[error("PostgreSQL exited while starting ({status}); last lines of {log}:\n{tail}")]
    Exited {
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("cannot create the database {name}: {source}")]
    CreateDatabase {
        name: String,
        source: tokio_postgres::Error,
    },
}

fn io<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> ManagedError + 'a {
    move |source| ManagedError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Options a caller may change; the defaults are for production.
#[derive(Clone, Debug)]
pub struct Options {
    /// `fsync=off` trades crash safety of the database for speed: only for throwaway test data.
    pub fsync: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { fsync: true }
    }
}

/// A handle on the managed server, held while this process uses it.
pub struct ManagedPostgres {
    data_dir: PathBuf,
    /// `postgres/` in the data directory, or in the folder `postgres.location` names.
    cluster: PathBuf,
    socket_dir: PathBuf,
    /// Set when this process started the server, so it can reap it.
    child: Option<Child>,
    /// How it was started, to start it again the same way ([`Self::revive_blocking`]).
    options: Options,
    /// Our shared lock on `postgres.users`.
    user: Option<LockFile>,
}

impl ManagedPostgres {
    /// Starts (or joins) the managed server for `data_dir` and makes sure database `bosun` exists.
    pub async fn start(data_dir: &Path, options: Options) -> Result<Self, ManagedError> {
        let data_dir = data_dir.to_path_buf();
        let managed =
            tokio::task::spawn_blocking(move || Self::start_blocking(&data_dir, &options))
                .await
                .map_err(|e| ManagedError::Io {
                    action: "start thread for",
                    path: PathBuf::from("postgres"),
                    source: std::io::Error::other(e.to_string()),
                })??;
        managed.create_database(SUPERUSER).await?;
        Ok(managed)
    }

    /// The blocking part of [`start`](Self::start): everything but creating the database.
    pub fn start_blocking(data_dir: &Path, options: &Options) -> Result<Self, ManagedError> {
        fs::create_dir_all(data_dir).map_err(io("create", data_dir))?;
        let data_dir = data_dir.canonicalize().map_err(io("resolve", data_dir))?;
        let bin_dir = binaries::find().ok_or(ManagedError::BinariesNotFound)?;
        let owner = process::Owner::for_postgres()?;

        let _starting = LockFile::exclusive(&data_dir.join("postgres.lock"))?;
        let home = place::home(&data_dir, &owner)?;
        let cluster = home.join("postgres");
        let marker = data_dir.join("postgres.initialized");
        if marker.exists() && !cluster.exists() {
            return Err(ManagedError::ClusterMissing { marker, cluster });
        }
        if !marker.exists() {
            if cluster.exists() {
                tracing::warn!(path = %cluster.display(), "removing a cluster whose initdb never finished");
                fs::remove_dir_all(&cluster).map_err(io("remove", &cluster))?;
            }
            initdb(&bin_dir, &cluster, &owner)?;
            fs::write(&marker, b"").map_err(io("write", &marker))?;
        }
        let socket_dir = socket_dir(&home, &owner)?;
        let log = data_dir.join("postgres.log");

        let mut child = None;
        match process::running_postmaster(&cluster) {
            Some(pid) => {
                tracing::info!(pid, "using the managed PostgreSQL already running");
                process::wait_ready(&cluster, None, &log, START_TIMEOUT)?;
            }
            None => {
                let started =
                    start_postmaster(&bin_dir, &cluster, &socket_dir, &log, &owner, options)?;
                tracing::info!(pid = started.id(), data = %cluster.display(), "started the managed PostgreSQL");
                child = Some(started);
            }
        }
        let user = LockFile::shared(&data_dir.join("postgres.users"))?;
        Ok(ManagedPostgres {
            data_dir,
            cluster,
            socket_dir,
            child,
            options: options.clone(),
            user: Some(user),
        })
    }

    /// Starts the server again if it has gone while in use (its postmaster exited, or was
    /// killed): what a supervisor calls twice a second. Another process using it may have started
    /// it again already; then this one just goes on using it. Returns whether it started it.
    pub fn revive_blocking(&mut self) -> Result<bool, ManagedError> {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => return Ok(false),
            // Ours, and gone (reaped now, or it would pass for running).
            Some(_) => self.child = None,
            None if process::running_postmaster(&self.cluster).is_some() => return Ok(false),
            None => {}
        }
        let _starting = LockFile::exclusive(&self.data_dir.join("postgres.lock"))?;
        if process::running_postmaster(&self.cluster).is_some() {
            return Ok(false);
        }
        let bin_dir = binaries::find().ok_or(ManagedError::BinariesNotFound)?;
        let owner = process::Owner::for_postgres()?;
        let log = self.data_dir.join("postgres.log");
        let started = start_postmaster(
            &bin_dir,
            &self.cluster,
            &self.socket_dir,
            &log,
            &owner,
            &self.options,
        )?;
        tracing::warn!(pid = started.id(), data = %self.cluster.display(), "the managed PostgreSQL had stopped; started it again");
        self.child = Some(started);
        Ok(true)
    }

    /// Connection settings for database `dbname` on the managed server.
    pub fn config(&self, dbname: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(&self.socket_dir)
            .port(PORT)
            .user(SUPERUSER)
            .dbname(dbname);
        config
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The cluster: `postgres/` in the data directory, or where `postgres.location` says.
    pub fn cluster_dir(&self) -> &Path {
        &self.cluster
    }

    /// The directory of the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// Creates database `name` unless it exists.
    pub async fn create_database(&self, name: &str) -> Result<(), ManagedError> {
        let fail = |source| ManagedError::CreateDatabase {
            name: name.to_string(),
            source,
        };
        let (client, connection) = self
            .config("postgres")
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(fail)?;
        let driver = tokio::spawn(connection);
        let exists = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .await
            .map_err(fail)?
            .is_some();
        if !exists {
            let quoted = name.replace('"', "\"\"");
            if let Err(e) = client
                .batch_execute(&format!("CREATE DATABASE \"{quoted}\""))
                .await
            {
                // Another process may have created it between our check and our CREATE.
                if e.code() != Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) {
                    return Err(fail(e));
                }
            }
        }
        drop(client);
        let _ = driver.await;
        Ok(())
    }

    /// Stops using the server; the last process using it stops it. Returns whether it stopped.
    pub async fn stop(self) -> Result<bool, ManagedError> {
        tokio::task::spawn_blocking(move || self.stop_blocking())
            .await
            .map_err(|e| ManagedError::Io {
                action: "stop thread for",
                path: PathBuf::from("postgres"),
                source: std::io::Error::other(e.to_string()),
            })?
    }

    pub fn stop_blocking(mut self) -> Result<bool, ManagedError> {
        let _stopping = LockFile::exclusive(&self.data_dir.join("postgres.lock"))?;
        drop(self.user.take());
        let Some(_last) = LockFile::try_exclusive(&self.data_dir.join("postgres.users"))? else {
            tracing::info!("the managed PostgreSQL stays up: other bosun processes use it");
            return Ok(false);
        };
        process::shutdown(&self.cluster, self.child.take());
        Ok(true)
    }
}

fn initdb(bin_dir: &Path, cluster: &Path, owner: &process::Owner) -> Result<(), ManagedError> {
    fs::create_dir_all(cluster).map_err(io("create", cluster))?;
    owner.give(cluster)?;
    fs::set_permissions(cluster, fs::Permissions::from_mode(0o700))
        .map_err(io("set permissions of", cluster))?;
    let mut command = Command::new(bin_dir.join("initdb"));
    command
        .arg("--pgdata")
        .arg(cluster)
        .args([
            "--username",
            SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
        ])
        .current_dir(cluster)
        .stdin(Stdio::null());
    owner.apply(&mut command);
    tracing::info!(path = %cluster.display(), "creating the managed PostgreSQL cluster (initdb)");
    let output = command.output().map_err(io("run initdb for", cluster))?;
    if !output.status.success() {
        return Err(ManagedError::Initdb {
            status: output.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }
    Ok(())
}

/// `<home>/run` (`home`: the data directory, or the folder holding the cluster), unless that
/// path is too long for a Unix socket: then a directory under /tmp named after `home`, so every
/// process finds the same one (a socket need not survive a reboot).
fn socket_dir(home: &Path, owner: &process::Owner) -> Result<PathBuf, ManagedError> {
    let preferred = home.join("run");
    let socket_name_len = format!("/.s.PGSQL.{PORT}.lock").len();
    let dir = if preferred.as_os_str().len() + socket_name_len <= MAX_SOCKET_PATH {
        preferred
    } else {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        home.hash(&mut hasher);
        std::env::temp_dir().join(format!("bosun-pg-{:016x}", hasher.finish()))
    };
    fs::create_dir_all(&dir).map_err(io("create", &dir))?;
    owner.give(&dir)?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
        .map_err(io("set permissions of", &dir))?;
    Ok(dir)
}

/// Starts a postmaster on `cluster` and waits until it is ready. The children of a postmaster
/// killed with SIGKILL hold its shared memory for a moment; a start in that moment fails and is
/// tried again.
fn start_postmaster(
    bin_dir: &Path,
    cluster: &Path,
    socket_dir: &Path,
    log: &Path,
    owner: &process::Owner,
    options: &Options,
) -> Result<Child, ManagedError> {
    let mut attempt = 1;
    loop {
        process::clear_stale_lock_files(cluster, socket_dir, PORT);
        let mut started = spawn_postgres(bin_dir, cluster, socket_dir, log, owner, options)?;
        match process::wait_ready(cluster, Some(&mut started), log, START_TIMEOUT) {
            Ok(()) => return Ok(started),
            Err(ManagedError::Exited { .. }) if attempt < START_ATTEMPTS => {
                tracing::warn!(attempt, "PostgreSQL exited while starting; trying again");
                std::thread::sleep(Duration::from_secs(1));
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

fn spawn_postgres(
    bin_dir: &Path,
    cluster: &Path,
    socket_dir: &Path,
    log: &Path,
    owner: &process::Owner,
    options: &Options,
) -> Result<Child, ManagedError> {
    let log_file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io("open", log))?;
    let log_err = log_file.try_clone().map_err(io("open", log))?;
    let mut command = Command::new(bin_dir.join("postgres"));
    command
        .arg("-D")
        .arg(cluster)
        .arg("-p")
        .arg(PORT.to_string())
        .arg("-c")
        .arg(format!("unix_socket_directories={}", socket_dir.display()))
        .args(["-c", "listen_addresses=", "-c", "max_connections=300"])
        .args([
            "-c",
            if options.fsync {
                "fsync=on"
            } else {
                "fsync=off"
            },
        ])
        .current_dir(cluster)
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(log_err);
    // Its own process group: a Ctrl-C meant for bosun must not stop the database under it;
    // bosun stops it itself once its requests are done.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    owner.apply(&mut command);
    command.spawn().map_err(io("start postgres for", cluster))
}
