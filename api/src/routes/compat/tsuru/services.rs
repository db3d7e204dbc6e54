//! tsuru's services routes: the services themselves (`/services` list, register and update
//! with tsuru 0.3.9's YAML manifest or 1.x's form, `/services/{service}` info, update and
//! removal, its `doc`, its `plans`, and granting teams at 0.3.9's `/services/{service}/{team}`
//! and 1.x's `/services/{service}/team/{team}`), each the `/v1/services` command or query with
//! the same actor. Their instances and binds are [`super::instances`]' routes, merged here;
//! the lists of services with their instances both serve are here ([`listed`]).
//!
//! Mapping decisions:
//! - A manifest is YAML (0.3.9's `id`, `endpoint: {production: URL}`; the 1.x CLI's manifest
//!   also has `password`, `username` and `team`) unless the body is a form (1.x: `id`,
//!   `endpoint`, `password`, `username`, `team`). Its texts must be YAML text: a number or a
//!   boolean is a 400 asking to quote it (YAML reads `password: 0x1F` as the number 31).
//!   Bosun calls a service with Basic auth as the service's own name, so a `username` other
//!   than `id` is a 400 (the service would refuse every call). The password is the native
//!   one: required, sealed, never shown.
//! - The teams that own a new service: `team` if given, else all the caller's teams (0.3.9 made
//!   every team of its creator an owner); the native rules then decide.
//! - A 1.x update with `team` is refused (400) unless the service is already that team's: Bosun
//!   does not move a service to other owners.
//! - `plans`: Bosun keeps no plans of a service (an instance's `plan` is passed to the service
//!   as given), so the list is empty, for a service the caller may read.
//! - Answers, by the [surface's rule](super): a register is `success`, 201 for a form (1.x), 200
//!   for YAML (0.3.9); 0.3.9's `PUT /services` is 204 for YAML, 200 for a form; 1.x's `PUT
//!   /services/{service}` is 200; a removal 204 bare, 200 under a version prefix; an empty list
//!   is a 204 under a version prefix (as 1.x answers), `[]` bare (0.3.9's clients decode the
//!   body).

use super::body::{self, Fields, FormOrText, Sent};
use super::{json, json_list, text, written, Generation, TsuruCaller};
use crate::auth::RequestOrigin;
use crate::extract::Path;
use crate::problem::Problem;
use crate::startup::AppState;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Router;
use bosun_commands::services::{InstanceView, RegisterService, UpdateService};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The services routes (and, merged, the instances'), merged into tsuru's router.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/services", get(list).post(register).put(update_manifest))
        .route("/services/{service}", get(info).put(update).delete(remove))
        .route("/services/{service}/doc", get(doc).put(set_doc))
        .route("/services/{service}/plans", get(plans))
        .route(
            "/services/{service}/{team}",
            put(grant_team).delete(revoke_team),
        )
        .route(
            "/services/{service}/team/{team}",
            put(grant_team).delete(revoke_team),
        )
        .merge(super::instances::router())
}

// The manifest.

/// An endpoint as a manifest gives it: 0.3.9's `{production: URL}` or a URL.
#[derive(Deserialize)]
#[serde(untagged)]
enum ManifestEndpoint {
    Url(String),
    Environments(BTreeMap<String, String>),
}

/// A service manifest in YAML (tsuru's `service-create` file); its texts are read by
/// [`manifest_text`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YamlManifest {
    #[serde(default)]
    id: Option<serde_yaml::Value>,
    endpoint: Option<ManifestEndpoint>,
    #[serde(default)]
    password: Option<serde_yaml::Value>,
    #[serde(default)]
    username: Option<serde_yaml::Value>,
    #[serde(default)]
    team: Option<serde_yaml::Value>,
}

/// A manifest's field `name` as text; absent or `null`: none. A number or a boolean is a 400:
/// YAML reads `password: 0x1F` as the number 31, `1e3` as 1000, `+12` as 12, not what was
/// written (a leading zero, `0123`, stays text); a list or a map is a 400 too. The message
/// never shows the value (it may be the password).
fn manifest_text(
    name: &'static str,
    value: Option<serde_yaml::Value>,
) -> Result<Option<String>, Problem> {
    match value {
        None | Some(serde_yaml::Value::Null) => Ok(None),
        Some(serde_yaml::Value::String(text)) => Ok(Some(text)),
        Some(serde_yaml::Value::Number(_) | serde_yaml::Value::Bool(_)) => {
            Err(Problem::invalid_field(
                name,
                format!(
                    "is a YAML number or boolean, which may not be what was written (0x1F reads \
                     as 31, 1e3 as 1000): quote it ({name}: \"…\")"
                ),
            ))
        }
        Some(_) => Err(Problem::invalid_field(name, "must be text")),
    }
}

/// What a register or an update says, whichever way it was sent. Its `Debug` is not derived:
/// it holds the password.
struct Manifest {
    id: Option<String>,
    endpoint: Option<String>,
    password: Option<String>,
    team: Option<String>,
    /// A form (tsuru 1.x) or YAML text (0.3.9).
    sent: Sent,
}

impl<S: Send + Sync> FromRequest<S> for Manifest {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        let text = match body::read_form_or_text(request, state).await? {
            FormOrText::Form(pairs) => return Manifest::of_form(Fields::form(pairs)),
            FormOrText::Text(text) => text,
            FormOrText::Empty => {
                return Err(Problem::invalid_field(
                    "body",
                    "is empty: send the service's manifest (YAML: id, endpoint, password)",
                ))
            }
        };
        Manifest::of_yaml(&text)
    }
}

impl Manifest {
    /// tsuru 0.3.9's YAML manifest: `id`, `endpoint` (a URL or `{production: URL}`),
    /// `password`, `username`, `team`.
    fn of_yaml(text: &str) -> Result<Manifest, Problem> {
        let yaml: YamlManifest = serde_yaml::from_str(text).map_err(|e| {
            Problem::bad_request(format!("the manifest is not valid YAML: {e}"), vec![])
        })?;
        let endpoint = match yaml.endpoint {
            None => None,
            Some(ManifestEndpoint::Url(url)) => Some(url),
            Some(ManifestEndpoint::Environments(mut environments)) => {
                Some(environments.remove("production").ok_or_else(|| {
                    Problem::invalid_field(
                        "endpoint",
                        "must have a production endpoint (endpoint: {production: URL})",
                    )
                })?)
            }
        };
        let id = manifest_text("id", yaml.id)?.filter(|id| !id.is_empty());
        let password = manifest_text("password", yaml.password)?;
        let username = manifest_text("username", yaml.username)?;
        let team = manifest_text("team", yaml.team)?;
        check_username(username.filter(|u| !u.is_empty()), &id)?;
        Ok(Manifest {
            id,
            endpoint: endpoint.filter(|e| !e.is_empty()),
            password,
            team: team.filter(|t| !t.is_empty()),
            sent: Sent::Text,
        })
    }

    /// tsuru 1.x's form: `id`, `endpoint`, `password`, `username`, `team`.
    fn of_form(fields: Fields) -> Result<Manifest, Problem> {
        if fields.fields.contains_key("doc") {
            return Err(Problem::invalid_field(
                "doc",
                "is set with PUT /services/{service}/doc",
            ));
        }
        let manifest = Manifest {
            id: fields.non_empty("id")?,
            endpoint: fields.non_empty("endpoint")?,
            password: fields.text("password")?,
            team: fields.non_empty("team")?,
            sent: Sent::Form,
        };
        check_username(fields.non_empty("username")?, &manifest.id)?;
        Ok(manifest)
    }
}

/// Bosun authenticates to a service as the service's name: another `username` is a 400.
fn check_username(username: Option<String>, id: &Option<String>) -> Result<(), Problem> {
    match username {
        Some(username) if Some(&username) != id.as_ref() => Err(Problem::invalid_field(
            "username",
            "must be the service's id or absent: Bosun calls a service with Basic auth as the \
             service's name",
        )),
        _ => Ok(()),
    }
}

// The routes.

/// One service of a list: 0.3.9's `{service, instances}`, with 1.x's `plans` and
/// `service_instances` (an instance's plan, and its name with no tags).
#[derive(Serialize)]
struct ServiceEntry {
    service: String,
    instances: Vec<String>,
    plans: Vec<String>,
    service_instances: Vec<InstanceEntry>,
}

#[derive(Serialize)]
struct InstanceEntry {
    name: String,
    tags: Vec<String>,
}

/// `GET /services`: the services the caller may use (the native list), each with the
/// instances it may read.
async fn list(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    generation: Generation,
) -> Result<Response, Problem> {
    let entries = listed(&state, &caller.actor, None).await?;
    Ok(json_list(&entries, generation.is_1x()))
}

/// The services `actor` may use (the native list), each as `{service, instances, plans,
/// service_instances}` with the instances it may read: all of them, or only those bound to
/// `bound_to`. A service with none is listed all the same (as tsuru lists it).
pub(super) async fn listed(
    state: &AppState,
    actor: &bosun_commands::Actor,
    bound_to: Option<&str>,
) -> Result<Vec<impl Serialize>, Problem> {
    let services = state.queries.services(actor).await?;
    let mut entries = Vec::with_capacity(services.len());
    for service in services {
        let mut instances = if service.instances.is_empty() {
            vec![]
        } else {
            state.queries.instances(actor, &service.name).await?
        };
        if let Some(app) = bound_to {
            instances.retain(|i| i.apps.iter().any(|a| a == app));
        }
        entries.push(entry(service.name, instances));
    }
    Ok(entries)
}

/// A service and its instances as a list shows them.
fn entry(service: String, instances: Vec<InstanceView>) -> ServiceEntry {
    ServiceEntry {
        service,
        instances: instances.iter().map(|i| i.name.clone()).collect(),
        plans: instances.iter().map(|i| i.plan.clone()).collect(),
        service_instances: instances
            .into_iter()
            .map(|i| InstanceEntry {
                name: i.name,
                tags: vec![],
            })
            .collect(),
    }
}

/// `POST /services`: registers the service of the manifest; `success` (201 for a form).
async fn register(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    manifest: Manifest,
) -> Result<Response, Problem> {
    let Some(name) = manifest.id else {
        return Err(Problem::invalid_field(
            "id",
            "is required: the service's name",
        ));
    };
    let Some(endpoint) = manifest.endpoint else {
        return Err(Problem::invalid_field(
            "endpoint",
            "is required: the service's API (endpoint: {production: URL})",
        ));
    };
    let teams = match manifest.team {
        Some(team) => vec![team],
        None => caller.holder.teams.clone(),
    };
    let (_, w) = state
        .commands
        .register_service(
            &caller.actor,
            &origin,
            RegisterService {
                name,
                endpoint,
                password: SecretString::from(manifest.password.unwrap_or_default()),
                teams,
                doc: None,
            },
            &state.allow_insecure_hosts,
        )
        .await?;
    let status = match Generation::Old.answering(Some(manifest.sent)) {
        Generation::OneX => StatusCode::CREATED,
        Generation::Old => StatusCode::OK,
    };
    Ok(written(&state, text(status, "success"), w))
}

/// `PUT /services` (0.3.9): updates the service the manifest's `id` names; 204 (200 for a
/// form).
async fn update_manifest(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    manifest: Manifest,
) -> Result<Response, Problem> {
    let Some(service) = manifest.id.clone() else {
        return Err(Problem::invalid_field(
            "id",
            "is required: the service's name",
        ));
    };
    let answer = Generation::Old.answering(Some(manifest.sent));
    apply_update(&state, &caller, &origin, &service, manifest, answer).await
}

/// `PUT /services/{service}` (1.x only, a form): updates its endpoint and password; 200.
async fn update(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    Path(service): Path<String>,
    manifest: Manifest,
) -> Result<Response, Problem> {
    if manifest.id.as_ref().is_some_and(|id| *id != service) {
        return Err(Problem::invalid_field(
            "id",
            "must be the service's name in the path (a service is not renamed)",
        ));
    }
    apply_update(
        &state,
        &caller,
        &origin,
        &service,
        manifest,
        Generation::OneX,
    )
    .await
}

/// Updates `service` as `manifest` says, answered as `answer`'s tsuru: 200 (1.x), 204 (0.3.9).
async fn apply_update(
    state: &AppState,
    caller: &crate::auth::Caller,
    origin: &bosun_commands::Origin,
    service: &str,
    manifest: Manifest,
    answer: Generation,
) -> Result<Response, Problem> {
    if let Some(team) = &manifest.team {
        let view = state.queries.service(&caller.actor, service).await?;
        if !view.owner_teams.contains(team) {
            return Err(Problem::invalid_field(
                "team",
                format!(
                    "Bosun does not move a service to other owners: {service} is owned by {}",
                    view.owner_teams.join(", ")
                ),
            ));
        }
    }
    let (_, w) = state
        .commands
        .update_service(
            &caller.actor,
            origin,
            service,
            UpdateService {
                endpoint: manifest.endpoint,
                password: manifest
                    .password
                    .filter(|p| !p.is_empty())
                    .map(SecretString::from),
            },
            &state.allow_insecure_hosts,
        )
        .await?;
    let status = match answer {
        Generation::OneX => StatusCode::OK,
        Generation::Old => StatusCode::NO_CONTENT,
    };
    Ok(written(state, status.into_response(), w))
}

/// An instance as tsuru shows one: 0.3.9's capitalised `{Name, ServiceName, PlanName, Apps,
/// Teams, Info}` with 1.x's `TeamOwner`, `Description`, `PlanDescription`, `CustomInfo` and
/// `Tags` (Bosun has no plan descriptions, custom info or tags: empty).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct TsuruInstance {
    name: String,
    service_name: String,
    plan_name: String,
    plan_description: String,
    apps: Vec<String>,
    teams: Vec<String>,
    team_owner: String,
    description: String,
    tags: Vec<String>,
    info: Option<BTreeMap<String, String>>,
    custom_info: BTreeMap<String, String>,
}

impl TsuruInstance {
    pub(super) fn of(view: bosun_projections::read_models::services::InstanceView) -> Self {
        TsuruInstance {
            name: view.name,
            service_name: view.service,
            plan_name: view.plan,
            plan_description: String::new(),
            apps: view.apps,
            teams: view.teams,
            team_owner: view.team_owner,
            description: view.description,
            tags: vec![],
            info: None,
            custom_info: BTreeMap::new(),
        }
    }
}

/// `GET /services/{service}`: its instances the caller may read.
async fn info(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    Path(service): Path<String>,
) -> Result<Response, Problem> {
    let instances = state.queries.instances(&caller.actor, &service).await?;
    let shown: Vec<TsuruInstance> = instances.into_iter().map(TsuruInstance::of).collect();
    Ok(json(StatusCode::OK, &shown))
}

/// `DELETE /services/{service}`: 204 (200 on a versioned path); 409 `service_has_instances`.
async fn remove(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    generation: Generation,
    Path(service): Path<String>,
) -> Result<Response, Problem> {
    let w = state
        .commands
        .remove_service(&caller.actor, &origin, &service)
        .await?;
    let status = match generation {
        Generation::OneX => StatusCode::OK,
        Generation::Old => StatusCode::NO_CONTENT,
    };
    Ok(written(&state, status.into_response(), w))
}

/// `GET /services/{service}/doc`: its documentation, as text.
async fn doc(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    Path(service): Path<String>,
) -> Result<Response, Problem> {
    let doc = state.queries.service_doc(&caller.actor, &service).await?;
    Ok(text(StatusCode::OK, doc))
}

/// The documentation a `PUT …/doc` sends: 1.x's form field `doc`, or 0.3.9's whole body as
/// text (whatever its `Content-Type`).
struct DocBody(String);

impl<S: Send + Sync> FromRequest<S> for DocBody {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        Ok(DocBody(
            match body::read_form_or_text(request, state).await? {
                FormOrText::Form(pairs) => Fields::form(pairs).text("doc")?.unwrap_or_default(),
                FormOrText::Text(text) => text,
                FormOrText::Empty => String::new(),
            },
        ))
    }
}

/// `PUT /services/{service}/doc`: 200.
async fn set_doc(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    Path(service): Path<String>,
    DocBody(doc): DocBody,
) -> Result<Response, Problem> {
    let w = state
        .commands
        .set_service_doc(&caller.actor, &origin, &service, doc)
        .await?;
    Ok(written(&state, StatusCode::OK.into_response(), w))
}

/// `GET /services/{service}/plans`: none (Bosun keeps no plans), for a service the caller
/// may read.
async fn plans(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    Path(service): Path<String>,
) -> Result<Response, Problem> {
    state.queries.service(&caller.actor, &service).await?;
    Ok(json(StatusCode::OK, &Vec::<String>::new()))
}

/// `PUT /services/{service}/{team}` (0.3.9), `PUT /services/{service}/team/{team}` (1.x): the
/// team may use the service; 200.
async fn grant_team(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    Path((service, team)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let w = state
        .commands
        .grant_service_team(&caller.actor, &origin, &service, &team)
        .await?;
    Ok(written(&state, StatusCode::OK.into_response(), w))
}

/// `DELETE /services/{service}/{team}`, `DELETE /services/{service}/team/{team}`: 200.
async fn revoke_team(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    Path((service, team)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let w = state
        .commands
        .revoke_service_team(&caller.actor, &origin, &service, &team)
        .await?;
    Ok(written(&state, StatusCode::OK.into_response(), w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(yaml: &str) -> Result<Option<String>, Problem> {
        let manifest: YamlManifest = serde_yaml::from_str(yaml).unwrap();
        manifest_text("password", manifest.password)
    }

    #[test]
    fn a_manifests_texts_are_yaml_text_and_a_number_is_refused() {
        for (yaml, text) in [
            ("password: \"0x1F\"\n", "0x1F"),
            ("password: '1e3'\n", "1e3"),
            // YAML 1.2: a leading zero is text, not a number.
            ("password: 0123\n", "0123"),
        ] {
            assert_eq!(manifest(yaml).unwrap().as_deref(), Some(text), "{yaml}");
        }
        assert_eq!(manifest("id: mysql\n").unwrap(), None);
        for yaml in [
            "password: 0x1F\n",
            "password: 1e3\n",
            "password: +12\n",
            "password: 123456\n",
            "password: true\n",
        ] {
            let problem = manifest(yaml).unwrap_err();
            assert_eq!(problem.errors[0].field, "password", "{yaml}");
            assert!(problem.errors[0].message.contains("quote it"), "{yaml}");
        }
        assert!(manifest("password: [a]\n").is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// A manifest written by a YAML writer (any text, quoted where YAML needs it) reads back
        /// as those texts, the endpoint either way 0.3.9 writes it.
        #[test]
        fn a_written_manifest_reads_back_as_its_texts(
            id in "[a-z][a-z0-9-]{0,20}",
            endpoint in proptest::prelude::any::<String>(),
            password in proptest::prelude::any::<String>(),
            team in proptest::option::of(proptest::prelude::any::<String>()),
            by_environment in proptest::prelude::any::<bool>(),
        ) {
            let endpoint_value = if by_environment {
                serde_yaml::to_value(BTreeMap::from([("production", endpoint.as_str())])).unwrap()
            } else {
                serde_yaml::Value::String(endpoint.clone())
            };
            let mut fields = serde_yaml::Mapping::new();
            fields.insert("id".into(), id.clone().into());
            fields.insert("endpoint".into(), endpoint_value);
            fields.insert("password".into(), password.clone().into());
            fields.insert("username".into(), id.clone().into());
            if let Some(team) = &team {
                fields.insert("team".into(), team.clone().into());
            }
            let text = serde_yaml::to_string(&fields).unwrap();
            let read = Manifest::of_yaml(&text);
            proptest::prop_assert!(read.is_ok(), "{text:?}: {:?}", read.err());
            let read = read.unwrap();
            proptest::prop_assert_eq!(read.id, Some(id));
            proptest::prop_assert_eq!(read.endpoint, Some(endpoint).filter(|e| !e.is_empty()));
            proptest::prop_assert_eq!(read.password, Some(password));
            proptest::prop_assert_eq!(read.team, team.filter(|t| !t.is_empty()));
        }

        /// Any text gets an answer, a manifest or a 400: never a panic, never another status.
        #[test]
        fn any_text_is_a_manifest_or_a_400(text in proptest::prop_oneof![
            proptest::prelude::any::<String>(),
            "(id|endpoint|password|team|username|production|[a-z]{1,5})(: |:\\n  )[-\\[\\]{}:,'\"&*!|>%@` a-z0-9.#\\n]{0,40}",
        ]) {
            if let Err(problem) = Manifest::of_yaml(&text) {
                proptest::prop_assert_eq!(problem.status, 400, "{:?}", text);
            }
        }
    }

    #[test]
    fn a_username_other_than_the_id_is_refused() {
        let id = Some("mysql".to_string());
        assert!(check_username(None, &id).is_ok());
        assert!(check_username(Some("mysql".into()), &id).is_ok());
        let problem = check_username(Some("admin".into()), &id).unwrap_err();
        assert_eq!(problem.errors[0].field, "username");
    }
}
