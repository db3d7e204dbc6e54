//! `/v1/users`, and the caller's own `/v1/users/me`: an anonymous user made with no
//! credentials (`POST /v1/users/anonymous`, limited per source address by
//! [`crate::rate_limit`]) registers there as a named user who keeps their runnables. `me` and
//! `anonymous` are static segments, which axum matches before `{username}` (and no one may
//! register those names).

use crate::auth::{Caller, RequestOrigin};
use crate::extract::{Json, LaterJson, Query};
use crate::problem::{FieldError, Problem, Refusals};
use crate::rate_limit::{address_key, retry_after_seconds, Limiter, Verdict};
use crate::routes::{listed, written, PageQuery};
use crate::startup::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bosun_commands::identity::{
    require_anonymous, IssuedToken, NewUser, Registration, UserChanges,
};
use bosun_commands::Origin;
use bosun_domain::identity::{Email, EmailChange, Password, Scope, Username};
use bosun_domain::DomainError;
use bosun_projections::read_models::identity as model;
use model::UserView;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    #[schema(pattern = "^[_A-Za-z0-9]{1,64}$")]
    username: String,
    #[schema(
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$",
        min_length = 6,
        max_length = 50
    )]
    password: String,
    #[schema(format = IdnEmail)]
    email: Option<String>,
    #[serde(default)]
    admin: bool,
}

/// Collects every field's error, so a client fixes them all at once.
#[derive(Default)]
pub(crate) struct Fields(Vec<FieldError>);

impl Fields {
    pub(crate) fn take<T>(&mut self, result: Result<T, DomainError>) -> Option<T> {
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

    pub(crate) fn finish(self) -> Result<(), Problem> {
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
#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = CreateUser, responses((status = 201, description = "created", body = UserView), Refusals), security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Json(body): Json<CreateUser>,
) -> Result<Response, Problem> {
    caller.actor.require(Scope::Write)?;
    caller.actor.require_admin()?;
    let mut fields = Fields::default();
    let username = fields.take(Username::parse_new(&body.username));
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
#[utoipa::path(get, path = "/v1/users", tag = "users", params(PageQuery), responses((status = 200, description = "by name, with `X-Total-Count`", body = Vec<UserView>), Refusals), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<PageQuery>,
) -> Result<Response, Problem> {
    let (users, total) = state.queries.users(&caller.actor, query.page()?).await?;
    Ok(listed(&users, total))
}

/// `GET /v1/users/{username}` (admin or self).
#[utoipa::path(get, path = "/v1/users/{username}", tag = "users", params(("username" = String, Path, description = "the user's name")), responses((status = 200, description = "OK", body = UserView), Refusals), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
) -> Result<axum::Json<model::UserView>, Problem> {
    // A name that cannot exist is not looked up at all.
    user_path(&username)?;
    Ok(axum::Json(
        state.queries.user(&caller.actor, &username).await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    #[schema(
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$",
        min_length = 6,
        max_length = 50
    )]
    password: Option<String>,
    admin: Option<bool>,
    /// Absent: `None`; `null`: `Some(None)`, which clears the email; a string: `Some(Some(_))`.
    #[serde(default, deserialize_with = "present")]
    #[schema(format = IdnEmail)]
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
#[utoipa::path(patch, path = "/v1/users/{username}", tag = "users", params(("username" = String, Path, description = "the user's name")), request_body = UpdateUser, responses((status = 200, description = "OK", body = UserView), Refusals), security(("bearer" = [])))]
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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    old: String,
    #[schema(
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$",
        min_length = 6,
        max_length = 50
    )]
    new: String,
}

/// `PUT /v1/users/{username}/password` (self): 403 if `old` is wrong.
#[utoipa::path(put, path = "/v1/users/{username}/password", tag = "users", params(("username" = String, Path, description = "the user's name")), request_body = ChangePassword, responses((status = 204, description = "changed"), Refusals), security(("bearer" = [])))]
pub async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    Path(username): Path<String>,
    body: LaterJson,
) -> Result<Response, Problem> {
    user_path(&username)?;
    // Who may, before what was sent: another caller learns nothing from a 400 or a 415.
    bosun_commands::identity::may_change_password(&caller.actor, &username)?;
    let body: ChangePassword = body.parse()?;
    let new = Password::parse("new", &body.new)?;
    let w = state
        .commands
        .change_password(&caller.actor, &origin, &username, &body.old, new)
        .await?;
    Ok(written::<()>(&state, StatusCode::NO_CONTENT, None, w))
}

/// `DELETE /v1/users/{username}` (admin or self): its tokens stop working; 409 for the last
/// admin.
#[utoipa::path(delete, path = "/v1/users/{username}", tag = "users", params(("username" = String, Path, description = "the user's name")), responses((status = 204, description = "removed; its tokens stop working"), Refusals), security(("bearer" = [])))]
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

/// A user and a session token of theirs (shown once).
#[derive(Serialize, utoipa::ToSchema)]
pub struct UserAndToken {
    user: UserView,
    /// `{token, token_id, user, kind, expires_at, …}`, as a login answers.
    #[schema(value_type = Object)]
    token: IssuedToken,
}

/// `POST /v1/users/anonymous` (no token): an anonymous user (`anon-…`, no password, no email)
/// and a token of it that works for `runnables.anonymous_token_ttl_seconds`. At most
/// `runnables.anonymous_per_address.count` per source address in the window (429
/// `rate_limited` with `Retry-After`); 403 `anonymous_users_disabled` when that count is 0.
#[utoipa::path(post, path = "/v1/users/anonymous", tag = "users", responses((status = 201, description = "an anonymous user and its token", body = UserAndToken), (status = 429, description = "too many from this address: retry after `Retry-After` seconds", body = Problem, content_type = "application/problem+json"), Refusals))]
pub async fn create_anonymous(
    State(state): State<AppState>,
    RequestOrigin(origin): RequestOrigin,
) -> Result<Response, Problem> {
    if let Some(refusal) = anonymous_refusal(&state, &origin) {
        return Ok(refusal);
    }
    let (user, token, w) = state
        .commands
        .create_anonymous_user(&origin, state.anonymous_token_seconds)
        .await?;
    let body = UserAndToken { user, token };
    Ok(written(&state, StatusCode::CREATED, Some(&body), w))
}

/// Why `origin` may not make an anonymous user now, if it may not: 403
/// `anonymous_users_disabled`, or 429 `rate_limited` with `Retry-After`. Every way in that makes
/// anonymous users (this route, a compatibility surface's) asks it, so one limit holds for all.
pub(crate) fn anonymous_refusal(state: &AppState, origin: &Origin) -> Option<Response> {
    let limit = &state.anonymous_limit;
    if limit.count() == 0 {
        return Some(
            Problem::new(
                StatusCode::FORBIDDEN,
                "anonymous_users_disabled",
                "anonymous users are turned off here (runnables.anonymous_per_address.count is 0)",
            )
            .into_response(),
        );
    }
    let Verdict::Limited { retry_after, by } = limit.check(&address_key(origin.source.as_deref()))
    else {
        return None;
    };
    let seconds = retry_after_seconds(retry_after);
    let why = match by {
        Limiter::Address => "too many anonymous users from this address",
        Limiter::Addresses => "too many addresses making anonymous users",
        Limiter::Total => "too many anonymous users made lately",
    };
    let mut response = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("{why}; retry in {seconds} s"),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    Some(response)
}

/// `GET /v1/users/me`: the caller, anonymous or not (401 without a token: the seed's cue to
/// make an anonymous user).
#[utoipa::path(get, path = "/v1/users/me", tag = "users", responses((status = 200, description = "the caller", body = UserView), Refusals), security(("bearer" = [])))]
pub async fn me(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<UserView>, Problem> {
    Ok(axum::Json(state.queries.me(&caller.actor).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterAnonymous {
    #[schema(pattern = "^[_A-Za-z0-9]{1,64}$")]
    username: String,
    #[schema(
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$",
        min_length = 6,
        max_length = 50
    )]
    password: String,
    #[schema(format = IdnEmail)]
    email: String,
}

/// `POST /v1/users/me/register` (an anonymous user's token): the caller becomes user
/// `username`, who keeps its runnables; answers that user and a new session token (the
/// caller's token no longer works). 403 `already_registered` for a registered caller (before
/// the body is looked at); 409 `user_exists` or `email_taken`, with nothing changed; 409
/// `registration_pending` for another name than one a first try began with (its message names
/// it: finish with that name, with any email).
#[utoipa::path(post, path = "/v1/users/me/register", tag = "users", request_body = RegisterAnonymous, responses((status = 200, description = "registered: the user and a new session token", body = UserAndToken), Refusals), security(("bearer" = [])))]
pub async fn register(
    State(state): State<AppState>,
    caller: Caller,
    RequestOrigin(origin): RequestOrigin,
    body: LaterJson,
) -> Result<Response, Problem> {
    // Who may comes first, then the body: a registered caller learns nothing from a 400.
    require_anonymous(&caller.actor)?;
    let body: RegisterAnonymous = body.parse()?;
    let mut fields = Fields::default();
    let username = fields.take(Username::parse_new(&body.username));
    let password = fields.take(Password::parse("password", &body.password));
    let email = fields.take(Email::parse(&body.email));
    fields.finish()?;
    let (Some(username), Some(password), Some(email)) = (username, password, email) else {
        return Err(Problem::internal());
    };
    let registration = Registration {
        username,
        password,
        email,
    };
    let (user, token, w) = state
        .commands
        .register_anonymous(&caller.actor, &origin, registration)
        .await?;
    let body = UserAndToken { user, token };
    Ok(written(&state, StatusCode::OK, Some(&body), w))
}

/// The routes of this resource, with their OpenAPI paths.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_anonymous))
        .routes(routes!(me))
        .routes(routes!(register))
        .routes(routes!(list, create))
        .routes(routes!(get, update, remove))
        .routes(routes!(change_password))
}
