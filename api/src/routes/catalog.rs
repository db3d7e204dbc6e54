//! `GET /v1/catalog`: the tasks jobs may run, by app and environment, from the configuration.

use crate::auth::Caller;
use crate::problem::Problem;
use crate::startup::AppState;
use axum::extract::State;
use axum::Json;
use bosun_domain::identity::Scope;
use bosun_domain::jobs::CatalogEntry;

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<CatalogEntry>>, Problem> {
    caller.actor.require(Scope::Read)?;
    Ok(Json(state.catalog.entries()))
}
