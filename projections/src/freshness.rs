//! Read-your-writes: a write answers once the projections have reached the position of its last
//! event, so a GET right after it sees it. Checkpoints come from this process's projectors at
//! once, and from other processes' through NOTIFY and a poll.

use crate::checkpoint::{checkpoints, CHANNEL};
use bosun_eventstore::postgres::listen;
use deadpool_postgres::Pool;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

const POLL: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub struct Freshness {
    positions: watch::Receiver<BTreeMap<String, u64>>,
    names: Arc<Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
#[error("read models reached position {reached} of {wanted} within {waited_ms} ms")]
pub struct NotFresh {
    pub wanted: u64,
    pub reached: u64,
    pub waited_ms: u64,
}

impl Freshness {
    pub(crate) fn new(
        positions: watch::Receiver<BTreeMap<String, u64>>,
        names: Vec<String>,
    ) -> Self {
        Freshness {
            positions,
            names: Arc::new(names),
        }
    }

    /// No read models to wait for: every wait ends at once. For a command handler over a log
    /// nothing projects, such as the in-memory store of unit tests.
    pub fn none() -> Self {
        Freshness::new(watch::channel(BTreeMap::new()).1, vec![])
    }

    /// The position every projection has reached.
    pub fn position(&self) -> u64 {
        lowest(&self.positions.borrow(), &self.names)
    }

    /// Each projection's checkpoint as last seen.
    pub fn checkpoints(&self) -> BTreeMap<String, u64> {
        self.positions.borrow().clone()
    }

    /// Waits until every projection has applied `position`, at most `timeout`.
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> Result<(), NotFresh> {
        let mut positions = self.positions.clone();
        let names = self.names.clone();
        let reached = tokio::time::timeout(
            timeout,
            positions.wait_for(|m| lowest(m, &names) >= position),
        )
        .await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            _ => Err(NotFresh {
                wanted: position,
                reached: self.position(),
                waited_ms: timeout.as_millis() as u64,
            }),
        }
    }
}

fn lowest(positions: &BTreeMap<String, u64>, names: &[String]) -> u64 {
    names
        .iter()
        .map(|n| positions.get(n).copied().unwrap_or(0))
        .min()
        .unwrap_or(u64::MAX)
}

/// Keeps `positions` up with checkpoints moved by any process.
pub(crate) async fn follow_checkpoints(
    pool: Pool,
    config: tokio_postgres::Config,
    positions: watch::Sender<BTreeMap<String, u64>>,
) {
    let advance = |name: &str, position: u64| {
        positions.send_if_modified(|m| {
            let p = m.entry(name.to_string()).or_default();
            let moved = position > *p;
            *p = (*p).max(position);
            moved
        });
    };
    let (notifications, listener) = listen(config, vec![CHANNEL.to_string()]);
    let _listener = scopeguard(listener);
    let mut received = notifications.subscribe();
    let mut poll = tokio::time::interval(POLL);
    loop {
        tokio::select! {
            n = received.recv() => match n {
                Ok(n) => if let Some((name, p)) = n.payload.rsplit_once(':') {
                    if let Ok(p) = p.parse() { advance(name, p) }
                },
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            _ = poll.tick() => match pool.get().await {
                Ok(client) => match checkpoints(&**client).await {
                    Ok(all) => all.into_iter().for_each(|c| advance(&c.name, c.position)),
                    Err(e) => tracing::warn!(error = %e, "reading checkpoints failed"),
                },
                Err(e) => tracing::warn!(error = %e, "reading checkpoints failed"),
            },
        }
    }
}

/// Aborts the task when dropped.
fn scopeguard(task: tokio::task::JoinHandle<()>) -> impl Drop {
    struct Guard(tokio::task::JoinHandle<()>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    Guard(task)
}
