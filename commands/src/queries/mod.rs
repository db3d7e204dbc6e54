//! The query side: every read goes through [`Queries`], which takes the caller and decides what
//! it may see, so `/v1`, each compat surface and the CLI read by the same rules. Writes are
//! [`Commands`](crate::Commands)'; these read the projections' read models and the log, and
//! change nothing.
//!
//! One file per resource; a rule for reading a resource sits with that resource's queries.

mod app_tokens;
mod apps;
mod catalog;
mod identity;
mod jobs;
mod keys;
mod log;
mod orchestrations;
mod runnables;
mod services;
mod time_travel;
mod units;

pub use apps::AppFilter;
pub use bosun_projections::read_models::identity::Page;
pub(crate) use jobs::readable_job;
pub use jobs::{job_readers, JobFilter, SubmissionMeta};
pub use log::{may_read_log, redacted};
pub use runnables::{RunnableFilter, RunnableLogs};
pub use units::UnitView;

use crate::error::CommandError;
use bosun_eventstore::PgEventStore;

/// Reads on behalf of an actor.
#[derive(Clone)]
pub struct Queries {
    store: PgEventStore,
    /// Time travels under way hold one each (see `time_travel`).
    folds: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Queries {
    pub fn new(store: PgEventStore) -> Self {
        Queries {
            store,
            folds: std::sync::Arc::new(tokio::sync::Semaphore::new(time_travel::AT_ONCE)),
        }
    }

    /// The connection a read reads the read models from: a pooled one, or, inside
    /// [`Queries::as_of`], the one holding the scratch copies.
    async fn client(&self) -> Result<time_travel::Reader, CommandError> {
        if let Some(scratch) = time_travel::scratch() {
            return Ok(scratch);
        }
        Ok(time_travel::Reader::Pooled(self.store.pool().get().await?))
    }
}
