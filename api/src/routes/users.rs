//! `/v1/users`.

use crate::auth::{Caller, RequestOrigin};
use crate::extract::{Json, Query};
use crate::problem::{FieldError, Problem};
use crate::routes::{limit, listed, offset, written};
use crate::startup::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use bosun_commands::identity::{NewUser, UserChanges};
use bosun_domain::identity::{Email, EmailChange, Password, Scope, Username};
use bosun_domain::DomainError;
use bosun_projections::read_models::identity as model;
use serde::{Deserialize, Deserializer};

/// `?limit=&offset=` of the identity lists (users, tokens, teams).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    limit: Option<i64>,
    offset: Option<i64>,
}

impl PageQuery {
    /// The page asked for, its bounds checked (400 naming `limit` or `offset`).
    pub fn page(&self) -> Result<model::Page, Problem> {
        Ok(model::Page {
            limit: limit(self.limit)?,
            offset: offset(self.offset)?,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    username: String,
    password: String,
    email: Option<String>,
    #[serde(default)]
    admin: bool,
}

/// Collects every field's error, so a client fixes them all at once.
#[derive(Default)]
struct Fields(Vec<FieldError>);

impl Fields {
    fn take<T>(&mut self, result: Result<T, DomainError>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(DomainError::Invalid { field, message }) => {
                self.0.push(FieldError {
                    field: field.into(),
                    message,
                });
                None
            }
            Err(other) => {
                self.0.push(FieldError {
                    field: "body".into(),
                    message: other.to_string(),
                });
                None
            }
        }
    }

    fn finish(self) -> Result<(), Problem> {
        if self.0.is_empty() {
            return Ok(());
        }
        let detail = self
            .0
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        Err(Problem::bad_request(detail, self.0))
    }
}

/// A user named in a path: a name that cannot exist is simply not found.
pub fn user_path(username: &str) -> Result<Username, Problem> {
    Username::parse(username).map_err(|_| Problem::not_found(format!("no user {username}")))
}

/// `POST /v1/users` (admin).
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Json(body): Json<CreateUser>,
) -> Result<Response, Problem> {
    caller.actor.require(Scope::Write)?;
    caller.actor.require_admin()?;
    let mut fields = Fields::default();
    let username = fields.take(Username::parse(&body.username));
    let password = fields.take(Password::parse("password", &body.password));
    let email = match &body.email {
        Some(e) => fields.take(Email::parse(e)).map(Some),
        None => Some(None),
    };
    fields.finish()?;
    let (Some(username), Some(password), Some(email)) = (username, password, email) else {
        return Err(Problem::internal());
    };
    let (user, w) = state
        .commands
        .register_user(
            &caller.actor,
            &origin,
            NewUser {
                username,
                password,
                email,
                admin: body.admin,
            },
        )
        .await?;
    Ok(written(&state, StatusCode::CREATED, Some(&user), w))
}

/// `GET /v1/users?limit=&offset=` (admin): by name, with `X-Total-Count`.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<PageQuery>,
) -> Result<Response, Problem> {
    caller.actor.require(Scope::Read)?;
    caller.actor.require_admin()?;
    let page = query.page()?;
    let client = state.store.pool().get().await?;
    let (users, total) = model::users(&**client, page).await?;
    Ok(listed(&users, total))
}

/// `GET /v1/users/{username}` (admin or self).
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
) -> Result<axum::Json<model::UserView>, Problem> {
    caller.actor.require(Scope::Read)?;
    caller.actor.require_self_or_admin(&username)?;
    // A name that cannot exist is not looked up at all.
    user_path(&username)?;
    let client = state.store.pool().get().await?;
    model::user(&**client, &username)
        .await?
        .map(axum::Json)
        .ok_or_else(|| Problem::not_found(format!("no user {username}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    password: Option<String>,
    admin: Option<bool>,
    /// Absent: `None`; `null`: `Some(None)`, which clears the email; a string: `Some(Some(_))`.
    #[serde(default, deserialize_with = "present")]
    email: Option<Option<String>>,
}

/// Marks a field that is in the body as present, even as `null`; `#[serde(default)]` leaves an
/// absent one `None`. Serde alone reads both `null` and absence as `None`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// The email change a PATCH body asks for: `None` when its address does not parse (the error is
/// in `fields`).
fn email_change(fields: &mut Fields, email: Option<Option<&str>>) -> Option<EmailChange> {
    match email {
        None => Some(EmailChange::Keep),
        Some(None) => Some(EmailChange::Clear),
        Some(Some(address)) => fields.take(Email::parse(address)).map(EmailChange::Set),
    }
}

/// `PATCH /v1/users/{username}` (admin): `"email": null` clears the email.
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(username): Path<String>,
    Json(body): Json<UpdateUser>,
) -> Result<Response, Problem> {
    caller.actor.require(Scope::Write)?;
    caller.actor.require_admin()?;
    user_path(&username)?;
    let mut fields = Fields::default();
    let password = match &body.password {
        Some(p) => fields.take(Password::parse("password", p)).map(Some),
        None => Some(None),
    };
    let email = email_change(&mut fields, body.email.as_ref().map(Option::as_deref));
    fields.finish()?;
    let (Some(password), Some(email)) = (password, email) else {
        return Err(Problem::internal());
    };
    let changes = UserChanges {
        password,
        admin: body.admin,
        email,
    };
    let (user, w) = state
        .commands
        .update_user(&caller.actor, &origin, &username, changes)
        .await?;
    Ok(written(&state, StatusCode::OK, Some(&user), w))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    old: String,
    new: String,
}

/// `PUT /v1/users/{username}/password` (self): 403 if `old` is wrong.
pub async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(username): Path<String>,
    Json(body): Json<ChangePassword>,
) -> Result<Response, Problem> {
    user_path(&username)?;
    let new = Password::parse("new", &body.new)?;
    let w = state
        .commands
        .change_password(&caller.actor, &origin, &username, &body.old, new)
        .await?;
    Ok(written::<()>(&state, StatusCode::NO_CONTENT, None, w))
}

/// `DELETE /v1/users/{username}` (admin or self): its tokens stop working; 409 for the last
/// admin.
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(username): Path<String>,
) -> Result<Response, Problem> {
    user_path(&username)?;
    let w = state
        .commands
        .remove_user(&caller.actor, &origin, &username)
        .await?;
    Ok(written::<()>(&state, StatusCode::NO_CONTENT, None, w))
}
