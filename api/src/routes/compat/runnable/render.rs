//! Runnable 0.2.0's JSON shapes, from the native views: a user (mongoose's `toJSON` with its
//! virtuals, less `password` and `votes`), a container and an image (`src/models/containers`,
//! `images`: `_id` and its virtual `id`), a file (`{_id, name, path, dir, default, content}`,
//! `path` being the folder it is in, from `/`), and a file's id. Fields with no native
//! counterpart are constant here, as the module says ([`super`]).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bosun_projections::read_models::identity::UserView;
use bosun_projections::read_models::runnables::{FileView, RunnableView};
use serde_json::{json, Map, Value};

/// Runnable's permission levels: `0` anonymous, `1` registered, `5` a moderator (an admin).
fn permission_level(user: &UserView) -> u8 {
    match (user.anonymous, user.admin) {
        (true, _) => 0,
        (false, false) => 1,
        (false, true) => 5,
    }
}

/// A user: `_id` and `id` its name; `username` once registered (an anonymous user has none in
/// Runnable), `email` if any; `permission_level` and its virtuals `registered` (≥ 1),
/// `isVerified` (≥ 2), `isModerator` (≥ 5); `created`; the counters (none kept: `0`).
pub fn user(user: &UserView) -> Value {
    let level = permission_level(user);
    let mut body = Map::new();
    body.insert("_id".into(), json!(user.username));
    body.insert("id".into(), json!(user.username));
    if !user.anonymous {
        body.insert("username".into(), json!(user.username));
    }
    if let Some(email) = &user.email {
        body.insert("email".into(), json!(email));
    }
    body.insert("permission_level".into(), json!(level));
    body.insert("registered".into(), json!(level >= 1));
    body.insert("isVerified".into(), json!(level >= 2));
    body.insert("isModerator".into(), json!(level >= 5));
    body.insert("created".into(), json!(user.created_at));
    for counter in ["copies", "pastes", "cuts", "runs", "views"] {
        body.insert(counter.into(), json!(0));
    }
    Value::Object(body)
}

/// A user with the access token that now works for it.
pub fn user_with_token(view: &UserView, token: &str) -> Value {
    let mut body = user(view);
    if let Value::Object(fields) = &mut body {
        fields.insert("access_token".into(), json!(token));
    }
    body
}

/// Whether a runnable in native `state` is running as Runnable says it: wanted running and
/// starting, or running.
pub fn running(state: &str) -> bool {
    matches!(state, "starting" | "running")
}

/// The fields a container and an image share.
fn runnable_fields(view: &RunnableView) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("_id".into(), json!(view.id));
    body.insert("id".into(), json!(view.id));
    body.insert("name".into(), json!(view.name));
    body.insert("description".into(), json!(""));
    body.insert("owner".into(), json!(view.owner));
    if let Some(parent) = view.parent {
        body.insert("parent".into(), json!(parent));
    }
    body.insert("start_cmd".into(), json!(view.start_command));
    body.insert("service_cmds".into(), json!(""));
    body.insert("tags".into(), json!([]));
    body
}

/// A container (a runnable as its owner reads it): its `target` is its own id once it has an
/// image, `last_write` its last access, `running` and the native `state`.
pub fn container(view: &RunnableView) -> Value {
    let mut body = runnable_fields(view);
    body.insert("created".into(), json!(view.created_at));
    if view.image.is_some() {
        body.insert("target".into(), json!(view.id));
    }
    body.insert("last_write".into(), json!(view.last_access));
    body.insert("running".into(), json!(running(&view.state)));
    body.insert("state".into(), json!(view.state));
    Value::Object(body)
}

/// An image (a runnable that has one): `created` when it was saved; `votes` and the counters
/// none (`0`). `None` for a runnable without one.
pub fn image(view: &RunnableView) -> Option<Value> {
    let saved = view.image.as_ref()?;
    let mut body = runnable_fields(view);
    body.insert("created".into(), json!(saved.saved_at));
    body.insert("votes".into(), json!(0));
    for counter in ["copies", "pastes", "cuts", "runs", "views"] {
        body.insert(counter.into(), json!(0));
    }
    Some(Value::Object(body))
}

/// `?map=true`'s entry of an image: `{_id, name, tags}`.
pub fn image_name(view: &RunnableView) -> Value {
    json!({"_id": view.id, "name": view.name, "tags": []})
}

/// A file's `_id`: its path in the tree, base64url without padding.
pub fn file_id(path: &str) -> String {
    URL_SAFE_NO_PAD.encode(path.as_bytes())
}

/// The path a file's `_id` names; `None` for text that is not one.
pub fn file_path(id: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(id.as_bytes()).ok()?;
    String::from_utf8(bytes).ok().filter(|p| !p.is_empty())
}

/// The folder a native path is in, as Runnable writes it: `/` at the top, else `/a/b`.
pub fn folder_of(path: &str) -> String {
    match path.rsplit_once('/') {
        Some((folder, _)) => format!("/{folder}"),
        None => "/".to_string(),
    }
}

/// The native path of `name` in Runnable's folder `folder` (`/`, `/src`, `src/`…).
pub fn join(folder: &str, name: &str) -> String {
    let folder = folder.trim_matches('/');
    if folder.is_empty() {
        name.to_string()
    } else {
        format!("{folder}/{name}")
    }
}

/// A file or folder: `{_id, name, path, dir, default}`, and `content` if given (a file's text).
pub fn file(entry: &FileView, content: Option<&str>) -> Value {
    let name = entry.path.rsplit('/').next().unwrap_or(&entry.path);
    let mut body = Map::new();
    body.insert("_id".into(), json!(file_id(&entry.path)));
    body.insert("name".into(), json!(name));
    body.insert("path".into(), json!(folder_of(&entry.path)));
    body.insert("dir".into(), json!(entry.dir));
    body.insert("default".into(), json!(false));
    if let Some(content) = content {
        body.insert("content".into(), json!(content));
    }
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_id_is_its_path_in_one_url_safe_segment() {
        for path in ["main.sh", "src/a b/ü.py", "a/?&#/+"] {
            let id = file_id(path);
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{id}"
            );
            assert_eq!(file_path(&id).as_deref(), Some(path));
        }
        assert_eq!(file_path("not base64!"), None);
        assert_eq!(file_path(""), None);
    }

    #[test]
    fn a_folder_is_written_from_the_top_and_joined_back() {
        assert_eq!(folder_of("main.sh"), "/");
        assert_eq!(folder_of("src/lib/a.py"), "/src/lib");
        assert_eq!(join("/", "main.sh"), "main.sh");
        assert_eq!(join("/src/lib", "a.py"), "src/lib/a.py");
        assert_eq!(join("src/", "a.py"), "src/a.py");
        assert_eq!(join("", "a.py"), "a.py");
    }

    #[test]
    fn running_is_wanted_running() {
        assert!(running("starting") && running("running"));
        assert!(!running("stopped") && !running("error"));
    }
}
