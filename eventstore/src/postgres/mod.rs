//! The PostgreSQL event store, the production implementation.
//!
//! Appends from every task of a process go through one group committer (see [`append`]), which
//! coalesces whatever is waiting into one batch, committed behind the `events_head` counter row
//! (two batches in flight at most): positions stay dense and commit in order, and a commit's
//! cost is shared by many appends.
//! Processes on other machines serialise on the same row, so the guarantee holds across them.

mod append;
mod listen;
mod read;
mod schema;

pub use listen::{listen, Notification};

use crate::error::{AppendError, StoreError};
use crate::event::{AppendResult, Filter, Page, RecordedEvent, StreamAppend};
use crate::migrate::{migrate, MigrationError};
use crate::store::{EventStore, Subscription};
use crate::stream_id::StreamId;
use crate::subscription::catch_up_then_live;
use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;

/// The channel a committed batch is announced on, with the new head as payload.
pub const EVENTS_CHANNEL: &str = "bosun_events";
/// How often the head is polled, whatever LISTEN says: the fallback for a lost notification.
const HEAD_POLL: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Migration(#[from] MigrationError),
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A pool of connections with Bosun's session settings.
///
/// `idle_in_transaction_session_timeout` keeps a stuck client from holding the counter row (or
/// any lock) forever.
pub fn connect_pool(config: &tokio_postgres::Config, max_size: usize) -> Pool {
    pool_of(session_config(config), max_size)
}

fn pool_of(config: tokio_postgres::Config, max_size: usize) -> Pool {
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    // build() only fails without a runtime, which a tokio program always has.
    // A caller waits at most this long for a connection, and gets an error rather than hanging.
    Pool::builder(manager)
        .max_size(max_size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(std::time::Duration::from_secs(10)))
        .build()
        .expect("a pool builder with a manager always builds")
}

/// `config` with Bosun's session settings, for connections made outside a pool.
pub fn session_config(config: &tokio_postgres::Config) -> tokio_postgres::Config {
    with_options(config, "")
}

fn with_options(config: &tokio_postgres::Config, extra: &str) -> tokio_postgres::Config {
    let mut config = config.clone();
    config.options(format!(
        "-c idle_in_transaction_session_timeout=60000 {extra}"
    ));
    if config.get_application_name().is_none() {
        config.application_name("bosun");
    }
    config
}

pub(crate) async fn client(pool: &Pool) -> Result<deadpool_postgres::Object, StoreError> {
    pool.get()
        .await
        .map_err(|e| StoreError::Connection(e.to_string()))
}

#[derive(Clone)]
pub struct PgEventStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    appends: mpsc::Sender<append::AppendRequest>,
    head: watch::Sender<u64>,
    appended: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl PgEventStore {
    /// Connects, brings the schema up to date (refusing a newer one), and starts the group
    /// committer and the head watcher.
    pub async fn open(config: &tokio_postgres::Config) -> Result<Self, OpenError> {
        let (mut client, connection) = config.connect(NoTls).await?;
        let driver = tokio::spawn(connection);
        migrate(&mut client, schema::COMPONENT, schema::MIGRATIONS).await?;
        migrate(
            &mut client,
            schema::BLOBS_COMPONENT,
            schema::BLOBS_MIGRATIONS,
        )
        .await?;
        drop(client);
        let _ = driver.await;

        let pool = connect_pool(config, 16);
        // The group committer's own connections. The exact path's lookups are planned at every
        // execution: a generic plan cached while `events` was nearly empty would stay a full scan
        // as the log grows (measured: 6 ms of a 7 ms batch at 20,000 events). The one statement's
        // plan does not depend on its values: its version lookup is a correlated subquery, an
        // index-only scan backward on (stream_id, version) even when planned on an empty table
        // (EXPLAIN, PostgreSQL 15).
        let exact_config = with_options(config, "-c plan_cache_mode=force_custom_plan");
        let one_statement_config = with_options(config, "-c plan_cache_mode=force_generic_plan");
        let head_now = read::head(&pool).await?;
        let head = watch::Sender::new(head_now);
        let (appends, requests) = mpsc::channel(4096);
        let (notifications, listener) = listen(config.clone(), vec![EVENTS_CHANNEL.to_string()]);
        let appended = Arc::new(AtomicU64::new(0));
        append::start_committer(
            [one_statement_config, exact_config],
            requests,
            head.clone(),
            appended.clone(),
        )
        .map_err(|e| StoreError::Connection(format!("cannot start the group committer: {e}")))?;
        let tasks = vec![
            listener,
            tokio::spawn(follow_head(
                pool.clone(),
                notifications.subscribe(),
                head.clone(),
            )),
        ];
        Ok(PgEventStore {
            inner: Arc::new(Inner {
                pool,
                appends,
                head,
                appended,
                tasks,
            }),
        })
    }

    /// The store's pool, for components that share its database (projections, queries).
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// The version of `stream`'s last event at or before log position `at_most` (its last of
    /// all for `None`), with that event's position; `None` when it had no events by then. A
    /// resource's `ETag`: for a write's answer, as of the write's last event, so a later write
    /// by someone else does not show through.
    pub async fn version_at(
        &self,
        stream: &StreamId,
        at_most: Option<u64>,
    ) -> Result<Option<(u64, u64)>, StoreError> {
        read::version_at(&self.inner.pool, stream, at_most).await
    }

    /// Events this process has appended since the store was opened (retries not counted).
    pub fn appended(&self) -> u64 {
        self.inner.appended.load(Ordering::Relaxed)
    }
}

/// Moves the head watch forward from notifications and from polling.
async fn follow_head(
    pool: Pool,
    mut notifications: tokio::sync::broadcast::Receiver<Notification>,
    head: watch::Sender<u64>,
) {
    let advance = |to: u64| {
        head.send_if_modified(|h| {
            let moved = to > *h;
            if moved {
                *h = to;
            }
            moved
        })
    };
    let mut poll = tokio::time::interval(HEAD_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            received = notifications.recv() => match received {
                Ok(n) => if let Ok(p) = n.payload.parse::<u64>() { advance(p); },
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            _ = poll.tick() => match read::head(&pool).await {
                Ok(p) => { advance(p); }
                Err(e) => tracing::warn!(error = %e, "polling the event log head failed"),
            },
        }
    }
}

#[async_trait]
impl EventStore for PgEventStore {
    async fn append_many(
        &self,
        appends: Vec<StreamAppend>,
    ) -> Result<Vec<AppendResult>, AppendError> {
        crate::storable::check_appends(&appends)?;
        let (reply, answer) = oneshot::channel();
        let request = append::AppendRequest {
            parts: appends,
            reply,
        };
        self.inner
            .appends
            .send(request)
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        read::stream(&self.inner.pool, stream, from_version, max).await
    }

    async fn read_page(
        &self,
        from_position: u64,
        max: usize,
        filter: &Filter,
    ) -> Result<Page, StoreError> {
        read::page(&self.inner.pool, from_position, max, filter).await
    }

    async fn head(&self) -> Result<u64, StoreError> {
        read::head(&self.inner.pool).await
    }

    fn head_changes(&self) -> watch::Receiver<u64> {
        self.inner.head.subscribe()
    }

    fn subscribe(&self, from_position: u64, filter: Filter) -> Subscription {
        catch_up_then_live(self.clone(), from_position, filter)
    }
}
