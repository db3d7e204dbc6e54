//! The server in the test's own process: `spawn_app(yaml)` builds the real application (every
//! route, projector and worker) on `127.0.0.1:0` over a fresh database of the test binary's one
//! managed PostgreSQL, and the test talks to it over HTTP like any client. Much cheaper than a
//! process with its own `initdb`; keep process-level tests for what is about the process
//! (signals, the managed PostgreSQL, the command line, configuration errors).

use crate::Api;
use bosun_api::config::{DatabaseUrl, Settings};
use bosun_api::startup::Application;
use bosun_eventstore::PgEventStore;
use std::net::SocketAddr;
use tokio::task::JoinHandle;

/// A running in-process server; dropping it stops it.
pub struct TestApp {
    /// An admin client (the token the first start wrote).
    pub api: Api,
    pub address: SocketAddr,
    /// `https` when it was configured with `tls`, else `http`: its URLs' scheme (an HTTPS app's
    /// `api` does not trust its certificate unless the test's CA is the client's root).
    pub scheme: &'static str,
    /// Its database (a fresh one of the test binary's PostgreSQL).
    database: DatabaseUrl,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.address)
    }

    /// Its event store, opened anew past the API: to read the log as stored, or to append to
    /// it from outside as another node would.
    pub async fn store(&self) -> PgEventStore {
        PgEventStore::open(&self.database.0)
            .await
            .expect("open the test's event store")
    }

    /// Its database's connection settings: to run against it what another process would (the
    /// rebuild `bosun replay` runs, say).
    pub fn database(&self) -> &DatabaseUrl {
        &self.database
    }

    /// Stops it as SIGTERM would and waits until it has.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts the application configured by `yaml` (a configuration file's text; its `listen`,
/// `data_dir` and `database` are set here).
pub async fn spawn_app(yaml: &str) -> TestApp {
    let database = bosun_eventstore::testing::fresh_database().await;
    build(yaml, crate::work_dir(), DatabaseUrl(database), None).await
}

impl TestApp {
    /// Stops it as SIGTERM would, then starts it again configured by `yaml`, on the same data
    /// folder and database (and its admin's token): a node's next start, with other settings.
    pub async fn restart(mut self, yaml: &str) -> TestApp {
        let dir = std::mem::replace(&mut self._dir, crate::work_dir());
        let database = DatabaseUrl(self.database.0.clone());
        let token = self.api.token.clone();
        self.stop().await;
        build(yaml, dir, database, Some(token)).await
    }
}

async fn build(
    yaml: &str,
    dir: tempfile::TempDir,
    database: DatabaseUrl,
    token: Option<String>,
) -> TestApp {
    let file = crate::config_file(dir.path(), if yaml.trim().is_empty() { "{}" } else { yaml });
    let mut settings = Settings::from_sources(Some(&file), std::iter::empty())
        .unwrap_or_else(|e| panic!("the test's configuration: {e}"));
    settings.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    settings.data_dir = dir.path().join("bosun-data");
    settings.database.url = Some(DatabaseUrl(database.0.clone()));
    let scheme = if settings.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let app = Application::build(settings)
        .await
        .unwrap_or_else(|e| panic!("the application did not start: {e:#}"));
    let address = app.address();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let token = token.unwrap_or_else(|| {
        std::fs::read_to_string(dir.path().join("bosun-data/admin-token"))
            .expect("the first start writes the admin's token")
            .trim()
            .to_string()
    });
    TestApp {
        api: Api::at(&format!("{scheme}://{address}"), &token),
        address,
        scheme,
        database,
        stop: Some(stop),
        task: Some(task),
        _dir: dir,
    }
}

impl Api {
    /// The same client (its token) talking to `app`: a restarted server's new address.
    pub fn at_address(&self, app: &TestApp) -> Api {
        Api::at(&app.url(""), &self.token)
    }
}
