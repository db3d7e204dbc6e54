//! tsuru's teams: `GET /teams` (`[{name}]`, 204 for none), `POST /teams` (JSON or form
//! `{name}`), `GET /teams/{team}` (`{name, users}`), `DELETE /teams/{team}`, and
//! `PUT`/`DELETE /teams/{team}/{user}` (a member by email). Each is the `/v1/teams` command or
//! query with the same actor.
//!
//! Mapping decisions:
//! - `GET /teams` lists the caller's teams (an admin: every team), as tsuru's list is the teams
//!   its caller acts in; the native list, which any reader may read whole, filtered.
//! - A member is named by email (or a Bosun username: see [`super::users`]) and shown by email
//!   where the caller may read that user (themself; an admin: anyone), else by name (the native
//!   rule shows others' emails to admins only). A member added or removed by email is the
//!   native `Commands::add_team_member_by_email` (`remove_…`): the team's rule first (403 for
//!   a caller who is neither its member nor an admin, whatever the address), then 404 for an
//!   address no user holds.
//! - `POST /teams` answers 201 for a form (1.x), 200 for JSON (0.3.9), by the
//!   [surface's rule](super); the other writes 200.
//!   1.x's rename (`POST /teams/{team}`) is not served: Bosun renames no team.

use super::body::Fields;
use super::users::email_of;
use super::{every_page, json, written, Generation, TsuruCaller};
use crate::auth::RequestOrigin;
use crate::extract::Path;
use crate::problem::Problem;
use crate::startup::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Router;
use bosun_commands::{CommandError, Written};
use bosun_domain::identity::{TeamName, Username};
use bosun_domain::DomainError;
use serde::Serialize;

/// The teams routes, merged into the users routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/teams", get(list).post(create))
        .route("/teams/{team}", get(get_one).delete(remove))
        .route(
            "/teams/{team}/{user}",
            put(add_member).delete(remove_member),
        )
}

#[derive(Serialize)]
struct TeamEntry {
    name: String,
}

/// `GET /teams`: the caller's teams (an admin: all), or 204 for none.
async fn list(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
) -> Result<Response, Problem> {
    let teams = every_page(|page| state.queries.teams(&caller.actor, page)).await?;
    let shown: Vec<TeamEntry> = teams
        .into_iter()
        .filter(|t| caller.actor.is_admin() || caller.actor.is_member(&t.name))
        .map(|t| TeamEntry { name: t.name })
        .collect();
    if shown.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok(json(StatusCode::OK, &shown))
}

/// `POST /teams`: `{name}`; the caller is its member.
async fn create(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    generation: Generation,
    fields: Fields,
) -> Result<Response, Problem> {
    let generation = generation.answering(fields.sent);
    let name = TeamName::parse(&fields.required("name")?)?;
    let (_, w) = state
        .commands
        .create_team(&caller.actor, &origin, name)
        .await?;
    let status = if generation.is_1x() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(written(&state, status.into_response(), w))
}

/// A team as tsuru shows one.
#[derive(Serialize)]
struct TsuruTeam {
    name: String,
    users: Vec<String>,
}

/// `GET /teams/{team}`: `{name, users}`.
async fn get_one(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    Path(team): Path<String>,
) -> Result<Response, Problem> {
    if TeamName::parse(&team).is_err() {
        return Err(Problem::not_found(format!("no team {team}")));
    }
    let view = state.queries.team(&caller.actor, &team).await?;
    let mut users = Vec::with_capacity(view.members.len());
    for member in view.members {
        let readable = caller.actor.is_admin() || caller.actor.is(&member);
        let shown = if readable {
            match state.queries.user(&caller.actor, &member).await {
                Ok(user) => email_of(&user),
                // Removed since the team was read: shown by name.
                Err(CommandError::Domain(DomainError::NotFound(_))) => member,
                Err(e) => return Err(e.into()),
            }
        } else {
            member
        };
        users.push(shown);
    }
    Ok(json(
        StatusCode::OK,
        &TsuruTeam {
            name: view.name,
            users,
        },
    ))
}

/// `DELETE /teams/{team}`: 200; 409 while an app, a service or an instance has it.
async fn remove(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    Path(team): Path<String>,
) -> Result<Response, Problem> {
    if TeamName::parse(&team).is_err() {
        return Err(Problem::not_found(format!("no team {team}")));
    }
    let w = state
        .commands
        .remove_team(&caller.actor, &origin, &team)
        .await?;
    Ok(written(&state, StatusCode::OK.into_response(), w))
}

/// The member a path names: an address, or a Bosun username (404 for a name no user can
/// have).
enum Member {
    Email(String),
    Name(Username),
}

fn member(user: String) -> Result<Member, Problem> {
    if user.contains('@') {
        return Ok(Member::Email(user));
    }
    Username::parse(&user)
        .map(Member::Name)
        .map_err(|_| Problem::not_found(format!("no user {user}")))
}

/// `PUT /teams/{team}/{user}`: `user` joins the team; 200.
async fn add_member(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    Path((team, user)): Path<(String, String)>,
) -> Result<Response, Problem> {
    if TeamName::parse(&team).is_err() {
        return Err(Problem::not_found(format!("no team {team}")));
    }
    let commands = &state.commands;
    let w: Written = match member(user)? {
        Member::Email(email) => {
            commands
                .add_team_member_by_email(&caller.actor, &origin, &team, &email)
                .await?
        }
        Member::Name(username) => {
            commands
                .add_team_member(&caller.actor, &origin, &team, username)
                .await?
        }
    };
    Ok(written(&state, StatusCode::OK.into_response(), w))
}

/// `DELETE /teams/{team}/{user}`: `user` leaves the team; 200.
async fn remove_member(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    Path((team, user)): Path<(String, String)>,
) -> Result<Response, Problem> {
    if TeamName::parse(&team).is_err() {
        return Err(Problem::not_found(format!("no team {team}")));
    }
    let commands = &state.commands;
    let w: Written = match member(user)? {
        Member::Email(email) => {
            commands
                .remove_team_member_by_email(&caller.actor, &origin, &team, &email)
                .await?
        }
        Member::Name(username) => {
            commands
                .remove_team_member(&caller.actor, &origin, &team, username)
                .await?
        }
    };
    Ok(written(&state, StatusCode::OK.into_response(), w))
}
