//! `/v1`: the native API, one module per resource. Each module exposes `router()`, its routes
//! with their OpenAPI paths; this module merges them in one place, and serves the generated
//! OpenAPI 3.1 document at `/v1/openapi.json` and a page for people at `/v1/docs`.
//!
//! A new resource is a new file here plus one line in [`router`].

pub mod app_tokens;
pub mod apps;
pub mod audit;
pub mod auth;
pub mod catalog;
pub mod events;
pub mod healers;
pub mod instances;
pub mod jobs;
pub mod keys;
pub mod orchestrations;
pub mod password_reset;
pub mod platforms;
pub mod quota;
pub mod runnables;
pub mod services;
pub mod streams;
pub mod swap;
pub mod teams;
pub mod tokens;
pub mod users;

use crate::startup::AppState;
use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Bosun",
        description = "The native API of Bosun, an event-sourced control plane for running jobs and managing apps. Errors are RFC 9457 problem details with a stable `code`; writes answer with `Bosun-Position`, and a GET may send `Bosun-Min-Position` to read its own write on any node."
    ),
    components(schemas(crate::problem::Problem, crate::problem::FieldError)),
    modifiers(&BearerToken),
    tags(
        (name = "auth", description = "sessions and the caller"),
        (name = "users"), (name = "teams"), (name = "tokens"),
        (name = "keys", description = "users' SSH public keys"),
        (name = "password-reset", description = "a forgotten password, reset by email"),
        (name = "healers", description = "named catalog tasks an admin runs by name"),
        (name = "catalog", description = "the tasks jobs may run"),
        (name = "jobs", description = "catalog tasks run as jobs"),
        (name = "orchestrations", description = "ordered tasks on a cron schedule"),
        (name = "apps", description = "apps owned by teams: their cnames, environment, restarts and swaps"),
        (name = "platforms", description = "what apps run on"),
        (name = "quota", description = "how many apps a user may own"),
        (name = "services", description = "service APIs (tsuru's) that provision instances, and the teams that may use them"),
        (name = "instances", description = "a service's instances, their status, and binding them to apps"),
        (name = "runnables", description = "file trees with a start command, forked from images, and saved as images"),
        (name = "events", description = "the log in position order, and the live feed"),
        (name = "streams", description = "one stream of the log"),
        (name = "audit", description = "who did what, when, from where"),
    )
)]
struct ApiDoc;

/// `Authorization: Bearer <token>`.
struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every `/v1` route and its OpenAPI document.
pub fn documented() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (routes, mut document) = merged();
    name_operations(&mut document);
    unwild_paths(&mut document);
    key_posts(&mut document);
    travel_gets(&mut document);
    (routes, document)
}

/// Every `POST` takes an `Idempotency-Key` (`crate::idempotency`); those that key their jobs
/// themselves document theirs.
fn key_posts(document: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::{ObjectBuilder, RefOr, Required, Type};
    for operation in document
        .paths
        .paths
        .values_mut()
        .filter_map(|item| item.post.as_mut())
    {
        let parameters = operation.parameters.get_or_insert_with(Vec::new);
        let has_key = parameters
            .iter()
            .any(|p| matches!(p, RefOr::T(p) if p.name.eq_ignore_ascii_case("idempotency-key")));
        if has_key {
            continue;
        }
        parameters.push(RefOr::T(
            ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "1 to 255 visible ASCII characters: the same key and request within 24 h \
                     answer the first success again (with `Idempotency-Replayed: true`); another \
                     request with the key is a 409 `idempotency_key_reused`",
                ))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .min_length(Some(1))
                        .max_length(Some(255))
                        .pattern(Some("^[!-~]+$")),
                ))
                .build(),
        ));
    }
}

/// Every GET of one resource takes `as_of_version` (`crate::versions`).
fn travel_gets(document: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::{ObjectBuilder, RefOr, Required, Type};
    for (path, item) in document.paths.paths.iter_mut() {
        let Some(operation) = item.get.as_mut() else {
            continue;
        };
        if !crate::versions::tagged_on_read(path) {
            continue;
        }
        operation
            .parameters
            .get_or_insert_with(Vec::new)
            .push(RefOr::T(
                ParameterBuilder::new()
                    .name(crate::versions::AS_OF_VERSION)
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .description(Some(
                        "the resource as it was after this version of its stream, folded from \
                         the log (the versions are those `ETag` tells, from 0); 404 for a version it never had",
                    ))
                    .schema(Some(
                        ObjectBuilder::new()
                            .schema_type(Type::Integer)
                            .minimum(Some(0))
                            .maximum(Some(i64::MAX)),
                    ))
                    .build(),
            ));
    }
}

/// A route's catch-all segment (`{*path}`, axum's spelling, which the document's paths are
/// registered with) is an ordinary path parameter in OpenAPI: `{path}`.
fn unwild_paths(document: &mut utoipa::openapi::OpenApi) {
    let paths = std::mem::take(&mut document.paths.paths);
    document.paths.paths = paths
        .into_iter()
        .map(|(path, item)| (path.replace("{*", "{"), item))
        .collect();
}

/// Operation ids are the handlers' names (`list`, `get`…), which repeat across resources; the
/// document needs each once: `<tag>_<handler>`.
fn name_operations(document: &mut utoipa::openapi::OpenApi) {
    for item in document.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            let tag = operation
                .tags
                .as_ref()
                .and_then(|tags| tags.first())
                .cloned()
                .unwrap_or_default();
            if let Some(id) = &mut operation.operation_id {
                *id = format!("{tag}_{id}");
            }
        }
    }
}

fn merged() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(auth::router())
        .merge(users::router())
        .merge(teams::router())
        .merge(tokens::router())
        .merge(app_tokens::router())
        .merge(catalog::router())
        .merge(jobs::router())
        .merge(orchestrations::router())
        .merge(apps::router())
        .merge(platforms::router())
        .merge(swap::router())
        .merge(quota::router())
        .merge(services::router())
        .merge(instances::router())
        .merge(runnables::router())
        .merge(events::router())
        .merge(streams::router())
        .merge(audit::router())
        .merge(keys::router())
        .merge(password_reset::router())
        .merge(healers::router())
        .merge(crate::routes::live::router())
        .split_for_parts()
}

/// The `/v1` routes, with `/v1/openapi.json` and `/v1/docs`.
pub fn router() -> Router<AppState> {
    let (routes, document) = documented();
    routes.merge(SwaggerUi::new("/v1/docs").url("/v1/openapi.json", document))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A route added with a plain `.route(…)` would be served but missing from the document:
    /// every `/v1` route goes through `routes!`, which registers its OpenAPI path with it.
    #[test]
    fn no_v1_route_bypasses_the_document() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/routes");
        let mut undocumented = Vec::new();
        let mut folders = vec![dir.join("v1"), dir.join("live")];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).expect("the routes folder") {
                let path = entry.expect("a routes file").path();
                if path.is_dir() {
                    folders.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).expect("a routes file");
                    if text.contains(".route(\"") {
                        undocumented.push(path.display().to_string());
                    }
                }
            }
        }
        assert!(undocumented.is_empty(), "plain routes in {undocumented:?}");
    }

    #[test]
    fn the_document_is_openapi_3_1_with_the_bearer_scheme() {
        let (_, document) = documented();
        let json = serde_json::to_value(&document).expect("the document serializes");
        assert_eq!(json["openapi"], "3.1.0");
        assert_eq!(
            json["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        assert!(json["paths"]["/v1/jobs"]["post"]["responses"]["409"].is_object());
        let create_instance = &json["paths"]["/v1/services/{service}/instances"]["post"];
        assert!(create_instance["responses"]["502"].is_object());
        assert!(json["components"]["schemas"]["Problem"].is_object());
        let file = &json["paths"]["/v1/runnables/{id}/files/{path}"];
        assert!(file["put"]["responses"]["413"].is_object(), "{file}");
        assert!(!json["paths"].to_string().contains("{*"));
    }

    #[test]
    fn operation_ids_are_unique() {
        let (_, document) = documented();
        let json = serde_json::to_value(&document).expect("the document serializes");
        let mut ids: Vec<String> = json["paths"]
            .as_object()
            .into_iter()
            .flat_map(|paths| paths.values())
            .flat_map(|item| item.as_object().into_iter().flat_map(|ops| ops.values()))
            .filter_map(|operation| operation["operationId"].as_str().map(str::to_string))
            .collect();
        let count = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), count, "{ids:?}");
    }
}
