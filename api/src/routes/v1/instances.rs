//! `/v1/services/{service}/instances`: instances of a service, their status, and binding them to
//! apps. A request that changes something at the service (create, remove, bind, unbind) is
//! recorded as an intent by the commands (`bosun_commands::services`), then finished by the
//! runner's [`ServiceCalls`](bosun_runner::ServiceCalls), which makes the call and records its
//! outcome; these handlers only map HTTP onto that and the answer back: the outcome if it is in
//! within `services.wait_seconds`, 502 `service_unavailable` with the service's message if the
//! service refused, else 202 with the instance as it is, its call pending (the reactor finishes
//! it; no body for a caller who may act on the call but not read the instance). Who may do
//! what, and every other rule, is the commands' and queries'.

use crate::auth::{Caller, RequestOrigin};
use crate::extract::{Json, Query};
use crate::problem::{Problem, Refusals};
use crate::routes::{listed, written};
use crate::startup::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use bosun_commands::services::{CreateInstance, Intent};
use bosun_commands::{Actor, CommandError, Written};
use bosun_domain::DomainError;
use bosun_projections::read_models::services::InstanceView;
use bosun_runner as runner;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInstance {
    /// `^[a-z][a-z0-9-]{0,39}$`, unique among the service's instances.
    #[schema(pattern = "^[a-z][a-z0-9-]{0,39}$")]
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
    request_body = NewInstance,
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
    Json(body): Json<NewInstance>,
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
    match outcome(&state, &caller.actor, &intent).await? {
        Outcome::Done { w, .. } => {
            let view = state
                .queries
                .instance(&caller.actor, &intent.service, &intent.instance)
                .await?;
            Ok(written(&state, StatusCode::CREATED, Some(&view), w))
        }
        Outcome::Pending(pending) => Ok((*pending).answer(&state)),
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
    match outcome(&state, &caller.actor, &intent).await? {
        Outcome::Done { w, .. } => Ok(written::<()>(&state, StatusCode::NO_CONTENT, None, w)),
        Outcome::Pending(pending) => Ok((*pending).answer(&state)),
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
/// environment (over the app's own and earlier bindings' of those names); 502
/// `service_unavailable` if it refused (nothing is bound); 202 with the instance (`pending`
/// set) if it has not answered yet. 409 `already_bound`, `instance_busy`
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
    match outcome(&state, &caller.actor, &intent).await? {
        Outcome::Done { env, w } => Ok(written(&state, StatusCode::OK, Some(&BoundEnv { env }), w)),
        Outcome::Pending(pending) => Ok((*pending).answer(&state)),
    }
}

/// `DELETE /v1/services/{service}/instances/{instance}/apps/{app}?restart=`: asks the service to
/// unbind them (whoever may manage the app, a member of the instance's teams or not); 204 once
/// it did: each variable whose value the instance set has left the app's environment, or taken
/// back the value under it (the latest other binding's that sets it, else the app's own). 502
/// `service_unavailable` if it refused (still bound), 202 with the instance if it has not
/// answered yet (no body for a caller who may not read the instance). 409 `not_bound`,
/// `instance_busy`.
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
    match outcome(&state, &caller.actor, &intent).await? {
        Outcome::Done { w, .. } => Ok(written::<()>(&state, StatusCode::NO_CONTENT, None, w)),
        Outcome::Pending(pending) => Ok((*pending).answer(&state)),
    }
}

/// What became of an intent within the wait, once the read models hold it (`w`: the head of
/// the log then, for `Bosun-Position`). A refusal is the 502. (Crate-visible: the compat
/// surfaces answer the same outcomes in their own shapes.)
pub(crate) enum Outcome {
    /// The service did it. `env`: the names of the variables a bind set (none for the others).
    Done { env: Vec<String>, w: Written },
    /// No outcome yet (boxed: it holds the whole instance view).
    Pending(Box<Pending>),
}

/// An intent without an outcome yet: the instance as the caller may read it (`None` for a
/// caller who may act on the call but not read the instance: one who unbinds an app they
/// manage).
pub(crate) struct Pending {
    pub(crate) view: Option<InstanceView>,
    pub(crate) w: Written,
}

impl Pending {
    /// 202 with the instance, its call pending (no body for a caller who may not read it).
    fn answer(self, state: &AppState) -> Response {
        match self.view {
            Some(view) => written(state, StatusCode::ACCEPTED, Some(&view), self.w),
            None => written::<()>(state, StatusCode::ACCEPTED, None, self.w),
        }
    }
}

/// Has the runner finish `intent` and reads what became of it. A pending outcome comes with the
/// instance as `actor` reads it; if that is a 404 the instance may be gone since the wait ended
/// (a creation that failed, a removal done, recorded by the reactor meanwhile): then the
/// recorded outcome is asked for again (at once, it is in) and answered instead, so a request
/// whose intent did finish is never a 404.
pub(crate) async fn outcome(
    state: &AppState,
    actor: &Actor,
    intent: &Intent,
) -> Result<Outcome, Problem> {
    let w = match finish(state, intent.clone()).await? {
        Finished::Done { env, w } => return Ok(Outcome::Done { env, w }),
        Finished::Pending(w) => w,
    };
    match state
        .queries
        .instance(actor, &intent.service, &intent.instance)
        .await
    {
        Ok(view) => Ok(Outcome::Pending(Box::new(Pending {
            view: Some(view),
            w,
        }))),
        Err(CommandError::Domain(DomainError::NotFound(_))) => {
            let exists = state
                .queries
                .instance(
                    &Actor::System("services"),
                    &intent.service,
                    &intent.instance,
                )
                .await
                .is_ok();
            if exists {
                // Still there, its call pending: the caller may not read it.
                return Ok(Outcome::Pending(Box::new(Pending { view: None, w })));
            }
            match recorded(state, intent.clone()).await? {
                Finished::Done { env, w } => Ok(Outcome::Done { env, w }),
                Finished::Pending(w) => Ok(Outcome::Pending(Box::new(Pending { view: None, w }))),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// [`bosun_runner::Finished`] once the read models hold it; a refusal is the 502.
enum Finished {
    Done { env: Vec<String>, w: Written },
    Pending(Written),
}

/// Has the runner finish `intent` (waiting at most `services.wait_seconds`; at once if its
/// outcome is recorded), then waits for the read models to hold what it recorded, so the answer
/// (and the caller's next read on this node) shows it; a refusal too, though it is answered as
/// the 502.
async fn finish(state: &AppState, intent: Intent) -> Result<Finished, Problem> {
    let finished = state.service_calls.finish(intent.clone()).await;
    answer_of(state, &intent, finished).await
}

/// The intent's outcome as recorded now: no attempt, no wait.
async fn recorded(state: &AppState, intent: Intent) -> Result<Finished, Problem> {
    let finished = state.service_calls.recorded_outcome(&intent).await;
    answer_of(state, &intent, finished).await
}

async fn answer_of(
    state: &AppState,
    intent: &Intent,
    finished: runner::Finished,
) -> Result<Finished, Problem> {
    let service = intent.service.clone();
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
        runner::Finished::Done { env } => Ok(Finished::Done { env, w }),
        runner::Finished::Pending => Ok(Finished::Pending(w)),
        runner::Finished::Refused { status, message } => Err(refused(&service, status, &message)),
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
