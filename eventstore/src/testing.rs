//! Test support: one managed PostgreSQL per test binary, in a temporary directory, stopped and
//! removed when the binary exits; a fresh database for every test.
//!
//! A test that needs PostgreSQL and cannot start it fails with the reason and what to install;
//! it never skips.

use crate::managed::{ManagedPostgres, Options};
use nix::libc;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

struct Cluster {
    managed: Mutex<Option<ManagedPostgres>>,
    dir: PathBuf,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();

extern "C" fn stop_cluster_at_exit() {
    if let Some(Ok(cluster)) = CLUSTER.get() {
        let managed = cluster.managed.lock().ok().and_then(|mut m| m.take());
        if let Some(managed) = managed {
            let _ = managed.stop_blocking();
        }
        let _ = std::fs::remove_dir_all(&cluster.dir);
    }
}

fn cluster() -> &'static Cluster {
    let started = CLUSTER.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!(
            "bosun-test-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        let start = || -> Result<ManagedPostgres, String> {
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            // The unprivileged postgres user must be able to reach the cluster inside.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| e.to_string())?;
            ManagedPostgres::start_blocking(&dir, &Options { fsync: false })
                .map_err(|e| e.to_string())
        };
        let managed = start()
            .map_err(|e| format!("tests need a PostgreSQL server and could not start one: {e}"))?;
        // SAFETY: registering a plain extern "C" function with no captured state.
        unsafe { libc::atexit(stop_cluster_at_exit) };
        Ok(Cluster {
            managed: Mutex::new(Some(managed)),
            dir,
        })
    });
    match started {
        Ok(cluster) => cluster,
        Err(message) => panic!("{message}"),
    }
}

/// A database of its own for one test, on the binary's managed PostgreSQL.
pub async fn fresh_database() -> tokio_postgres::Config {
    let cluster = cluster();
    let name = format!("test_{}", uuid::Uuid::new_v4().simple());
    let (config, admin) = {
        let guard = cluster.managed.lock().expect("test cluster lock");
        let managed = guard
            .as_ref()
            .expect("the test cluster is running until exit");
        (managed.config(&name), managed.config("postgres"))
    };
    let (client, connection) = admin
        .connect(tokio_postgres::NoTls)
        .await
        .expect("connect to the test cluster");
    let driver = tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create a test database");
    drop(client);
    let _ = driver.await;
    config
}

/// The test cluster's data directory, for tests that start `bosun` processes on it.
pub fn cluster_data_dir() -> PathBuf {
    cluster().dir.clone()
}
