//! The real server in the benchmark's own process, on `127.0.0.1:0` over the benchmark's scratch
//! database, with an admin token for its clients.
//!
//! The token: the benchmark creates the first admin itself (`Commands::bootstrap_admin`, what a
//! first start does) before the server starts, so the server finds an admin and prints no
//! credentials on stdout, which holds only result lines. The scratch database is always new; were
//! an admin there already, a token for `admin` is issued with actor `cli`.

use super::progress;
use crate::config::{DatabaseUrl, Settings};
use crate::core::Core;
use crate::startup::Application;
use anyhow::Context;
use bosun_commands::{Actor, Origin};
use bosun_eventstore::PgEventStore;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::task::JoinHandle;

const SHUTDOWN_WAIT: Duration = Duration::from_secs(15);

pub struct BenchServer {
    pub address: SocketAddr,
    pub token: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
    _data_dir: tempfile::TempDir,
}

impl BenchServer {
    /// Starts the server with `settings` (its listen address, data directory and database are
    /// set here). `bench` names the benchmark in the token and the progress lines.
    pub async fn start(
        store: &PgEventStore,
        config: &tokio_postgres::Config,
        settings: Settings,
        bench: &str,
    ) -> anyhow::Result<Self> {
        let token = admin_token(store, config, bench).await?;
        let data_dir = tempfile::Builder::new()
            .prefix(&format!("bosun-bench-{bench}-"))
            .tempdir()
            .context("creating the server's data directory")?;
        let mut settings = settings;
        settings.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        settings.data_dir = data_dir.path().to_path_buf();
        settings.database.url = Some(DatabaseUrl(config.clone()));
        progress("starting the server");
        let app = Application::build(settings)
            .await
            .context("starting the server")?;
        let address = app.address();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        Ok(BenchServer {
            address,
            token,
            stop,
            task,
            _data_dir: data_dir,
        })
    }

    /// The server with a catalog of one task, `bench/bench/true` (the program `true`), and
    /// `workers` workers: what the jobs and scheduler benchmarks run.
    pub async fn with_true_task(
        store: &PgEventStore,
        config: &tokio_postgres::Config,
        mut settings: Settings,
        workers: usize,
        bench: &str,
    ) -> anyhow::Result<Self> {
        settings.catalog = serde_json::from_value::<bosun_domain::jobs::Catalog>(
            serde_json::json!({"bench": {"bench": {"true": {"command": ["true"]}}}}),
        )
        .context("the benchmark's catalog")?;
        settings.runner.workers = workers;
        BenchServer::start(store, config, settings, bench).await
    }

    /// Stops it as SIGTERM would; problems are reported, not fatal to the results.
    pub async fn stop(self) {
        progress("stopping the server");
        let _ = self.stop.send(());
        match tokio::time::timeout(SHUTDOWN_WAIT, self.task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => progress(format!("the server stopped with an error: {e:#}")),
            Ok(Err(e)) => progress(format!("the server task failed: {e}")),
            Err(_) => progress(format!(
                "the server did not stop within {}s",
                SHUTDOWN_WAIT.as_secs()
            )),
        }
    }
}

async fn admin_token(
    store: &PgEventStore,
    config: &tokio_postgres::Config,
    bench: &str,
) -> anyhow::Result<String> {
    let core = Core::on(store.clone(), config)
        .await
        .context("starting the projectors")?;
    let commands = &core.commands;
    let token = match commands
        .bootstrap_admin()
        .await
        .map_err(|e| anyhow::anyhow!("creating the admin for the benchmark failed: {e}"))?
    {
        Some(admin) => admin.token,
        None => {
            let origin = Origin {
                user_agent: Some(format!("bosun bench {bench}")),
                ..Origin::default()
            };
            let (issued, _) = commands
                .issue_token_for(
                    &Actor::System("cli"),
                    &origin,
                    "admin",
                    format!("bosun bench {bench}"),
                    Some(3600),
                )
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "the database has an admin; issuing a token for user admin failed: {e}"
                    )
                })?;
            issued.token
        }
    };
    drop(core);
    Ok(token)
}
