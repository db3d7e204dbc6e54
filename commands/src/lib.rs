//! Command handling: load a stream, decide with the domain, append with the exact expected
//! version, retry a bounded number of times on a version conflict; then wait until the read
//! models have applied the write, so the caller's next read sees it.
//!
//! Owns: authorization (decided from the [`Actor`]: user, teams, admin, token scopes, so every
//! surface enforces the same rules), the metadata every event carries (actor, request id, user
//! agent, source), the identity commands and their secrets (argon2 hashing, token generation),
//! and the set-wide checks (unique email, last admin) made under one cross-node lock.
//!
//! Does not own: the rules of a single aggregate (`domain`), the log (`eventstore`), the read
//! models it consults (`projections`), HTTP (`api`).

mod actor;
mod error;
mod execute;
pub mod identity;
pub mod jobs;
pub mod orchestrations;
pub mod reads;

pub use actor::{Actor, Origin};
pub use error::CommandError;
pub use execute::{Commands, Held, Written};
