//! Rebuilding a read model from position 0 while the live one keeps serving.
//!
//! 1. Create the projection's tables under rebuild names (dropping any a crashed rebuild left).
//! 2. Replay the log into them, a page per transaction, until caught up; then build their
//!    secondary indexes in one pass.
//! 3. In one transaction: lock the live checkpoint (this waits for the live projector's current
//!    batch and holds off its next), apply what the live model got meanwhile, drop the live
//!    tables, rename the rebuilt ones into their place, and set the checkpoint. Readers wait for
//!    that moment only; the live projector sees the checkpoint it did not write and goes on from it.

use crate::checkpoint;
use crate::engine::{apply, page_end, EngineError, StatementCache, BATCH};
use crate::projection::{Projection, Tables};
use bosun_eventstore::{EventStore, PgEventStore};
use std::time::Instant;
use tokio_postgres::NoTls;

#[derive(Clone, Debug, PartialEq)]
pub struct RebuildReport {
    pub projection: String,
    /// Events read from the log (those the projection wanted and those it did not).
    pub events: u64,
    /// The checkpoint the rebuilt model was swapped in at.
    pub position: u64,
    pub seconds: f64,
}

/// Rebuilds `projection` and swaps it in. `progress(position, head)` is called after each page.
pub async fn rebuild(
    store: &PgEventStore,
    config: &tokio_postgres::Config,
    projection: &dyn Projection,
    mut progress: impl FnMut(u64, u64),
) -> Result<RebuildReport, EngineError> {
    let started = Instant::now();
    let name = projection.name();
    let (mut client, connection) = config.connect(NoTls).await?;
    let driver = tokio::spawn(connection);
    let mut statements = StatementCache::default();
    let filter = projection.filter();
    // Replay batches write only the rebuild's own tables, which a crashed rebuild drops and
    // starts again: no need to wait for each batch's fsync.
    client.batch_execute("SET synchronous_commit = off").await?;

    let tx = client.transaction().await?;
    for table in projection.tables() {
        tx.batch_execute(&format!(
            "DROP TABLE IF EXISTS {}",
            Tables::REBUILD.name(table)
        ))
        .await?;
    }
    tx.batch_execute(&projection.create(&Tables::REBUILD))
        .await?;
    tx.commit().await?;

    let mut position = 0;
    let mut events = 0u64;
    let mut next = store.read_page(position + 1, BATCH, &filter).await?;
    loop {
        let page = next;
        let target = page_end(position, &page.events, page.head);
        if target == position {
            break;
        }
        // Read the next page on the store's connection while this one is written on ours.
        let prefetch = store.read_page(target + 1, BATCH, &filter);
        let write = async {
            let tx = client.transaction().await?;
            apply(
                &tx,
                &mut statements,
                projection,
                &Tables::REBUILD,
                &page.events,
            )
            .await?;
            tx.commit().await
        };
        let (written, fetched) = futures::join!(write, prefetch);
        written?;
        next = fetched?;
        events += target - position;
        position = target;
        progress(position, page.head);
    }

    client
        .batch_execute(&projection.indexes(&Tables::REBUILD))
        .await?;

    let tx = client.transaction().await?;
    // The swap must be durable before anyone reads the new tables.
    tx.batch_execute("SET LOCAL synchronous_commit = on")
        .await?;
    let live = checkpoint::lock(&tx, name).await?.unwrap_or(0);
    while position < live {
        let mut page = store.read_page(position + 1, BATCH, &filter).await?;
        page.events.retain(|e| e.position <= live);
        let target = page_end(position, &page.events, page.head).min(live);
        apply(
            &tx,
            &mut statements,
            projection,
            &Tables::REBUILD,
            &page.events,
        )
        .await?;
        events += target - position;
        position = target;
    }
    for table in projection.tables() {
        tx.batch_execute(&format!(
            "DROP TABLE IF EXISTS {table}; ALTER TABLE {} RENAME TO {table}",
            Tables::REBUILD.name(table)
        ))
        .await?;
    }
    checkpoint::save(&tx, name, position, projection.version()).await?;
    tx.commit().await?;
    drop(client);
    let _ = driver.await;
    Ok(RebuildReport {
        projection: name.to_string(),
        events,
        position,
        seconds: started.elapsed().as_secs_f64(),
    })
}
