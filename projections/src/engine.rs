//! The projector: for each projection, one leader across all processes (a PostgreSQL advisory
//! lock held by its connection) applies pages of events and moves the checkpoint in the same
//! transaction. Other processes follow the checkpoints for read-your-writes.

use crate::checkpoint;
use crate::freshness::{follow_checkpoints, Freshness};
use crate::projection::{Projection, Tables, Writes};
use bosun_eventstore::postgres::session_config;
use bosun_eventstore::{EventStore, PgEventStore, RecordedEvent};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, NoTls, Statement};

/// Events applied per transaction.
pub(crate) const BATCH: usize = 1000;
const RETRY: Duration = Duration::from_secs(1);
/// Re-read the log at least this often, in case a wake-up was lost.
const POLL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("database error: {}", detail(.0))]
    Database(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Store(#[from] bosun_eventstore::StoreError),
    #[error(transparent)]
    Migration(#[from] bosun_eventstore::migrate::MigrationError),
    #[error("projection {0} has no checkpoint row; was it prepared?")]
    Unprepared(String),
}

/// The server's own message for a database error ("db error" alone says nothing).
fn detail(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

/// The set of projections a process serves.
#[derive(Clone)]
pub struct Projections {
    list: Vec<Arc<dyn Projection>>,
}

/// Projectors at work; dropping it stops them.
pub struct Running {
    freshness: Freshness,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Running {
    pub fn freshness(&self) -> Freshness {
        self.freshness.clone()
    }
}

impl Projections {
    pub fn new(list: Vec<Arc<dyn Projection>>) -> Self {
        Projections { list }
    }

    pub fn list(&self) -> &[Arc<dyn Projection>] {
        &self.list
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn Projection>> {
        self.list.iter().find(|p| p.name() == name).cloned()
    }

    /// Makes sure every projection's tables and checkpoint exist, so queries work before the
    /// projectors have run. A projection whose version changed is rebuilt from scratch here.
    pub async fn prepare(&self, config: &tokio_postgres::Config) -> Result<(), EngineError> {
        let (mut client, connection) = config.connect(NoTls).await?;
        let driver = tokio::spawn(connection);
        checkpoint::migrate(&mut client).await?;
        let tx = client.transaction().await?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('bosun.projections.prepare'))",
            &[],
        )
        .await?;
        let existing: HashMap<String, checkpoint::Checkpoint> = checkpoint::checkpoints(&tx)
            .await?
            .into_iter()
            .map(|c| (c.name.clone(), c))
            .collect();
        for p in &self.list {
            match existing.get(p.name()) {
                Some(c) if c.version == p.version() => continue,
                Some(c) => tracing::warn!(
                    projection = p.name(),
                    from = c.version,
                    to = p.version(),
                    "projection version changed; rebuilding it from the start of the log"
                ),
                None => tracing::info!(projection = p.name(), "creating read model"),
            }
            for table in p.tables() {
                tx.batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
                    .await?;
            }
            tx.batch_execute(&p.create(&Tables::LIVE)).await?;
            tx.batch_execute(&p.indexes(&Tables::LIVE)).await?;
            checkpoint::save(&tx, p.name(), 0, p.version()).await?;
        }
        tx.commit().await?;
        drop(client);
        let _ = driver.await;
        Ok(())
    }

    /// Starts a projector per projection and the checkpoint follower.
    pub async fn start(
        &self,
        store: PgEventStore,
        config: &tokio_postgres::Config,
    ) -> Result<Running, EngineError> {
        let client = store
            .pool()
            .get()
            .await
            .map_err(|e| bosun_eventstore::StoreError::Connection(e.to_string()))?;
        let initial: BTreeMap<String, u64> = checkpoint::checkpoints(&**client)
            .await?
            .into_iter()
            .map(|c| (c.name, c.position))
            .collect();
        drop(client);
        let positions = watch::Sender::new(initial);
        let names = self.list.iter().map(|p| p.name().to_string()).collect();
        let freshness = Freshness::new(positions.subscribe(), names);
        let mut tasks = vec![tokio::spawn(follow_checkpoints(
            store.pool().clone(),
            config.clone(),
            positions.clone(),
        ))];
        for p in &self.list {
            tasks.push(tokio::spawn(project(
                p.clone(),
                store.clone(),
                session_config(config),
                positions.clone(),
            )));
        }
        Ok(Running { freshness, tasks })
    }
}

async fn project(
    projection: Arc<dyn Projection>,
    store: PgEventStore,
    config: tokio_postgres::Config,
    positions: watch::Sender<BTreeMap<String, u64>>,
) {
    loop {
        if let Err(e) = lead_and_project(&*projection, &store, &config, &positions).await {
            tracing::warn!(projection = projection.name(), error = %e, "projector stopped; restarting");
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Becomes the projection's leader, then applies the log until an error. The advisory lock lives
/// as long as this connection, so a crashed leader's lock is freed with its connection.
async fn lead_and_project(
    projection: &dyn Projection,
    store: &PgEventStore,
    config: &tokio_postgres::Config,
    positions: &watch::Sender<BTreeMap<String, u64>>,
) -> Result<(), EngineError> {
    let name = projection.name();
    let (mut client, connection) = config.connect(NoTls).await?;
    let driver = tokio::spawn(connection);
    let _stop_driver = AbortOnDrop(driver);
    let lock_key = format!("bosun.projection.{name}");
    while !client
        .query_one("SELECT pg_try_advisory_lock(hashtext($1))", &[&lock_key])
        .await?
        .get::<_, bool>(0)
    {
        tokio::time::sleep(RETRY).await;
    }
    tracing::debug!(projection = name, "leading projection");
    let filter = projection.filter();
    let mut statements = StatementCache::default();
    let cycle = checkpoint::Prepared::on(&client).await?;
    let mut position = {
        let tx = client.transaction().await?;
        checkpoint::lock(&tx, name)
            .await?
            .ok_or_else(|| EngineError::Unprepared(name.to_string()))?
    };
    let mut head = store.head_changes();
    loop {
        head.borrow_and_update();
        let page = store.read_page(position + 1, BATCH, &filter).await?;
        let target = page_end(position, &page.events, page.head);
        if target == position {
            let _ = tokio::time::timeout(POLL, head.changed()).await;
            continue;
        }
        let tx = client.transaction().await?;
        // The checkpoint's lock, the page's writes and the checkpoint's move are sent without
        // waiting for each other's answers (the lock first, so it is taken before the writes
        // run); if a rebuild moved the checkpoint meanwhile, the transaction is rolled back,
        // writes and all.
        let pipelined = futures::try_join!(
            cycle.lock(&tx, name),
            apply(
                &tx,
                &mut statements,
                projection,
                &Tables::LIVE,
                &page.events
            ),
            cycle.save(&tx, name, target, projection.version()),
        );
        let current = match pipelined {
            Ok((current, (), ())) => current,
            Err(e) => {
                tx.rollback().await?;
                // Writes behind a rebuild's new tables clash with the events they hold already:
                // the checkpoint moved, and that is where to go on from, not an error.
                let moved = checkpoint::checkpoints(&client)
                    .await?
                    .into_iter()
                    .find(|c| c.name == name)
                    .map(|c| c.position)
                    .filter(|moved| *moved != position);
                match moved {
                    Some(moved) => {
                        tracing::info!(
                            projection = name,
                            from = moved,
                            "checkpoint moved by a rebuild"
                        );
                        position = moved;
                        continue;
                    }
                    None => return Err(e.into()),
                }
            }
        };
        let current = current.ok_or_else(|| EngineError::Unprepared(name.to_string()))?;
        if current != position {
            // A rebuild swapped in new tables at another position; continue from there.
            tracing::info!(
                projection = name,
                from = current,
                "checkpoint moved by a rebuild"
            );
            tx.rollback().await?;
            position = current;
            continue;
        }
        tx.commit().await?;
        position = target;
        positions.send_modify(|m| {
            let p = m.entry(name.to_string()).or_default();
            *p = (*p).max(target);
        });
    }
}

/// Where a page leaves a reader that was at `position`: after its last event, or, if the page
/// was not full, at the head its snapshot saw (nothing else matched up to there).
pub(crate) fn page_end(position: u64, events: &[RecordedEvent], head: u64) -> u64 {
    let last = events.last().map_or(position, |e| e.position);
    if events.len() == BATCH {
        last
    } else {
        last.max(head).max(position)
    }
}

struct AbortOnDrop(JoinHandle<Result<(), tokio_postgres::Error>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Prepared statements of one connection, by SQL text.
#[derive(Default)]
pub(crate) struct StatementCache {
    statements: HashMap<String, Statement>,
}

/// Runs `events` through `projection` into `tables`: the statements are prepared once, then sent
/// all at once (pipelined) in order, and PostgreSQL runs them in that order.
pub(crate) async fn apply(
    tx: &(impl GenericClient + Sync),
    cache: &mut StatementCache,
    projection: &dyn Projection,
    tables: &Tables,
    events: &[RecordedEvent],
) -> Result<(), tokio_postgres::Error> {
    let filter = projection.filter();
    let mut writes = Writes::default();
    for event in events.iter().filter(|e| filter.matches(e)) {
        projection.apply(event, tables, &mut writes);
    }
    for (sql, _) in &writes.statements {
        if !cache.statements.contains_key(sql) {
            let statement = tx.prepare(sql).await?;
            cache.statements.insert(sql.clone(), statement);
        }
    }
    let cache = &*cache;
    // Each execute sends its request when first polled, and try_join_all polls them first in
    // order, so the requests leave in order without waiting for each other's answers.
    let executes = writes.statements.iter().map(|(sql, params)| async move {
        let params: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
        tx.execute(&cache.statements[sql], &params).await
    });
    futures::future::try_join_all(executes).await?;
    Ok(())
}
