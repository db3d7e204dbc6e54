//! Runnable's files of a container (`/users/{user}/runnables/{id}/files…`), onto the native
//! tree. A file's `_id` is its path (`render::file_id`); `path` in a body or a query is the
//! folder, from `/`, and `name` the last component.
//!
//! - `GET …/files?path=&dir&content&default`: every file and folder of the tree, or those
//!   right in folder `path` if given (as `/v1` lists a folder: 404 for one that is not there),
//!   read once with the contents if asked (`runnable_listing`); `dir`: folders only;
//!   `content`: each file's content (as text, for those that are UTF-8); `default`: none (no
//!   file is a default one here).
//! - `POST …/files` (JSON): `{name, path, content}` writes `<path>/<name>` (201, or 200 when it
//!   replaced a file); `{dir: true, name, path}` answers that folder if it exists (201) and is
//!   a 400 otherwise: a folder here is the paths of its files, so an empty one cannot be kept.
//!   Each missing field is Runnable's 400. A multipart upload is a 400 (not served), as is any
//!   body but JSON.
//! - `GET …/files/{fileid}`: the file with its content (or the folder); 404 `file does not
//!   exist` for an id that names nothing.
//! - `PUT`/`PATCH …/files/{fileid}` (JSON) `{content, path, name, default}`: new content, a new
//!   folder or name, in one change (`change_runnable_file`); `default: true` is a 400; none of
//!   them is Runnable's 400.
//! - `DELETE …/files/{fileid}?recursive`: the native deletion (a folder needs `recursive`),
//!   `{message: "file deleted"}`.
//!
//! Every call is on `{user}`'s runnable (`container_of`: 404, then 403 for another user's),
//! and reads or changes it as its owner or an admin (natively: 404, then 403); each is an
//! access. A file id naming a path that is not one (absolute, `..`) is the native 400 `path`.
//!
//! Does not own: the tree's rules (commands, domain), the shapes (`render`).

use super::body::{Fields, Media};
use super::containers::container_of;
use super::{missing, render, written, RunnableCaller};
use crate::auth::{Caller, RequestOrigin};
use crate::extract::{Path, Query};
use crate::problem::Problem;
use crate::startup::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use bosun_commands::runnables::FileChange;
use bosun_commands::Written;
use bosun_projections::read_models::runnables::FileView;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

/// A file body's media type as Runnable took it: JSON; a multipart upload is not served.
fn require_json(fields: &Fields) -> Result<(), Problem> {
    match fields.media {
        Media::Json => Ok(()),
        Media::Multipart => Err(missing(
            "body",
            "multipart uploads are not served here: send the file as JSON {name, path, content}",
        )),
        Media::Form | Media::Other => Err(missing(
            "body",
            "content type must be application/json: send the file as JSON {name, path, content}",
        )),
    }
}

/// A file's or folder's name: one path component.
fn name_field(fields: &Fields, what: &str) -> Result<String, Problem> {
    let name = fields
        .text("name")?
        .ok_or_else(|| missing("name", &format!("{what} must include a name field")))?;
    // One component: `..` and the rest a path may not hold are the native path's 400.
    if name.is_empty() || name == "." || name.contains('/') {
        return Err(Problem::invalid_field(
            "name",
            "must be one file or folder name, without /",
        ));
    }
    Ok(name)
}

/// The runnable `id` of `user`'s path ([`container_of`]: 404, 403 for another user's).
async fn runnable_of(
    state: &AppState,
    caller: &Caller,
    user: &str,
    id: &str,
) -> Result<Uuid, Problem> {
    Ok(container_of(state, caller, user, id).await?.id)
}

/// The path a file id names: 404 `file does not exist` for one that names none.
fn path_of(file: &str) -> Result<String, Problem> {
    render::file_path(file).ok_or_else(|| Problem::not_found("file does not exist"))
}

/// The content of the file at `path`, as text; `None` when it is not UTF-8.
async fn text_of(
    state: &AppState,
    caller: &Caller,
    origin: &bosun_commands::Origin,
    id: Uuid,
    path: &str,
) -> Result<Option<String>, Problem> {
    let bytes = state
        .commands
        .runnable_file(&caller.actor, origin, &state.runnable_rules, id, path)
        .await?;
    Ok(String::from_utf8(bytes).ok())
}

#[derive(Deserialize)]
pub struct ListQuery {
    path: Option<String>,
    dir: Option<String>,
    content: Option<String>,
    default: Option<String>,
}

/// `GET …/files`: see the [module](self).
pub async fn list(
    State(state): State<AppState>,
    RunnableCaller(caller): RunnableCaller,
    RequestOrigin(origin): RequestOrigin,
    Path((user, id)): Path<(String, String)>,
    Query(query): Query<ListQuery>,
) -> Result<Response, Problem> {
    let id = runnable_of(&state, &caller, &user, &id).await?;
    // Runnable's folder (`/`, `/src`, `src/`) as a native path; none: the whole tree.
    let under = query.path.as_deref().map(|p| p.trim_matches('/'));
    let contents = query.content.is_some() && query.dir.is_none() && query.default.is_none();
    let listed = state
        .commands
        .runnable_listing(
            &caller.actor,
            &origin,
            &state.runnable_rules,
            id,
            under,
            contents,
        )
        .await?;
    if query.default.is_some() {
        return Ok(super::read(&Vec::<Value>::new()));
    }
    let body: Vec<Value> = listed
        .into_iter()
        .filter(|(entry, _)| query.dir.is_none() || entry.dir)
        .map(|(entry, bytes)| {
            let text = bytes.and_then(|bytes| String::from_utf8(bytes).ok());
            render::file(&entry, text.as_deref())
        })
        .collect();
    Ok(super::read(&body))
}

/// `POST …/files`: see the [module](self).
pub async fn create(
    State(state): State<AppState>,
    RunnableCaller(caller): RunnableCaller,
    RequestOrigin(origin): RequestOrigin,
    Path((user, id)): Path<(String, String)>,
    fields: Fields,
) -> Result<Response, Problem> {
    let id = runnable_of(&state, &caller, &user, &id).await?;
    require_json(&fields)?;
    if fields.flag("dir")? == Some(true) {
        let name = name_field(&fields, "dir")?;
        let folder = fields
            .text("path")?
            .ok_or_else(|| missing("path", "dir must include a path field"))?;
        let path = render::join(&folder, &name);
        let entry = state
            .commands
            .runnable_entry(&caller.actor, &origin, &state.runnable_rules, id, &path)
            .await?;
        return match entry {
            Some(entry) if entry.dir => Ok(super::read_with(
                StatusCode::CREATED,
                &render::file(&entry, None),
            )),
            Some(_) => Err(Problem::new(
                StatusCode::CONFLICT,
                "path_conflict",
                format!("{path} is a file of runnable {id}"),
            )),
            None => Err(Problem::invalid_field(
                "dir",
                format!(
                    "a folder here is the paths of the files in it, so an empty one cannot be \
                     kept: write a file in it instead ({{name, path: \"/{path}\", content}})"
                ),
            )),
        };
    }
    let name = name_field(&fields, "file")?;
    let content = fields
        .text("content")?
        .ok_or_else(|| missing("content", "file must include a content field"))?;
    let folder = fields
        .text("path")?
        .ok_or_else(|| missing("path", "file must include a path field"))?;
    let path = render::join(&folder, &name);
    let (view, created, w) = state
        .commands
        .write_runnable_file(
            &caller.actor,
            &origin,
            &state.runnable_rules,
            id,
            &path,
            content.into_bytes(),
        )
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = serde_json::json!({
        "_id": render::file_id(&view.path),
        "name": name,
        "path": render::folder_of(&view.path),
    });
    Ok(written(&state, status, &body, w))
}

/// The file or folder at `path` of runnable `id` (`runnable_entry`); 404 `file does not exist`
/// for neither.
async fn entry_at(
    state: &AppState,
    caller: &Caller,
    origin: &bosun_commands::Origin,
    id: Uuid,
    path: &str,
) -> Result<FileView, Problem> {
    state
        .commands
        .runnable_entry(&caller.actor, origin, &state.runnable_rules, id, path)
        .await?
        .ok_or_else(|| Problem::not_found("file does not exist"))
}

/// `GET …/files/{fileid}`: the file with its content, or the folder.
pub async fn get(
    State(state): State<AppState>,
    RunnableCaller(caller): RunnableCaller,
    RequestOrigin(origin): RequestOrigin,
    Path((user, id, file)): Path<(String, String, String)>,
) -> Result<Response, Problem> {
    let id = runnable_of(&state, &caller, &user, &id).await?;
    let path = path_of(&file)?;
    let entry = entry_at(&state, &caller, &origin, id, &path).await?;
    let content = match entry.dir {
        true => None,
        false => text_of(&state, &caller, &origin, id, &path).await?,
    };
    Ok(super::read(&render::file(&entry, content.as_deref())))
}

/// `PUT`/`PATCH …/files/{fileid}`: see the [module](self).
pub async fn update(
    State(state): State<AppState>,
    RunnableCaller(caller): RunnableCaller,
    RequestOrigin(origin): RequestOrigin,
    Path((user, id, file)): Path<(String, String, String)>,
    fields: Fields,
) -> Result<Response, Problem> {
    let id = runnable_of(&state, &caller, &user, &id).await?;
    let path = path_of(&file)?;
    require_json(&fields)?;
    let content = fields.text("content")?;
    let folder = fields.text("path")?;
    let name = match fields.has("name") {
        true => Some(name_field(&fields, "file")?),
        false => None,
    };
    let default = fields.flag("default")?;
    if default == Some(true) {
        return Err(Problem::invalid_field(
            "default",
            "no file is a default one here: Bosun keeps no such tag",
        ));
    }
    if content.is_none() && folder.is_none() && name.is_none() && default.is_none() {
        return Err(missing(
            "body",
            "must provide content, name, path or tag to update operation",
        ));
    }
    let to = match (&folder, &name) {
        (None, None) => None,
        _ => {
            let current_name = path.rsplit('/').next().unwrap_or(&path);
            let current_folder = render::folder_of(&path);
            Some(render::join(
                folder.as_deref().unwrap_or(&current_folder),
                name.as_deref().unwrap_or(current_name),
            ))
        }
    };
    let change = FileChange {
        to,
        content: content.clone().map(String::into_bytes),
    };
    let (entry, w) = state
        .commands
        .change_runnable_file(
            &caller.actor,
            &origin,
            &state.runnable_rules,
            id,
            &path,
            change,
        )
        .await?;
    let body = render::file(&entry, content.as_deref());
    Ok(written(&state, StatusCode::OK, &body, w))
}

#[derive(Deserialize)]
pub struct DeleteQuery {
    recursive: Option<String>,
}

/// `DELETE …/files/{fileid}?recursive`: `{message: "file deleted"}`.
pub async fn remove(
    State(state): State<AppState>,
    RunnableCaller(caller): RunnableCaller,
    RequestOrigin(origin): RequestOrigin,
    Path((user, id, file)): Path<(String, String, String)>,
    Query(query): Query<DeleteQuery>,
) -> Result<Response, Problem> {
    let id = runnable_of(&state, &caller, &user, &id).await?;
    let path = path_of(&file)?;
    // Runnable took `?recursive` by its presence; `recursive=false` says no.
    let recursive = query.recursive.is_some_and(|value| value != "false");
    let w: Written = state
        .commands
        .delete_runnable_files(&caller.actor, &origin, id, &path, recursive)
        .await?;
    Ok(super::said(&state, "file deleted", w))
}
