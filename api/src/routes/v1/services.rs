//! `/v1/services`: services (tsuru's service API) that Bosun calls to provision instances, their
//! documentation and the teams that may use them. Who may do what, and every other rule, is the
//! commands' and queries' (`bosun_commands::services`): these handlers only map HTTP onto them.
//! A service's password goes in here and never comes out. Instances are `instances.rs`'.

use crate::auth::{Caller, RequestOrigin};
use crate::extract::{Json, Text};
use crate::problem::{Problem, Refusals};
use crate::routes::{listed, written};
use crate::startup::AppState;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bosun_commands::services::{RegisterService, UpdateService};
use bosun_projections::read_models::services::ServiceView;
use secrecy::SecretString;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewService {
    /// `^[a-z][a-z0-9-]{0,39}$`, unique among services.
    #[schema(pattern = "^[a-z][a-z0-9-]{0,39}$")]
    name: String,
    /// The service's API: an absolute https URL (plain http only to a host in
    /// `http_tasks.allow_insecure_hosts`), without user info, query or fragment.
    endpoint: String,
    /// Sent to the service as the Basic auth password (the user is the service's name); sealed
    /// before it is stored and never shown again.
    password: String,
    /// The teams that own the service and may use it; each must exist, and the caller (unless an
    /// admin) must be a member of every one.
    #[schema(min_items = 1)]
    teams: Vec<String>,
    /// What users of the service should know (plain text, at most 64 KiB).
    doc: Option<String>,
}

/// `POST /v1/services` (an admin, or a member of every team named): 201 with the service,
/// without its password; 409 `service_exists`.
#[utoipa::path(post, path = "/v1/services", tag = "services", request_body = NewService,
    responses((status = 201, description = "registered", body = ServiceView), Refusals),
    security(("bearer" = [])))]
pub async fn register(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Json(body): Json<NewService>,
) -> Result<Response, Problem> {
    let (view, w) = state
        .commands
        .register_service(
            &caller.actor,
            &origin,
            RegisterService {
                name: body.name,
                endpoint: body.endpoint,
                password: SecretString::from(body.password),
                teams: body.teams,
                doc: body.doc,
            },
            &state.allow_insecure_hosts,
        )
        .await?;
    Ok(written(&state, StatusCode::CREATED, Some(&view), w))
}

/// `GET /v1/services`: the services the caller's teams may use (an admin: all), by name, each
/// with the instances the caller may see, with `X-Total-Count`.
#[utoipa::path(get, path = "/v1/services", tag = "services",
    responses((status = 200, description = "the services the caller may use, by name, with `X-Total-Count`", body = Vec<ServiceView>), Refusals),
    security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Response, Problem> {
    let services = state.queries.services(&caller.actor).await?;
    let total = i64::try_from(services.len()).unwrap_or(i64::MAX);
    Ok(listed(&services, total))
}

/// `GET /v1/services/{service}`: 404 for a service the caller's teams may not use.
#[utoipa::path(get, path = "/v1/services/{service}", tag = "services",
    params(("service" = String, Path, description = "the service's name")),
    responses((status = 200, description = "OK", body = ServiceView), Refusals),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(service): Path<String>,
) -> Result<axum::Json<ServiceView>, Problem> {
    Ok(axum::Json(
        state.queries.service(&caller.actor, &service).await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceChanges {
    /// As at registration; the same endpoint again is no change. A new endpoint needs
    /// `password` too (400 `password` without it), so that the stored password is never sent
    /// to a host it was not given for.
    endpoint: Option<String>,
    /// A new password, sealed as at registration.
    password: Option<String>,
}

/// `PATCH /v1/services/{service}` (an admin or a member of an owner team): any of endpoint and
/// password (a new endpoint with its password); 200 with the service.
#[utoipa::path(patch, path = "/v1/services/{service}", tag = "services",
    params(("service" = String, Path, description = "the service's name")),
    request_body = ServiceChanges,
    responses((status = 200, description = "OK", body = ServiceView), Refusals),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(service): Path<String>,
    Json(body): Json<ServiceChanges>,
) -> Result<Response, Problem> {
    let (view, w) = state
        .commands
        .update_service(
            &caller.actor,
            &origin,
            &service,
            UpdateService {
                endpoint: body.endpoint,
                password: body.password.map(SecretString::from),
            },
            &state.allow_insecure_hosts,
        )
        .await?;
    Ok(written(&state, StatusCode::OK, Some(&view), w))
}

/// `DELETE /v1/services/{service}` (an admin or a member of an owner team): 204; 409
/// `service_has_instances` while it has any.
#[utoipa::path(delete, path = "/v1/services/{service}", tag = "services",
    params(("service" = String, Path, description = "the service's name")),
    responses((status = 204, description = "removed"), Refusals),
    security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(service): Path<String>,
) -> Result<Response, Problem> {
    let w = state
        .commands
        .remove_service(&caller.actor, &origin, &service)
        .await?;
    Ok(written::<()>(&state, StatusCode::NO_CONTENT, None, w))
}

/// `GET /v1/services/{service}/doc`: its documentation, as `text/plain`.
#[utoipa::path(get, path = "/v1/services/{service}/doc", tag = "services",
    params(("service" = String, Path, description = "the service's name")),
    responses((status = 200, description = "its documentation", body = String, content_type = "text/plain"), Refusals),
    security(("bearer" = [])))]
pub async fn doc(
    State(state): State<AppState>,
    caller: Caller,
    Path(service): Path<String>,
) -> Result<Response, Problem> {
    let doc = state.queries.service_doc(&caller.actor, &service).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], doc).into_response())
}

/// `PUT /v1/services/{service}/doc` with a `text/plain` body (an admin or a member of an owner
/// team): 204; at most 64 KiB.
#[utoipa::path(put, path = "/v1/services/{service}/doc", tag = "services",
    params(("service" = String, Path, description = "the service's name")),
    request_body(content = String, content_type = "text/plain", description = "the documentation, UTF-8"),
    responses((status = 204, description = "set"), (status = 415, description = "not `text/plain`", body = Problem, content_type = "application/problem+json"), Refusals),
    security(("bearer" = [])))]
pub async fn set_doc(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(service): Path<String>,
    Text(doc): Text,
) -> Result<Response, Problem> {
    let w = state
        .commands
        .set_service_doc(&caller.actor, &origin, &service, doc)
        .await?;
    Ok(written::<()>(&state, StatusCode::NO_CONTENT, None, w))
}

/// `PUT /v1/services/{service}/teams/{team}` (an admin or a member of an owner team): 204; the
/// team's members may create instances of it.
#[utoipa::path(put, path = "/v1/services/{service}/teams/{team}", tag = "services",
    params(("service" = String, Path, description = "the service's name"), ("team" = String, Path, description = "the team's name")),
    responses((status = 204, description = "granted"), Refusals),
    security(("bearer" = [])))]
pub async fn grant_team(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path((service, team)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let w = state
        .commands
        .grant_service_team(&caller.actor, &origin, &service, &team)
        .await?;
    Ok(written::<()>(&state, StatusCode::NO_CONTENT, None, w))
}

/// `DELETE /v1/services/{service}/teams/{team}` (an admin or a member of an owner team): 204;
/// 409 `owner_team` for a team it was registered with.
#[utoipa::path(delete, path = "/v1/services/{service}/teams/{team}", tag = "services",
    params(("service" = String, Path, description = "the service's name"), ("team" = String, Path, description = "the team's name")),
    responses((status = 204, description = "revoked"), Refusals),
    security(("bearer" = [])))]
pub async fn revoke_team(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path((service, team)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let w = state
        .commands
        .revoke_service_team(&caller.actor, &origin, &service, &team)
        .await?;
    Ok(written::<()>(&state, StatusCode::NO_CONTENT, None, w))
}

/// The routes of this resource, with their OpenAPI paths.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, register))
        .routes(routes!(get, update, remove))
        .routes(routes!(doc, set_doc))
        .routes(routes!(grant_team, revoke_team))
}
