//! Read models, and the engine that builds them from the event log.
//!
//! Owns: the [`Projection`] contract (a named, versioned set of tables and a pure function from
//! an event to the SQL writes it causes), the projector that applies events and moves its
//! checkpoint in the same transaction (each event takes effect exactly once, crash or not), the
//! rebuild that replays the log into fresh tables and swaps them in while the old ones keep
//! serving, the read-your-writes wait, the read models' query functions, and scratch copies of
//! them folded from a few events (time travel).
//!
//! Does not own: the log (`eventstore`), what events mean (`domain`), HTTP (`api`).

mod checkpoint;
mod engine;
mod freshness;
mod projection;
pub mod read_models;
mod rebuild;
pub mod scratch;

pub use checkpoint::{checkpoints, migrate, Checkpoint};
pub use engine::{Projections, Running};
pub use freshness::{Freshness, NotFresh};
pub use projection::{Projection, Tables, Writes};
pub use rebuild::{rebuild, RebuildReport};

use std::sync::Arc;

/// Every projection the server runs, in the order they are prepared.
pub fn all() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(read_models::streams::StreamIndex),
        Arc::new(read_models::identity::Identity),
        Arc::new(read_models::audit::Audit),
        Arc::new(read_models::jobs::Jobs),
        Arc::new(read_models::orchestrations::Orchestrations),
        Arc::new(read_models::units::Units),
        Arc::new(read_models::keys::Keys),
        Arc::new(read_models::apps::Apps),
        Arc::new(read_models::services::Services),
        Arc::new(read_models::runnables::Runnables),
    ]
}
