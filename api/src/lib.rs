//! The HTTP surface and the `bosun` binary.
//!
//! Owns: configuration, telemetry, the axum application (`/v1` routes, health, metrics; later
//! compat surfaces, WebSocket, OpenAPI and web UI), and the command line: `serve`, `replay`,
//! `bench`.
//!
//! Does not own: rules (`domain`), command handling (`commands`), read models (`projections`),
//! the log (`eventstore`) or running jobs (`runner`).

pub mod cli;
pub mod config;
pub mod database;
pub mod freshness;
pub mod metrics;
pub mod problem;
pub mod routes;
pub mod startup;
pub mod telemetry;
