//! `/v1/teams`.

use crate::auth::{Caller, RequestOrigin};
use crate::extract::{Json, Query};
use crate::problem::Problem;
use crate::routes::users::{user_path, PageQuery};
use crate::routes::{listed, written};
use crate::startup::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use bosun_domain::identity::{Scope, TeamName};
use bosun_projections::read_models::identity as model;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTeam {
    name: String,
}

fn team_path(name: &str) -> Result<TeamName, Problem> {
    TeamName::parse(name).map_err(|_| Problem::not_found(format!("no team {name}")))
}

/// `POST /v1/teams`: the creator is a member.
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
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<PageQuery>,
) -> Result<Response, Problem> {
    caller.actor.require(Scope::Read)?;
    let page = query.page()?;
    let client = state.store.pool().get().await?;
    let (teams, total) = model::teams(&**client, page).await?;
    Ok(listed(&teams, total))
}

/// `GET /v1/teams/{team}`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(team): Path<String>,
) -> Result<axum::Json<model::TeamView>, Problem> {
    caller.actor.require(Scope::Read)?;
    // A name that cannot exist is not looked up at all.
    team_path(&team)?;
    let client = state.store.pool().get().await?;
    model::team(&**client, &team)
        .await?
        .map(axum::Json)
        .ok_or_else(|| Problem::not_found(format!("no team {team}")))
}

/// `PUT /v1/teams/{team}/members/{username}` (member or admin).
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
