//! Bosun's domain: aggregates, their commands and events, and the invariants they enforce.
//!
//! Owns: the meaning of every event (`JobSubmitted`, `AppsSwapped`, `TokenIssued`…), each
//! aggregate's state, `handle(command) -> events` and `apply(event)`, the value types that parse
//! input at the edge (`Username::parse`, `Password::parse`…) so an invalid value cannot exist past
//! it, and the upcasters that let old event shapes load. Pure: no IO, no async, no SQL, no clock
//! or randomness it does not take as input.
//!
//! Does not own: storing events (`eventstore`), loading and retrying (`commands`), read models
//! (`projections`), hashing and token generation (`commands`, which needs the OS's randomness).

mod aggregate;
pub mod apps;
mod error;
pub mod identity;
mod insecure_hosts;
pub mod jobs;
pub mod notifications;
pub mod orchestrations;
pub mod runnables;
pub mod sealed;
pub mod services;
#[cfg(test)]
mod testing;
pub mod units;

pub use aggregate::{decode, encode, Aggregate, DomainEvent};
pub use error::DomainError;
