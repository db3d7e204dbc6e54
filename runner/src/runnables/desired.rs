//! Which runnables should run: those the `runnables` read model says are wanted, each with the
//! generation of the run wanted, under its lease key `runnable:<uuid>`. None while that table
//! (or its `wanted` column) does not exist, as on a database an older bosun made (looked for
//! until found, then not again unless the read fails for want of them). The read
//! model only ever *starts* a run: a run that it no longer shows wanted is stopped by its own
//! stream's word (`run`), never by a read model that lags or is being rebuilt.
//!
//! Does not own: who runs them (the units' leases, `supervisor`), a run (`run`).

use bosun_domain::runnables::RunnableId;
use deadpool_postgres::Pool;
use std::collections::BTreeMap;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use crate::lease::LeaseError;

/// The lease key of runnable `id`'s run, beside the units' in their lease table.
pub(crate) fn key(id: RunnableId) -> String {
    format!("{PREFIX}{id}")
}

/// What every runnable's lease key starts with (no unit id does: theirs have no `:`).
pub(crate) const PREFIX: &str = "runnable:";

/// The runnable whose lease key `key` is, if it is one's.
pub(crate) fn runnable_of(key: &str) -> Option<RunnableId> {
    let id = key.strip_prefix(PREFIX)?;
    Uuid::parse_str(id).ok().map(RunnableId::new)
}

/// A run the read model wants: of which runnable, and its generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WantedRun {
    pub id: RunnableId,
    pub generation: u64,
}

/// The runs wanted now, by lease key. `known`: whether the table and its `wanted` column were
/// found already (looked for until they are, not every tick after).
pub(crate) async fn wanted(
    pool: &Pool,
    known: &mut bool,
) -> Result<BTreeMap<String, WantedRun>, LeaseError> {
    let client = pool
        .get()
        .await
        .map_err(|e| LeaseError::Pool(e.to_string()))?;
    if !*known {
        let exists: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM information_schema.columns
                                WHERE table_name = 'runnables' AND column_name = 'wanted'
                                  AND table_schema = current_schema())",
                &[],
            )
            .await?
            .get(0);
        if !exists {
            return Ok(BTreeMap::new());
        }
        *known = true;
    }
    let rows = match client
        .query("SELECT id, run_generation FROM runnables WHERE wanted", &[])
        .await
    {
        Ok(rows) => rows,
        Err(e) => {
            // Gone meanwhile (a read model rebuilt): looked for again next time.
            if matches!(
                e.code(),
                Some(&SqlState::UNDEFINED_TABLE | &SqlState::UNDEFINED_COLUMN)
            ) {
                *known = false;
            }
            return Err(e.into());
        }
    };
    Ok(rows
        .iter()
        .map(|row| {
            let id = RunnableId::new(row.get::<_, Uuid>(0));
            let generation = row.get::<_, i64>(1).max(0) as u64;
            (key(id), WantedRun { id, generation })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runnables_key_names_it_and_no_unit_id_is_one() {
        let id = RunnableId::new(Uuid::new_v4());
        assert_eq!(runnable_of(&key(id)), Some(id));
        assert_eq!(runnable_of("web.prod.http.0"), None);
        assert_eq!(runnable_of("runnable:not-a-uuid"), None);
    }
}
