//! The runnables' reaper: one active instance across all nodes (the `runnable reaper` advisory
//! lock). Every `reap_interval` it reads the runnables without an image whose last access is
//! older than `reap_after` (the read model), and reaps each through `Commands::reap_runnable`,
//! which checks the runnable's own stream again (the read model may lag behind it, and an
//! access or a save may have come meanwhile): one not due any more is left alone.
//!
//! Does not own: the rule (`domain`), the read model (`projections`).

use super::RunnableSettings;
use crate::leader::Leader;
use bosun_commands::Commands;
use chrono::Utc;

/// The reaper's advisory lock ("bosun_ru"; the service calls reactor's is "bosun_sv").
pub const LOCK_KEY: i64 = 0x626f_7375_6e5f_7275;
/// Runnables read per look (the next look takes the rest).
const PAGE: i64 = 500;

pub(crate) async fn run(
    commands: Commands,
    settings: RunnableSettings,
    config: tokio_postgres::Config,
) {
    loop {
        let leader = Leader::acquire(&config, LOCK_KEY, "runnable reaper").await;
        lead(&commands, &settings, &leader).await;
        tracing::warn!("lost the runnable reaper lock; trying to take it again");
    }
}

/// Reaps while `leader` holds the lock.
async fn lead(commands: &Commands, settings: &RunnableSettings, leader: &Leader) {
    let queries = bosun_commands::Queries::new(commands.store.clone());
    loop {
        if !leader.holds().await {
            return;
        }
        match queries.reapable_runnables(settings.reap_after, PAGE).await {
            Ok(ids) => {
                for id in ids {
                    match commands
                        .reap_runnable(id, settings.reap_after, Utc::now())
                        .await
                    {
                        Ok(Some(_)) => tracing::info!(%id, "reaped an idle runnable"),
                        // Accessed, saved or removed since the read model said otherwise.
                        Ok(None) => {}
                        Err(e) => tracing::warn!(%id, error = %e, "reaping a runnable failed"),
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading the reapable runnables failed"),
        }
        tokio::time::sleep(settings.reap_interval).await;
    }
}
