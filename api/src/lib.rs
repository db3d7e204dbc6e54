//! The HTTP surface and the `bosun` binary.
//!
//! Owns: configuration, telemetry, the axum application (`/v1` routes, authentication of
//! requests, the live WebSocket feed, health, metrics; later compat surfaces, OpenAPI and web UI),
//! the first-start bootstrap of the admin's credentials on disk, and the command line: `serve`,
//! `replay`, `admin`, `bench`.
//!
//! Does not own: rules (`domain`), command handling (`commands`), read models (`projections`),
//! the log (`eventstore`) or running jobs (`runner`).

pub mod auth;
pub mod bootstrap;
pub mod cli;
pub mod config;
pub mod console;
pub mod core;
pub mod data_key;
pub mod database;
pub mod extract;
pub mod freshness;
pub mod github;
pub mod idempotency;
pub mod live;
pub mod mail;
pub mod metrics;
pub mod problem;
pub mod rate_limit;
pub mod routes;
pub mod serve;
pub mod sign_in;
pub mod sockjs;
pub mod startup;
pub mod telemetry;
pub mod tls;
pub mod versions;
