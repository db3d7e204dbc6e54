//! Which PostgreSQL the process uses: `database.url` if set (nothing is launched), else the
//! managed one under the data directory, which a supervisor starts again if it stops while in
//! use (killed, or crashed): requests meanwhile are 503s, not a server that stays down. The
//! supervisor stops as soon as the process begins to stop ([`Database::stop_supervising`]), or
//! when the handle is dropped, so a server on its way out is never started again.

use crate::config::Settings;
use bosun_eventstore::managed::{ManagedPostgres, Options};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the supervisor looks whether the managed server is still there.
const SUPERVISE_EVERY: Duration = Duration::from_millis(500);

type Shared = Arc<Mutex<Option<ManagedPostgres>>>;

pub struct Database {
    pub config: tokio_postgres::Config,
    /// Set when we use the managed server; stop it on the way out.
    managed: Option<Shared>,
    supervisor: Option<tokio::task::JoinHandle<()>>,
    /// Set once the process stops: the supervisor starts nothing more.
    stopping: Arc<AtomicBool>,
}

impl Database {
    pub async fn open(settings: &Settings) -> anyhow::Result<Self> {
        let stopping = Arc::new(AtomicBool::new(false));
        match &settings.database.url {
            Some(url) => Ok(Database {
                config: url.0.clone(),
                managed: None,
                supervisor: None,
                stopping,
            }),
            None => {
                let managed =
                    ManagedPostgres::start(&settings.data_dir, Options::default()).await?;
                let config = managed.config("bosun");
                let managed = Arc::new(Mutex::new(Some(managed)));
                Ok(Database {
                    config,
                    supervisor: Some(tokio::spawn(supervise(managed.clone(), stopping.clone()))),
                    managed: Some(managed),
                    stopping,
                })
            }
        }
    }

    /// From now on a managed server that stops stays stopped: the process is on its way out.
    pub fn stop_supervising(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(supervisor) = self.supervisor.take() {
            supervisor.abort();
        }
    }

    /// Stops the managed server if this was its last user.
    pub async fn close(mut self) {
        self.stop_supervising();
        let Some(managed) = self.managed.take() else {
            return;
        };
        // A revive under way holds the lock: waited for off the runtime's threads.
        let taken = tokio::task::spawn_blocking(move || {
            managed.lock().unwrap_or_else(|e| e.into_inner()).take()
        })
        .await
        .ok()
        .flatten();
        if let Some(managed) = taken {
            if let Err(e) = managed.stop().await {
                tracing::error!(error = %e, "stopping the managed PostgreSQL failed");
            }
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        self.stop_supervising();
    }
}

/// Starts the managed server again whenever it has gone, until the process stops.
async fn supervise(managed: Shared, stopping: Arc<AtomicBool>) {
    let mut tick = tokio::time::interval(SUPERVISE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (managed, stopping) = (managed.clone(), stopping.clone());
        let revived = tokio::task::spawn_blocking(move || {
            let mut held = managed.lock().unwrap_or_else(|e| e.into_inner());
            if stopping.load(Ordering::SeqCst) {
                return None;
            }
            held.as_mut().map(ManagedPostgres::revive_blocking)
        })
        .await;
        match revived {
            Ok(Some(Err(e))) => {
                tracing::error!(error = %e, "the managed PostgreSQL is gone and does not start again; retrying")
            }
            Ok(None) => return,
            Err(e) => tracing::error!(error = %e, "the managed PostgreSQL's supervisor failed"),
            Ok(Some(Ok(_))) => {}
        }
    }
}
