//! tsuru's app environment, `/apps/{app}/env`: read, set and unset, in 0.3.9's JSON forms and
//! 1.x's form and query forms; each the `/v1/apps/{app}/env` query or command with the same
//! actor. Owns the parsing of those forms only: names, values and who may set them are the
//! commands'.
//!
//! - `GET`: every variable, or those named by 0.3.9's JSON body `["VAR", …]` or 1.x's
//!   `?env=VAR&env=…` → `[{name, value, public}]` (`[]` for none). A private value is `null`,
//!   as `/v1` shows it: Bosun never shows it again (tsuru showed it in clear).
//! - `POST`: 0.3.9's JSON object `{"VAR": "value"}` (public, and the app restarted, as 0.3.9
//!   did) → 200 with no body; 1.x's form `Envs.0.Name`, `Envs.0.Value`, … `NoRestart`,
//!   `Private` (every variable of the call public or private alike) → 200, its messages.
//! - `DELETE`: 0.3.9's JSON body `["VAR", …]` → 200 with no body; 1.x's `?env=VAR&env=…&noRestart=`
//!   (or a form) → 200, its messages. No name is a 400.
//!
//! Each form here is one generation's (rule 1 of the [surface's rule](super)): a JSON body is
//! 0.3.9's, a form or the `?env=` query 1.x's.

use super::body::{self, Body, Fields};
use super::{json, messages, written, TsuruCaller};
use crate::auth::RequestOrigin;
use crate::extract::Path;
use crate::problem::Problem;
use crate::startup::AppState;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bosun_commands::apps::{EnvInput, EnvView};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The routes of this file (bare paths).
pub fn router() -> Router<AppState> {
    Router::new().route("/apps/{app}/env", get(read).post(set).delete(unset))
}

/// A call's body and query string, read once.
struct Sent {
    body: Body,
    query: Fields,
}

async fn sent(state: &AppState, request: Request) -> Result<Sent, Problem> {
    let query = body::form_pairs(request.uri().query().unwrap_or("").as_bytes())?;
    let body = body::read(request, state).await?;
    Ok(Sent {
        body,
        query: Fields::query(query),
    })
}

/// A JSON list of names (0.3.9's bodies): a 400 naming `body` for anything else.
fn names_of(value: &Value, expected: &str) -> Result<Vec<String>, Problem> {
    let Some(list) = value.as_array() else {
        return Err(Problem::invalid_field("body", expected));
    };
    list.iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| Problem::invalid_field("body", expected))
        })
        .collect()
}

/// `GET /apps/{app}/env`: see the module.
pub async fn read(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    Path(app): Path<String>,
    request: Request,
) -> Result<Response, Problem> {
    let sent = sent(&state, request).await?;
    let mut names = sent.query.texts("env")?;
    if let Body::Json(value) = &sent.body {
        names.extend(names_of(
            value,
            "must be a JSON list of variable names, [\"VAR\", …]",
        )?);
    }
    let all = state.queries.app_env(&caller.actor, &app).await?;
    let shown: Vec<Value> = if names.is_empty() {
        all.iter().map(render).collect()
    } else {
        // In the order asked, as tsuru answered; a name it has not is left out.
        names
            .iter()
            .filter_map(|name| all.iter().find(|v| &v.name == name))
            .map(render)
            .collect()
    };
    Ok(json(StatusCode::OK, &shown))
}

fn render(var: &EnvView) -> Value {
    json!({"name": var.name, "value": var.value, "public": var.public})
}

/// 1.x's form `Envs.N.Name` / `Envs.N.Value`, by `N`: the variables in index order. A name
/// missing for an index, or an `Envs…` key of another shape, is a 400 naming it; a missing value
/// is empty (as tsuru's decoder left it).
fn form_envs(pairs: &[(String, String)]) -> Result<Vec<(String, String)>, Problem> {
    let mut by_index: BTreeMap<u32, (Option<String>, Option<String>)> = BTreeMap::new();
    for (key, value) in pairs {
        let Some(rest) = key.strip_prefix("Envs") else {
            continue;
        };
        let shape = || {
            Problem::invalid_field(
                key.clone(),
                "must be Envs.<N>.Name or Envs.<N>.Value, N a number",
            )
        };
        let rest = rest.strip_prefix('.').ok_or_else(shape)?;
        let (index, field) = rest.split_once('.').ok_or_else(shape)?;
        let index: u32 = index.parse().map_err(|_| shape())?;
        let entry = by_index.entry(index).or_default();
        let slot = match field {
            "Name" => &mut entry.0,
            "Value" => &mut entry.1,
            _ => return Err(shape()),
        };
        if slot.replace(value.clone()).is_some() {
            return Err(Problem::invalid_field(
                key.clone(),
                "is given more than once",
            ));
        }
    }
    by_index
        .into_iter()
        .map(|(index, (name, value))| match name {
            Some(name) if !name.is_empty() => Ok((name, value.unwrap_or_default())),
            _ => Err(Problem::invalid_field(
                format!("Envs.{index}.Name"),
                "is required",
            )),
        })
        .collect()
}

/// `POST /apps/{app}/env`: see the module.
pub async fn set(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    Path(app): Path<String>,
    request: Request,
) -> Result<Response, Problem> {
    let sent = sent(&state, request).await?;
    let (envs, restart, form) = match &sent.body {
        Body::Json(Value::Object(vars)) => {
            let envs = vars
                .iter()
                .map(|(name, value)| match value {
                    Value::String(value) => Ok(EnvInput {
                        name: name.clone(),
                        value: value.clone(),
                        public: true,
                    }),
                    _ => Err(Problem::invalid_field(name.clone(), "must be text")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            (envs, true, false)
        }
        Body::Form(pairs) => {
            let fields = Fields::form(pairs.clone());
            let public = !fields.flag("Private", false)?;
            let restart = !fields.flag("NoRestart", false)?;
            let envs = form_envs(pairs)?
                .into_iter()
                .map(|(name, value)| EnvInput {
                    name,
                    value,
                    public,
                })
                .collect();
            (envs, restart, true)
        }
        Body::Json(_) => {
            return Err(Problem::invalid_field(
                "body",
                "You must provide the environment variables in a JSON object",
            ))
        }
        Body::Empty => (Vec::new(), true, false),
    };
    if envs.is_empty() {
        return Err(Problem::invalid_field(
            "body",
            "You must provide the list of environment variables",
        ));
    }
    let count = envs.len();
    let (_, w) = state
        .commands
        .set_app_env(&caller.actor, &origin, &app, envs, restart)
        .await?;
    let response = if form {
        messages(
            StatusCode::OK,
            [format!(
                "---- Setting {count} new environment variables ----\n"
            )],
        )
    } else {
        StatusCode::OK.into_response()
    };
    Ok(written(&state, response, w))
}

/// `DELETE /apps/{app}/env`: see the module.
pub async fn unset(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    Path(app): Path<String>,
    request: Request,
) -> Result<Response, Problem> {
    let sent = sent(&state, request).await?;
    let (names, restart, json_body) = match &sent.body {
        Body::Json(value) => (
            names_of(
                value,
                "You must provide the list of environment variables, in JSON format",
            )?,
            true,
            true,
        ),
        Body::Form(pairs) => {
            let mut fields = Fields::form(pairs.clone());
            fields.fill_from(sent.query.clone());
            (
                fields.texts("env")?,
                !fields.flag("noRestart", false)?,
                false,
            )
        }
        Body::Empty => (
            sent.query.texts("env")?,
            !sent.query.flag("noRestart", false)?,
            false,
        ),
    };
    if names.iter().all(String::is_empty) {
        return Err(Problem::invalid_field(
            "env",
            "You must provide the list of environment variables.",
        ));
    }
    let count = names.len();
    let (_, w) = state
        .commands
        .unset_app_env(&caller.actor, &origin, &app, names, restart)
        .await?;
    let response = if json_body {
        StatusCode::OK.into_response()
    } else {
        messages(
            StatusCode::OK,
            [format!(
                "---- Unsetting {count} environment variables ----\n"
            )],
        )
    };
    Ok(written(&state, response, w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        body::form_pairs(text.as_bytes()).unwrap()
    }

    #[test]
    fn form_envs_are_read_by_index() {
        let envs = form_envs(&pairs(
            "Envs.1.Name=B&Envs.0.Value=a%3D1&Envs.0.Name=A&Envs.1.Value=&NoRestart=true",
        ))
        .unwrap();
        assert_eq!(
            envs,
            [("A".into(), "a=1".into()), ("B".into(), String::new())]
        );
        assert!(form_envs(&pairs("NoRestart=true")).unwrap().is_empty());
    }

    #[test]
    fn a_form_env_of_another_shape_or_without_a_name_is_named() {
        for (text, field) in [
            ("Envs.0.Value=x", "Envs.0.Name"),
            ("Envs.x.Name=A", "Envs.x.Name"),
            ("Envs.0.name=A", "Envs.0.name"),
            ("Envs0.Name=A", "Envs0.Name"),
            ("Envs.0.Name=A&Envs.0.Name=B", "Envs.0.Name"),
        ] {
            let problem = form_envs(&pairs(text)).unwrap_err();
            assert_eq!(problem.errors[0].field, field, "{text}");
        }
    }

    #[test]
    fn a_json_list_of_names_is_read_and_anything_else_refused() {
        assert_eq!(names_of(&json!(["A", "B"]), "x").unwrap(), ["A", "B"]);
        assert!(names_of(&json!({"A": 1}), "x").is_err());
        assert!(names_of(&json!(["A", 1]), "x").is_err());
    }
}
