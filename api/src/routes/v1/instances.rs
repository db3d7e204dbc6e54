//! `/v1/services/{service}/instances`: instances of a service, their status, and binding them to
//! apps. A request that changes something at the service (create, remove, bind, unbind) is
//! recorded as an intent by the commands (`bosun_commands::services`), then finished by the
//! runner's [`ServiceCalls`](bosun_runner::ServiceCalls), which makes the call and records its
//! outcome; these handlers only map HTTP onto that and the answer back: the outcome if it is in
//! within `services.wait_seconds`, 502 `service_unavailable` with the service's message if the
//! service refused, else 202 with the instance as it is, its call pending (the reactor finishes
//! it). Who may do what, and every other rule, is the commands' and queries'.

use crate::auth::{Caller, RequestOrigin};
use crate::extract::{Json, Query};
use crate::problem::{Problem, Refusals};
use crate::routes::{listed, written};
use crate::startup::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use bosun_commands::services::{CreateInstance, Intent};
use bosun_commands::{Actor, Written};
use bosun_projections::read_models::services::InstanceView;
use bosun_runner::Finished;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Create {
    /// `^[a-z][a-z0-9-]{0,39}$`, unique among the service's instances.
    name: String,
    /// Sent to the service as `plan` (default empty).
    plan: Option<String>,
    /// A team granted the service, of the caller's (an admin: any); sent to the service as
    /// `team`. The instance's members are this team's.
    team_owner: String,
    description: Option<String>,
}

/// `POST /v1/services/{service}/instances`: asks the service to create the instance; 201 with
/// it once the service did, 502 `service_unavailable` with the service's message if it refused,
/// 202 with it (`state: creating`, `pending` set) if the service has not answered within
/// `services.wait_seconds`. 403 `team_not_granted` for a team the service is not granted to,
/// 409 `instance_exists`.
#[utoipa::path(post, path = "/v1/services/{service}/instances", tag = "instances",
    params(("service" = String, Path, description = "the service's name")),
    request_body = Create,
    responses(
        (status = 201, description = "created at the service", body = InstanceView),
        (status = 202, description = "the service has not answered yet: the instance, creating", body = InstanceView),
        (status = 502, description = "`service_unavailable`: the service refused, with its message", body = Problem, content_type = "application/problem+json"),
        Refusals),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(service): Path<String>,
    Json(body): Json<Create>,
) -> Result<Response, Problem> {
    let (intent, _) = state
        .commands
        .request_instance(
            &caller.actor,
            &origin,
            &service,
            CreateInstance {
                name: body.name,
                plan: body.plan,
                team_owner: body.team_owner,
                description: body.description,
            },
        )
        .await?;
    match finish(&state, intent.clone()).await? {
        Outcome::Done(w) => {
            let view = instance(&state, &caller.actor, &intent).await?;
            Ok(written(&state, StatusCode::CREATED, Some(&view), w))
        }
        Outcome::Pending(w) => pending(&state, &caller.actor, &intent, w).await,
    }
}

/// `GET /v1/services/{service}/instances`: the service's instances the caller may see (those of
/// the caller's teams; an admin: all), by name, with `X-Total-Count`.
#[utoipa::path(get, path = "/v1/services/{service}/instances", tag = "instances",
    params(("service" = String, Path, description = "the service's name")),
    responses((status = 200, description = "its instances the caller may see, by name, with `X-Total-Count`", body = Vec<InstanceView>), Refusals),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(service): Path<String>,
) -> Result<Response, Problem> {
    let instances = state.queries.instances(&caller.actor, &service).await?;
    let total = i64::try_from(instances.len()).unwrap_or(i64::MAX);
    Ok(listed(&instances, total))
}

/// `GET /v1/services/{service}/instances/{instance}`: with the apps bound to it and its pending
/// call, if any.
#[utoipa::path(get, path = "/v1/services/{service}/instances/{instance}", tag = "instances",
    params(
        ("service" = String, Path, description = "the service's name"),
        ("instance" = String, Path, description = "the instance's name")),
    responses((status = 200, description = "OK", body = InstanceView), Refusals),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path((service, instance)): Path<(String, String)>,
) -> Result<axum::Json<InstanceView>, Problem> {
    Ok(axum::Json(
        state
            .queries
            .instance(&caller.actor, &service, &instance)
            .await?,
    ))
}

/// What the service says of an instance.
#[derive(Serialize, utoipa::ToSchema)]
pub struct InstanceStatus {
    /// `up` (the service answered 204), `pending` (202) or `down` (anything else, or no answer).
    status: String,
    /// The service's answer, or why there was none.
    message: String,
}

/// `GET /v1/services/{service}/instances/{instance}/status`: asks the service; a service that
/// does not answer makes the instance `down`, with the reason.
#[utoipa::path(get, path = "/v1/services/{service}/instances/{instance}/status", tag = "instances",
    params(
        ("service" = String, Path, description = "the service's name"),
        ("instance" = String, Path, description = "the instance's name")),
    responses((status = 200, description = "as the service says", body = InstanceStatus), Refusals),
    security(("bearer" = [])))]
pub async fn status(
    State(state): State<AppState>,
    caller: Caller,
    Path((service, instance)): Path<(String, String)>,
) -> Result<axum::Json<InstanceStatus>, Problem> {
    let status = state
        .service_calls
        .status(&caller.actor, &service, &instance)
        .await?;
    Ok(axum::Json(InstanceStatus {
        status: status.status.to_string(),
        message: status.message,
    }))
}

/// `DELETE /v1/services/{service}/instances/{instance}`: asks the service to remove it; 204 once
/// it did, 502 `service_unavailable` if it refused (the instance stays), 202 with it (`state:
/// removing`) if the service has not answered yet. 409 `instance_bound` while an app is bound.
#[utoipa::path(delete, path = "/v1/services/{service}/instances/{instance}", tag = "instances",
    params(
        ("service" = String, Path, description = "the service's name"),
        ("instance" = String, Path, description = "the instance's name")),
    responses(
        (status = 204, description = "removed at the service"),
        (status = 202, description = "the service has not answered yet: the instance, removing", body = InstanceView),
        (status = 502, description = "`service_unavailable`: the service refused, with its message", body = Problem, content_type = "application/problem+json"),
        Refusals),
    security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path((service, instance)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let (intent, _) = state
        .commands
        .request_instance_removal(&caller.actor, &origin, &service, &instance)
        .await?;
    match finish(&state, intent.clone()).await? {
        Outcome::Done(w) => Ok(written::<()>(&state, StatusCode::NO_CONTENT, None, w)),
        Outcome::Pending(w) => pending(&state, &caller.actor, &intent, w).await,
    }
}

/// The names of the variables a bind put in the app's environment.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BoundEnv {
    /// Private in the app's environment (their values read as `null`), set by this instance.
    env: Vec<String>,
}

/// `?restart=`: whether the app's units restart with the changed environment.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartQuery {
    restart: Option<String>,
}

impl RestartQuery {
    /// `true` unless `restart=false`; anything but `true` or `false` is a 400 naming it.
    fn restart(&self) -> Result<bool, Problem> {
        match self.restart.as_deref() {
            None => Ok(true),
            Some(value) => value
                .parse()
                .map_err(|_| Problem::invalid_field("restart", "must be true or false")),
        }
    }
}

/// `PUT /v1/services/{service}/instances/{instance}/apps/{app}?restart=`: asks the service to
/// bind the instance to the app (a member of the instance's teams who may manage the app); 200
/// with the names of the variables the service gave, now private values of the app's
/// environment; 502 `service_unavailable` if it refused (nothing is bound); 202 with the
/// instance (`pending` set) if it has not answered yet. 409 `already_bound`, `instance_busy`
/// (another call pending), `instance_pending` (still being created).
#[utoipa::path(put, path = "/v1/services/{service}/instances/{instance}/apps/{app}", tag = "instances",
    params(
        ("service" = String, Path, description = "the service's name"),
        ("instance" = String, Path, description = "the instance's name"),
        ("app" = String, Path, description = "the app's name"),
        ("restart" = Option<bool>, Query, description = "restart the app's units with the variables (default `true`)")),
    responses(
        (status = 200, description = "bound: the variables' names", body = BoundEnv),
        (status = 202, description = "the service has not answered yet: the instance, its bind pending", body = InstanceView),
        (status = 502, description = "`service_unavailable`: the service refused, with its message", body = Problem, content_type = "application/problem+json"),
        Refusals),
    security(("bearer" = [])))]
pub async fn bind(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path((service, instance, app)): Path<(String, String, String)>,
    Query(query): Query<RestartQuery>,
) -> Result<Response, Problem> {
    let restart = query.restart()?;
    let (intent, _) = state
        .commands
        .request_bind(&caller.actor, &origin, &service, &instance, &app, restart)
        .await?;
    match finish(&state, intent.clone()).await? {
        Outcome::Done(w) => {
            let env = state
                .queries
                .app_env(&caller.actor, &app)
                .await?
                .into_iter()
                .filter(|var| {
                    var.bound.as_ref().is_some_and(|bound| {
                        bound.service == intent.service && bound.instance == intent.instance
                    })
                })
                .map(|var| var.name)
                .collect();
            Ok(written(&state, StatusCode::OK, Some(&BoundEnv { env }), w))
        }
        Outcome::Pending(w) => pending(&state, &caller.actor, &intent, w).await,
    }
}

/// `DELETE /v1/services/{service}/instances/{instance}/apps/{app}?restart=`: asks the service to
/// unbind them; 204 once it did (the instance's variables have left the app's environment), 502
/// `service_unavailable` if it refused (still bound), 202 with the instance if it has not
/// answered yet. 409 `not_bound`, `instance_busy`.
#[utoipa::path(delete, path = "/v1/services/{service}/instances/{instance}/apps/{app}", tag = "instances",
    params(
        ("service" = String, Path, description = "the service's name"),
        ("instance" = String, Path, description = "the instance's name"),
        ("app" = String, Path, description = "the app's name"),
        ("restart" = Option<bool>, Query, description = "restart the app's units without the variables (default `true`)")),
    responses(
        (status = 204, description = "unbound"),
        (status = 202, description = "the service has not answered yet: the instance, its unbind pending", body = InstanceView),
        (status = 502, description = "`service_unavailable`: the service refused, with its message", body = Problem, content_type = "application/problem+json"),
        Refusals),
    security(("bearer" = [])))]
pub async fn unbind(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path((service, instance, app)): Path<(String, String, String)>,
    Query(query): Query<RestartQuery>,
) -> Result<Response, Problem> {
    let restart = query.restart()?;
    let (intent, _) = state
        .commands
        .request_unbind(&caller.actor, &origin, &service, &instance, &app, restart)
        .await?;
    match finish(&state, intent.clone()).await? {
        Outcome::Done(w) => Ok(written::<()>(&state, StatusCode::NO_CONTENT, None, w)),
        Outcome::Pending(w) => pending(&state, &caller.actor, &intent, w).await,
    }
}

/// What became of an intent within the wait, once the read models hold it (`Written`: the head
/// of the log then, for `Bosun-Position`). A refusal is the 502.
enum Outcome {
    Done(Written),
    Pending(Written),
}

/// Has the runner finish `intent` (waiting at most `services.wait_seconds`), then waits for the
/// read models to hold what it recorded, so the answer (and the caller's next read on this node)
/// shows it; a refusal too, though it is answered as the 502.
async fn finish(state: &AppState, intent: Intent) -> Result<Outcome, Problem> {
    let service = intent.service.clone();
    let finished = state.service_calls.finish(intent).await;
    // The outcome is in the log already: if the database cannot say its head now, what the read
    // models hold is answered.
    let head = bosun_eventstore::EventStore::head(&state.store)
        .await
        .unwrap_or_else(|_| state.freshness.position());
    let w = Written {
        position: Some(head),
    };
    state.commands.settle(w).await;
    match finished {
        Finished::Done => Ok(Outcome::Done(w)),
        Finished::Pending => Ok(Outcome::Pending(w)),
        Finished::Refused { status, message } => Err(refused(&service, status, &message)),
    }
}

/// 502 `service_unavailable`: the service refused (or answered what Bosun cannot use), with what
/// it said.
fn refused(service: &str, status: Option<u16>, message: &str) -> Problem {
    let detail = match status {
        Some(status) => format!("service {service} answered {status}: {message}"),
        None => format!("service {service}: {message}"),
    };
    Problem::new(StatusCode::BAD_GATEWAY, "service_unavailable", detail)
}

/// The intent's instance as the read models have it.
async fn instance(
    state: &AppState,
    actor: &Actor,
    intent: &Intent,
) -> Result<InstanceView, Problem> {
    Ok(state
        .queries
        .instance(actor, &intent.service, &intent.instance)
        .await?)
}

/// 202 with the instance, its call pending.
async fn pending(
    state: &AppState,
    actor: &Actor,
    intent: &Intent,
    w: Written,
) -> Result<Response, Problem> {
    let view = instance(state, actor, intent).await?;
    Ok(written(state, StatusCode::ACCEPTED, Some(&view), w))
}

/// The routes of this resource, with their OpenAPI paths.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, remove))
        .routes(routes!(status))
        .routes(routes!(bind, unbind))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restart(value: Option<&str>) -> Result<bool, Problem> {
        RestartQuery {
            restart: value.map(str::to_string),
        }
        .restart()
    }

    #[test]
    fn restart_is_true_unless_false_and_anything_else_is_named() {
        assert!(restart(None).unwrap());
        assert!(restart(Some("true")).unwrap());
        assert!(!restart(Some("false")).unwrap());
        let problem = restart(Some("no")).err().unwrap();
        assert_eq!(problem.errors[0].field, "restart");
    }

    #[test]
    fn a_refusal_is_a_502_with_the_services_message() {
        let problem = refused("mysql", Some(500), "out of disk");
        assert_eq!(problem.status, 502);
        assert_eq!(problem.code, "service_unavailable");
        let detail = problem.detail.unwrap_or_default();
        assert!(
            detail.contains("mysql") && detail.contains("500") && detail.contains("out of disk"),
            "{detail}"
        );
        let detail = refused("mysql", None, "no JSON").detail.unwrap_or_default();
        assert!(detail.contains("no JSON"), "{detail}");
    }
}
