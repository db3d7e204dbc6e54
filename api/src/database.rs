//! Which PostgreSQL the process uses: `database.url` if set (nothing is launched), else the
//! managed one under the data directory, which a supervisor starts again if it stops while in
//! use (killed, or crashed): requests meanwhile are 503s, not a server that stays down.

use crate::config::Settings;
use bosun_eventstore::managed::{ManagedPostgres, Options};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the supervisor looks whether the managed server is still there.
const SUPERVISE_EVERY: Duration = Duration::from_millis(500);

pub struct Database {
    pub config: tokio_postgres::Config,
    /// Set when we use the managed server; stop it on the way out.
    managed: Option<Arc<Mutex<Option<ManagedPostgres>>>>,
    supervisor: Option<tokio::task::JoinHandle<()>>,
}

impl Database {
    pub async fn open(settings: &Settings) -> anyhow::Result<Self> {
        match &settings.database.url {
            Some(url) => Ok(Database {
                config: url.0.clone(),
                managed: None,
                supervisor: None,
            }),
            None => {
                let managed =
                    ManagedPostgres::start(&settings.data_dir, Options::default()).await?;
                let config = managed.config("bosun");
                let managed = Arc::new(Mutex::new(Some(managed)));
                Ok(Database {
                    config,
                    supervisor: Some(tokio::spawn(supervise(managed.clone()))),
                    managed: Some(managed),
                })
            }
        }
    }

    /// Stops the managed server if this was its last user.
    pub async fn close(self) {
        if let Some(supervisor) = self.supervisor {
            supervisor.abort();
            let _ = supervisor.await;
        }
        let Some(managed) = self
            .managed
            .and_then(|m| m.lock().unwrap_or_else(|e| e.into_inner()).take())
        else {
            return;
        };
        if let Err(e) = managed.stop().await {
            tracing::error!(error = %e, "stopping the managed PostgreSQL failed");
        }
    }
}

/// Starts the managed server again whenever it has gone, until aborted.
async fn supervise(managed: Arc<Mutex<Option<ManagedPostgres>>>) {
    let mut tick = tokio::time::interval(SUPERVISE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let managed = managed.clone();
        let revived = tokio::task::spawn_blocking(move || {
            let mut held = managed.lock().unwrap_or_else(|e| e.into_inner());
            held.as_mut().map(ManagedPostgres::revive_blocking)
        })
        .await;
        match revived {
            Ok(Some(Err(e))) => {
                tracing::error!(error = %e, "the managed PostgreSQL is gone and does not start again; retrying")
            }
            Ok(None) => return,
            _ => {}
        }
    }
}
