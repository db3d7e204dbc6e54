//! Which PostgreSQL the process uses: `database.url` if set (nothing is launched), else the
//! managed one under the data directory.

use crate::config::Settings;
use bosun_eventstore::managed::{ManagedPostgres, Options};

pub struct Database {
    pub config: tokio_postgres::Config,
    /// Set when we use the managed server; stop it on the way out.
    pub managed: Option<ManagedPostgres>,
}

impl Database {
    pub async fn open(settings: &Settings) -> anyhow::Result<Self> {
        match &settings.database.url {
            Some(url) => Ok(Database {
                config: url.0.clone(),
                managed: None,
            }),
            None => {
                let managed =
                    ManagedPostgres::start(&settings.data_dir, Options::default()).await?;
                Ok(Database {
                    config: managed.config("bosun"),
                    managed: Some(managed),
                })
            }
        }
    }

    /// Stops the managed server if this was its last user.
    pub async fn close(self) {
        if let Some(managed) = self.managed {
            if let Err(e) = managed.stop().await {
                tracing::error!(error = %e, "stopping the managed PostgreSQL failed");
            }
        }
    }
}
