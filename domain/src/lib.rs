//! Bosun's domain: aggregates, their commands and events, and the invariants they enforce.
//!
//! Owns: the meaning of every event (`JobSubmitted`, `AppsSwapped`, `TokenIssued`…), each
//! aggregate's state, `handle(command) -> events` and `apply(event)`, and the upcasters that
//! let old event shapes load. Pure: no IO, no async, no SQL, no clock it does not take as input.
//!
//! Does not own: storing events (`eventstore`), loading and retrying (`commands`), read models
//! (`projections`).
