//! `/v1/teams`.

use crate::auth::{Caller, RequestOrigin};
use crate::extract::{Json, Query};
use crate::problem::{Problem, Refusals};
use crate::routes::v1::users::user_path;
use crate::routes::PageQuery;
use crate::routes::{listed, written};
use crate::startup::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use bosun_domain::identity::TeamName;
use bosun_projections::read_models::identity as model;
use model::TeamView;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTeam {
    #[schema(pattern = "^[_A-Za-z0-9]{1,64}$")]
    name: String,
}

fn team_path(name: &str) -> Result<TeamName, Problem> {
    TeamName::parse(name).map_err(|_| Problem::not_found(format!("no team {name}")))
}

/// `POST /v1/teams`: the creator is a member.
#[utoipa::path(post, path = "/v1/teams", tag = "teams", request_body = CreateTeam, responses((status = 201, description = "created", body = TeamView), Refusals), security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Json(body): Json<CreateTeam>,
) -> Result<Response, Problem> {
    let name = TeamName::parse(&body.name)?;
    let (team, w) = state
        .commands
        .create_team(&caller.actor, &origin, name)
        .await?;
    Ok(written(&state, StatusCode::CREATED, Some(&team), w))
}

/// `GET /v1/teams?limit=&offset=`: by name, with `X-Total-Count`.
#[utoipa::path(get, path = "/v1/teams", tag = "teams", params(PageQuery), responses((status = 200, description = "by name, with `X-Total-Count`", body = Vec<TeamView>), Refusals), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<PageQuery>,
) -> Result<Response, Problem> {
    let (teams, total) = state.queries.teams(&caller.actor, query.page()?).await?;
    Ok(listed(&teams, total))
}

/// `GET /v1/teams/{team}`.
#[utoipa::path(get, path = "/v1/teams/{team}", tag = "teams", params(("team" = String, Path, description = "the team's name")), responses((status = 200, description = "OK", body = TeamView), Refusals), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(team): Path<String>,
) -> Result<axum::Json<model::TeamView>, Problem> {
    // A name that cannot exist is not looked up at all.
    team_path(&team)?;
    Ok(axum::Json(state.queries.team(&caller.actor, &team).await?))
}

/// `PUT /v1/teams/{team}/members/{username}` (member or admin).
#[utoipa::path(put, path = "/v1/teams/{team}/members/{username}", tag = "teams", params(("team" = String, Path, description = "the team's name"), ("username" = String, Path, description = "the member")), responses((status = 204, description = "done"), Refusals), security(("bearer" = [])))]
pub async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path((team, username)): Path<(String, String)>,
) -> Result<Response, Problem> {
    team_path(&team)?;
    let username = user_path(&username)?;
    let w = state
        .commands
        .add_team_member(&caller.actor, &origin, &team, username)
        .await?;
    Ok(written::<()>(&state, StatusCode::NO_CONTENT, None, w))
}

/// `DELETE /v1/teams/{team}/members/{username}` (member or admin).
#[utoipa::path(delete, path = "/v1/teams/{team}/members/{username}", tag = "teams", params(("team" = String, Path, description = "the team's name"), ("username" = String, Path, description = "the member")), responses((status = 204, description = "done"), Refusals), security(("bearer" = [])))]
pub async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path((team, username)): Path<(String, String)>,
) -> Result<Response, Problem> {
    team_path(&team)?;
    let username = user_path(&username)?;
    let w = state
        .commands
        .remove_team_member(&caller.actor, &origin, &team, username)
        .await?;
    Ok(written::<()>(&state, StatusCode::NO_CONTENT, None, w))
}

/// `DELETE /v1/teams/{team}` (member or admin).
#[utoipa::path(delete, path = "/v1/teams/{team}", tag = "teams", params(("team" = String, Path, description = "the team's name")), responses((status = 204, description = "removed"), Refusals), security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(team): Path<String>,
) -> Result<Response, Problem> {
    team_path(&team)?;
    let w = state
        .commands
        .remove_team(&caller.actor, &origin, &team)
        .await?;
    Ok(written::<()>(&state, StatusCode::NO_CONTENT, None, w))
}

/// The routes of this resource, with their OpenAPI paths.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, remove))
        .routes(routes!(add_member, remove_member))
}
