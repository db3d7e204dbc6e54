//! `/compat/<system>`: the old systems' wire formats, so their existing clients keep working.
//!
//! Each system is a folder here (`pulsar/`, `keboola/`, `openpai/`, `tsuru/`, `runnable/`) and one
//! line in [`router`]. A surface is a mapping only: it parses the old request, calls the same
//! command (`bosun_commands::Commands`) or query as `/v1` with the same actor, and renders the
//! old shape and error format. No rule, check or state lives here; an old field with no native
//! counterpart is derived from the native one. `../shared/COMPAT.md` lists what each system's
//! clients send and expect.

use crate::startup::AppState;
use axum::Router;

/// Every compat surface, mounted under `/compat/<system>`. None is built yet.
pub fn router() -> Router<AppState> {
    Router::new()
}
