//! `bosun replay [--projection NAME]`: rebuild read models from position 0 into fresh tables and
//! swap them in, while a running server keeps serving the old ones.

use super::UsageError;
use crate::config::Settings;
use crate::database::Database;
use bosun_eventstore::PgEventStore;
use bosun_projections::{rebuild, Projections};
use std::time::{Duration, Instant};

pub async fn run(settings: Settings, only: Option<String>) -> anyhow::Result<()> {
    let projections = Projections::new(bosun_projections::all());
    let chosen = match &only {
        Some(name) => vec![projections.get(name).ok_or_else(|| {
            let known: Vec<&str> = projections.list().iter().map(|p| p.name()).collect();
            UsageError(format!(
                "unknown projection {name:?}; known: {}",
                known.join(", ")
            ))
        })?],
        None => projections.list().to_vec(),
    };
    let database = Database::open(&settings).await?;
    let result = async {
        let store = PgEventStore::open(&database.config).await?;
        projections.prepare(&database.config).await?;
        for projection in chosen {
            let name = projection.name();
            let mut last_report = Instant::now();
            let report = rebuild(&store, &database.config, &*projection, |position, head| {
                if last_report.elapsed() > Duration::from_secs(1) {
                    last_report = Instant::now();
                    let percent = (position * 100).checked_div(head).unwrap_or(100);
                    eprintln!("replay {name}: {position}/{head} events ({percent}%)");
                }
            })
            .await?;
            println!(
                "replay {name}: rebuilt from {} events in {:.2} s and swapped in at position {}",
                report.events, report.seconds, report.position
            );
        }
        anyhow::Ok(())
    }
    .await;
    database.close().await;
    result
}
