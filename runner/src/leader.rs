//! Leadership across nodes: a PostgreSQL session advisory lock held on a connection of its own.
//! When the holder's process dies, PostgreSQL ends its session and frees the lock; another node
//! trying every second takes it over.

use std::time::Duration;
use tokio::task::JoinHandle;

const TRY_EVERY: Duration = Duration::from_secs(1);

/// Held leadership; dropping it closes the connection, which frees the lock.
pub struct Leader {
    client: tokio_postgres::Client,
    _driver: JoinHandle<()>,
}

impl Leader {
    /// Waits until this process holds lock `key`.
    pub async fn acquire(config: &tokio_postgres::Config, key: i64, role: &str) -> Leader {
        loop {
            match try_acquire(config, key, role).await {
                Ok(Some(leader)) => {
                    tracing::info!(role, "this node now holds the {role} lock");
                    return leader;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(role, error = %e, "trying for the {role} lock failed"),
            }
            tokio::time::sleep(TRY_EVERY).await;
        }
    }

    /// Whether the lock is still held: its connection still answers.
    pub async fn holds(&self) -> bool {
        !self.client.is_closed() && self.client.simple_query("SELECT 1").await.is_ok()
    }
}

async fn try_acquire(
    config: &tokio_postgres::Config,
    key: i64,
    role: &str,
) -> Result<Option<Leader>, tokio_postgres::Error> {
    let mut config = config.clone();
    // Says who holds the lock, in pg_stat_activity.
    config.application_name(format!("bosun {role} {}", std::process::id()));
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let held: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
        .await?
        .get(0);
    if held {
        Ok(Some(Leader {
            client,
            _driver: driver,
        }))
    } else {
        driver.abort();
        Ok(None)
    }
}
