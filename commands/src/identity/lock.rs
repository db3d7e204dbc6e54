//! The identity lock: one cross-node critical section for commands that check the set of users.

use crate::error::CommandError;
use crate::execute::Commands;
use std::future::Future;

impl Commands {
    /// Runs `work` holding the identity lock (a transaction-scoped advisory lock on a connection
    /// of its own, freed with the transaction, or with the connection if this process dies).
    ///
    /// Callers in this process queue on a mutex first, so at most one pooled connection is held
    /// for the lock while `work` takes others: many waiters cannot drain the pool.
    pub(crate) async fn with_identity_lock<T>(
        &self,
        work: impl Future<Output = Result<T, CommandError>>,
    ) -> Result<T, CommandError> {
        let _queued = self.identity_lock.lock().await;
        let mut client = self.store.pool().get().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('bosun.identity'))",
            &[],
        )
        .await?;
        let result = work.await;
        // The transaction only held the lock: ending it cannot undo the work.
        if let Err(e) = tx.rollback().await {
            tracing::warn!(error = %e, "releasing the identity lock failed; closing its connection frees it");
        }
        result
    }
}
