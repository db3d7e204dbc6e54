//! tsuru's apps: list, create, info, update, remove and restart (0.3.9's `GET …/restart` and
//! 1.x's `POST`), `GET /apps/{app}/quota`, and the app's teams (0.3.9's `PUT|DELETE
//! /apps/{app}/{team}`, 1.x's `…/teams/{team}`). Each is the `/v1/apps` command or query with
//! the same actor; an app is rendered in both tsuru versions' fields ([`render`]). Environment
//! variables are [`super::env`]'s, swaps [`super::swap`]'s.
//!
//! What has no counterpart in Bosun and how it shows:
//! - tsuru's plans, pools, routers and tags: none. An app shows them empty (`plan` with no
//!   name, `pool` `""`, `tags` `[]`); a create or update that asks for one (a non-empty `plan`,
//!   `pool`, `router`, `tag`, `routeropts`) is a 400 naming it, rather than an app made without it.
//! - A git repository: none (`repository`, `repository_url` are `""`), nor deploys (`deploys`
//!   0), nor locks (`lock` unlocked).
//! - `ip`: the address of the app's first unit with one (its host), else `""`.
//! - `ready` (0.3.9): no unit of the app is `starting` or in `error`.
//! - `owner`: the creator's Bosun username.
//! - `start`, `stop` and `sleep` (1.x's `POST /apps/{app}/start|stop|sleep`): Bosun has no such
//!   commands on an app (its units are supervised while it exists), so each is a 404 saying so,
//!   whatever the method (routes of their own: `PUT /apps/{app}/start` is not 0.3.9's grant of
//!   a team `start`; that team is granted at `/apps/{app}/teams/start`).
//! - `GET /apps/{app}/quota`: `{Limit: -1, InUse: <its units>}`; an app's units are its catalog
//!   processes', with no limit of their own to set (so no `PUT`).
//! - 1.x's list filters: `name` (a part of the name), `platform`, `teamOwner`, `owner`
//!   (username or email), the native list's filters; `locked=true` is none (no app is locked);
//!   `pool`, `status` and `tag` are a 400 (no app has them). An `owner` address the caller may
//!   not resolve (another user's for a non-admin, or no one's: [`super::users::username_of`])
//!   matches no app (204), the same for both.
//! - 0.3.9's `DELETE /apps/{app}/cname` (no body) removes all of the app's cnames in one native
//!   write (`Commands::remove_app_cnames`): a refusal removes none.

use super::body::Fields;
use super::{every_page, json, messages, text, written, Generation, TsuruCaller};
use crate::auth::RequestOrigin;
use crate::extract::{Path, Query};
use crate::problem::Problem;
use crate::startup::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use axum::Router;
use bosun_commands::apps::{AppView, CreateApp, UpdateApp};
use bosun_commands::queries::{AppFilter, Page, UnitView};
use bosun_commands::{Actor, CommandError};
use bosun_domain::DomainError;
use bosun_runner::AppRemoval;
use serde_json::{json, Map, Value};

/// The routes of this file (bare paths).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/apps", get(list).post(create))
        .route("/apps/{app}", get(info).put(update).delete(remove))
        // axum answers HEAD with a GET route's handler: not this one, which restarts.
        .route(
            "/apps/{app}/restart",
            get(restart_text)
                .post(restart_stream)
                .head(crate::routes::method_not_allowed),
        )
        .route("/apps/{app}/quota", get(quota))
        .route(
            "/apps/{app}/start",
            any(|Path(app): Path<String>| not_served(app, "start")),
        )
        .route(
            "/apps/{app}/stop",
            any(|Path(app): Path<String>| not_served(app, "stop")),
        )
        .route(
            "/apps/{app}/sleep",
            any(|Path(app): Path<String>| not_served(app, "sleep")),
        )
        .route(
            "/apps/{app}/teams/{team}",
            put(grant_team).delete(revoke_team),
        )
        .route("/apps/{app}/{team}", put(grant_team).delete(revoke_team))
        .route("/apps/{app}/cname", post(add_cname).delete(remove_cnames))
}

/// `/apps/{app}/start`, `…/stop`, `…/sleep`, any method: a 404 saying why (see the module).
async fn not_served(app: String, action: &'static str) -> Problem {
    Problem::not_found(format!(
        "Bosun apps have no {action}: the units of app {app} are supervised while it exists \
         (restart it with POST /apps/{app}/restart)"
    ))
}

/// The username `?owner=` names, for the native filter: a username as given; an address's
/// holder; an address the caller may not resolve (another user's, or no one's, alike) as given,
/// which is no one's username (no app matches).
async fn owner_filter(state: &AppState, actor: &Actor, owner: String) -> Result<String, Problem> {
    if !owner.contains('@') {
        return Ok(owner);
    }
    match state.queries.username_by_email(actor, &owner).await {
        Ok(username) => Ok(username),
        Err(CommandError::Forbidden(_) | CommandError::Domain(DomainError::NotFound(_))) => {
            Ok(owner)
        }
        Err(refused) => Err(refused.into()),
    }
}

/// `GET /apps` (`?name=&platform=&teamOwner=&owner=&locked=`): the apps the caller may see,
/// 200 with both versions' fields, or 204 for none (as both versions answer).
pub async fn list(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    generation: Generation,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, Problem> {
    let query = Fields::query(query);
    for name in ["pool", "status", "tag"] {
        if !query.texts(name)?.iter().all(String::is_empty) {
            return Err(Problem::invalid_field(
                name,
                format!("Bosun apps have no {name} to filter on"),
            ));
        }
    }
    let owner = match query.non_empty("owner")? {
        Some(owner) => Some(owner_filter(&state, &caller.actor, owner).await?),
        None => None,
    };
    let filter = AppFilter {
        team: None,
        platform: query.non_empty("platform")?,
        name_contains: query.non_empty("name")?,
        team_owner: query.non_empty("teamOwner")?,
        owner,
    };
    if query.flag("locked", false)? {
        // No app is locked: none, once the native list says the caller may list.
        let nothing = Page {
            limit: 0,
            offset: 0,
        };
        state.queries.apps(&caller.actor, filter, nothing).await?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let apps: Vec<Value> =
        every_page(|page| state.queries.apps(&caller.actor, filter.clone(), page))
            .await?
            .iter()
            .map(|app| render(app, generation))
            .collect();
    if apps.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok(json(StatusCode::OK, &apps))
}

/// Fields tsuru has and Bosun has not: a non-empty one is a 400 naming it.
fn refuse_unsupported(fields: &Fields) -> Result<(), Problem> {
    for name in ["plan", "pool", "router", "tag", "routeropts"] {
        let given = fields.fields.iter().any(|(key, value)| {
            let key = key.to_ascii_lowercase();
            (key == name || key.starts_with(&format!("{name}.")))
                && match value {
                    Value::String(s) => !s.is_empty(),
                    Value::Array(values) => values.iter().any(|v| v.as_str() != Some("")),
                    Value::Null => false,
                    Value::Object(o) => !o.is_empty(),
                    _ => true,
                }
        });
        if given {
            return Err(Problem::invalid_field(
                name,
                format!("Bosun apps have no {name}: leave it out"),
            ));
        }
    }
    Ok(())
}

/// `POST /apps`: JSON `{name, platform}` (0.3.9; `framework` as the platform too, as the first
/// tsuruclients sent it) → 200 `{status, repository_url}`; a form `name, platform, teamOwner,
/// description` (1.x; names in any case, as tsuru's form decoder took them) → 201 `{status,
/// repository_url, ip}`. The native refusals: 400 (platform, team owner, name), 403 (not a
/// member, `quota_exceeded`), 409 (`app_exists`).
pub async fn create(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    generation: Generation,
    fields: Fields,
) -> Result<Response, Problem> {
    let generation = generation.answering(fields.sent);
    let fields = fields.folding_case();
    refuse_unsupported(&fields)?;
    let platform = match fields.non_empty("platform")? {
        Some(platform) => platform,
        None => fields
            .required("framework")
            .map_err(|_| Problem::invalid_field("platform", "is required: the app's platform"))?,
    };
    let (view, w) = state
        .commands
        .create_app(
            &caller.actor,
            &origin,
            &state.app_rules,
            CreateApp {
                name: fields.required("name")?,
                platform,
                team_owner: fields.non_empty("teamowner")?,
                description: fields.non_empty("description")?,
            },
        )
        .await?;
    let response = if generation.is_1x() {
        json(
            StatusCode::CREATED,
            &json!({"status": "success", "repository_url": "", "ip": ip(&view.units)}),
        )
    } else {
        json(
            StatusCode::OK,
            &json!({"status": "success", "repository_url": ""}),
        )
    };
    Ok(written(&state, response, w))
}

/// `GET /apps/{app}`: the app in both versions' fields.
pub async fn info(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    generation: Generation,
    Path(app): Path<String>,
) -> Result<Response, Problem> {
    let view = state.queries.app(&caller.actor, &app).await?;
    Ok(json(StatusCode::OK, &render(&view, generation)))
}

/// `PUT /apps/{app}` (1.x, a form): `description`, `platform`, `teamOwner` → 200, an
/// `application/x-json-stream` of what changed.
pub async fn update(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    Path(app): Path<String>,
    fields: Fields,
) -> Result<Response, Problem> {
    let fields = fields.folding_case();
    refuse_unsupported(&fields)?;
    if fields.flag("imagereset", false)? {
        return Err(Problem::invalid_field(
            "imageReset",
            "Bosun apps have no image to reset",
        ));
    }
    let request = UpdateApp {
        description: fields.non_empty("description")?,
        platform: fields.non_empty("platform")?,
        team_owner: fields.non_empty("teamowner")?,
    };
    let mut changed = Vec::new();
    if let Some(description) = &request.description {
        changed.push(format!(
            "---- Description of app {app:?} is now {description:?} ----\n"
        ));
    }
    if let Some(platform) = &request.platform {
        changed.push(format!(
            "---- Platform of app {app:?} is now {platform:?} ----\n"
        ));
    }
    if let Some(team) = &request.team_owner {
        changed.push(format!(
            "---- Team owner of app {app:?} is now {team:?} ----\n"
        ));
    }
    let (_, w) = state
        .commands
        .update_app(&caller.actor, &origin, &app, request)
        .await?;
    Ok(written(&state, messages(StatusCode::OK, changed), w))
}

/// `DELETE /apps/{app}`: its instances unbound, then removed (as `DELETE /v1/apps/{app}`): 200,
/// the text `success` (0.3.9) or 1.x's messages.
pub async fn remove(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    generation: Generation,
    Path(app): Path<String>,
) -> Result<Response, Problem> {
    let w = match state
        .service_calls
        .remove_app(&caller.actor, &origin, &app)
        .await?
    {
        AppRemoval::Removed(w) => w,
        AppRemoval::Refused {
            instance,
            status,
            message,
        } => {
            return Err(crate::routes::v1::apps::unbind_refused(
                &instance, status, &message,
            ))
        }
        AppRemoval::Pending { instance } => {
            return Err(crate::routes::v1::apps::still_unbinding(&instance))
        }
    };
    let response = match generation {
        Generation::Old => text(StatusCode::OK, "success"),
        Generation::OneX => messages(
            StatusCode::OK,
            [
                format!("---- Removing application {app:?}...\n"),
                "---- Done removing application.\n".to_string(),
            ],
        ),
    };
    Ok(written(&state, response, w))
}

/// Asks the native restart (`process` as `/v1`'s), and the lines saying what restarts.
async fn restart(
    state: &AppState,
    caller: &crate::auth::Caller,
    origin: &bosun_commands::Origin,
    app: &str,
    process: Option<String>,
) -> Result<(Vec<String>, bosun_commands::Written), Problem> {
    let (units, w) = state
        .commands
        .restart_app(&caller.actor, origin, &state.catalog, app, process.clone())
        .await?;
    let mut lines = vec![match &process {
        Some(process) => format!("---- Restarting process {process:?} ----\n"),
        None => format!("---- Restarting the app {app:?} ----\n"),
    }];
    lines.extend(
        units
            .iter()
            .map(|unit| format!(" ---> Restarting unit {}\n", unit.id)),
    );
    Ok((lines, w))
}

/// `GET /apps/{app}/restart` (0.3.9): 200, text lines saying what restarts (after the answer,
/// one unit at a time).
pub async fn restart_text(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    Path(app): Path<String>,
) -> Result<Response, Problem> {
    let (lines, w) = restart(&state, &caller, &origin, &app, None).await?;
    Ok(written(&state, text(StatusCode::OK, lines.concat()), w))
}

/// `POST /apps/{app}/restart` (1.x, form `process`): 200, the messages saying what restarts.
pub async fn restart_stream(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    Path(app): Path<String>,
    fields: Fields,
) -> Result<Response, Problem> {
    let process = fields.non_empty("process")?;
    let (lines, w) = restart(&state, &caller, &origin, &app, process).await?;
    Ok(written(&state, messages(StatusCode::OK, lines), w))
}

/// `GET /apps/{app}/quota` (1.x): `{Limit: -1, InUse: <its units>}` (see the module).
pub async fn quota(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    Path(app): Path<String>,
) -> Result<Response, Problem> {
    let view = state.queries.app(&caller.actor, &app).await?;
    Ok(json(
        StatusCode::OK,
        &json!({"Limit": -1, "InUse": view.units.len()}),
    ))
}

/// `PUT /apps/{app}/teams/{team}` (1.x) and `PUT /apps/{app}/{team}` (0.3.9): 200, the team's
/// members act on the app.
pub async fn grant_team(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    Path((app, team)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let w = state
        .commands
        .grant_app_team(&caller.actor, &origin, &app, &team)
        .await?;
    Ok(written(&state, StatusCode::OK.into_response(), w))
}

/// `DELETE /apps/{app}/teams/{team}` (1.x) and `DELETE /apps/{app}/{team}` (0.3.9): 200; 409
/// for its last team or its team owner.
pub async fn revoke_team(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    Path((app, team)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let w = state
        .commands
        .revoke_app_team(&caller.actor, &origin, &app, &team)
        .await?;
    Ok(written(&state, StatusCode::OK.into_response(), w))
}

/// `POST /apps/{app}/cname`: JSON `{cname}` (0.3.9) or a form `cname` (1.x), one host name a
/// call (several are a 400: they would not be added as one decision) → 200.
pub async fn add_cname(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    Path(app): Path<String>,
    fields: Fields,
) -> Result<Response, Problem> {
    let cnames = fields.texts("cname")?;
    let [cname] = cnames.as_slice() else {
        return Err(Problem::invalid_field(
            "cname",
            "give one cname (one call for each)",
        ));
    };
    let (_, w) = state
        .commands
        .add_app_cname(&caller.actor, &origin, &app, cname)
        .await?;
    Ok(written(&state, StatusCode::OK.into_response(), w))
}

/// `DELETE /apps/{app}/cname`: 0.3.9's (no body) removes all the app's cnames (it had one) in
/// one write, 1.x's `?cname=X` that one → 200.
pub async fn remove_cnames(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    Path(app): Path<String>,
    fields: Fields,
) -> Result<Response, Problem> {
    let asked = fields.texts("cname")?;
    let (_, w) = match asked.as_slice() {
        [] => {
            let cnames = state.queries.app(&caller.actor, &app).await?.cnames;
            state
                .commands
                .remove_app_cnames(&caller.actor, &origin, &app, &cnames)
                .await?
        }
        [cname] => {
            state
                .commands
                .remove_app_cname(&caller.actor, &origin, &app, cname)
                .await?
        }
        _ => {
            return Err(Problem::invalid_field(
                "cname",
                "give one cname (one call for each)",
            ))
        }
    };
    Ok(written(&state, StatusCode::OK.into_response(), w))
}

/// The host of a unit's address (`127.0.0.1:8001` → `127.0.0.1`).
fn host(address: &str) -> &str {
    address.rsplit_once(':').map_or(address, |(host, _)| host)
}

/// tsuru's `ip` of an app: its first unit's address host, else `""`.
fn ip(units: &[UnitView]) -> String {
    units
        .iter()
        .find_map(|u| u.address.as_deref())
        .map(|a| host(a).to_string())
        .unwrap_or_default()
}

/// A unit in both versions' fields: 0.3.9's `{Name, Type, Machine, InstanceId, Ip, State}` and
/// 1.x's `{ID, Name, AppName, ProcessName, Type, IP, Status, Address}` (a Go `url.URL`).
fn render_unit(app: &AppView, unit: &UnitView) -> Value {
    let address = unit.address.as_deref().map(|a| {
        json!({"Scheme": "http", "Opaque": "", "User": null, "Host": a, "Path": "",
               "RawPath": "", "ForceQuery": false, "RawQuery": "", "Fragment": ""})
    });
    let ip = unit.address.as_deref().map(host).unwrap_or("");
    json!({
        "ID": unit.id,
        "Name": unit.id,
        "AppName": app.name,
        "ProcessName": unit.process,
        "Type": app.platform,
        "IP": ip,
        "Ip": ip,
        "Status": unit.state,
        "State": unit.state,
        "Machine": unit.index,
        "InstanceId": unit.node,
        "Address": address,
    })
}

/// An app in both versions' fields: 0.3.9's `{name, platform, teams, units, repository, ip,
/// cname, ready, owner, deploys}` and 1.x's `{…, teamowner, description, pool, plan, router,
/// routeropts, lock, tags}`; `cname` is 0.3.9's one host name (`""` for none) for
/// [`Generation::Old`], 1.x's list for [`Generation::OneX`]. See the module for what is derived.
pub fn render(app: &AppView, generation: Generation) -> Value {
    let cname = match generation {
        Generation::Old => json!(app.cnames.first().cloned().unwrap_or_default()),
        Generation::OneX => json!(app.cnames),
    };
    let units: Vec<Value> = app.units.iter().map(|u| render_unit(app, u)).collect();
    let ready = app
        .units
        .iter()
        .all(|u| u.state != "starting" && u.state != "error");
    let mut fields = Map::new();
    for (key, value) in [
        ("name", json!(app.name)),
        ("platform", json!(app.platform)),
        ("teams", json!(app.teams)),
        ("units", json!(units)),
        ("repository", json!("")),
        ("ip", json!(ip(&app.units))),
        ("cname", cname),
        ("ready", json!(ready)),
        ("owner", json!(app.owner)),
        ("deploys", json!(0)),
        ("teamowner", json!(app.team_owner)),
        ("description", json!(app.description)),
        ("pool", json!("")),
        (
            "plan",
            json!({"name": "", "memory": 0, "swap": 0, "cpushare": 0, "router": ""}),
        ),
        ("router", json!("")),
        ("routeropts", json!({})),
        (
            "lock",
            json!({"Locked": false, "Reason": "", "Owner": "", "AcquireDate": "0001-01-01T00:00:00Z"}),
        ),
        ("tags", json!([])),
    ] {
        fields.insert(key.to_string(), value);
    }
    Value::Object(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_address_gives_its_host() {
        assert_eq!(host("127.0.0.1:8001"), "127.0.0.1");
        assert_eq!(host("[::1]:80"), "[::1]");
        assert_eq!(host("nohost"), "nohost");
    }

    #[test]
    fn unsupported_fields_are_refused_only_when_given() {
        let fields = |value: Value| Fields::of(value.as_object().unwrap().clone());
        assert!(refuse_unsupported(&fields(json!({"plan": "", "pool": "", "tag": [""]}))).is_ok());
        for (body, name) in [
            (json!({"plan": "small"}), "plan"),
            (json!({"Pool": "p"}), "pool"),
            (json!({"tag": ["", "a"]}), "tag"),
            (json!({"routeropts.x": "1"}), "routeropts"),
        ] {
            let problem = refuse_unsupported(&fields(body)).unwrap_err();
            assert_eq!(problem.errors[0].field, name);
        }
    }
}
