//! `/v1/runnables`: runnables (Runnable's), file trees with a start command, forked from a
//! parent's image, their files as raw bytes, and saving them as images. Who may do what, and
//! every other rule (paths, limits, images), is the commands' and queries'
//! (`bosun_commands::runnables`): these handlers only map HTTP onto them, and read a file's body
//! no further than `runnables.max_file_bytes` (413 `file_too_large` past it, before anything is
//! stored).
//!
//! Start, stop and restart answer 202: they record what is wanted, and a runner on some node
//! does it. The logs are answered as a job's output is (`Bosun-Output-Offset`,
//! `Bosun-Output-Complete`). Does not own the sandboxed process (the runner).

use crate::auth::{Caller, RequestOrigin};
use crate::extract::{Json, Path, Query};
use crate::problem::{Problem, Refusals};
use crate::routes::v1::jobs::{OUTPUT_COMPLETE, OUTPUT_OFFSET};
use crate::routes::{limit, listed, offset, written};
use crate::startup::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bosun_commands::queries::{Page, RunnableFilter};
use bosun_commands::runnables::CreateRoot;
use bosun_commands::Written;
use bosun_projections::read_models::runnables::{FileView, RunnableView};
use futures::StreamExt;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// The most output one read of a runnable's logs returns (as a job's); a client reads on from
/// `Bosun-Output-Offset`.
const LOGS_PAGE: i64 = 1024 * 1024;

/// One file of a root runnable: its path and its content, as UTF-8 text or base64.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FileInput {
    /// Relative to the runnable's tree (`src/main.py`): no `..`, not absolute.
    path: String,
    /// The content as UTF-8 text; or give `content_base64` instead.
    content: Option<String>,
    /// The content in standard base64, for bytes that are not text.
    content_base64: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRunnable {
    /// The runnable to fork: its image's files and start command are the fork's. Without it
    /// (an admin only) `start_command` and `files` make a root runnable.
    from: Option<String>,
    /// 1 to 100 characters, no control characters; a fork's default is its parent's name.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    name: Option<String>,
    /// A root runnable's command, run as `sh -c` in its tree: 1 to 4096 characters.
    #[schema(min_length = 1, max_length = 4096)]
    start_command: Option<String>,
    /// A root runnable's files.
    files: Option<Vec<FileInput>>,
}

/// `POST /v1/runnables`: `{from, name?}` forks `from` (any runnable with an image the caller may
/// see), 201 with the fork; an admin may instead give `{name, start_command, files}` for a root
/// runnable. 400 without `from`, 404 an unknown parent, 409 `parent_has_no_image`, 403
/// `runnable_quota_exceeded` for an owner at `runnables.quota` (admins have none).
#[utoipa::path(post, path = "/v1/runnables", tag = "runnables", request_body = NewRunnable,
    responses((status = 201, description = "the fork, or the root runnable", body = RunnableView), Refusals),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Json(body): Json<NewRunnable>,
) -> Result<Response, Problem> {
    let (view, w) = match body.from {
        Some(from) => {
            if body.start_command.is_some() {
                return Err(Problem::invalid_field(
                    "start_command",
                    "a fork takes its parent's start command: change it once forked",
                ));
            }
            if body.files.is_some() {
                return Err(Problem::invalid_field(
                    "files",
                    "a fork takes its parent's image's files: write them once forked",
                ));
            }
            state
                .commands
                .fork_runnable(
                    &caller.actor,
                    &origin,
                    &state.runnable_rules,
                    &from,
                    body.name,
                )
                .await?
        }
        None if body.start_command.is_none() && body.files.is_none() => {
            return Err(Problem::invalid_field(
                "from",
                "required: the id of the runnable to fork (an admin may instead give name, start_command and files)",
            ))
        }
        None => {
            let name = body
                .name
                .ok_or_else(|| Problem::invalid_field("name", "required for a root runnable"))?;
            let start_command = body.start_command.ok_or_else(|| {
                Problem::invalid_field("start_command", "required for a root runnable")
            })?;
            let files = contents(body.files.unwrap_or_default())?;
            state
                .commands
                .create_root_runnable(
                    &caller.actor,
                    &origin,
                    &state.runnable_rules,
                    CreateRoot {
                        name,
                        start_command,
                        files,
                    },
                )
                .await?
        }
    };
    Ok(tagged(
        written(&state, StatusCode::CREATED, Some(&view), w),
        &view,
    ))
}

/// `response` with `ETag: "<version>"`, the runnable's stream version (`If-Match` is not taken
/// yet).
fn tagged(mut response: Response, view: &RunnableView) -> Response {
    if let Ok(value) = HeaderValue::from_str(&format!("\"{}\"", view.version)) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// Each file's path and bytes; a file with neither or both of `content` and `content_base64`,
/// or bad base64, is a 400 naming it.
fn contents(files: Vec<FileInput>) -> Result<Vec<(String, Vec<u8>)>, Problem> {
    files
        .into_iter()
        .enumerate()
        .map(|(i, file)| match (file.content, file.content_base64) {
            (Some(text), None) => Ok((file.path, text.into_bytes())),
            (None, Some(encoded)) => STANDARD
                .decode(encoded.trim())
                .map(|bytes| (file.path, bytes))
                .map_err(|e| {
                    Problem::invalid_field(
                        format!("files[{i}].content_base64"),
                        format!("not standard base64: {e}"),
                    )
                }),
            _ => Err(Problem::invalid_field(
                format!("files[{i}].content"),
                "give one of content (UTF-8 text) and content_base64",
            )),
        })
        .collect()
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Runnables of this user.
    owner: Option<String>,
    /// Runnables forked from this one (its id).
    #[param(format = Uuid)]
    parent: Option<String>,
    /// `true`: only those with an image; `false`: only those without.
    #[param(value_type = Option<bool>)]
    has_image: Option<String>,
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    #[param(minimum = 0)]
    offset: Option<i64>,
}

/// `GET /v1/runnables?owner=&parent=&has_image=&limit=&offset=`: the runnables the caller may
/// see (its own, and any with an image; an admin: all), with `X-Total-Count`.
#[utoipa::path(get, path = "/v1/runnables", tag = "runnables", params(ListQuery),
    responses((status = 200, description = "the runnables the caller may see, with `X-Total-Count`", body = Vec<RunnableView>), Refusals),
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
    let parent = match query.parent.as_deref() {
        None => None,
        Some(parent) => Some(
            Uuid::parse_str(parent)
                .map_err(|_| Problem::invalid_field("parent", "must be a runnable's id"))?,
        ),
    };
    let has_image = match query.has_image.as_deref() {
        None => None,
        Some(value) => Some(
            value
                .parse()
                .map_err(|_| Problem::invalid_field("has_image", "must be true or false"))?,
        ),
    };
    let filter = RunnableFilter {
        owner: query.owner,
        parent,
        has_image,
    };
    let (runnables, total) = state.queries.runnables(&caller.actor, filter, page).await?;
    Ok(listed(&runnables, total))
}

/// A runnable's id from the path: anything but a UUID names no runnable (404).
fn runnable_id(id: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(id).map_err(|_| Problem::not_found(format!("no runnable {id}")))
}

/// `GET /v1/runnables/{id}`: its own, or one with an image; anyone else's is 404. `ETag` is its
/// version.
#[utoipa::path(get, path = "/v1/runnables/{id}", tag = "runnables",
    params(("id" = Uuid, Path, description = "the runnable's id")),
    responses((status = 200, description = "OK", body = RunnableView,
        headers(("ETag" = String, description = "its stream's version, quoted"))), Refusals),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let view = state
        .queries
        .runnable(&caller.actor, runnable_id(&id)?)
        .await?;
    Ok(tagged(axum::Json(&view).into_response(), &view))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunnableChanges {
    /// 1 to 100 characters, no control characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    name: Option<String>,
    /// Run as `sh -c` in its tree; 1 to 4096 characters.
    #[schema(min_length = 1, max_length = 4096)]
    start_command: Option<String>,
}

/// `PATCH /v1/runnables/{id}` (its owner or an admin): any of name and start command; 200 with
/// it. Its image, if any, keeps the start command it was saved with.
#[utoipa::path(patch, path = "/v1/runnables/{id}", tag = "runnables",
    params(("id" = Uuid, Path, description = "the runnable's id")),
    request_body = RunnableChanges,
    responses((status = 200, description = "OK", body = RunnableView), Refusals),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
    Json(body): Json<RunnableChanges>,
) -> Result<Response, Problem> {
    let (view, w) = state
        .commands
        .update_runnable(
            &caller.actor,
            &origin,
            runnable_id(&id)?,
            body.name,
            body.start_command,
        )
        .await?;
    Ok(tagged(
        written(&state, StatusCode::OK, Some(&view), w),
        &view,
    ))
}

/// `DELETE /v1/runnables/{id}` (its owner or an admin): 204; its forks keep what they forked.
#[utoipa::path(delete, path = "/v1/runnables/{id}", tag = "runnables",
    params(("id" = Uuid, Path, description = "the runnable's id")),
    responses((status = 204, description = "removed"), Refusals),
    security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let w = state
        .commands
        .remove_runnable(&caller.actor, &origin, runnable_id(&id)?)
        .await?;
    Ok(written::<()>(&state, StatusCode::NO_CONTENT, None, w))
}

/// `POST /v1/runnables/{id}/save` (its owner or an admin): makes its image from its files and
/// start command, or overwrites the one it has; 200 with it. Saved, it is never reaped, and
/// anyone may see and fork it.
#[utoipa::path(post, path = "/v1/runnables/{id}/save", tag = "runnables",
    params(("id" = Uuid, Path, description = "the runnable's id")),
    responses((status = 200, description = "saved: the runnable with its image", body = RunnableView), Refusals),
    security(("bearer" = [])))]
pub async fn save(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let (view, w) = state
        .commands
        .save_runnable(
            &caller.actor,
            &origin,
            &state.runnable_rules,
            runnable_id(&id)?,
        )
        .await?;
    Ok(tagged(
        written(&state, StatusCode::OK, Some(&view), w),
        &view,
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FilesQuery {
    /// The folder to list (default: the top of the tree).
    path: Option<String>,
}

/// `GET /v1/runnables/{id}/files?path=` (its owner or an admin): the files and folders right
/// under `path`, by path; a folder has `dir: true` and no digest. 404 for a path that is
/// neither. An access, as reading a file is.
#[utoipa::path(get, path = "/v1/runnables/{id}/files", tag = "runnables",
    params(("id" = Uuid, Path, description = "the runnable's id"), FilesQuery),
    responses((status = 200, description = "the entries right under `path`", body = Vec<FileView>), Refusals),
    security(("bearer" = [])))]
pub async fn files(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
    Query(query): Query<FilesQuery>,
) -> Result<axum::Json<Vec<FileView>>, Problem> {
    Ok(axum::Json(
        state
            .commands
            .runnable_files(
                &caller.actor,
                &origin,
                &state.runnable_rules,
                runnable_id(&id)?,
                query.path.as_deref(),
            )
            .await?,
    ))
}

/// `GET /v1/runnables/{id}/files/{path}` (its owner or an admin): the file's bytes, as
/// `application/octet-stream`; an access.
#[utoipa::path(get, path = "/v1/runnables/{id}/files/{*path}", tag = "runnables",
    params(
        ("id" = Uuid, Path, description = "the runnable's id"),
        ("path" = String, Path, description = "the file's path in its tree (`src/main.py`)")),
    responses((status = 200, description = "its content", body = Vec<u8>, content_type = "application/octet-stream"), Refusals),
    security(("bearer" = [])))]
pub async fn read_file(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path((id, path)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let content = state
        .commands
        .runnable_file(
            &caller.actor,
            &origin,
            &state.runnable_rules,
            runnable_id(&id)?,
            &path,
        )
        .await?;
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        content,
    )
        .into_response())
}

/// `PUT /v1/runnables/{id}/files/{path}` with the raw content (its owner or an admin; any
/// content type): 201 with the file when it is new, 200 when it replaced one. Who may write
/// and the path are checked before the body is read (403/404/400 first). 413
/// `file_too_large` past `runnables.max_file_bytes` (nothing stored), 400 naming `files`
/// past `runnables.max_files`, 413 `runnable_too_large` past `runnables.max_total_bytes`, 409
/// `path_conflict` for a path that is a folder or under a file.
#[utoipa::path(put, path = "/v1/runnables/{id}/files/{*path}", tag = "runnables",
    params(
        ("id" = Uuid, Path, description = "the runnable's id"),
        ("path" = String, Path, description = "the file's path in its tree (`src/main.py`)")),
    request_body(content = Option<Vec<u8>>, content_type = "application/octet-stream", description = "the file's content, raw; none writes an empty file"),
    responses(
        (status = 201, description = "written: a new file", body = FileView),
        (status = 200, description = "written over the file that was there", body = FileView),
        Refusals),
    security(("bearer" = [])))]
pub async fn write_file(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path((id, path)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    // Who may write there, and whether the path is one, before a byte of the body is read.
    state
        .commands
        .check_runnable_write(&caller.actor, &id, &path)
        .await?;
    let id = runnable_id(&id)?;
    let idle = std::time::Duration::from_secs(state.body_read_timeout_seconds);
    let content = read_limited(&headers, body, &state.runnable_rules.limits, idle).await?;
    let (view, created, w) = state
        .commands
        .write_runnable_file(
            &caller.actor,
            &origin,
            &state.runnable_rules,
            id,
            &path,
            content,
        )
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(written(&state, status, Some(&view), w))
}

/// A file's body, refused with 413 `file_too_large` as soon as it is known to pass `max`: by
/// its `Content-Length` before any of it is read, else once what came passes it (the rest is
/// never read). A declared length reserves at most [`RESERVE`] up front: the buffer grows with
/// what actually comes, not with what a client claims. A file may take long to arrive whole
/// (up to `runnables.max_file_bytes`), but a client that sends nothing for `idle`
/// (`http.body_read_timeout_seconds`) is answered 408 `body_timeout`.
const RESERVE: u64 = 64 * 1024;

async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limits: &bosun_domain::runnables::FileLimits,
    idle: std::time::Duration,
) -> Result<Vec<u8>, Problem> {
    let max = limits.max_file_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(length) = declared {
        limits.check_file_size(length).map_err(Problem::from)?;
    }
    let capacity = declared.unwrap_or(0).min(max).min(RESERVE);
    let mut content = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
    let mut stream = body.into_data_stream();
    loop {
        let next = tokio::time::timeout(idle, stream.next())
            .await
            .map_err(|_| {
                crate::extract::body_timeout(format!(
                    "nothing of the body came for {} s (http.body_read_timeout_seconds)",
                    idle.as_secs()
                ))
            })?;
        let Some(chunk) = next else { break };
        let chunk = chunk
            .map_err(|e| Problem::bad_request(format!("the body cannot be read: {e}"), vec![]))?;
        limits
            .check_file_size((content.len() + chunk.len()) as u64)
            .map_err(Problem::from)?;
        content.extend_from_slice(&chunk);
    }
    Ok(content)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// `true` to delete a folder with everything under it.
    #[param(value_type = Option<bool>)]
    recursive: Option<String>,
}

/// `DELETE /v1/runnables/{id}/files/{path}?recursive=` (its owner or an admin): 204; a folder
/// needs `recursive=true` (else 400 `recursive`), nothing there is 404.
#[utoipa::path(delete, path = "/v1/runnables/{id}/files/{*path}", tag = "runnables",
    params(
        ("id" = Uuid, Path, description = "the runnable's id"),
        ("path" = String, Path, description = "the file's or folder's path in its tree"),
        DeleteQuery),
    responses((status = 204, description = "deleted"), Refusals),
    security(("bearer" = [])))]
pub async fn delete_file(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path((id, path)): Path<(String, String)>,
    Query(query): Query<DeleteQuery>,
) -> Result<Response, Problem> {
    let recursive = match query.recursive.as_deref() {
        None => false,
        Some(value) => value
            .parse()
            .map_err(|_| Problem::invalid_field("recursive", "must be true or false"))?,
    };
    let w = state
        .commands
        .delete_runnable_files(&caller.actor, &origin, runnable_id(&id)?, &path, recursive)
        .await?;
    Ok(written::<()>(&state, StatusCode::NO_CONTENT, None, w))
}

/// `POST /v1/runnables/{id}/start` (its owner or an admin): it is wanted running; 202 with it
/// (`starting`: a runner on some node starts it). One wanted running already is no change.
#[utoipa::path(post, path = "/v1/runnables/{id}/start", tag = "runnables",
    params(("id" = Uuid, Path, description = "the runnable's id")),
    responses((status = 202, description = "wanted running: the runnable as it is now", body = RunnableView), Refusals),
    security(("bearer" = [])))]
pub async fn start(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let answer = state
        .commands
        .start_runnable(&caller.actor, &origin, runnable_id(&id)?)
        .await?;
    Ok(accepted(&state, answer))
}

/// `POST /v1/runnables/{id}/stop` (its owner or an admin): it is wanted stopped; 202 with it
/// (one still starting is `stopped` at once, a running one when its runner has stopped it).
#[utoipa::path(post, path = "/v1/runnables/{id}/stop", tag = "runnables",
    params(("id" = Uuid, Path, description = "the runnable's id")),
    responses((status = 202, description = "wanted stopped: the runnable as it is now", body = RunnableView), Refusals),
    security(("bearer" = [])))]
pub async fn stop(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let answer = state
        .commands
        .stop_runnable(&caller.actor, &origin, runnable_id(&id)?)
        .await?;
    Ok(accepted(&state, answer))
}

/// `POST /v1/runnables/{id}/restart` (its owner or an admin): run again from scratch, a new
/// generation (one stopped starts); 202 with it.
#[utoipa::path(post, path = "/v1/runnables/{id}/restart", tag = "runnables",
    params(("id" = Uuid, Path, description = "the runnable's id")),
    responses((status = 202, description = "wanted running anew: the runnable as it is now", body = RunnableView), Refusals),
    security(("bearer" = [])))]
pub async fn restart(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let answer = state
        .commands
        .restart_runnable(&caller.actor, &origin, runnable_id(&id)?)
        .await?;
    Ok(accepted(&state, answer))
}

/// 202 with the runnable as a start, stop or restart left it, tagged with its version.
fn accepted(state: &AppState, (view, w): (RunnableView, Written)) -> Response {
    tagged(written(state, StatusCode::ACCEPTED, Some(&view), w), &view)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// The byte to read from, in the whole output (every run's); default 0.
    #[param(minimum = 0)]
    offset: Option<i64>,
}

/// `GET /v1/runnables/{id}/logs?offset=<bytes>` (its owner or an admin): what its runs wrote
/// on stdout and stderr as they came, from that byte on, as a job's output is answered:
/// `Bosun-Output-Offset` (where to read on) and `Bosun-Output-Complete` (nothing runs and
/// nothing more is there).
#[utoipa::path(get, path = "/v1/runnables/{id}/logs", tag = "runnables",
    params(("id" = Uuid, Path, description = "the runnable's id"), LogsQuery),
    responses((status = 200, description = "the output from `offset` on, with `Bosun-Output-Offset` and `Bosun-Output-Complete`", body = String, content_type = "text/plain"), Refusals),
    security(("bearer" = [])))]
pub async fn logs(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<LogsQuery>,
) -> Result<Response, Problem> {
    let from = query.offset.unwrap_or(0);
    if from < 0 {
        return Err(Problem::invalid_field("offset", "must be 0 or more"));
    }
    let logs = state
        .queries
        .runnable_logs(&caller.actor, runnable_id(&id)?, from, LOGS_PAGE)
        .await?;
    let mut response = (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        logs.text,
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(OUTPUT_OFFSET, HeaderValue::from(logs.next));
    headers.insert(
        OUTPUT_COMPLETE,
        HeaderValue::from_static(if logs.complete { "true" } else { "false" }),
    );
    Ok(response)
}

/// The routes of this resource, with their OpenAPI paths (the document names `{*path}` as
/// `{path}`: see `super::documented`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, update, remove))
        .routes(routes!(save))
        .routes(routes!(start))
        .routes(routes!(stop))
        .routes(routes!(restart))
        .routes(routes!(logs))
        .routes(routes!(files))
        .routes(routes!(read_file, write_file, delete_file))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(content: Option<&str>, content_base64: Option<&str>) -> FileInput {
        FileInput {
            path: "a".into(),
            content: content.map(str::to_string),
            content_base64: content_base64.map(str::to_string),
        }
    }

    #[test]
    fn a_files_content_is_text_or_base64_never_both() {
        let files = contents(vec![file(Some("hi"), None), file(None, Some("AP8="))]).unwrap();
        assert_eq!(files[0].1, b"hi");
        assert_eq!(files[1].1, [0, 255]);
        for (i, bad) in [file(None, None), file(Some("x"), Some("eA=="))]
            .into_iter()
            .enumerate()
        {
            let problem = contents(vec![file(Some("ok"), None), bad]).err().unwrap();
            assert_eq!(problem.errors[0].field, "files[1].content", "case {i}");
        }
        let problem = contents(vec![file(None, Some("not base64!"))])
            .err()
            .unwrap();
        assert_eq!(problem.errors[0].field, "files[0].content_base64");
    }

    const IDLE: std::time::Duration = std::time::Duration::from_secs(60);

    fn length(n: u64) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, n.into());
        headers
    }

    #[tokio::test]
    async fn a_body_past_the_limit_is_413_by_its_length_or_as_it_comes() {
        let limits = bosun_domain::runnables::FileLimits {
            max_file_bytes: 3,
            ..Default::default()
        };
        let limits = &limits;
        let content = read_limited(&length(3), Body::from("abc"), limits, IDLE)
            .await
            .unwrap();
        assert_eq!(content, b"abc");
        let problem = read_limited(&length(4), Body::from("abcd"), limits, IDLE)
            .await
            .err()
            .unwrap();
        assert_eq!((problem.status, problem.code), (413, "file_too_large"));
        // The domain's refusal, as a write past the limit gets it from the aggregate.
        let domain = Problem::from(limits.check_file_size(4).err().unwrap());
        assert_eq!(problem.detail, domain.detail);
        // No length given (chunked): refused once what came passes the limit.
        let chunks = futures::stream::iter(
            ["ab", "cd", "ef"].map(|c| Ok::<_, std::io::Error>(axum::body::Bytes::from(c))),
        );
        let problem = read_limited(&HeaderMap::new(), Body::from_stream(chunks), limits, IDLE)
            .await
            .err()
            .unwrap();
        assert_eq!(problem.code, "file_too_large");
        assert!(read_limited(&HeaderMap::new(), Body::empty(), limits, IDLE)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn a_body_that_stops_coming_is_408_after_the_idle_wait() {
        let limits = bosun_domain::runnables::FileLimits {
            max_file_bytes: 1000,
            ..Default::default()
        };
        // One chunk, then nothing: the stream never ends.
        let chunks =
            futures::stream::iter([Ok::<_, std::io::Error>(axum::body::Bytes::from("ab"))])
                .chain(futures::stream::pending());
        let started = std::time::Instant::now();
        let problem = read_limited(
            &HeaderMap::new(),
            Body::from_stream(chunks),
            &limits,
            std::time::Duration::from_millis(200),
        )
        .await
        .expect_err("timed out");
        assert_eq!((problem.status, problem.code), (408, "body_timeout"));
        assert!(started.elapsed() >= std::time::Duration::from_millis(200));
    }
}
