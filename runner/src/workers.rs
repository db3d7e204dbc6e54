//! Starting the runner: its tables, the context its workers share (the log, the pool, the
//! catalog, the settings, the HTTP client), `settings.workers` workers, one reaper, and the
//! scheduler, notifications reactor, service calls reactor and runnables' reaper; and stopping
//! them all when `Workers` is dropped.
//!
//! Does not own: what a worker does (`claim` and on), the reaper (`reaper`), the scheduler
//! (`scheduler`), the notifications reactor (`notify`), the service calls (`services`) or the
//! runnables' reaper (`runnables`).

use crate::lease;
use crate::services::{ServiceCalls, ServiceSettings};
use crate::settings::{NotificationSettings, RunnerSettings};
use bosun_commands::Commands;
use bosun_domain::jobs::Catalog;
use deadpool_postgres::Pool;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// Running workers and the reaper; dropping it stops them (a job's process is killed with its
/// worker, and its lease runs out for the reaper), and stops the node's units (see
/// [`Workers::stop`] to wait until they are).
pub struct Workers {
    tasks: Vec<JoinHandle<()>>,
    units: Option<crate::units::Supervisor>,
    service_calls: ServiceCalls,
}

impl Workers {
    /// What makes the services' calls for instance intents, for the API's handlers.
    pub fn service_calls(&self) -> ServiceCalls {
        self.service_calls.clone()
    }

    /// Stops everything as dropping does, and waits until the node's units are stopped,
    /// recorded so and their leases given up (at most the kill grace period and a few seconds).
    pub async fn stop(mut self) {
        for task in &self.tasks {
            task.abort();
        }
        if let Some(units) = self.units.take() {
            units.stop().await;
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

pub(crate) struct Context {
    pub commands: Commands,
    pub pool: Pool,
    pub catalog: Arc<Catalog>,
    pub settings: RunnerSettings,
    /// Orchestration tokens are derived from it (a secret: wiped on drop, never in Debug).
    pub data_key: Arc<secrecy::SecretSlice<u8>>,
    /// For HTTP tasks.
    pub http: reqwest::Client,
    /// What a role job's commands run in (the runnables' sandbox, `runnables.sandbox`).
    pub sandbox: crate::runnables::Sandbox,
    /// This node's folder of `<runnables.work_dir>/jobs`, where role jobs' commands get their
    /// work folders (`None`: it could not be made; commands cannot start).
    pub job_folders: Option<Arc<crate::runnables::tree::NodeFolder>>,
}

/// Why the runner could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Migration(#[from] bosun_eventstore::migrate::MigrationError),
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// What the runner runs with, from the configuration.
pub struct Setup {
    pub catalog: Arc<Catalog>,
    pub settings: RunnerSettings,
    pub notifications: NotificationSettings,
    /// The server's secret key: orchestration tokens are derived from it.
    pub data_key: Arc<secrecy::SecretSlice<u8>>,
    /// Calling service APIs for instances.
    pub services: ServiceSettings,
    /// The runnables' reaper and sandbox.
    pub runnables: crate::runnables::RunnableSettings,
}

/// Prepares the runner's tables and starts `settings.workers` workers, one reaper, and the
/// scheduler, notifications reactor, service calls reactor and runnables' reaper (each active
/// on one node at a time).
pub async fn start(
    commands: Commands,
    setup: Setup,
    config: &tokio_postgres::Config,
) -> Result<Workers, StartError> {
    let Setup {
        catalog,
        settings,
        notifications,
        data_key,
        services,
        runnables,
    } = setup;
    let service_calls = ServiceCalls::new(commands.clone(), services)?;
    let (mut client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(bosun_eventstore::migrate::MigrationError::from)?;
    let driver = tokio::spawn(connection);
    lease::prepare(&mut client).await?;
    crate::units::prepare(&mut client).await?;
    crate::notify::prepare(&mut client).await?;
    drop(client);
    let _ = driver.await;
    let pool = commands.store.pool().clone();
    let node = format!(
        "{}:{}",
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "host".into()),
        std::process::id()
    );
    // No redirects: a redirect would carry the orchestration's token to another host, and
    // past the https rule.
    let http = reqwest::Client::builder()
        .user_agent(format!("bosun/{}", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| StartError::Http(e.to_string()))?;
    let job_folders = match settings.workers {
        0 => None,
        _ => crate::parallel_job::prepare_work_folders(&runnables.work_dir, &node).await,
    };
    let context = Arc::new(Context {
        commands: commands.clone(),
        pool,
        catalog: catalog.clone(),
        settings: settings.clone(),
        data_key,
        http: http.clone(),
        sandbox: runnables.sandbox,
        job_folders,
    });
    let notifier = Arc::new(crate::notify::Notifier {
        commands: commands.clone(),
        settings: notifications,
        http,
        data_key: context.data_key.clone(),
    });
    let mut tasks = vec![
        tokio::spawn(crate::reaper::reap(context.clone())),
        tokio::spawn(crate::scheduler::run(commands, catalog, config.clone())),
        tokio::spawn(crate::notify::run(notifier, config.clone())),
        tokio::spawn(crate::services::run(service_calls.clone(), config.clone())),
    ];
    tasks.extend(crate::runnables::start(
        context.commands.clone(),
        runnables.clone(),
        config.clone(),
    ));
    for slot in 0..settings.workers {
        let worker = format!("{node}/{slot}");
        tasks.push(tokio::spawn(crate::claim::work(context.clone(), worker)));
    }
    let units = crate::units::start(
        context.commands.clone(),
        context.pool.clone(),
        config,
        &context.catalog,
        settings,
        runnables,
        node,
    );
    Ok(Workers {
        tasks,
        units: Some(units),
        service_calls,
    })
}
