//! The append-only event log.
//!
//! Owns: the [`EventStore`] contract (append with an expected version, atomic appends to several
//! streams each with its own, idempotent re-append by event id, reads by stream and by global
//! position, catch-up-then-live subscriptions), its PostgreSQL implementation (the production
//! store) and an in-memory one (for unit tests), the versioned schema migrations, the managed
//! local PostgreSQL that Bosun runs when no `database.url` is configured, and the
//! content-addressed blobs events name by digest (PostgreSQL only, see [`blobs`]).
//!
//! Does not own: what events mean (that is `domain`), how they become read models (that is
//! `projections`), or who may append them (that is `commands`).
//!
//! The guarantee everything downstream relies on: once any reader has seen position N, no event
//! at a position ≤ N can appear later. Positions start at 1 and have no gaps.

pub mod blobs;
mod error;
mod event;
mod idempotency;
pub mod managed;
mod memory;
pub mod migrate;
pub mod postgres;
mod storable;
mod store;
mod stream_id;
mod subscription;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{AppendError, StoreError};
pub use event::{
    AppendResult, CurrentVersion, ExpectedVersion, Filter, NewEvent, Page, RecordedEvent,
    StreamAppend,
};
pub use memory::InMemoryEventStore;
pub use postgres::PgEventStore;
pub use storable::nul_at;
pub use store::{EventStore, Subscription};
pub use stream_id::{InvalidStreamId, StreamId};
