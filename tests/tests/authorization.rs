//! The authorization matrix, over real HTTP: every route of the server's router
//! (`bosun_api::routes::operations`, read from the router itself) called by each kind of caller
//! in [`CALLERS`], each in a world of its own, and what it got held against one table: [`MATRIX`]
//! for the native API and the operational routes, [`COMPAT_MATRIX`] for the old systems'
//! surfaces, the console and GitHub sign-in. An operation without a row, or a row whose
//! operation is gone, fails the test, which then prints the table as the server answered it: a
//! new route needs its row, read and agreed to before it is pasted in.
//!
//! A write sends a body that would do it ([`request_of`]), so that the answer is the gate's, not
//! a 400 for the body: a call passes the gate when the answer is neither 401, 403 nor 404 (it
//! was done, or refused for the state it found, a 409, which the table tells apart). The server
//! runs in the test's process (`spawn_app`). Every compat surface takes the native
//! `Authorization: Bearer` beside its own header, so one client per caller walks them all.

use bosun_tests::service_api::ServiceApi;
use bosun_tests::{spawn_app, Api};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

const CONFIG: &str = r#"
http_tasks:
  allow_insecure_hosts: ["127.0.0.1"]
catalog:
  shop:
    production:
      ok:
        command: ["true"]
      sleep:
        command: ["sleep", "600"]
healers:
  heal-shop: shop/production/ok
# Room for the world's four jobs that wait (`sleep`) and those that end.
runner:
  workers: 8
"#;

const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII+3z07g3FdvO+3v28bu2GWa2J4L648YyFv/WtM2LluA ann@laptop";

/// The kinds of caller, in the order of a row's columns: no token; an expired token (ann's);
/// cid, who shares nothing with ann; bob, a member of ann's team `ops`; ann, who made
/// everything in the world; an admin; ann's token with only the `read` scope; a token of ann's
/// app `shop`; an anonymous user (`POST /v1/users/anonymous`).
const CALLERS: [&str; 9] = [
    "none",
    "expired",
    "other",
    "member",
    "owner",
    "admin",
    "read-only",
    "app token",
    "anonymous",
];

/// Routes of `/v1` the document does not list.
const UNDOCUMENTED: &[&str] = &[
    "GET /v1/openapi.json",
    "GET /v1/docs",
    "GET /v1/docs/",
    "GET /v1/docs/{rest}",
];

/// Whether `operation`'s row is in [`MATRIX`] (else in [`COMPAT_MATRIX`]).
fn is_native(operation: &str) -> bool {
    let path = operation
        .split_once(' ')
        .map_or(operation, |(_, path)| path);
    path.starts_with("/v1/") || ["/healthz", "/readyz", "/metrics"].contains(&path)
}

/// What each caller gets from each operation, in [`CALLERS`]' order: `1` a 401, `3` a 403, `4` a
/// 404; past the gate, `0` a 400 (refused for what it sent), `c` a 409 (for the state it found),
/// `.` any other answer.
const MATRIX: &[(&str, &str)] = &[
    ("DELETE /v1/apps/{app}", "1 1 3 . . . 3 3 3"),
    ("DELETE /v1/apps/{app}/cnames", "1 1 3 . . . 3 3 3"),
    ("DELETE /v1/apps/{app}/env", "1 1 3 . . . 3 . 3"),
    ("DELETE /v1/apps/{app}/teams/{team}", "1 1 3 c c c 3 3 3"),
    (
        "DELETE /v1/apps/{app}/tokens/{token_id}",
        "1 1 3 . . . 3 3 3",
    ),
    // Each caller ends a token of its own ([`fresh`]); the app token's ends too.
    ("DELETE /v1/auth/tokens/current", "1 1 . . . . . . ."),
    ("DELETE /v1/jobs/{id}/name", "1 1 3 3 c c 3 3 3"),
    ("DELETE /v1/orchestrations/{id}", "1 1 3 3 . . 3 3 3"),
    ("DELETE /v1/platforms/{platform}", "1 1 3 3 3 c 3 3 3"),
    ("DELETE /v1/runnables/{id}", "1 1 4 4 . . 3 3 4"),
    (
        "DELETE /v1/runnables/{id}/files/{path}",
        "1 1 4 4 . . 3 3 4",
    ),
    ("DELETE /v1/services/{service}", "1 1 4 c c c 3 3 3"),
    (
        "DELETE /v1/services/{service}/instances/{instance}",
        "1 1 4 . . . 3 3 3",
    ),
    (
        "DELETE /v1/services/{service}/instances/{instance}/apps/{app}",
        "1 1 3 . . . 3 3 3",
    ),
    (
        "DELETE /v1/services/{service}/teams/{team}",
        "1 1 4 c c c 3 3 3",
    ),
    ("DELETE /v1/teams/{team}", "1 1 3 c c c 3 3 3"),
    (
        "DELETE /v1/teams/{team}/members/{username}",
        "1 1 3 . . . 3 3 3",
    ),
    ("DELETE /v1/tokens/{token_id}", "1 1 3 3 . . 3 3 3"),
    ("DELETE /v1/users/{username}", "1 1 3 3 . . 3 3 3"),
    (
        "DELETE /v1/users/{username}/keys/{name}",
        "1 1 3 3 . . 3 3 3",
    ),
    // The operational routes are for the node's own watchers, on its own address.
    ("GET /healthz", ". . . . . . . . ."),
    ("GET /metrics", ". . . . . . . . ."),
    ("GET /readyz", ". . . . . . . . ."),
    ("GET /v1/apps", "1 1 . . . . . . 3"),
    ("GET /v1/apps/{app}", "1 1 3 . . . . . 3"),
    ("GET /v1/apps/{app}/env", "1 1 3 . . . . . 3"),
    ("GET /v1/apps/{app}/tokens", "1 1 3 . . . . 3 3"),
    ("GET /v1/audit", "1 1 3 3 3 . 3 3 3"),
    ("GET /v1/auth/whoami", "1 1 . . . . . . ."),
    ("GET /v1/catalog", "1 1 . . . . . 3 3"),
    // The page for people that reads the document.
    ("GET /v1/docs", ". . . . . . . . ."),
    ("GET /v1/docs/", ". . . . . . . . ."),
    ("GET /v1/docs/{rest}", ". . . . . . . . ."),
    ("GET /v1/events", "1 1 . . . . . 3 3"),
    // Without a token the socket opens and waits 5 s for a first message `{"token": …}` (what
    // browsers send), then closes 4401; a bad token in the header is a 401 before the upgrade.
    ("GET /v1/events/live", ". 1 . . . . . 3 3"),
    ("GET /v1/healers", "1 1 . . . . . 3 3"),
    ("GET /v1/jobs", "1 1 . . . . . . 3"),
    ("GET /v1/jobs/{id}", "1 1 3 . . . . . 3"),
    ("GET /v1/jobs/{id}/output", "1 1 3 . . . . . 3"),
    ("GET /v1/openapi.json", ". . . . . . . . ."),
    ("GET /v1/orchestrations", "1 1 . . . . . 3 3"),
    ("GET /v1/orchestrations/{id}", "1 1 . . . . . 3 3"),
    ("GET /v1/orchestrations/{id}/jobs", "1 1 . . . . . 3 3"),
    (
        "GET /v1/orchestrations/{id}/notifications",
        "1 1 . . . . . 3 3",
    ),
    ("GET /v1/orchestrations/{id}/tasks", "1 1 . . . . . 3 3"),
    ("GET /v1/platforms", "1 1 . . . . . 3 3"),
    ("GET /v1/runnables", "1 1 . . . . . 3 ."),
    // A runnable without an image is its owner's alone: hidden (404) from anyone else.
    ("GET /v1/runnables/{id}", "1 1 4 4 . . . 3 4"),
    ("GET /v1/runnables/{id}/files", "1 1 4 4 . . . 3 4"),
    ("GET /v1/runnables/{id}/files/{path}", "1 1 4 4 . . . 3 4"),
    ("GET /v1/runnables/{id}/logs", "1 1 4 4 . . . 3 4"),
    ("GET /v1/services", "1 1 . . . . . 3 3"),
    // A service is seen by the teams that may use it: hidden (404) from anyone else.
    ("GET /v1/services/{service}", "1 1 4 . . . . 3 3"),
    ("GET /v1/services/{service}/doc", "1 1 4 . . . . 3 3"),
    ("GET /v1/services/{service}/instances", "1 1 4 . . . . 3 3"),
    (
        "GET /v1/services/{service}/instances/{instance}",
        "1 1 4 . . . . 3 3",
    ),
    (
        "GET /v1/services/{service}/instances/{instance}/status",
        "1 1 4 . . . . 3 3",
    ),
    ("GET /v1/streams/{stream_id}", "1 1 3 . . . . 3 3"),
    ("GET /v1/teams", "1 1 . . . . . 3 3"),
    ("GET /v1/teams/{team}", "1 1 . . . . . 3 3"),
    ("GET /v1/tokens", "1 1 . . . . . 3 ."),
    ("GET /v1/users", "1 1 3 3 3 . 3 3 3"),
    ("GET /v1/users/me", "1 1 . . . . . 3 ."),
    ("GET /v1/users/{username}", "1 1 3 3 . . . 3 3"),
    ("GET /v1/users/{username}/keys", "1 1 3 3 . . . 3 3"),
    ("GET /v1/users/{username}/quota", "1 1 3 3 . . . 3 3"),
    ("PATCH /v1/apps/{app}", "1 1 3 . . . 3 3 3"),
    ("PATCH /v1/orchestrations/{id}", "1 1 3 3 . . 3 3 3"),
    ("PATCH /v1/platforms/{platform}", "1 1 3 3 3 . 3 3 3"),
    ("PATCH /v1/runnables/{id}", "1 1 4 4 . . 3 3 4"),
    ("PATCH /v1/services/{service}", "1 1 4 . . . 3 3 3"),
    ("PATCH /v1/users/{username}", "1 1 3 3 3 . 3 3 3"),
    ("POST /v1/apps", "1 1 3 . . . 3 3 3"),
    ("POST /v1/apps/{app}/cnames", "1 1 3 . . . 3 3 3"),
    ("POST /v1/apps/{app}/restart", "1 1 3 . . . 3 . 3"),
    ("POST /v1/apps/{app}/tokens", "1 1 3 . . . 3 3 3"),
    // Sign-in, and the routes that need no caller: anyone.
    ("POST /v1/auth/tokens", ". . . . . . . . ."),
    ("POST /v1/healers/{healer}", "1 1 3 3 3 . 3 3 3"),
    ("POST /v1/jobs", "1 1 3 . . . 3 . 3"),
    // Stopping a job is for its submitter, an admin, or its app's token; restarting it is for
    // whoever may submit its task (a member of the app's team).
    ("POST /v1/jobs/{id}/cancel", "1 1 3 3 c c 3 c 3"),
    ("POST /v1/jobs/{id}/kill", "1 1 3 3 . . 3 . 3"),
    ("POST /v1/jobs/{id}/restart", "1 1 3 c c c 3 c 3"),
    ("POST /v1/jobs/{id}/stop", "1 1 3 3 . . 3 . 3"),
    ("POST /v1/orchestrations", "1 1 . . . . 3 3 3"),
    ("POST /v1/orchestrations/{id}/jobs", "1 1 3 3 . . 3 3 3"),
    ("POST /v1/orchestrations/{id}/token", "1 1 3 3 . . 3 3 3"),
    ("POST /v1/platforms", "1 1 3 3 3 . 3 3 3"),
    ("POST /v1/runnables", "1 1 . . . . 3 3 ."),
    ("POST /v1/runnables/{id}/restart", "1 1 4 4 . . 3 3 4"),
    ("POST /v1/runnables/{id}/save", "1 1 4 4 . . 3 3 4"),
    ("POST /v1/runnables/{id}/start", "1 1 4 4 . . 3 3 4"),
    ("POST /v1/runnables/{id}/stop", "1 1 4 4 . . 3 3 4"),
    ("POST /v1/services", "1 1 3 . . . 3 3 3"),
    ("POST /v1/services/{service}/instances", "1 1 4 . . . 3 3 3"),
    ("POST /v1/swap", "1 1 3 . . . 3 3 3"),
    ("POST /v1/teams", "1 1 . . . . 3 3 3"),
    ("POST /v1/tokens", "1 1 . . . . 3 3 3"),
    ("POST /v1/users", "1 1 3 3 3 . 3 3 3"),
    ("POST /v1/users/anonymous", ". . . . . . . . ."),
    // Only an anonymous user registers; ann has removed herself by then (`order`): a 401.
    ("POST /v1/users/me/register", "1 1 3 3 1 3 3 3 ."),
    ("POST /v1/users/{username}/keys", "1 1 3 3 c c 3 3 3"),
    // Anyone may ask for a reset (answered alike for any name); here no mail is configured: 503.
    (
        "POST /v1/users/{username}/password-reset",
        ". . . . . . . . .",
    ),
    (
        "POST /v1/users/{username}/password-reset/{token}",
        ". . . . . . . . .",
    ),
    ("PUT /v1/apps/{app}/env", "1 1 3 . . . 3 . 3"),
    ("PUT /v1/apps/{app}/teams/{team}", "1 1 3 . . . 3 3 3"),
    (
        "PUT /v1/orchestrations/{id}/notifications",
        "1 1 3 3 . . 3 3 3",
    ),
    ("PUT /v1/orchestrations/{id}/tasks", "1 1 3 3 . . 3 3 3"),
    ("PUT /v1/runnables/{id}/files/{path}", "1 1 4 4 . . 3 3 4"),
    ("PUT /v1/services/{service}/doc", "1 1 4 . . . 3 3 3"),
    (
        "PUT /v1/services/{service}/instances/{instance}/apps/{app}",
        "1 1 4 . . . 3 3 3",
    ),
    (
        "PUT /v1/services/{service}/teams/{team}",
        "1 1 4 . . . 3 3 3",
    ),
    (
        "PUT /v1/teams/{team}/members/{username}",
        "1 1 3 . . . 3 3 3",
    ),
    // A user changes their own password, with the old one; an admin does not (a removal and a
    // new user, or a reset, instead).
    ("PUT /v1/users/{username}/password", "1 1 3 3 . 3 3 3 3"),
    ("PUT /v1/users/{username}/quota", "1 1 3 3 3 . 3 3 3"),
];

/// [`MATRIX`] for the old systems' surfaces (`/compat/…`), the console and GitHub sign-in.
const COMPAT_MATRIX: &[(&str, &str)] = &[
    // The seed's job list, whatever the method.
    ("ANY /compat/openpai/api/job", "1 1 . . . . . . 3"),
    // What Bosun's apps do not have, told alike to everyone.
    ("ANY /compat/tsuru/apps/{app}/sleep", "4 4 4 4 4 4 4 4 4"),
    ("ANY /compat/tsuru/apps/{app}/start", "4 4 4 4 4 4 4 4 4"),
    ("ANY /compat/tsuru/apps/{app}/stop", "4 4 4 4 4 4 4 4 4"),
    ("DELETE /compat/keboola/jobs/{id}", "1 1 3 3 c c 3 3 3"),
    (
        "DELETE /compat/keboola/orchestrations/{id}",
        "1 1 3 3 . . 3 3 3",
    ),
    // Removing or changing a user ends it (the first of these to pass ends ann: 401 after;
    // the admin's first removes her: 404 after).
    ("DELETE /compat/openpai/api/auth", "1 1 3 3 1 4 3 3 3"),
    ("DELETE /compat/openpai/api/job/{name}", "1 1 4 4 4 4 3 4 3"),
    // Each ends a token of its own ([`fresh`]).
    (
        "DELETE /compat/openpai/api/v1/authn/basic/logout",
        "1 1 . . . . . . .",
    ),
    (
        "DELETE /compat/openpai/api/v1/jobs/{framework}",
        "1 1 4 . 4 . 3 4 3",
    ),
    ("DELETE /compat/openpai/api/v1/user", "1 1 3 3 1 4 3 3 3"),
    (
        "DELETE /compat/openpai/api/v1/user/{username}/jobs/{name}",
        "1 1 4 4 . . 3 4 3",
    ),
    (
        "DELETE /compat/openpai/api/v2/authn/basic/logout",
        "1 1 . . . . . . .",
    ),
    (
        "DELETE /compat/openpai/api/v2/user/{username}",
        "1 1 3 3 . . 3 3 3",
    ),
    (
        "DELETE /compat/openpai/api/v2/users/{username}",
        "1 1 3 3 1 4 3 3 3",
    ),
    (
        "DELETE /compat/runnable/runnables/{id}",
        "1 1 3 3 3 . 3 3 3",
    ),
    ("DELETE /compat/runnable/users/{user}", "1 1 3 3 1 4 3 3 3"),
    (
        "DELETE /compat/runnable/users/{user}/runnables/{id}",
        "1 1 3 3 . . 3 3 3",
    ),
    (
        "DELETE /compat/runnable/users/{user}/runnables/{id}/files/{file}",
        "1 1 3 3 . . 3 3 3",
    ),
    ("DELETE /compat/tsuru/apps/{app}", "1 1 3 . . . 3 3 3"),
    ("DELETE /compat/tsuru/apps/{app}/cname", "1 1 3 . . . 3 3 3"),
    ("DELETE /compat/tsuru/apps/{app}/env", "1 1 3 . . . 3 . 3"),
    (
        "DELETE /compat/tsuru/apps/{app}/teams/{team}",
        "1 1 3 c c c 3 3 3",
    ),
    (
        "DELETE /compat/tsuru/apps/{app}/{team}",
        "1 1 3 c c c 3 3 3",
    ),
    ("DELETE /compat/tsuru/platforms/{name}", "1 1 3 3 3 c 3 3 3"),
    (
        "DELETE /compat/tsuru/services/instances/{instance}",
        "1 1 4 4 4 4 3 3 3",
    ),
    (
        "DELETE /compat/tsuru/services/instances/{instance}/{app}",
        "1 1 4 c c c 3 3 3",
    ),
    (
        "DELETE /compat/tsuru/services/{service}",
        "1 1 4 c c c 3 3 3",
    ),
    (
        "DELETE /compat/tsuru/services/{service}/instances/{instance}",
        "1 1 4 . . . 3 3 3",
    ),
    (
        "DELETE /compat/tsuru/services/{service}/instances/{instance}/{app}",
        "1 1 3 . . . 3 3 3",
    ),
    (
        "DELETE /compat/tsuru/services/{service}/team/{team}",
        "1 1 4 c c c 3 3 3",
    ),
    (
        "DELETE /compat/tsuru/services/{service}/{team}",
        "1 1 4 c c c 3 3 3",
    ),
    ("DELETE /compat/tsuru/teams/{team}", "1 1 3 c c c 3 3 3"),
    (
        "DELETE /compat/tsuru/teams/{team}/{user}",
        "1 1 3 . . . 3 3 3",
    ),
    ("DELETE /compat/tsuru/users", "1 1 . . 1 c 3 3 3"),
    // `DELETE /users/keys/{key}` took the only key first.
    ("DELETE /compat/tsuru/users/keys", "1 1 4 4 4 4 3 3 3"),
    ("DELETE /compat/tsuru/users/keys/{key}", "1 1 . . . . 3 3 3"),
    ("DELETE /compat/tsuru/users/tokens", "1 1 . . . . . . ."),
    ("DELETE /console/session", "1 1 . . . . . 3 ."),
    // The console's page and files, and GitHub sign-in (not configured here: 404).
    ("GET /", ". . . . . . . . ."),
    ("GET /auth/github/callback", "4 4 4 4 4 4 4 4 4"),
    ("GET /auth/github/login", "4 4 4 4 4 4 4 4 4"),
    ("GET /compat/keboola/jobs/{id}", "1 1 3 . . . . 3 3"),
    ("GET /compat/keboola/orchestrations", "1 1 . . . . . 3 3"),
    (
        "GET /compat/keboola/orchestrations/{id}",
        "1 1 . . . . . 3 3",
    ),
    (
        "GET /compat/keboola/orchestrations/{id}/jobs",
        "1 1 . . . . . 3 3",
    ),
    (
        "GET /compat/keboola/orchestrations/{id}/nofitications",
        "1 1 . . . . . 3 3",
    ),
    (
        "GET /compat/keboola/orchestrations/{id}/notifications",
        "1 1 . . . . . 3 3",
    ),
    (
        "GET /compat/keboola/orchestrations/{id}/tasks",
        "1 1 . . . . . 3 3",
    ),
    // A bare job name is the caller's own job: the admin has no `train`.
    ("GET /compat/openpai/api/job/{name}", "1 1 4 4 . 4 . 4 3"),
    ("GET /compat/openpai/api/v1", ". . . . . . . . ."),
    ("GET /compat/openpai/api/v1/", ". . . . . . . . ."),
    ("GET /compat/openpai/api/v1/authn/info", ". . . . . . . . ."),
    ("GET /compat/openpai/api/v1/jobs", "1 1 . . . . . . 3"),
    (
        "GET /compat/openpai/api/v1/jobs/{framework}",
        "1 1 4 4 . 4 . 4 3",
    ),
    (
        "GET /compat/openpai/api/v1/jobs/{framework}/config",
        "1 1 4 4 . 4 . 4 3",
    ),
    (
        "GET /compat/openpai/api/v1/jobs/{framework}/jobs/{name}/config",
        "1 1 4 4 . . . 4 3",
    ),
    (
        "GET /compat/openpai/api/v1/jobs/{framework}/ssh",
        "1 1 4 4 4 4 4 4 3",
    ),
    ("GET /compat/openpai/api/v1/user", "1 1 3 3 3 . 3 3 3"),
    (
        "GET /compat/openpai/api/v1/user/{username}",
        "1 1 3 3 . . . 3 3",
    ),
    (
        "GET /compat/openpai/api/v1/user/{username}/",
        "1 1 3 3 . . . 3 3",
    ),
    (
        "GET /compat/openpai/api/v1/user/{username}/jobs",
        "1 1 . . . . . . 3",
    ),
    (
        "GET /compat/openpai/api/v1/user/{username}/jobs/{name}",
        "1 1 4 4 . . . 4 3",
    ),
    (
        "GET /compat/openpai/api/v1/user/{username}/jobs/{name}/config",
        "1 1 4 4 . . . 4 3",
    ),
    (
        "GET /compat/openpai/api/v1/user/{username}/jobs/{name}/ssh",
        "1 1 4 4 4 4 4 4 3",
    ),
    ("GET /compat/openpai/api/v2", ". . . . . . . . ."),
    ("GET /compat/openpai/api/v2/", ". . . . . . . . ."),
    ("GET /compat/openpai/api/v2/authn/info", ". . . . . . . . ."),
    ("GET /compat/openpai/api/v2/info", ". . . . . . . . ."),
    ("GET /compat/openpai/api/v2/jobs", "1 1 . . . . . . 3"),
    (
        "GET /compat/openpai/api/v2/jobs/{framework}",
        "1 1 4 4 . . . 4 3",
    ),
    (
        "GET /compat/openpai/api/v2/jobs/{framework}/attempts/{attempt}",
        "1 1 4 4 . . . 4 3",
    ),
    (
        "GET /compat/openpai/api/v2/jobs/{framework}/config",
        "1 1 4 4 . . . 4 3",
    ),
    (
        "GET /compat/openpai/api/v2/jobs/{framework}/ssh",
        "1 1 4 4 4 4 4 4 3",
    ),
    ("GET /compat/openpai/api/v2/user", "1 1 3 3 3 . 3 3 3"),
    ("GET /compat/openpai/api/v2/user/", "1 1 3 3 3 . 3 3 3"),
    ("GET /compat/openpai/api/v2/user/me", "1 1 . . . . . 3 ."),
    (
        "GET /compat/openpai/api/v2/user/{username}",
        "1 1 3 3 . . . 3 3",
    ),
    ("GET /compat/openpai/api/v2/users", "1 1 3 3 3 . 3 3 3"),
    ("GET /compat/openpai/api/v2/users/", "1 1 3 3 3 . 3 3 3"),
    ("GET /compat/openpai/api/v2/users/me", "1 1 . . . . . 3 ."),
    (
        "GET /compat/openpai/api/v2/users/{username}",
        "1 1 3 3 . . . 3 3",
    ),
    ("GET /compat/pulsar", ". . . . . . . . ."),
    ("GET /compat/pulsar/", ". . . . . . . . ."),
    ("GET /compat/pulsar/job/{id}", "1 1 3 . . . . . 3"),
    ("GET /compat/pulsar/job/{id}/kill", "1 1 3 3 . . 3 . 3"),
    ("GET /compat/pulsar/jobs", "1 1 . . . . . . 3"),
    ("GET /compat/pulsar/web", ". . . . . . . . ."),
    // SockJS: the token comes in the session's first message, not in the request.
    ("GET /compat/pulsar/websocket", ". . . . . . . . ."),
    ("GET /compat/pulsar/websocket/info", ". . . . . . . . ."),
    (
        "GET /compat/pulsar/websocket/websocket",
        ". . . . . . . . .",
    ),
    (
        "GET /compat/pulsar/websocket/{server}/{session}/websocket",
        ". . . . . . . . .",
    ),
    ("GET /compat/pulsar/{app}/{env}/tasks", "1 1 . . . . . 3 3"),
    ("GET /compat/runnable", ". . . . . . . . ."),
    ("GET /compat/runnable/", ". . . . . . . . ."),
    ("GET /compat/runnable/runnables", "1 1 . . . . . 3 ."),
    ("GET /compat/runnable/runnables/{id}", "1 1 . . . . . 3 ."),
    ("GET /compat/runnable/users/{user}", "1 1 3 3 . . . 3 3"),
    (
        "GET /compat/runnable/users/{user}/runnables",
        "1 1 3 3 . . . 3 3",
    ),
    (
        "GET /compat/runnable/users/{user}/runnables/{id}",
        "1 1 3 3 . . . 3 3",
    ),
    (
        "GET /compat/runnable/users/{user}/runnables/{id}/files",
        "1 1 3 3 . . . 3 3",
    ),
    (
        "GET /compat/runnable/users/{user}/runnables/{id}/files/{file}",
        "1 1 3 3 . . . 3 3",
    ),
    ("GET /compat/tsuru/apps", "1 1 . . . . . . 3"),
    ("GET /compat/tsuru/apps/{app}", "1 1 3 . . . . . 3"),
    ("GET /compat/tsuru/apps/{app}/env", "1 1 3 . . . . . 3"),
    ("GET /compat/tsuru/apps/{app}/quota", "1 1 3 . . . . . 3"),
    ("GET /compat/tsuru/apps/{app}/restart", "1 1 3 . . . 3 . 3"),
    ("GET /compat/tsuru/healers", "1 1 . . . . . 3 3"),
    ("GET /compat/tsuru/healers/{healer}", "1 1 3 3 3 . 3 3 3"),
    ("GET /compat/tsuru/platforms", "1 1 . . . . . 3 3"),
    ("GET /compat/tsuru/quota/{user}", "1 1 3 3 . . . 3 3"),
    ("GET /compat/tsuru/services", "1 1 . . . . . 3 3"),
    ("GET /compat/tsuru/services/instances", "1 1 . . . . . 3 3"),
    (
        "GET /compat/tsuru/services/instances/{instance}",
        "1 1 4 . . . . 3 3",
    ),
    (
        "GET /compat/tsuru/services/instances/{instance}/status",
        "1 1 4 . . . . 3 3",
    ),
    ("GET /compat/tsuru/services/{service}", "1 1 4 . . . . 3 3"),
    (
        "GET /compat/tsuru/services/{service}/doc",
        "1 1 4 . . . . 3 3",
    ),
    (
        "GET /compat/tsuru/services/{service}/instances",
        "1 1 4 . . . . 3 3",
    ),
    (
        "GET /compat/tsuru/services/{service}/instances/{instance}",
        "1 1 4 . . . . 3 3",
    ),
    (
        "GET /compat/tsuru/services/{service}/instances/{instance}/status",
        "1 1 4 . . . . 3 3",
    ),
    (
        "GET /compat/tsuru/services/{service}/plans",
        "1 1 4 . . . . 3 3",
    ),
    ("GET /compat/tsuru/teams", "1 1 . . . . . 3 3"),
    ("GET /compat/tsuru/teams/{team}", "1 1 . . . . . 3 3"),
    ("GET /compat/tsuru/users", "1 1 . . . . . 3 ."),
    ("GET /compat/tsuru/users/info", "1 1 . . . . . 3 ."),
    ("GET /compat/tsuru/users/keys", "1 1 . . . . . 3 3"),
    ("GET /compat/tsuru/users/{email}/keys", "1 1 3 3 . . . 3 3"),
    ("GET /compat/tsuru/users/{email}/quota", "1 1 3 3 . . . 3 3"),
    ("GET /console/assets/{file}", ". . . . . . . . ."),
    ("GET /console/session", "1 1 . . . . . 3 ."),
    ("GET /console/settings", ". . . . . . . . ."),
    ("GET /web", ". . . . . . . . ."),
    (
        "PATCH /compat/runnable/users/{user}/runnables/{id}/files/{file}",
        "1 1 3 3 . . 3 3 3",
    ),
    ("POST /compat/keboola/orchestrations", "1 1 . . . . 3 3 3"),
    (
        "POST /compat/keboola/orchestrations/{id}/create-token",
        "1 1 3 3 . . 3 3 3",
    ),
    (
        "POST /compat/keboola/orchestrations/{id}/jobs",
        "1 1 3 3 . . 3 3 3",
    ),
    (
        "POST /compat/keboola/orchestrations/{id}/trigger",
        "1 1 3 3 . . 3 3 3",
    ),
    ("POST /compat/keboola/run", "1 1 3 3 . . 3 3 3"),
    // Sign-in, and making an anonymous user: anyone.
    ("POST /compat/openpai/api/auth", ". . . . . . . . ."),
    (
        "POST /compat/openpai/api/v1/authn/basic/login",
        ". . . . . . . . .",
    ),
    ("POST /compat/openpai/api/v1/jobs", "1 1 3 . . . 3 3 3"),
    ("POST /compat/openpai/api/v1/token", ". . . . . . . . ."),
    (
        "POST /compat/openpai/api/v1/user/{username}/jobs",
        "1 1 3 3 . 3 3 3 3",
    ),
    (
        "POST /compat/openpai/api/v2/authn/basic/login",
        ". . . . . . . . .",
    ),
    ("POST /compat/openpai/api/v2/jobs", "1 1 3 . . . 3 3 3"),
    ("POST /compat/openpai/api/v2/user", "1 1 3 3 3 . 3 3 3"),
    ("POST /compat/openpai/api/v2/user/", "1 1 3 3 3 . 3 3 3"),
    ("POST /compat/openpai/api/v2/users", "1 1 3 3 3 . 3 3 3"),
    ("POST /compat/openpai/api/v2/users/", "1 1 3 3 3 . 3 3 3"),
    ("POST /compat/pulsar/job/{id}/kill", "1 1 3 3 . . 3 . 3"),
    ("POST /compat/pulsar/job/{id}/restart", "1 1 3 c c c 3 c 3"),
    (
        "POST /compat/pulsar/websocket/{server}/{session}/xhr",
        ". . . . . . . . .",
    ),
    (
        "POST /compat/pulsar/websocket/{server}/{session}/xhr_send",
        ". . . . . . . . .",
    ),
    (
        "POST /compat/pulsar/websocket/{server}/{session}/xhr_streaming",
        ". . . . . . . . .",
    ),
    ("POST /compat/pulsar/{app}/{env}", "1 1 3 . . . 3 . 3"),
    ("POST /compat/runnable/runnables", "1 1 4 4 . . 3 3 4"),
    ("POST /compat/runnable/token", ". . . . . . . . ."),
    ("POST /compat/runnable/users", ". . . . . . . . ."),
    (
        "POST /compat/runnable/users/{user}/runnables",
        "1 1 3 3 . 3 3 3 3",
    ),
    (
        "POST /compat/runnable/users/{user}/runnables/{id}/files",
        "1 1 3 3 . . 3 3 3",
    ),
    (
        "POST /compat/runnable/users/{user}/runnables/{id}/sync",
        "1 1 3 3 . . 3 3 3",
    ),
    ("POST /compat/tsuru/apps", "1 1 3 . . . 3 3 3"),
    ("POST /compat/tsuru/apps/{app}/cname", "1 1 3 . . . 3 3 3"),
    ("POST /compat/tsuru/apps/{app}/env", "1 1 3 . . . 3 . 3"),
    ("POST /compat/tsuru/apps/{app}/restart", "1 1 3 . . . 3 . 3"),
    ("POST /compat/tsuru/auth/login", ". . . . . . . . ."),
    ("POST /compat/tsuru/platforms", "1 1 3 3 3 . 3 3 3"),
    ("POST /compat/tsuru/services", "1 1 3 . . . 3 3 3"),
    ("POST /compat/tsuru/services/instances", "1 1 4 . . . 3 3 3"),
    (
        "POST /compat/tsuru/services/{service}/instances",
        "1 1 4 . . . 3 3 3",
    ),
    ("POST /compat/tsuru/swap", "1 1 3 . . . 3 3 3"),
    ("POST /compat/tsuru/teams", "1 1 . . . . 3 3 3"),
    ("POST /compat/tsuru/tokens", "1 1 3 . . . 3 3 3"),
    ("POST /compat/tsuru/users", "1 1 3 3 3 . 3 3 3"),
    ("POST /compat/tsuru/users/keys", "1 1 . . . . 3 3 3"),
    (
        "POST /compat/tsuru/users/{email}/tokens",
        ". . . . . . . . .",
    ),
    ("POST /console/session", ". . . . . . . . ."),
    (
        "PUT /compat/keboola/orchestrations/{id}",
        "1 1 3 3 . . 3 3 3",
    ),
    (
        "PUT /compat/keboola/orchestrations/{id}/nofitications",
        "1 1 3 3 . . 3 3 3",
    ),
    (
        "PUT /compat/keboola/orchestrations/{id}/notifications",
        "1 1 3 3 . . 3 3 3",
    ),
    (
        "PUT /compat/keboola/orchestrations/{id}/tasks",
        "1 1 3 3 . . 3 3 3",
    ),
    ("PUT /compat/openpai/api/auth", "1 1 3 3 1 3 3 3 3"),
    ("PUT /compat/openpai/api/job/{name}", "1 1 3 c c c 3 3 3"),
    (
        "PUT /compat/openpai/api/v1/jobs/{framework}",
        "1 1 3 . c . 3 3 3",
    ),
    (
        "PUT /compat/openpai/api/v1/jobs/{framework}/executionType",
        "1 1 4 4 . 4 3 4 3",
    ),
    ("PUT /compat/openpai/api/v1/user", "1 1 3 3 1 3 3 3 3"),
    (
        "PUT /compat/openpai/api/v1/user/{username}/jobs/{name}",
        "1 1 3 3 c 3 3 3 3",
    ),
    (
        "PUT /compat/openpai/api/v1/user/{username}/jobs/{name}/executionType",
        "1 1 4 4 . . 3 4 3",
    ),
    (
        "PUT /compat/openpai/api/v2/jobs/{framework}/executionType",
        "1 1 4 4 . . 3 4 3",
    ),
    ("PUT /compat/openpai/api/v2/user", "1 1 3 3 3 . 3 3 3"),
    ("PUT /compat/openpai/api/v2/user/", "1 1 3 3 3 . 3 3 3"),
    ("PUT /compat/openpai/api/v2/user/me", "1 1 3 3 . 3 3 3 3"),
    ("PUT /compat/openpai/api/v2/users", "1 1 3 3 3 . 3 3 3"),
    ("PUT /compat/openpai/api/v2/users/", "1 1 3 3 3 . 3 3 3"),
    ("PUT /compat/openpai/api/v2/users/me", "1 1 3 3 . 3 3 3 3"),
    ("PUT /compat/runnable/runnables/{id}", "1 1 3 3 3 . 3 3 3"),
    // Only an anonymous user registers (at `/users/me`); the others are gone by then (401).
    ("PUT /compat/runnable/users/{user}", "1 1 1 1 1 3 3 3 ."),
    (
        "PUT /compat/runnable/users/{user}/runnables/{id}",
        "1 1 3 3 . . 3 3 3",
    ),
    (
        "PUT /compat/runnable/users/{user}/runnables/{id}/files/{file}",
        "1 1 3 3 . . 3 3 3",
    ),
    ("PUT /compat/tsuru/apps/{app}", "1 1 3 . . . 3 3 3"),
    (
        "PUT /compat/tsuru/apps/{app}/teams/{team}",
        "1 1 3 . . . 3 3 3",
    ),
    ("PUT /compat/tsuru/apps/{app}/{team}", "1 1 3 . . . 3 3 3"),
    ("PUT /compat/tsuru/platforms/{name}", "1 1 3 3 3 . 3 3 3"),
    ("PUT /compat/tsuru/services", "1 1 4 . . . 3 3 3"),
    (
        "PUT /compat/tsuru/services/instances/{instance}/{app}",
        "1 1 4 c c c 3 3 3",
    ),
    ("PUT /compat/tsuru/services/{service}", "1 1 4 . . . 3 3 3"),
    (
        "PUT /compat/tsuru/services/{service}/doc",
        "1 1 4 . . . 3 3 3",
    ),
    (
        "PUT /compat/tsuru/services/{service}/instances/{instance}/{app}",
        "1 1 4 . . . 3 3 3",
    ),
    (
        "PUT /compat/tsuru/services/{service}/team/{team}",
        "1 1 4 . . . 3 3 3",
    ),
    (
        "PUT /compat/tsuru/services/{service}/{team}",
        "1 1 4 . . . 3 3 3",
    ),
    ("PUT /compat/tsuru/swap", "1 1 3 . . . 3 3 3"),
    ("PUT /compat/tsuru/teams/{team}/{user}", "1 1 3 . . . 3 3 3"),
    ("PUT /compat/tsuru/users/password", "1 1 3 3 1 3 3 3 3"),
    ("PUT /compat/tsuru/users/{email}/quota", "1 1 3 3 3 . 3 3 3"),
];

/// The ids of what [`world`] made, to fill templates with.
struct World {
    callers: Vec<Api>,
    job_to_kill: String,
    job_to_stop: String,
    service: String,
    root: String,
    job: String,
    orchestration: String,
    /// A run of the orchestration (a Keboola job).
    orchestration_job: String,
    runnable: String,
    token: String,
    app_token: String,
}

fn id_of(body: &Value, field: &str) -> String {
    body[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {body}"))
        .to_string()
}

/// Ann's world: her team `ops` (bob a member too) and its app `shop`, a job, an
/// orchestration, a runnable, an instance `db` of the admin's service `mysql`, a key, tokens;
/// and a client for each of [`CALLERS`].
async fn world(admin: &Api, service: &ServiceApi) -> World {
    admin
        .post("/v1/platforms", json!({"name": "python"}))
        .await
        .expect(StatusCode::CREATED);
    let ann = admin.new_user("ann", "ann-password").await;
    let bob = admin.new_user("bob", "bob-password").await;
    let cid = admin.new_user("cid", "cid-password").await;
    ann.team_with_app("ops", "shop", "python").await;
    ann.call(Method::PUT, "/v1/teams/ops/members/bob", None)
        .await
        .expect(StatusCode::NO_CONTENT);
    // One running job each for the calls that end one, so that none ends another's.
    let mut jobs = Vec::new();
    for _ in 0..3 {
        let job = ann
            .post(
                "/v1/jobs",
                json!({"app": "shop", "env": "production", "task": "sleep"}),
            )
            .await
            .expect(StatusCode::CREATED)
            .body;
        jobs.push(id_of(&job, "id"));
    }
    // Running, so that a kill or a stop of one passes and a cancel is a 409, whatever the
    // runner's pace.
    for job in &jobs {
        ann.until(&format!("/v1/jobs/{job}"), |j| j["status"] == "processing")
            .await;
    }
    // A named job of roles, OpenPAI's kind (`{framework}`: `train`, or `ann~train` in v2).
    ann.post(
        "/v1/jobs",
        json!({"name": "train",
               "roles": [{"name": "main", "instances": 1, "task": "shop/production/sleep"}]}),
    )
    .await
    .expect(StatusCode::CREATED);
    let orchestration = ann
        .post(
            "/v1/orchestrations",
            json!({"name": "nightly", "tasks": [{"component": "shop/production/ok"}]}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    let orchestration_job = ann
        .post(
            &format!("/v1/orchestrations/{}/jobs", id_of(&orchestration, "id")),
            json!({}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    // Ended, so that cancelling it is a 409 for whoever may (not a 204 for the first).
    ann.until(
        &format!("/v1/jobs/{}", id_of(&orchestration_job, "id")),
        |job| job["status"] == "success",
    )
    .await;
    // A root runnable is an admin's, with an image; ann's is forked from it.
    let root = admin
        .post(
            "/v1/runnables",
            json!({"name": "hello", "start_command": "sh main.sh",
                   "files": [{"path": "main.sh", "content": "echo hello\n"}]}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    let root = id_of(&root, "id");
    ann.post(
        "/v1/apps",
        json!({"name": "web", "platform": "python", "team_owner": "ops"}),
    )
    .await
    .expect(StatusCode::CREATED);
    admin
        .post(&format!("/v1/runnables/{root}/save"), json!({}))
        .await
        .expect(StatusCode::OK);
    let runnable = ann
        .post("/v1/runnables", json!({"from": root, "name": "mine"}))
        .await
        .expect(StatusCode::CREATED)
        .body;
    admin
        .post(
            "/v1/services",
            json!({"name": "mysql", "endpoint": service.base, "password": "svc-password-5b7d2c90",
                   "teams": ["ops"], "doc": "MySQL databases"}),
        )
        .await
        .expect(StatusCode::CREATED);
    ann.post(
        "/v1/services/mysql/instances",
        json!({"name": "db", "plan": "small", "team_owner": "ops"}),
    )
    .await
    .expect(StatusCode::CREATED);
    ann.until("/v1/services/mysql/instances/db", |i| i["state"] == "ready")
        .await;
    ann.post(
        "/v1/users/ann/keys",
        json!({"name": "laptop", "key": ED25519}),
    )
    .await
    .expect(StatusCode::CREATED);
    let token = ann
        .post("/v1/tokens", json!({"description": "another"}))
        .await
        .expect(StatusCode::CREATED)
        .body;
    let app_token = ann
        .post("/v1/apps/shop/tokens", json!({"description": "deploys"}))
        .await
        .expect(StatusCode::CREATED)
        .body;
    let read_only = ann
        .post(
            "/v1/tokens",
            json!({"description": "reads", "scopes": ["read"]}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    let expired = ann
        .post(
            "/v1/tokens",
            json!({"description": "soon gone", "expires_in": 1}),
        )
        .await
        .expect(StatusCode::CREATED)
        .body;
    let anonymous = admin
        .anonymous()
        .post("/v1/users/anonymous", json!({}))
        .await
        .expect(StatusCode::CREATED)
        .body;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let callers = vec![
        admin.anonymous(),
        admin.with_token(&id_of(&expired, "token")),
        cid,
        bob,
        ann.clone(),
        admin.clone(),
        admin.with_token(&id_of(&read_only, "token")),
        admin.with_token(&id_of(&app_token, "token")),
        admin.with_token(&id_of(&anonymous["token"], "token")),
    ];
    World {
        callers,
        service: service.base.clone(),
        root,
        job: jobs[0].clone(),
        job_to_kill: jobs[1].clone(),
        job_to_stop: jobs[2].clone(),
        orchestration: id_of(&orchestration, "id"),
        orchestration_job: id_of(&orchestration_job, "id"),
        runnable: id_of(&runnable, "id"),
        token: id_of(&token, "token_id"),
        app_token: id_of(&app_token, "token_id"),
    }
}

/// A new token of caller `kind` (an index of [`CALLERS`]), where it has one to lose; `None`
/// where it has none (no token, an expired one) or can no longer get one.
async fn fresh(kind: usize, world: &World) -> Option<Api> {
    let (caller, owner) = (&world.callers[kind], &world.callers[4]);
    let minted = match CALLERS[kind] {
        "other" | "member" | "owner" | "admin" => {
            caller
                .post("/v1/tokens", json!({"description": "to end"}))
                .await
        }
        "read-only" => {
            owner
                .post(
                    "/v1/tokens",
                    json!({"description": "to end", "scopes": ["read"]}),
                )
                .await
        }
        "app token" => {
            owner
                .post("/v1/apps/shop/tokens", json!({"description": "to end"}))
                .await
        }
        "anonymous" => {
            let made = owner
                .anonymous()
                .post("/v1/users/anonymous", json!({}))
                .await;
            return made.body["token"]["token"]
                .as_str()
                .map(|token| owner.with_token(token));
        }
        _ => return None,
    };
    minted.body["token"]
        .as_str()
        .map(|token| owner.with_token(token))
}

/// `template` with the world's names and ids in its parameters.
fn fill(template: &str, world: &World) -> String {
    let id = if template.ends_with("/jobs/{id}/kill") || template.ends_with("/job/{id}/kill") {
        &world.job_to_kill
    } else if template == "/v1/jobs/{id}/stop" {
        &world.job_to_stop
    } else if template.starts_with("/compat/keboola/jobs/") {
        &world.orchestration_job
    } else if template.starts_with("/v1/jobs/") || template.starts_with("/compat/pulsar/job/") {
        &world.job
    } else if template.contains("/orchestrations/") {
        &world.orchestration
    } else if template.starts_with("/compat/runnable/runnables/") {
        // Runnable's `/runnables` are the images.
        &world.root
    } else {
        &world.runnable
    };
    // v1 names a job by its name (and its user, in the path or the caller); v2 as `user~name`.
    let framework = if template.starts_with("/compat/openpai/api/v2/") {
        "ann~train"
    } else if template.contains("/jobs/{framework}/jobs/") {
        "ann"
    } else {
        "train"
    };
    let name = if template.starts_with("/compat/openpai/") {
        "train"
    } else if template.starts_with("/compat/tsuru/platforms/") {
        "python"
    } else {
        "laptop"
    };
    let token_id = if template.starts_with("/v1/apps/") {
        &world.app_token
    } else {
        &world.token
    };
    template
        .replace("{app}", "shop")
        .replace("{team}", "ops")
        .replace("/members/{username}", "/members/cid")
        .replace("/teams/ops/{user}", "/teams/ops/cid")
        .replace("{username}", "ann")
        .replace("{user}", "ann")
        .replace("{email}", "ann")
        .replace("{service}", "mysql")
        .replace("{instance}", "db")
        .replace("{platform}", "python")
        .replace("{name}", name)
        .replace("{framework}", framework)
        .replace("{attempt}", "0")
        .replace("{key}", "laptop")
        .replace("{healer}", "heal-shop")
        .replace("{stream_id}", "app-shop")
        .replace("{token}", "no-such-reset-token")
        .replace("{path}", "main.sh")
        .replace("/console/assets/{file}", "/console/assets/console.js")
        // A runnable file's id: its path in base64url.
        .replace("{file}", "bWFpbi5zaA")
        .replace("{rest}", "index.html")
        .replace("{server}", "000")
        .replace("{session}", "matrix")
        .replace("{env}", "production")
        .replace("{token_id}", token_id)
        .replace("{id}", id)
}

/// Where an operation goes in a walk: reads, then writes, then removals deepest first; then the
/// calls that end the caller's token (each with a token of its own), then those that remove or
/// change its user (the first to succeed ends it: the later ones answer 401), registering last;
/// so every other call is made with the caller alive.
fn order(operation: &str) -> (u8, std::cmp::Reverse<usize>, String) {
    let (method, path) = operation.split_once(' ').unwrap_or((operation, ""));
    let phase = match method {
        _ if ENDS_TOKEN.contains(&operation) => 3,
        _ if ENDS_USER.contains(&operation) => 4,
        // An anonymous user registered is one no more: its token with it.
        _ if operation == "POST /v1/users/me/register" => 5,
        _ if operation == "PUT /compat/runnable/users/{user}" => 5,
        "GET" | "HEAD" | "ANY" => 0,
        "DELETE" => 2,
        _ => 1,
    };
    (
        phase,
        std::cmp::Reverse(path.matches('/').count()),
        operation.to_string(),
    )
}

/// The calls that end the caller's own token: each is made with a token of its own, of the
/// caller's kind ([`fresh`]), so that each ends only that one.
const ENDS_TOKEN: &[&str] = &[
    "DELETE /v1/auth/tokens/current",
    "DELETE /console/session",
    "DELETE /compat/tsuru/users/tokens",
    "DELETE /compat/openpai/api/v1/authn/basic/logout",
    "DELETE /compat/openpai/api/v2/authn/basic/logout",
];

/// The calls that remove a user or change its password (its tokens end with it).
const ENDS_USER: &[&str] = &[
    "DELETE /v1/users/{username}",
    "PUT /v1/users/{username}/password",
    "DELETE /compat/tsuru/users",
    "PUT /compat/tsuru/users/password",
    "DELETE /compat/openpai/api/auth",
    "PUT /compat/openpai/api/auth",
    "DELETE /compat/openpai/api/v1/user",
    "PUT /compat/openpai/api/v1/user",
    "DELETE /compat/openpai/api/v2/user/{username}",
    "DELETE /compat/openpai/api/v2/users/{username}",
    "DELETE /compat/runnable/users/{user}",
];

/// The router's operations whose rows are in the table `native` says, in walking order, a
/// catch-all parameter named as the document names it (`{*path}` as `{path}`).
fn operations(native: bool) -> Vec<String> {
    let mut operations: Vec<String> = bosun_api::routes::operations()
        .into_iter()
        .map(|o| o.replace("{*", "{"))
        .filter(|o| is_native(o) == native)
        .collect();
    operations.sort_by_key(|o| order(o));
    operations
}

/// The live feed, called as a WebSocket handshake (101 when it is let through).
const LIVE: &str = "GET /v1/events/live";

/// What a call sends.
enum Body {
    None,
    Json(Value),
    Text(&'static str),
}

/// What `operation` sends beside its path: a query, and a body that would do it.
fn request_of(operation: &str, world: &World) -> (String, Body) {
    if !is_native(operation) {
        return compat_request_of(operation, world);
    }
    let json = |value: Value| (String::new(), Body::Json(value));
    let query = |query: &str| (query.to_string(), Body::None);
    match operation {
        "DELETE /v1/apps/{app}/cnames" | "POST /v1/apps/{app}/cnames" => {
            json(json!({"cname": "www.example.com"}))
        }
        "DELETE /v1/apps/{app}/env" => query("?name=V"),
        "PATCH /v1/apps/{app}" => json(json!({"description": "the shop"})),
        "PATCH /v1/platforms/{platform}" => json(json!({"disabled": false})),
        "PATCH /v1/runnables/{id}" => json(json!({"name": "renamed"})),
        "PATCH /v1/services/{service}" => json(json!({"password": "svc-password-0c4e9a13"})),
        "PATCH /v1/users/{username}" => json(json!({"email": "ann@example.com"})),
        "PATCH /v1/orchestrations/{id}" => json(json!({"active": false})),
        "POST /v1/apps" => json(json!({"name": "blog", "platform": "python", "team_owner": "ops"})),
        "POST /v1/apps/{app}/tokens" | "POST /v1/tokens" => json(json!({"description": "more"})),
        "POST /v1/auth/tokens" => json(json!({"username": "ann", "password": "ann-password"})),
        "POST /v1/jobs" => json(json!({"app": "shop", "env": "production", "task": "ok"})),
        "POST /v1/orchestrations" => {
            json(json!({"name": "weekly", "tasks": [{"component": "shop/production/ok"}]}))
        }
        "POST /v1/platforms" => json(json!({"name": "go"})),
        "POST /v1/runnables" => json(json!({"from": world.root})),
        "POST /v1/services" => json(json!({"name": "redis", "endpoint": world.service,
                                           "password": "svc-password-77ab01ce", "teams": ["ops"]})),
        "POST /v1/services/{service}/instances" => {
            json(json!({"name": "db2", "plan": "small", "team_owner": "ops"}))
        }
        "POST /v1/swap" => json(json!({"app1": "web", "app2": "blog"})),
        "POST /v1/teams" => json(json!({"name": "dev"})),
        "POST /v1/users" => json(json!({"username": "dan", "password": "dan-password"})),
        "POST /v1/users/{username}/keys" => json(json!({"name": "desk", "key": ED25519})),
        "POST /v1/users/me/register" => {
            json(json!({"username": "eve", "password": "eve-password", "email": "eve@example.com"}))
        }
        "PUT /v1/apps/{app}/env" => {
            json(json!({"envs": [{"name": "V", "value": "1"}], "restart": false}))
        }
        "PUT /v1/orchestrations/{id}/notifications" => {
            json(json!([{"email": "ops@example.com", "channel": "error"}]))
        }
        "PUT /v1/orchestrations/{id}/tasks" => json(json!([{"component": "shop/production/ok"}])),
        "PUT /v1/runnables/{id}/files/{path}" => (String::new(), Body::Text("echo again\n")),
        "PUT /v1/services/{service}/doc" => (String::new(), Body::Text("MySQL, the database")),
        "PUT /v1/users/{username}/password" => {
            json(json!({"old": "ann-password", "new": "ann-password-2"}))
        }
        "PUT /v1/users/{username}/quota" => json(json!({"limit": 10})),
        _ if operation.starts_with("GET ") || operation.starts_with("DELETE ") => query(""),
        _ => json(json!({})),
    }
}

/// [`request_of`] for the old systems' surfaces, in each one's words (every one takes JSON).
fn compat_request_of(operation: &str, world: &World) -> (String, Body) {
    let json = |value: Value| (String::new(), Body::Json(value));
    let query = |query: String| (query, Body::None);
    let task_roles = json!([{"name": "main", "command": "shop/production/ok"}]);
    let password_change = json!({"username": "ann", "modify": true,
                                 "oldPassword": "ann-password", "password": "ann-password-2"});
    match operation {
        "POST /compat/pulsar/{app}/{env}" => json(json!({"task": "ok"})),
        "POST /compat/pulsar/websocket/{server}/{session}/xhr_send" => {
            json(json!(["{\"token\":\"x\"}"]))
        }
        "POST /compat/keboola/orchestrations" => {
            json(json!({"name": "weekly", "tasks": [{"component": "shop/production/ok"}]}))
        }
        "PUT /compat/keboola/orchestrations/{id}" => json(json!({"active": false})),
        "PUT /compat/keboola/orchestrations/{id}/tasks" => {
            json(json!([{"component": "shop/production/ok"}]))
        }
        "PUT /compat/keboola/orchestrations/{id}/notifications"
        | "PUT /compat/keboola/orchestrations/{id}/nofitications" => {
            json(json!([{"email": "ops@example.com", "channel": "error"}]))
        }
        "POST /compat/keboola/run" => json(json!({"config": world.orchestration})),
        "POST /compat/openpai/api/auth"
        | "POST /compat/openpai/api/v1/token"
        | "POST /compat/openpai/api/v1/authn/basic/login"
        | "POST /compat/openpai/api/v2/authn/basic/login"
        | "POST /compat/runnable/token" => {
            json(json!({"username": "ann", "password": "ann-password"}))
        }
        "PUT /compat/openpai/api/auth" | "PUT /compat/openpai/api/v1/user" => json(password_change),
        "DELETE /compat/openpai/api/auth" | "DELETE /compat/openpai/api/v1/user" => {
            json(json!({"username": "ann"}))
        }
        "PUT /compat/openpai/api/job/{name}"
        | "PUT /compat/openpai/api/v1/user/{username}/jobs/{name}"
        | "PUT /compat/openpai/api/v1/jobs/{framework}" => json(json!({"taskRoles": task_roles})),
        "POST /compat/openpai/api/v1/user/{username}/jobs" => {
            json(json!({"jobName": "pai1", "taskRoles": task_roles}))
        }
        "POST /compat/openpai/api/v1/jobs" => {
            json(json!({"jobName": "pai2", "taskRoles": task_roles}))
        }
        "POST /compat/openpai/api/v2/jobs" => json(json!({"name": "pai3",
            "taskRoles": {"main": {"commands": ["shop/production/ok"]}}})),
        // The first stops `train`; the others only ask to start it (which checks the caller
        // may read it), as another stop would race the first's end.
        "PUT /compat/openpai/api/v1/user/{username}/jobs/{name}/executionType" => {
            json(json!({"value": "STOP"}))
        }
        _ if operation.ends_with("/executionType") => json(json!({"value": "START"})),
        "POST /compat/openpai/api/v2/users"
        | "POST /compat/openpai/api/v2/users/"
        | "POST /compat/openpai/api/v2/user"
        | "POST /compat/openpai/api/v2/user/" => {
            // A name of its own for each, so that each may make its user.
            let name = match operation.rsplit_once(' ') {
                Some((_, "/compat/openpai/api/v2/users")) => "pai_u1",
                Some((_, "/compat/openpai/api/v2/users/")) => "pai_u2",
                Some((_, "/compat/openpai/api/v2/user")) => "pai_u3",
                _ => "pai_u4",
            };
            json(json!({"username": name, "password": "pai-password",
                        "email": format!("{name}@example.com")}))
        }
        "PUT /compat/openpai/api/v2/users"
        | "PUT /compat/openpai/api/v2/users/"
        | "PUT /compat/openpai/api/v2/user"
        | "PUT /compat/openpai/api/v2/user/" => {
            json(json!({"patch": true, "data": {"username": "cid", "email": "cid@example.com"}}))
        }
        "PUT /compat/openpai/api/v2/users/me" | "PUT /compat/openpai/api/v2/user/me" => {
            json(json!({"data": {"username": "ann"}}))
        }
        "POST /compat/tsuru/apps" => {
            json(json!({"name": "blog", "platform": "python", "teamOwner": "ops"}))
        }
        "PUT /compat/tsuru/apps/{app}" => json(json!({"description": "the shop"})),
        "POST /compat/tsuru/apps/{app}/cname" => json(json!({"cname": "www.example.com"})),
        "POST /compat/tsuru/apps/{app}/env" => json(json!({"V": "1"})),
        "DELETE /compat/tsuru/apps/{app}/env" => query("?env=V&noRestart=true".into()),
        "PUT /compat/tsuru/swap" => query("?app1=shop&app2=web".into()),
        "POST /compat/tsuru/swap" => json(json!({"app1": "shop", "app2": "web"})),
        "PUT /compat/tsuru/users/{email}/quota" => json(json!({"limit": 10})),
        "POST /compat/tsuru/platforms" => json(json!({"name": "go"})),
        "PUT /compat/tsuru/platforms/{name}" => json(json!({"disabled": false})),
        "POST /compat/tsuru/services" => json(json!({"id": "redis", "endpoint": world.service,
            "password": "svc-password-77ab01ce", "team": "ops"})),
        "PUT /compat/tsuru/services" => json(json!({"id": "mysql", "endpoint": world.service})),
        "PUT /compat/tsuru/services/{service}" => {
            json(json!({"password": "svc-password-0c4e9a13"}))
        }
        "PUT /compat/tsuru/services/{service}/doc" => {
            (String::new(), Body::Text("MySQL, the database"))
        }
        "POST /compat/tsuru/services/instances" => {
            json(json!({"name": "db2", "service_name": "mysql", "plan": "small"}))
        }
        "POST /compat/tsuru/services/{service}/instances" => {
            json(json!({"name": "db3", "plan": "small", "owner": "ops"}))
        }
        "PUT /compat/tsuru/services/{service}/instances/{instance}/{app}"
        | "PUT /compat/tsuru/services/instances/{instance}/{app}"
        | "DELETE /compat/tsuru/services/{service}/instances/{instance}/{app}"
        | "DELETE /compat/tsuru/services/instances/{instance}/{app}" => {
            query("?noRestart=true".into())
        }
        "DELETE /compat/tsuru/services/{service}/instances/{instance}" => {
            query("?unbindall=true".into())
        }
        "POST /compat/tsuru/users" => {
            json(json!({"email": "dan@example.com", "password": "dan-password"}))
        }
        "POST /compat/tsuru/users/{email}/tokens" => json(json!({"password": "ann-password"})),
        "POST /compat/tsuru/auth/login" => {
            json(json!({"email": "ann", "password": "ann-password"}))
        }
        "PUT /compat/tsuru/users/password" => {
            json(json!({"old": "ann-password", "new": "ann-password-2"}))
        }
        "POST /compat/tsuru/teams" => json(json!({"name": "dev"})),
        "POST /compat/tsuru/users/keys" => {
            json(json!({"key": ED25519, "name": "laptop", "force": true}))
        }
        "DELETE /compat/tsuru/users/keys" => json(json!({"key": ED25519})),
        "POST /compat/tsuru/tokens" => json(json!({"client": "shop"})),
        "POST /compat/runnable/users" => json(json!({})),
        "PUT /compat/runnable/users/{user}" => json(json!({"email": "gus@example.com",
            "username": "gus", "password": "gus-password"})),
        "POST /compat/runnable/users/{user}/runnables" => query(format!("?from={}", world.root)),
        "PUT /compat/runnable/users/{user}/runnables/{id}" => {
            json(json!({"running": false, "name": "renamed", "description": ""}))
        }
        "POST /compat/runnable/users/{user}/runnables/{id}/files" => {
            json(json!({"name": "extra.sh", "path": "/", "content": "echo extra\n"}))
        }
        "PUT /compat/runnable/users/{user}/runnables/{id}/files/{file}"
        | "PATCH /compat/runnable/users/{user}/runnables/{id}/files/{file}" => {
            json(json!({"content": "echo again\n"}))
        }
        "POST /compat/runnable/runnables" => query(format!("?from={}", world.runnable)),
        "PUT /compat/runnable/runnables/{id}" => query(format!("?from={}", world.root)),
        "POST /console/session" => json(json!({"username": "ann", "password": "ann-password"})),
        _ => query(String::new()),
    }
}

fn class(status: StatusCode) -> char {
    match status.as_u16() {
        401 => '1',
        403 => '3',
        404 => '4',
        400 => '0',
        409 => 'c',
        _ => '.',
    }
}

/// What caller `kind` (an index of [`CALLERS`]) gets from each operation, in a world of its
/// own: `(operation, class, status)`.
async fn walk(kind: usize, operations: &[String]) -> Vec<(String, char, u16)> {
    let app = spawn_app(CONFIG).await;
    let service = ServiceApi::start().await;
    let world = world(&app.api, &service).await;
    let caller = &world.callers[kind];
    let mut answers = Vec::new();
    for operation in operations {
        let (method, template) = operation.split_once(' ').expect("METHOD path");
        // A route of every method is asked with `GET`.
        let method = match method {
            "ANY" => Method::GET,
            _ => Method::from_bytes(method.as_bytes()).expect("a method"),
        };
        let (query, body) = request_of(operation, &world);
        // Only an anonymous user registers, as `me`.
        let path = match operation.as_str() {
            "PUT /compat/runnable/users/{user}" => "/compat/runnable/users/me".to_string(),
            // Its own job to kill, so that the `POST` after it is the first kill of the other.
            "GET /compat/pulsar/job/{id}/kill" => {
                format!("/compat/pulsar/job/{}/kill", world.job_to_stop)
            }
            _ => fill(template, &world),
        };
        let path = format!("{path}{query}");
        let fresh = match ENDS_TOKEN.contains(&operation.as_str()) {
            true => fresh(kind, &world).await,
            false => None,
        };
        let mut request = fresh.as_ref().unwrap_or(caller).request(method, &path);
        request = match body {
            Body::None => request,
            Body::Json(value) => request.json(&value),
            Body::Text(text) => request.header("content-type", "text/plain").body(text),
        };
        if operation == LIVE || operation.ends_with("/websocket") {
            request = request
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .header("sec-websocket-version", "13")
                .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{operation}: {e}"));
        let status = response.status();
        // Some answers stream (SockJS, a restart's output): the status is what counts.
        let body = tokio::time::timeout(Duration::from_secs(2), response.text()).await;
        assert_ne!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{} {operation}: {body:?}",
            CALLERS[kind],
        );
        answers.push((operation.clone(), class(status), status.as_u16()));
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_native_route_answers_each_kind_of_caller_as_its_row_says() {
    check(&operations(true), MATRIX).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_compat_route_answers_each_kind_of_caller_as_its_row_says() {
    check(&operations(false), COMPAT_MATRIX).await;
}

/// The document and the router agree on `/v1`, so a route of the document is walked too.
#[tokio::test]
async fn the_document_lists_every_v1_route_but_the_undocumented() {
    let app = spawn_app(CONFIG).await;
    let document = app
        .api
        .get("/v1/openapi.json")
        .await
        .expect(StatusCode::OK)
        .body;
    let mut documented = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                documented.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    documented.sort();
    let mut served: Vec<String> = operations(true)
        .into_iter()
        .filter(|o| o.contains(" /v1/") && !UNDOCUMENTED.contains(&o.as_str()))
        .collect();
    served.sort();
    assert_eq!(documented, served);
}

/// Each caller's walk of `operations`, held against `table`.
async fn check(operations: &[String], table: &[(&str, &str)]) {
    let walks: Vec<Vec<(String, char, u16)>> = futures::stream::iter(0..CALLERS.len())
        .map(|kind| walk(kind, operations))
        .buffered(3)
        .collect()
        .await;
    let mut seen: BTreeMap<&str, (String, Vec<u16>)> = BTreeMap::new();
    for walk in &walks {
        for (operation, class, status) in walk {
            let row = seen.entry(operation.as_str()).or_default();
            row.0.push(*class);
            row.1.push(*status);
        }
    }
    let expected: BTreeMap<&str, &str> = table.iter().copied().collect();
    let mut wrong = Vec::new();
    for (operation, (classes, statuses)) in &seen {
        match expected.get(operation) {
            Some(row) if row.replace(' ', "") == *classes => {}
            Some(row) => wrong.push(format!(
                "{operation}: expected {row}, got {classes} ({statuses:?})"
            )),
            None => wrong.push(format!("{operation}: no row (got {classes}, {statuses:?})")),
        }
    }
    for operation in expected.keys() {
        if !seen.contains_key(operation) {
            wrong.push(format!(
                "{operation}: a row for an operation the server has not"
            ));
        }
    }
    let table: Vec<String> = seen
        .iter()
        .map(|(operation, (classes, _))| {
            let spaced: Vec<String> = classes.chars().map(String::from).collect();
            format!("    (\"{operation}\", \"{}\"),", spaced.join(" "))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} rows differ from the server's answers ({}):\n{}\n\nthe server's table:\n{}",
        wrong.len(),
        CALLERS.join(", "),
        wrong.join("\n"),
        table.join("\n")
    );
}
