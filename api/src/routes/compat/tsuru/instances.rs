//! tsuru's service instances and binds: 0.3.9's paths, which name an instance alone
//! (`/services/instances[/{instance}[/status|/{app}]]`, JSON bodies), and 1.x's, which name its
//! service too (`/services/{service}/instances[/{instance}[/status|/{app}]]`, form bodies). Each
//! is the `/v1/services/{service}/instances…` command or query with the same actor, and a call
//! to the service is waited for as `/v1` waits ([`crate::routes::v1::instances::outcome`]).
//!
//! Mapping decisions:
//! - A 0.3.9 path names an instance without its service: the service is the one, among those
//!   the caller may use, that has an instance of that name the caller may read (404 for none;
//!   409 `ambiguous_instance` when several do, naming them: use the 1.x path).
//! - A new instance's team owner is `owner` if given (1.x), else the one team of the caller's
//!   the service is granted to (an admin: the service's one team); with several, a 400 asking
//!   for `owner`. Tags (1.x `tag`) are refused: Bosun keeps none.
//! - Answers: each path is one generation's (the [surface's rule](super), rule 1): 0.3.9's
//!   create is 200, 1.x's 201; a removal is 0.3.9's text or 1.x's `application/x-json-stream`
//!   lines; a bind is 0.3.9's JSON array of the variables' names, or 1.x's stream saying them;
//!   an unbind is empty (0.3.9) or a stream line (1.x). The lists of services with their
//!   instances (`GET /services/instances`, both have it) are a 204 when empty under a version
//!   prefix, `[]` bare. 1.x's `noRestart` is the native `restart=false`.
//! - 1.x's `unbindall=true` unbinds every app, each the native unbind, then removes the
//!   instance: all of it is checked first (`Commands::check_removal_unbinding_all`: the
//!   removal, and each unbind), so a refusal unbinds nothing.
//! - A call the service has not answered within `services.wait_seconds` is a 202 (the server
//!   finishes it, as `/v1` does): text, a stream line, or, for a 0.3.9 bind, `[]`. A refusal of
//!   the service is the native 502 `service_unavailable` with its message.
//! - Status: `Service instance "x" is up` (or `pending`, `down`), as the native status says.
//!
//! Does not serve 1.x's instance update (`PUT …/instances/{instance}`), its per-instance team
//! grants (`…/instances/permission/…`) or its proxies: Bosun has none of them natively.

use super::body::Fields;
use super::services::{listed, TsuruInstance};
use super::{json, json_list, messages, text, written, Generation, TsuruCaller};
use crate::auth::{Caller, RequestOrigin};
use crate::extract::Path;
use crate::problem::Problem;
use crate::routes::v1::instances::{outcome, Outcome};
use crate::startup::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Router;
use bosun_commands::services::CreateInstance;
use bosun_commands::{Actor, Origin};

/// The instances routes, merged into the services routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/services/instances", get(list).post(create_named))
        .route(
            "/services/instances/{instance}",
            get(get_named).delete(remove_named),
        )
        .route("/services/instances/{instance}/status", get(status_named))
        .route(
            "/services/instances/{instance}/{app}",
            put(bind_named).delete(unbind_named),
        )
        .route("/services/{service}/instances", get(list_of).post(create))
        .route(
            "/services/{service}/instances/{instance}",
            get(get_one).delete(remove),
        )
        .route(
            "/services/{service}/instances/{instance}/status",
            get(status),
        )
        .route(
            "/services/{service}/instances/{instance}/{app}",
            put(bind).delete(unbind),
        )
}

/// The service of the instance a 0.3.9 path names: see the [module](self).
async fn service_of(state: &AppState, actor: &Actor, instance: &str) -> Result<String, Problem> {
    let holders: Vec<String> = state
        .queries
        .services(actor)
        .await?
        .into_iter()
        .filter(|s| s.instances.iter().any(|i| i == instance))
        .map(|s| s.name)
        .collect();
    match holders.as_slice() {
        [] => Err(Problem::not_found(format!(
            "Service instance not found: no instance {instance}"
        ))),
        [service] => Ok(service.clone()),
        several => Err(Problem::new(
            StatusCode::CONFLICT,
            "ambiguous_instance",
            format!(
                "services {} each have an instance {instance}: name the service \
                 (/services/{{service}}/instances/{instance})",
                several.join(", ")
            ),
        )),
    }
}

/// `GET /services/instances[?app=]`: the services the caller may use, each with the instances
/// it may read (only those bound to `app`, if given).
async fn list(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    generation: Generation,
    fields: Fields,
) -> Result<Response, Problem> {
    let app = fields.non_empty("app")?;
    let entries = listed(&state, &caller.actor, app.as_deref()).await?;
    Ok(json_list(&entries, generation.is_1x()))
}

/// `GET /services/{service}/instances` (1.x): its instances the caller may read; 204 for none.
async fn list_of(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    Path(service): Path<String>,
) -> Result<Response, Problem> {
    let instances = state.queries.instances(&caller.actor, &service).await?;
    let shown: Vec<TsuruInstance> = instances.into_iter().map(TsuruInstance::of).collect();
    Ok(json_list(&shown, true))
}

/// The team owner of a new instance of `service`: see the [module](self).
async fn team_owner(
    state: &AppState,
    caller: &Caller,
    service: &str,
    owner: Option<String>,
) -> Result<String, Problem> {
    if let Some(owner) = owner {
        return Ok(owner);
    }
    let granted = state.queries.service(&caller.actor, service).await?.teams;
    let mine = &caller.holder.teams;
    let candidates: Vec<&String> = if caller.actor.is_admin() {
        granted.iter().collect()
    } else {
        granted.iter().filter(|t| mine.contains(t)).collect()
    };
    match candidates.as_slice() {
        [team] => Ok((*team).clone()),
        // None of the caller's: the native rule refuses their only team, saying why.
        [] if mine.len() == 1 => Ok(mine[0].clone()),
        [] => Err(Problem::invalid_field(
            "owner",
            format!("is required: name the team (one granted {service}) that owns the instance"),
        )),
        several => Err(Problem::invalid_field(
            "owner",
            format!(
                "is required: several of your teams may use {service} ({}); name the one that \
                 owns the instance",
                several
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// Creates the instance `fields` describe of `service`; `done` is the status once the service
/// did.
async fn create_instance(
    state: &AppState,
    caller: &Caller,
    origin: &Origin,
    service: &str,
    fields: &Fields,
    done: StatusCode,
) -> Result<Response, Problem> {
    if !fields.texts("tag")?.is_empty() {
        return Err(Problem::invalid_field(
            "tag",
            "Bosun keeps no tags on instances: send none",
        ));
    }
    let name = fields.required("name")?;
    let team_owner = team_owner(state, caller, service, fields.non_empty("owner")?).await?;
    let (intent, _) = state
        .commands
        .request_instance(
            &caller.actor,
            origin,
            service,
            CreateInstance {
                name: name.clone(),
                plan: fields.non_empty("plan")?,
                team_owner,
                description: fields.non_empty("description")?,
            },
        )
        .await?;
    Ok(match outcome(state, &caller.actor, &intent).await? {
        Outcome::Done { w, .. } => written(state, done.into_response(), w),
        Outcome::Pending(pending) => written(
            state,
            text(
                StatusCode::ACCEPTED,
                format!(
                    "service {service} has not answered yet: instance {name} is being created, \
                     and will be once it does"
                ),
            ),
            pending.w,
        ),
    })
}

/// `POST /services/instances` (0.3.9): JSON `{name, service_name, plan}`; 200 once the service
/// created it.
async fn create_named(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    fields: Fields,
) -> Result<Response, Problem> {
    let service = fields.required("service_name")?;
    create_instance(&state, &caller, &origin, &service, &fields, StatusCode::OK).await
}

/// `POST /services/{service}/instances` (1.x): form `name, plan, owner, description`; 201 once
/// the service created it.
async fn create(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    Path(service): Path<String>,
    fields: Fields,
) -> Result<Response, Problem> {
    create_instance(
        &state,
        &caller,
        &origin,
        &service,
        &fields,
        StatusCode::CREATED,
    )
    .await
}

/// `GET /services/instances/{instance}` (0.3.9).
async fn get_named(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    Path(instance): Path<String>,
) -> Result<Response, Problem> {
    let service = service_of(&state, &caller.actor, &instance).await?;
    show(&state, &caller.actor, &service, &instance).await
}

/// `GET /services/{service}/instances/{instance}` (1.x).
async fn get_one(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    Path((service, instance)): Path<(String, String)>,
) -> Result<Response, Problem> {
    show(&state, &caller.actor, &service, &instance).await
}

async fn show(
    state: &AppState,
    actor: &Actor,
    service: &str,
    instance: &str,
) -> Result<Response, Problem> {
    let view = state.queries.instance(actor, service, instance).await?;
    Ok(json(StatusCode::OK, &TsuruInstance::of(view)))
}

/// What a removal (and the unbinds before it) said, and whether it is done.
struct Said {
    messages: Vec<String>,
    done: bool,
    w: bosun_commands::Written,
}

/// Removes the instance (after unbinding its apps if `unbind_all`, all of it checked first: see
/// the [module](self)), saying what it did.
async fn remove_instance(
    state: &AppState,
    caller: &Caller,
    origin: &Origin,
    service: &str,
    instance: &str,
    unbind_all: bool,
) -> Result<Said, Problem> {
    let mut messages = Vec::new();
    if unbind_all {
        let apps = state
            .commands
            .check_removal_unbinding_all(&caller.actor, service, instance)
            .await?;
        for app in apps {
            messages.push(format!("Unbind app {app:?} ...\n"));
            let (intent, _) = state
                .commands
                .request_unbind(&caller.actor, origin, service, instance, &app, true)
                .await?;
            match outcome(state, &caller.actor, &intent).await? {
                Outcome::Done { .. } => messages.push(format!(
                    "\nInstance {instance:?} is not bound to the app {app:?} anymore.\n"
                )),
                Outcome::Pending(pending) => {
                    messages.push(format!(
                        "service {service} has not answered yet: the unbind of {app} is \
                         pending, and will be done once it does; remove the instance after\n"
                    ));
                    return Ok(Said {
                        messages,
                        done: false,
                        w: pending.w,
                    });
                }
            }
        }
    }
    let (intent, _) = state
        .commands
        .request_instance_removal(&caller.actor, origin, service, instance)
        .await?;
    Ok(match outcome(state, &caller.actor, &intent).await? {
        Outcome::Done { w, .. } => {
            messages.push("service instance successfully removed\n".into());
            Said {
                messages,
                done: true,
                w,
            }
        }
        Outcome::Pending(pending) => {
            messages.push(format!(
                "service {service} has not answered yet: instance {instance} is being removed, \
                 and will be once it does\n"
            ));
            Said {
                messages,
                done: false,
                w: pending.w,
            }
        }
    })
}

fn done_or_accepted(done: bool) -> StatusCode {
    if done {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    }
}

/// `DELETE /services/instances/{instance}` (0.3.9): text; 409 `instance_bound` while bound.
async fn remove_named(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    Path(instance): Path<String>,
) -> Result<Response, Problem> {
    let service = service_of(&state, &caller.actor, &instance).await?;
    let said = remove_instance(&state, &caller, &origin, &service, &instance, false).await?;
    let answer = text(done_or_accepted(said.done), said.messages.concat());
    Ok(written(&state, answer, said.w))
}

/// `DELETE /services/{service}/instances/{instance}[?unbindall=true]` (1.x): a stream.
async fn remove(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    Path((service, instance)): Path<(String, String)>,
    fields: Fields,
) -> Result<Response, Problem> {
    let unbind_all = fields.flag("unbindall", false)?;
    let said = remove_instance(&state, &caller, &origin, &service, &instance, unbind_all).await?;
    let answer = messages(done_or_accepted(said.done), said.messages);
    Ok(written(&state, answer, said.w))
}

/// `Service instance "x" is up` (or `pending`, `down`), as the service says.
async fn status_text(
    state: &AppState,
    actor: &Actor,
    service: &str,
    instance: &str,
) -> Result<Response, Problem> {
    let status = state.service_calls.status(actor, service, instance).await?;
    Ok(text(
        StatusCode::OK,
        format!("Service instance {instance:?} is {}", status.status),
    ))
}

/// `GET /services/instances/{instance}/status` (0.3.9).
async fn status_named(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    Path(instance): Path<String>,
) -> Result<Response, Problem> {
    let service = service_of(&state, &caller.actor, &instance).await?;
    status_text(&state, &caller.actor, &service, &instance).await
}

/// `GET /services/{service}/instances/{instance}/status` (1.x).
async fn status(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    Path((service, instance)): Path<(String, String)>,
) -> Result<Response, Problem> {
    status_text(&state, &caller.actor, &service, &instance).await
}

/// How a bind or an unbind is answered.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// 0.3.9: a bind's JSON array of names; an unbind's empty 200.
    Json,
    /// 1.x: `application/x-json-stream` lines.
    Stream,
}

/// Binds `instance` of `service` to `app`, answered in `shape`.
#[allow(clippy::too_many_arguments)]
async fn bind_instance(
    state: &AppState,
    caller: &Caller,
    origin: &Origin,
    service: &str,
    instance: &str,
    app: &str,
    restart: bool,
    shape: Shape,
) -> Result<Response, Problem> {
    let (intent, _) = state
        .commands
        .request_bind(&caller.actor, origin, service, instance, app, restart)
        .await?;
    Ok(
        match (outcome(state, &caller.actor, &intent).await?, shape) {
            (Outcome::Done { env, w }, Shape::Json) => {
                written(state, json(StatusCode::OK, &env), w)
            }
            (Outcome::Done { env, w }, Shape::Stream) => {
                let mut said = vec![format!(
                    "\nInstance {instance:?} is now bound to the app {app:?}.\n"
                )];
                if !env.is_empty() {
                    said.push(
                        "The following environment variables are available for use in your \
                         app:\n\n"
                            .into(),
                    );
                    said.extend(env.iter().map(|name| format!("- {name}\n")));
                }
                written(state, messages(StatusCode::OK, said), w)
            }
            (Outcome::Pending(pending), Shape::Json) => written(
                state,
                json(StatusCode::ACCEPTED, &Vec::<String>::new()),
                pending.w,
            ),
            (Outcome::Pending(pending), Shape::Stream) => written(
                state,
                messages(
                    StatusCode::ACCEPTED,
                    [pending_message(service, "bind", instance, app)],
                ),
                pending.w,
            ),
        },
    )
}

fn pending_message(service: &str, call: &str, instance: &str, app: &str) -> String {
    format!(
        "service {service} has not answered yet: the {call} of instance {instance} and app \
         {app} is pending, and will be done once it does\n"
    )
}

/// Unbinds `instance` of `service` from `app`, answered in `shape`.
#[allow(clippy::too_many_arguments)]
async fn unbind_instance(
    state: &AppState,
    caller: &Caller,
    origin: &Origin,
    service: &str,
    instance: &str,
    app: &str,
    restart: bool,
    shape: Shape,
) -> Result<Response, Problem> {
    let (intent, _) = state
        .commands
        .request_unbind(&caller.actor, origin, service, instance, app, restart)
        .await?;
    Ok(
        match (outcome(state, &caller.actor, &intent).await?, shape) {
            (Outcome::Done { w, .. }, Shape::Json) => {
                written(state, StatusCode::OK.into_response(), w)
            }
            (Outcome::Done { w, .. }, Shape::Stream) => written(
                state,
                messages(
                    StatusCode::OK,
                    [format!(
                        "\nInstance {instance:?} is not bound to the app {app:?} anymore.\n"
                    )],
                ),
                w,
            ),
            (Outcome::Pending(pending), Shape::Json) => written(
                state,
                text(
                    StatusCode::ACCEPTED,
                    pending_message(service, "unbind", instance, app),
                ),
                pending.w,
            ),
            (Outcome::Pending(pending), Shape::Stream) => written(
                state,
                messages(
                    StatusCode::ACCEPTED,
                    [pending_message(service, "unbind", instance, app)],
                ),
                pending.w,
            ),
        },
    )
}

/// `PUT /services/instances/{instance}/{app}` (0.3.9): 200 with the names of the variables the
/// bind gave the app.
async fn bind_named(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    Path((instance, app)): Path<(String, String)>,
    fields: Fields,
) -> Result<Response, Problem> {
    let service = service_of(&state, &caller.actor, &instance).await?;
    let restart = !fields.flag("noRestart", false)?;
    bind_instance(
        &state,
        &caller,
        &origin,
        &service,
        &instance,
        &app,
        restart,
        Shape::Json,
    )
    .await
}

/// `DELETE /services/instances/{instance}/{app}` (0.3.9): 200.
async fn unbind_named(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    Path((instance, app)): Path<(String, String)>,
    fields: Fields,
) -> Result<Response, Problem> {
    let service = service_of(&state, &caller.actor, &instance).await?;
    let restart = !fields.flag("noRestart", false)?;
    unbind_instance(
        &state,
        &caller,
        &origin,
        &service,
        &instance,
        &app,
        restart,
        Shape::Json,
    )
    .await
}

/// `PUT /services/{service}/instances/{instance}/{app}` (1.x, form `noRestart`): a stream.
async fn bind(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    Path((service, instance, app)): Path<(String, String, String)>,
    fields: Fields,
) -> Result<Response, Problem> {
    let restart = !fields.flag("noRestart", false)?;
    bind_instance(
        &state,
        &caller,
        &origin,
        &service,
        &instance,
        &app,
        restart,
        Shape::Stream,
    )
    .await
}

/// `DELETE /services/{service}/instances/{instance}/{app}` (1.x, form `noRestart`): a stream.
async fn unbind(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    Path((service, instance, app)): Path<(String, String, String)>,
    fields: Fields,
) -> Result<Response, Problem> {
    let restart = !fields.flag("noRestart", false)?;
    unbind_instance(
        &state,
        &caller,
        &origin,
        &service,
        &instance,
        &app,
        restart,
        Shape::Stream,
    )
    .await
}
