//! Scratch read models: the tables as a few events alone make them, for time travel (a
//! resource as it was after version N of its stream, folded from the log).
//!
//! In the caller's open transaction, every projection that wants events of the stream's
//! category gets temporary copies of the tables such events write (`Projection::tables_of`;
//! even if it wants none of these events: its rows for the stream must then be none), empty
//! and named as the live ones, which the session then reads instead of them (PostgreSQL
//! searches a session's temporary schema first); the events then go through the projection's
//! own `apply`, so a fold follows the same rules as the read model. Every other table is read
//! live, and never written: the transaction turns read-only once the copies exist, so a write
//! the fold would make to a live table fails it rather than lands. The session must never be
//! reused: its copies shadow the live tables until it ends.

use crate::engine::{apply, StatementCache};
use bosun_eventstore::RecordedEvent;
use tokio_postgres::GenericClient;

/// Folds `events`, in order, all of one stream of `category`, into fresh scratch copies of the
/// tables such events write, of every projection that wants events of that category. `client` must be inside a
/// transaction it will not commit.
pub async fn fold(
    client: &(impl GenericClient + Sync),
    category: &str,
    events: &[RecordedEvent],
) -> Result<(), tokio_postgres::Error> {
    let mut statements = StatementCache::default();
    let mut wanting = Vec::new();
    for projection in crate::all() {
        let filter = projection.filter();
        if !(filter.categories.is_empty() || filter.categories.iter().any(|c| c == category)) {
            continue;
        }
        for table in projection.tables_of(category) {
            let name = crate::Tables::LIVE.name(table);
            // Until it exists, `{name}` in LIKE is the live table.
            client
                .batch_execute(&format!(
                    "CREATE TEMPORARY TABLE {name} (LIKE {name} INCLUDING ALL) ON COMMIT DROP"
                ))
                .await?;
        }
        wanting.push(projection);
    }
    // Read-only from here: writes reach the temporary copies only.
    client
        .batch_execute("SET LOCAL transaction_read_only = on")
        .await?;
    for projection in wanting {
        apply(
            client,
            &mut statements,
            &*projection,
            &crate::Tables::LIVE,
            events,
        )
        .await?;
    }
    Ok(())
}
