//! Command handling: load a stream, decide with the domain, append with the exact expected
//! version, retry a bounded number of times on a version conflict; then wait until the read
//! models have applied the write, so the caller's next read sees it. Writers nobody reads after
//! (a worker appending a job's output, the scheduler) skip that wait, and a worker may hold an
//! aggregate's state between its appends instead of reloading the stream each time. Every other
//! load starts from the state kept at its last load and reads only the stream's tail (see
//! `kept_states`).
//!
//! Owns: authorization (decided from the [`Actor`]: user, teams, admin, token scopes, so every
//! surface enforces the same rules; who may change a job or an orchestration is decided on the
//! aggregate itself, which knows who created it) and the read rules (who may read a job), the
//! metadata every event carries (actor, request id, user agent, source), the identity, job and
//! orchestration commands, the identity secrets (argon2 hashing, token generation), and the
//! set-wide identity checks (an email or a name without regard to case belongs to one user, the
//! last admin stays), made in the log itself: reservation streams and the admin roster, each
//! appended with its exact version, so no lock and no read model is involved. Each command
//! handler runs in a `tracing` span that records ids and names only, never a password, token or
//! variable.
//!
//! Writes use the [`EventStore`](bosun_eventstore::EventStore) contract alone: [`Commands`] runs
//! over PostgreSQL in production and over the in-memory store in its unit tests. The one
//! exception is a runnable's file bytes: blobs are PostgreSQL's, so the runnable commands that
//! store or read them are on `Commands<PgEventStore>` (see [`runnables`]).
//!
//! Does not own: the rules of a single aggregate (`domain`), the log (`eventstore`), the read
//! models it consults (`projections`), HTTP (`api`).

mod actor;
pub mod apps;
mod batch;
mod error;
mod execute;
pub mod healers;
pub mod identity;
pub mod jobs;
mod kept_states;
pub mod named_jobs;
pub mod orchestrations;
pub mod queries;
pub mod runnables;
mod seal;
pub mod services;

pub use actor::{app_actor_name, Actor, AppAction, AppActor, IfMatch, Origin};
pub use batch::{Batch, BatchAppended, HeldSet};
pub use error::CommandError;
pub use execute::{Commands, Held, Written};
pub use named_jobs::{RoleCommands, RoleRequest, RoleSettings, RoleTarget, SubmitRoleJob};
pub use queries::Queries;
pub use seal::Sealer;

#[cfg(test)]
mod tests;
