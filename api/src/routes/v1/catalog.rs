//! `GET /v1/catalog`: the tasks jobs may run, by app and environment, from the configuration.

use crate::auth::Caller;
use crate::problem::{Problem, Refusals};
use crate::startup::AppState;
use axum::extract::State;
use axum::Json;
use bosun_domain::jobs::CatalogEntry;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[utoipa::path(get, path = "/v1/catalog", tag = "catalog", responses((status = 200, description = "each app and environment with its tasks", body = Vec<Object>), Refusals), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<CatalogEntry>>, Problem> {
    Ok(Json(state.queries.catalog(&caller.actor, &state.catalog)?))
}

/// The routes of this resource, with their OpenAPI paths.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}
