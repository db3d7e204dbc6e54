//! The managed PostgreSQL started from a folder of mode 0700, as a checkout in /root or a
//! `mktemp -d` folder is. As root (CI), the server runs as the `postgres` user, who cannot enter
//! that folder: the cluster must go where it can, be found again by a second process and after
//! a restart, and keep its data. As another user, the server runs as that user, who can: the
//! cluster stays in the data directory. Either way the server starts and answers.

use bosun_eventstore::managed::place::{LOCATION_FILE, RELOCATED_ROOT};
use bosun_eventstore::managed::{ManagedPostgres, Options};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Removes the relocated cluster (stopping a server left on it) when the test ends, passed or
/// not: a test must not leave clusters behind under /var/lib.
struct Cleanup(Option<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Some(home) = self.0.take() else { return };
        let pid_file = home.join("postgres/postmaster.pid");
        if let Some(pid) = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|t| t.lines().next()?.trim().parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGQUIT,
            );
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        let _ = std::fs::remove_dir_all(&home);
    }
}

async fn query_one(pg: &ManagedPostgres, sql: &str) -> i64 {
    let (client, connection) = pg
        .config("bosun")
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to the managed PostgreSQL: {e}"));
    let driver = tokio::spawn(connection);
    let value = client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0);
    drop(client);
    let _ = driver.await;
    value
}

async fn start(data_dir: &Path) -> ManagedPostgres {
    ManagedPostgres::start(data_dir, Options { fsync: false })
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the managed PostgreSQL did not start from {}: {e}",
                data_dir.display()
            )
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_from_a_folder_the_postgres_user_cannot_enter() {
    let root = nix::unistd::geteuid().is_root();
    let private = tempfile::Builder::new()
        .prefix("bosun-private-")
        .tempdir()
        .expect("a temporary folder");
    std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let data_dir = private.path().join("bosun-data");
    let mut cleanup = Cleanup(None);

    let first = start(&data_dir).await;
    let record = data_dir.canonicalize().unwrap().join(LOCATION_FILE);
    if root {
        let recorded = std::fs::read_to_string(&record).unwrap_or_else(|e| {
            panic!(
                "as root with a data directory postgres cannot reach, the cluster's place must \
                 be recorded in {}: {e}",
                record.display()
            )
        });
        let home = PathBuf::from(recorded.trim_end());
        cleanup.0 = Some(home.clone());
        assert!(home.starts_with(RELOCATED_ROOT), "{}", home.display());
        assert_eq!(first.cluster_dir(), home.join("postgres"));
        assert!(first.socket_dir().starts_with(&home));
        assert!(!first.cluster_dir().starts_with(private.path()));
    } else {
        eprintln!(
            "not root: the server runs as this user, who can enter the 0700 folder; checking that \
             it starts there and keeps the cluster in the data directory"
        );
        assert!(!record.exists(), "nothing to record: the cluster stays");
        assert!(first.cluster_dir().starts_with(private.path()));
    }
    assert_eq!(query_one(&first, "SELECT 1::bigint").await, 1);
    {
        let (client, connection) = first
            .config("bosun")
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap();
        let driver = tokio::spawn(connection);
        client
            .batch_execute("CREATE TABLE kept (n bigint); INSERT INTO kept VALUES (42)")
            .await
            .unwrap();
        drop(client);
        let _ = driver.await;
    }

    // A second process on the same data directory finds the same cluster and server.
    let second = start(&data_dir).await;
    assert_eq!(second.cluster_dir(), first.cluster_dir());
    assert_eq!(second.socket_dir(), first.socket_dir());
    assert_eq!(query_one(&second, "SELECT n FROM kept").await, 42);
    assert!(!first.stop().await.unwrap(), "the second still uses it");
    let cluster = second.cluster_dir().to_path_buf();
    assert!(second.stop().await.unwrap(), "the last one out stops it");

    // Started again (as after a reboot): the same place, the data still there.
    let again = start(&data_dir).await;
    assert_eq!(again.cluster_dir(), cluster);
    assert_eq!(query_one(&again, "SELECT n FROM kept").await, 42);
    assert!(again.stop().await.unwrap());
}

/// A cluster made in the data directory while postgres could reach it is never moved behind the
/// user's back: once the way is closed, the start stops with a message naming the folder, its
/// mode and owner, and what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_made_in_place_is_not_moved_and_the_error_says_why() {
    let root = nix::unistd::geteuid().is_root();
    let parent = tempfile::Builder::new()
        .prefix("bosun-closed-")
        .tempdir()
        .expect("a temporary folder");
    std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data_dir = parent.path().join("bosun-data");
    let pg = start(&data_dir).await;
    assert!(pg.cluster_dir().starts_with(parent.path()));
    assert!(pg.stop().await.unwrap());

    std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let result = ManagedPostgres::start(&data_dir, Options { fsync: false }).await;
    if root {
        let error = match result {
            Ok(pg) => {
                let _ = pg.stop().await;
                panic!("started although postgres cannot reach its cluster")
            }
            Err(e) => e.to_string(),
        };
        eprintln!("refused as it should be: {error}");
        let folder = parent.path().canonicalize().unwrap();
        for needed in [
            folder.display().to_string(),
            "mode 0700".into(),
            "owner root".into(),
            "postgres".into(),
            "BOSUN_DATA_DIR".into(),
            "not moved".into(),
        ] {
            assert!(error.contains(&needed), "{needed:?} missing from: {error}");
        }
        assert!(!data_dir.join(LOCATION_FILE).exists());
    } else {
        eprintln!("not root: the server runs as this user, who still reaches the folder");
        let pg = result.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(query_one(&pg, "SELECT 1::bigint").await, 1);
        assert!(pg.stop().await.unwrap());
    }
}
