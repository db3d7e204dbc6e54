//! `/v1/apps`: apps (tsuru's), their teams, cnames, environment and restarts. Who may do what,
//! and every other rule, is the commands' and queries' (`bosun_commands::apps`): these handlers
//! only map HTTP onto them.

use crate::auth::{Caller, RequestOrigin};
use crate::extract::{Json, OptionalJson, Query};
use crate::problem::{Problem, Refusals};
use crate::routes::{limit, listed, offset, written};
use crate::startup::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use bosun_commands::apps::{AppView, CreateApp, EnvInput, EnvView, UpdateApp};
use bosun_commands::queries::{AppFilter, Page, UnitView};
use bosun_runner::AppRemoval;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApp {
    /// `^[a-z][a-z0-9-]{0,39}$`, unique among apps.
    #[schema(pattern = "^[a-z][a-z0-9-]{0,39}$")]
    name: String,
    /// An enabled platform.
    #[schema(pattern = "^[a-z][a-z0-9-]{0,39}$")]
    platform: String,
    /// A team of the caller's; default: the caller's only team.
    team_owner: Option<String>,
    description: Option<String>,
}

/// `POST /v1/apps`: 201 with the app; 400 for an unknown or disabled platform or no default
/// team owner, 403 not a member of `team_owner` or `quota_exceeded`, 409 `app_exists`.
#[utoipa::path(post, path = "/v1/apps", tag = "apps", request_body = NewApp,
    responses((status = 201, description = "created", body = AppView), Refusals),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Json(body): Json<NewApp>,
) -> Result<Response, Problem> {
    let (view, w) = state
        .commands
        .create_app(
            &caller.actor,
            &origin,
            &state.app_rules,
            CreateApp {
                name: body.name,
                platform: body.platform,
                team_owner: body.team_owner,
                description: body.description,
            },
        )
        .await?;
    Ok(written(&state, StatusCode::CREATED, Some(&view), w))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Apps this team has access to.
    team: Option<String>,
    /// Apps on this platform.
    platform: Option<String>,
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    #[param(minimum = 0)]
    offset: Option<i64>,
}

/// `GET /v1/apps?team=&platform=&limit=&offset=`: the apps the caller may see, by name, with
/// `X-Total-Count`.
#[utoipa::path(get, path = "/v1/apps", tag = "apps", params(ListQuery),
    responses((status = 200, description = "the apps the caller may see, by name, with `X-Total-Count`", body = Vec<AppView>), Refusals),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Response, Problem> {
    let page = Page {
        limit: limit(query.limit)?,
        offset: offset(query.offset)?,
    };
    let filter = AppFilter {
        team: query.team,
        platform: query.platform,
        ..AppFilter::default()
    };
    let (apps, total) = state.queries.apps(&caller.actor, filter, page).await?;
    Ok(listed(&apps, total))
}

/// `GET /v1/apps/{app}`: the app with its units.
#[utoipa::path(get, path = "/v1/apps/{app}", tag = "apps",
    params(("app" = String, Path, description = "the app's name")),
    responses((status = 200, description = "OK", body = AppView), Refusals),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(app): Path<String>,
) -> Result<axum::Json<AppView>, Problem> {
    Ok(axum::Json(state.queries.app(&caller.actor, &app).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppChanges {
    description: Option<String>,
    /// An enabled platform.
    #[schema(pattern = "^[a-z][a-z0-9-]{0,39}$")]
    platform: Option<String>,
    /// A team the caller is a member of (an admin: any team); granted to the app if it was not.
    team_owner: Option<String>,
}

/// `PATCH /v1/apps/{app}`: any of description, platform, team owner; 200 with the app.
#[utoipa::path(patch, path = "/v1/apps/{app}", tag = "apps",
    params(("app" = String, Path, description = "the app's name")),
    request_body = AppChanges,
    responses((status = 200, description = "OK", body = AppView), Refusals),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(app): Path<String>,
    Json(body): Json<AppChanges>,
) -> Result<Response, Problem> {
    let (view, w) = state
        .commands
        .update_app(
            &caller.actor,
            &origin,
            &app,
            UpdateApp {
                description: body.description,
                platform: body.platform,
                team_owner: body.team_owner,
            },
        )
        .await?;
    Ok(written(&state, StatusCode::OK, Some(&view), w))
}

/// `DELETE /v1/apps/{app}`: unbinds its service instances first (each unbind as
/// `DELETE …/instances/{instance}/apps/{app}?restart=false` makes it), then removes it: 204; its
/// name, cnames and quota place are free again. 502 `service_unavailable` naming the instance
/// if a service refused the unbind (the app stays, with what was unbound so far gone from it);
/// 409 `app_has_bindings` while an unbind (or a bind) has no outcome yet (try again later).
#[utoipa::path(delete, path = "/v1/apps/{app}", tag = "apps",
    params(("app" = String, Path, description = "the app's name")),
    responses(
        (status = 204, description = "removed"),
        (status = 502, description = "`service_unavailable`: a service refused to unbind one of its instances, with its message", body = Problem, content_type = "application/problem+json"),
        Refusals),
    security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(app): Path<String>,
) -> Result<Response, Problem> {
    match state
        .service_calls
        .remove_app(&caller.actor, &origin, &app)
        .await?
    {
        AppRemoval::Removed(w) => Ok(written::<()>(&state, StatusCode::NO_CONTENT, None, w)),
        AppRemoval::Refused {
            instance,
            status,
            message,
        } => Err(unbind_refused(&instance, status, &message)),
        AppRemoval::Pending { instance } => Err(still_unbinding(&instance)),
    }
}

/// 502 `service_unavailable`: the service of `instance` (`service/instance`) refused to unbind
/// it from the app being removed, with what it said.
pub(crate) fn unbind_refused(instance: &str, status: Option<u16>, message: &str) -> Problem {
    let said = match status {
        Some(status) => format!("its service answered {status}: {message}"),
        None => format!("its service: {message}"),
    };
    Problem::new(
        StatusCode::BAD_GATEWAY,
        "service_unavailable",
        format!("the app is not removed: unbinding instance {instance} failed, {said}"),
    )
}

/// 409 `app_has_bindings`: the unbind of `instance` (`service/instance`) has no outcome yet.
pub(crate) fn still_unbinding(instance: &str) -> Problem {
    Problem::new(
        StatusCode::CONFLICT,
        "app_has_bindings",
        format!("the app is still being unbound from instance {instance}; try again"),
    )
}

/// `PUT /v1/apps/{app}/teams/{team}`: 204; the team's members act on the app.
#[utoipa::path(put, path = "/v1/apps/{app}/teams/{team}", tag = "apps",
    params(("app" = String, Path, description = "the app's name"), ("team" = String, Path, description = "the team's name")),
    responses((status = 204, description = "granted"), Refusals),
    security(("bearer" = [])))]
pub async fn grant_team(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path((app, team)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let w = state
        .commands
        .grant_app_team(&caller.actor, &origin, &app, &team)
        .await?;
    Ok(written::<()>(&state, StatusCode::NO_CONTENT, None, w))
}

/// `DELETE /v1/apps/{app}/teams/{team}`: 204; 409 `last_team` for its last team, 409
/// `team_owner` for its owner (set another `team_owner` first).
#[utoipa::path(delete, path = "/v1/apps/{app}/teams/{team}", tag = "apps",
    params(("app" = String, Path, description = "the app's name"), ("team" = String, Path, description = "the team's name")),
    responses((status = 204, description = "revoked"), Refusals),
    security(("bearer" = [])))]
pub async fn revoke_team(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path((app, team)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let w = state
        .commands
        .revoke_app_team(&caller.actor, &origin, &app, &team)
        .await?;
    Ok(written::<()>(&state, StatusCode::NO_CONTENT, None, w))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CnameBody {
    /// A host name (lowercase labels of letters, digits and dashes joined by dots; upper case
    /// is folded), one app's at a time.
    cname: String,
}

/// `POST /v1/apps/{app}/cnames`: 200 with the app; 409 `cname_taken` for another app's.
#[utoipa::path(post, path = "/v1/apps/{app}/cnames", tag = "apps",
    params(("app" = String, Path, description = "the app's name")),
    request_body = CnameBody,
    responses((status = 200, description = "the app, with the cname", body = AppView), Refusals),
    security(("bearer" = [])))]
pub async fn add_cname(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(app): Path<String>,
    Json(body): Json<CnameBody>,
) -> Result<Response, Problem> {
    let (view, w) = state
        .commands
        .add_app_cname(&caller.actor, &origin, &app, &body.cname)
        .await?;
    Ok(written(&state, StatusCode::OK, Some(&view), w))
}

/// `DELETE /v1/apps/{app}/cnames` with `{cname}`: 200 with the app; the cname is free again.
#[utoipa::path(delete, path = "/v1/apps/{app}/cnames", tag = "apps",
    params(("app" = String, Path, description = "the app's name")),
    request_body = CnameBody,
    responses((status = 200, description = "the app, without the cname", body = AppView), Refusals),
    security(("bearer" = [])))]
pub async fn remove_cname(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(app): Path<String>,
    Json(body): Json<CnameBody>,
) -> Result<Response, Problem> {
    let (view, w) = state
        .commands
        .remove_app_cname(&caller.actor, &origin, &app, &body.cname)
        .await?;
    Ok(written(&state, StatusCode::OK, Some(&view), w))
}

/// `GET /v1/apps/{app}/env`: its variables by name; a private one's value is `null`.
#[utoipa::path(get, path = "/v1/apps/{app}/env", tag = "apps",
    params(("app" = String, Path, description = "the app's name")),
    responses((status = 200, description = "its variables by name; a private value is `null`", body = Vec<EnvView>), Refusals),
    security(("bearer" = [])))]
pub async fn env(
    State(state): State<AppState>,
    caller: Caller,
    Path(app): Path<String>,
) -> Result<axum::Json<Vec<EnvView>>, Problem> {
    Ok(axum::Json(
        state.queries.app_env(&caller.actor, &app).await?,
    ))
}

fn yes() -> bool {
    true
}

/// One variable to set.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvVar {
    /// As a job variable's: `[A-Za-z_][A-Za-z0-9_]*`.
    name: String,
    value: String,
    /// `false`: a private variable, sealed before it is stored and never shown again.
    #[serde(default = "yes")]
    public: bool,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetEnv {
    envs: Vec<EnvVar>,
    /// Restart the app's units with the new environment (default `true`).
    #[serde(default = "yes")]
    restart: bool,
}

/// `PUT /v1/apps/{app}/env`: sets (or replaces) these variables; 200 with all its variables.
#[utoipa::path(put, path = "/v1/apps/{app}/env", tag = "apps",
    params(("app" = String, Path, description = "the app's name")),
    request_body = SetEnv,
    responses((status = 200, description = "all its variables by name; a private value is `null`", body = Vec<EnvView>), Refusals),
    security(("bearer" = [])))]
pub async fn set_env(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(app): Path<String>,
    Json(body): Json<SetEnv>,
) -> Result<Response, Problem> {
    let envs = body
        .envs
        .into_iter()
        .map(|var| EnvInput {
            name: var.name,
            value: var.value,
            public: var.public,
        })
        .collect();
    let (view, w) = state
        .commands
        .set_app_env(&caller.actor, &origin, &app, envs, body.restart)
        .await?;
    Ok(written(&state, StatusCode::OK, Some(&view), w))
}

/// `?name=A&name=B&restart=`: the names, repeated, and whether to restart.
struct UnsetQuery {
    names: Vec<String>,
    restart: bool,
}

impl UnsetQuery {
    /// From the query's pairs in order; any key but `name` and `restart` is a 400 naming it.
    fn parse(pairs: Vec<(String, String)>) -> Result<UnsetQuery, Problem> {
        let mut query = UnsetQuery {
            names: Vec::new(),
            restart: true,
        };
        for (key, value) in pairs {
            match key.as_str() {
                "name" => query.names.push(value),
                "restart" => {
                    query.restart = value
                        .parse()
                        .map_err(|_| Problem::invalid_field("restart", "must be true or false"))?
                }
                _ => {
                    return Err(Problem::invalid_field(
                        key,
                        "unknown parameter: give the variables as name=A&name=B",
                    ))
                }
            }
        }
        Ok(query)
    }
}

/// `DELETE /v1/apps/{app}/env?name=A&name=B`: unsets these variables; 200 with those left.
#[utoipa::path(delete, path = "/v1/apps/{app}/env", tag = "apps",
    params(
        ("app" = String, Path, description = "the app's name"),
        ("name" = Vec<String>, Query, description = "a variable to unset; repeat the key for each (`name=A&name=B`)"),
        ("restart" = Option<bool>, Query, description = "restart the app's units without them (default `true`)")),
    responses((status = 200, description = "the variables left, by name; a private value is `null`", body = Vec<EnvView>), Refusals),
    security(("bearer" = [])))]
pub async fn unset_env(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(app): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, Problem> {
    let query = UnsetQuery::parse(pairs)?;
    let (view, w) = state
        .commands
        .unset_app_env(&caller.actor, &origin, &app, query.names, query.restart)
        .await?;
    Ok(written(&state, StatusCode::OK, Some(&view), w))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Restart {
    /// One of the app's catalog processes (400 `process` for another name). For now every
    /// process of the app restarts all the same: an app has one restart generation.
    process: Option<String>,
}

/// The answer to a restart.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Restarting {
    /// The units that restart, one at a time: every unit of the app.
    units: Vec<UnitView>,
}

/// `POST /v1/apps/{app}/restart`: 202 with the units that restart, one at a time, with the
/// current environment. The body is optional. A restart restarts every process of the app, for
/// now, also when it names one (`process`, which must be one of its processes in the catalog:
/// 400 `process` otherwise); the answer lists every unit of the app.
#[utoipa::path(post, path = "/v1/apps/{app}/restart", tag = "apps",
    params(("app" = String, Path, description = "the app's name")),
    request_body(content = Option<Restart>, description = "optional"),
    responses((status = 202, description = "the units that restart", body = Restarting), Refusals),
    security(("bearer" = [])))]
pub async fn restart(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(app): Path<String>,
    OptionalJson(body): OptionalJson<Restart>,
) -> Result<Response, Problem> {
    let (units, w) = state
        .commands
        .restart_app(&caller.actor, &origin, &state.catalog, &app, body.process)
        .await?;
    Ok(written(
        &state,
        StatusCode::ACCEPTED,
        Some(&Restarting { units }),
        w,
    ))
}

/// The routes of this resource, with their OpenAPI paths.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, update, remove))
        .routes(routes!(grant_team, revoke_team))
        .routes(routes!(add_cname, remove_cname))
        .routes(routes!(env, set_env, unset_env))
        .routes(routes!(restart))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As axum's `Query` reads a query string into pairs.
    fn pairs(query: &str) -> Vec<(String, String)> {
        let uri: axum::http::Uri = format!("/x?{query}").parse().unwrap();
        axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri)
            .unwrap()
            .0
    }

    #[test]
    fn repeated_names_are_all_kept_in_order() {
        let query = UnsetQuery::parse(pairs("name=B&name=A&restart=false")).unwrap();
        assert_eq!(query.names, ["B", "A"]);
        assert!(!query.restart);
        let query = UnsetQuery::parse(pairs("name=A%20B")).unwrap();
        assert_eq!(query.names, ["A B"]);
        assert!(query.restart);
        assert!(UnsetQuery::parse(pairs("")).unwrap().names.is_empty());
    }

    #[test]
    fn a_refused_unbind_is_a_502_naming_the_instance_and_a_pending_one_a_409() {
        let problem = unbind_refused("mysql/shop-db", Some(500), "out of disk");
        assert_eq!((problem.status, problem.code), (502, "service_unavailable"));
        let detail = problem.detail.unwrap_or_default();
        assert!(
            detail.contains("mysql/shop-db")
                && detail.contains("500")
                && detail.contains("out of disk"),
            "{detail}"
        );
        let detail = unbind_refused("mysql/shop-db", None, "did not answer")
            .detail
            .unwrap_or_default();
        assert!(detail.contains("did not answer"), "{detail}");
        let problem = still_unbinding("mysql/shop-db");
        assert_eq!((problem.status, problem.code), (409, "app_has_bindings"));
        assert!(problem.detail.unwrap_or_default().contains("mysql/shop-db"));
    }

    #[test]
    fn an_unknown_key_or_a_bad_restart_is_named() {
        let problem = UnsetQuery::parse(pairs("names=A")).err().unwrap();
        assert_eq!(problem.errors[0].field, "names");
        let problem = UnsetQuery::parse(pairs("name=A&restart=maybe"))
            .err()
            .unwrap();
        assert_eq!(problem.errors[0].field, "restart");
    }
}
