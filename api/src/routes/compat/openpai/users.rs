//! OpenPAI's users, as Bosun's users: the seed's `PUT`/`DELETE /api/auth` (`modify: false`
//! adds a user, `true` changes one), v1's `GET`/`PUT`/`DELETE /api/v1/user` (the same body) and
//! `GET /api/v1/user/{user}`, v2's `/api/v2/users` (`GET` list, `POST` create, `PUT {patch,
//! data}` change, `PUT /me`, `GET`/`DELETE /{user}`; also at `/api/v2/user`).
//!
//! Each is the `/v1/users` command or query (who may is theirs to say: an admin adds, changes
//! and lists users; a user reads and removes themself). OpenPAI's groups and virtual clusters
//! have no counterpart: a user's `grouplist` shows their teams, `virtualCluster` is
//! `["default"]`, `extension` `{}`; those fields are taken and not used. A user changing their
//! own password (v2's `PUT /me` `{newPassword, oldPassword}`, or v1's `PUT /user` with Bosun's
//! `oldPassword`) is `PUT /v1/users/{user}/password`, which needs the old one; v2's `PUT /me`
//! with an email too is one native command for both
//! (`Commands::change_own_password_and_email`), every field read and checked before it, so a
//! refused email leaves the password as it was. `GET /me` is the caller (`GET /v1/users/me`).
//!
//! Who may is the native rule's, even where the seed's server was stricter: the seed's
//! `DELETE /api/auth` and `PUT /api/auth` were an admin's only, but here a user who is no
//! admin may remove themself (`DELETE /v1/users/{user}` allows it) and change their own
//! password with the old one (`oldPassword`, as `PUT /v1/users/{user}/password`); anything
//! else of a user's is an admin's, as natively.
//!
//! A 409 of a user's command (a conflict on the user's stream, say) is OpenPAI's
//! `ConflictUserError` (code `user_conflict`), not the jobs' `ConflictJobError`.
//!
//! Owns: reading these bodies and answering in OpenPAI's shapes. Does not own: users.

use super::body::Body;
use super::{json, message, PaiCaller};
use crate::auth::RequestOrigin;
use crate::extract::Path;
use crate::problem::Problem;
use crate::routes::v1::users::user_path;
use crate::startup::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use bosun_commands::identity::{NewUser, UserChanges};
use bosun_commands::queries::Page;
use bosun_commands::Origin;
use bosun_domain::identity::{Email, EmailChange, Password, Username};
use bosun_projections::read_models::identity::UserView;
use serde_json::{json, Map, Value};

/// v2's user routes under `prefix` (`/api/v2/users` and its alias `/api/v2/user`), with the
/// trailing slash the SDK sends to the list (`/api/v2/users/`).
pub fn v2_routes(router: Router<AppState>, prefix: &str) -> Router<AppState> {
    router
        .route(prefix, get(v2_list).post(v2_create).put(v2_update))
        .route(
            &format!("{prefix}/"),
            get(v2_list).post(v2_create).put(v2_update),
        )
        .route(&format!("{prefix}/me"), get(v2_get_me).put(v2_update_me))
        .route(
            &format!("{prefix}/{{username}}"),
            get(v2_get).delete(v2_remove),
        )
}

/// A native 404 about `username`: OpenPAI's `NoUserError` (and a 409 its `ConflictUserError`,
/// see [`user_problem`]).
fn no_user(problem: Problem, username: &str) -> Problem {
    if problem.status == 404 {
        Problem::new(
            StatusCode::NOT_FOUND,
            "no_user",
            format!("User {username} is not found."),
        )
    } else {
        user_problem(problem)
    }
}

/// A refusal of a user's command: a 409 whose code says nothing more of it than that it is a
/// conflict (`contended`, …) is a user's conflict (`user_conflict`: `ConflictUserError`); the
/// others stay as they are (`last_admin` is `RemoveAdminError`).
fn user_problem(mut problem: Problem) -> Problem {
    if problem.status == 409
        && !matches!(problem.code, "last_admin" | "user_exists" | "email_taken")
    {
        problem.code = "user_conflict";
    }
    problem
}

/// A command's error, as a refusal of a user's command.
fn refused(error: bosun_commands::CommandError) -> Problem {
    user_problem(error.into())
}

/// The body's fields, none but `allowed` (OpenPAI's schemas refused others): 400 naming one.
fn only(fields: &Map<String, Value>, allowed: &[&str], prefix: &str) -> Result<(), Problem> {
    match fields.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(Problem::invalid_field(
            format!("{prefix}{key}"),
            format!("is not allowed (allowed: {})", allowed.join(", ")),
        )),
        None => Ok(()),
    }
}

/// A text field; absent or `null` is none.
fn text(fields: &Map<String, Value>, name: &str) -> Result<Option<String>, Problem> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Problem::invalid_field(name, "must be a string")),
    }
}

fn required_text(fields: &Map<String, Value>, name: &str) -> Result<String, Problem> {
    text(fields, name)?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Problem::invalid_field(name, "is required"))
}

/// A flag as JSON or as a form's text (`true`/`false`); absent or `null` is none.
pub(super) fn flag(fields: &Map<String, Value>, name: &str) -> Result<Option<bool>, Problem> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(_) => Err(Problem::invalid_field(name, "must be true or false")),
    }
}

/// A password field, checked as `/v1` checks one.
fn password(field: &'static str, value: &str) -> Result<Password, Problem> {
    Ok(Password::parse(field, value)?)
}

/// The seed's and v1's user body: `{username, password, admin, modify}`.
struct UserPut {
    username: String,
    password: Option<String>,
    admin: Option<bool>,
    modify: bool,
    /// Bosun's: a user changing their own password gives the old one.
    old_password: Option<String>,
}

impl UserPut {
    fn read(fields: &Map<String, Value>) -> Result<UserPut, Problem> {
        only(
            fields,
            &["username", "password", "admin", "modify", "oldPassword"],
            "",
        )?;
        let modify = flag(fields, "modify")?.ok_or_else(|| {
            Problem::invalid_field(
                "modify",
                "is required: false adds the user, true changes an existing one",
            )
        })?;
        Ok(UserPut {
            username: required_text(fields, "username")?,
            password: text(fields, "password")?.filter(|p| !p.is_empty()),
            admin: flag(fields, "admin")?,
            modify,
            old_password: text(fields, "oldPassword")?,
        })
    }
}

/// Adds or changes the user `request` names.
async fn put_user(
    state: &AppState,
    caller: &PaiCaller,
    origin: &Origin,
    request: UserPut,
) -> Result<(), Problem> {
    let actor = &caller.0.actor;
    if !request.modify {
        let password = request
            .password
            .ok_or_else(|| Problem::invalid_field("password", "is required to add a user"))?;
        let user = NewUser {
            username: Username::parse_new(&request.username)?,
            password: self::password("password", &password)?,
            email: None,
            admin: request.admin.unwrap_or(false),
        };
        state
            .commands
            .register_user(actor, origin, user)
            .await
            .map_err(refused)?;
        return Ok(());
    }
    user_path(&request.username)?;
    if let (Some(old), Some(new), None) = (&request.old_password, &request.password, request.admin)
    {
        // Who may, before what they sent: another user learns nothing from a 400.
        bosun_commands::identity::may_change_password(actor, &request.username).map_err(refused)?;
        let new = password("password", new)?;
        state
            .commands
            .change_password(actor, origin, &request.username, old, new)
            .await
            .map_err(refused)?;
        return Ok(());
    }
    let changes = UserChanges {
        password: request
            .password
            .as_deref()
            .map(|p| password("password", p))
            .transpose()?,
        admin: request.admin,
        email: EmailChange::Keep,
    };
    state
        .commands
        .update_user(actor, origin, &request.username, changes)
        .await
        .map_err(refused)?;
    Ok(())
}

/// `PUT /api/auth` (the seed): `{message: "update successfully"}`.
pub async fn seed_update(
    State(state): State<AppState>,
    caller: PaiCaller,
    RequestOrigin(origin): RequestOrigin,
    body: Body,
) -> Result<Response, Problem> {
    let request = UserPut::read(&body.fields()?)?;
    put_user(&state, &caller, &origin, request).await?;
    Ok(message(StatusCode::OK, "update successfully"))
}

/// `PUT /api/v1/user`: 201 `{message: "update successfully"}`.
pub async fn v1_update(
    State(state): State<AppState>,
    caller: PaiCaller,
    RequestOrigin(origin): RequestOrigin,
    body: Body,
) -> Result<Response, Problem> {
    let request = UserPut::read(&body.fields()?)?;
    let username = request.username.clone();
    put_user(&state, &caller, &origin, request)
        .await
        .map_err(|p| no_user(p, &username))?;
    Ok(message(StatusCode::CREATED, "update successfully"))
}

/// Removes the user a `{username}` body names.
async fn remove_named(
    state: &AppState,
    caller: &PaiCaller,
    origin: &Origin,
    body: &Body,
) -> Result<String, Problem> {
    let fields = body.fields()?;
    only(&fields, &["username"], "")?;
    let username = required_text(&fields, "username")?;
    user_path(&username)?;
    state
        .commands
        .remove_user(&caller.0.actor, origin, &username)
        .await
        .map_err(refused)?;
    Ok(username)
}

/// `DELETE /api/auth` (the seed) `{username}`: `{message: "remove successfully"}`.
pub async fn seed_remove(
    State(state): State<AppState>,
    caller: PaiCaller,
    RequestOrigin(origin): RequestOrigin,
    body: Body,
) -> Result<Response, Problem> {
    remove_named(&state, &caller, &origin, &body).await?;
    Ok(message(StatusCode::OK, "remove successfully"))
}

/// `DELETE /api/v1/user` `{username}`.
pub async fn v1_remove(
    State(state): State<AppState>,
    caller: PaiCaller,
    RequestOrigin(origin): RequestOrigin,
    body: Body,
) -> Result<Response, Problem> {
    remove_named(&state, &caller, &origin, &body)
        .await
        .map_err(|p| {
            match body
                .fields()
                .ok()
                .and_then(|f| text(&f, "username").ok().flatten())
            {
                Some(username) => no_user(p, &username),
                None => p,
            }
        })?;
    Ok(message(StatusCode::OK, "remove successfully"))
}

/// Every user the caller may list (an admin: all), by name.
async fn all_users(state: &AppState, caller: &PaiCaller) -> Result<Vec<UserView>, Problem> {
    let mut users = Vec::new();
    loop {
        let page = Page {
            limit: 1000,
            offset: users.len() as i64,
        };
        let (batch, total) = state.queries.users(&caller.0.actor, page).await?;
        let done = batch.is_empty() || users.len() + batch.len() >= total as usize;
        users.extend(batch);
        if done {
            return Ok(users);
        }
    }
}

/// A user in v2's shape.
fn v2_user(user: &UserView) -> Value {
    json!({
        "username": user.username,
        "grouplist": user.teams,
        "email": user.email.clone().unwrap_or_default(),
        "extension": {},
        "admin": user.admin,
        "virtualCluster": ["default"],
        "storageConfig": [],
    })
}

/// `GET /api/v1/user` (admin): `[{username, admin, virtualCluster, githubPAT}]`.
pub async fn v1_list(
    State(state): State<AppState>,
    caller: PaiCaller,
) -> Result<Response, Problem> {
    let users = all_users(&state, &caller).await?;
    let shown: Vec<Value> = users
        .iter()
        .map(|u| {
            json!({"username": u.username, "admin": u.admin, "virtualCluster": "default", "githubPAT": ""})
        })
        .collect();
    Ok(json(StatusCode::OK, &shown))
}

/// `GET /api/v2/users` (admin): every user in v2's shape.
pub async fn v2_list(
    State(state): State<AppState>,
    caller: PaiCaller,
) -> Result<Response, Problem> {
    let users = all_users(&state, &caller).await?;
    let shown: Vec<Value> = users.iter().map(v2_user).collect();
    Ok(json(StatusCode::OK, &shown))
}

/// `GET /api/v2/users/{user}` and `GET /api/v1/user/{user}` (the user or an admin).
pub async fn v2_get(
    State(state): State<AppState>,
    caller: PaiCaller,
    Path(username): Path<String>,
) -> Result<Response, Problem> {
    user_path(&username).map_err(|p| no_user(p, &username))?;
    let user = state
        .queries
        .user(&caller.0.actor, &username)
        .await
        .map_err(|e| no_user(e.into(), &username))?;
    Ok(json(StatusCode::OK, &v2_user(&user)))
}

/// An email as v2 takes it: `""` is none (to add) or a clearing (to change).
fn email_change(fields: &Map<String, Value>) -> Result<EmailChange, Problem> {
    Ok(match text(fields, "email")? {
        None => EmailChange::Keep,
        Some(e) if e.is_empty() => EmailChange::Clear,
        Some(e) => EmailChange::Set(Email::parse(&e)?),
    })
}

/// `POST /api/v2/users` (admin) `{username, email, virtualCluster, admin, password,
/// extension}`: 201 `{message: "User is created successfully"}`; 409 `ConflictUserError`.
pub async fn v2_create(
    State(state): State<AppState>,
    caller: PaiCaller,
    RequestOrigin(origin): RequestOrigin,
    body: Body,
) -> Result<Response, Problem> {
    let fields = body.fields()?;
    only(
        &fields,
        &[
            "username",
            "email",
            "virtualCluster",
            "admin",
            "password",
            "extension",
        ],
        "",
    )?;
    let user = NewUser {
        username: Username::parse_new(&required_text(&fields, "username")?)?,
        password: password("password", &required_text(&fields, "password")?)?,
        email: match email_change(&fields)? {
            EmailChange::Set(email) => Some(email),
            EmailChange::Keep | EmailChange::Clear => None,
        },
        admin: flag(&fields, "admin")?.unwrap_or(false),
    };
    state
        .commands
        .register_user(&caller.0.actor, &origin, user)
        .await
        .map_err(refused)?;
    Ok(message(StatusCode::CREATED, "User is created successfully"))
}

/// The `data` object of a v2 change `{patch, data}`.
fn change_data(
    fields: &Map<String, Value>,
    allowed: &[&str],
) -> Result<Map<String, Value>, Problem> {
    only(fields, &["patch", "data"], "")?;
    flag(fields, "patch")?;
    let data = match fields.get("data") {
        Some(Value::Object(data)) => data.clone(),
        None | Some(Value::Null) => return Err(Problem::invalid_field("data", "is required")),
        Some(_) => return Err(Problem::invalid_field("data", "must be an object")),
    };
    only(&data, allowed, "data.")?;
    Ok(data)
}

/// `PUT /api/v2/users` (admin) `{patch, data: {username, email, admin, password, …}}`: 201
/// `{message: "Update user X successfully"}`. Absent fields stay as they are.
pub async fn v2_update(
    State(state): State<AppState>,
    caller: PaiCaller,
    RequestOrigin(origin): RequestOrigin,
    body: Body,
) -> Result<Response, Problem> {
    let data = change_data(
        &body.fields()?,
        &[
            "username",
            "email",
            "virtualCluster",
            "admin",
            "password",
            "extension",
        ],
    )?;
    let username = required_text(&data, "username")
        .map_err(|_| Problem::invalid_field("data.username", "is required"))?;
    user_path(&username).map_err(|p| no_user(p, &username))?;
    let changes = UserChanges {
        password: text(&data, "password")?
            .map(|p| password("password", &p))
            .transpose()?,
        admin: flag(&data, "admin")?,
        email: email_change(&data)?,
    };
    state
        .commands
        .update_user(&caller.0.actor, &origin, &username, changes)
        .await
        .map_err(|e| no_user(e.into(), &username))?;
    Ok(message(
        StatusCode::CREATED,
        format!("Update user {username} successfully"),
    ))
}

/// `GET /api/v2/users/me`: the caller, in v2's shape (`GET /v1/users/me`).
pub async fn v2_get_me(
    State(state): State<AppState>,
    caller: PaiCaller,
) -> Result<Response, Problem> {
    let user = state.queries.me(&caller.0.actor).await?;
    Ok(json(StatusCode::OK, &v2_user(&user)))
}

/// `PUT /api/v2/users/me` `{patch, data: {username, newPassword, oldPassword, email}}`: the
/// caller's own change (`data.username` must be the caller: 403 otherwise, as OpenPAI); a new
/// password needs the old one. Every field is read and checked first; then one command: the
/// password's (`PUT /v1/users/{user}/password`), the email's (`PATCH /v1/users/{user}`: an
/// admin's), or both at once (`Commands::change_own_password_and_email`).
pub async fn v2_update_me(
    State(state): State<AppState>,
    caller: PaiCaller,
    RequestOrigin(origin): RequestOrigin,
    body: Body,
) -> Result<Response, Problem> {
    let data = change_data(
        &body.fields()?,
        &[
            "username",
            "email",
            "newPassword",
            "oldPassword",
            "extension",
        ],
    )?;
    let username = required_text(&data, "username")
        .map_err(|_| Problem::invalid_field("data.username", "is required"))?;
    if caller.0.actor.username() != Some(username.as_str()) {
        return Err(Problem::forbidden("Can't update other user's data"));
    }
    let new = text(&data, "newPassword")?;
    if new.is_some() {
        bosun_commands::identity::may_change_password(&caller.0.actor, &username)
            .map_err(refused)?;
    }
    let new = new.map(|new| password("newPassword", &new)).transpose()?;
    let old = text(&data, "oldPassword")?;
    let email = email_change(&data)?;
    let old = match (&new, old) {
        (Some(_), None) => {
            return Err(Problem::invalid_field(
                "data.oldPassword",
                "is required with newPassword",
            ))
        }
        (_, old) => old.unwrap_or_default(),
    };
    let actor = &caller.0.actor;
    let commands = &state.commands;
    match (new, email) {
        // Nothing to change, and so no command to ask: the check every write asks first (the
        // authorization matrix found a read-only token answered 201).
        (None, EmailChange::Keep) => actor.require_writer().map_err(refused)?,
        (Some(new), EmailChange::Keep) => {
            commands
                .change_password(actor, &origin, &username, &old, new)
                .await
                .map_err(refused)?;
        }
        (None, email) => {
            let changes = UserChanges {
                email,
                ..UserChanges::default()
            };
            commands
                .update_user(actor, &origin, &username, changes)
                .await
                .map_err(refused)?;
        }
        (Some(new), email) => {
            commands
                .change_own_password_and_email(actor, &origin, &username, &old, new, email)
                .await
                .map_err(refused)?;
        }
    }
    Ok(message(
        StatusCode::CREATED,
        format!("Update user {username} successfully"),
    ))
}

/// `DELETE /api/v2/users/{user}`: `{message: "user is removed successfully"}`.
pub async fn v2_remove(
    State(state): State<AppState>,
    caller: PaiCaller,
    RequestOrigin(origin): RequestOrigin,
    Path(username): Path<String>,
) -> Result<Response, Problem> {
    user_path(&username).map_err(|p| no_user(p, &username))?;
    state
        .commands
        .remove_user(&caller.0.actor, &origin, &username)
        .await
        .map_err(|e| no_user(e.into(), &username))?;
    Ok(message(StatusCode::OK, "user is removed successfully"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn a_user_put_reads_json_or_form_flags() {
        let put = UserPut::read(&fields(
            json!({"username": "bob", "password": "secret1", "admin": "true", "modify": "false"}),
        ))
        .unwrap();
        assert_eq!(
            (put.username.as_str(), put.admin, put.modify),
            ("bob", Some(true), false)
        );
        let put = UserPut::read(&fields(
            json!({"username": "bob", "password": "", "modify": true}),
        ))
        .unwrap();
        assert_eq!((put.password, put.modify), (None, true));
    }

    #[test]
    fn a_user_put_is_refused_naming_the_field() {
        for (body, field) in [
            (json!({"username": "bob", "password": "secret1"}), "modify"),
            (json!({"username": "bob", "modify": "maybe"}), "modify"),
            (json!({"modify": false}), "username"),
            (
                json!({"username": "bob", "modify": true, "admin": 1}),
                "admin",
            ),
            (
                json!({"username": "bob", "modify": true, "color": "red"}),
                "color",
            ),
        ] {
            let problem = UserPut::read(&fields(body)).err().unwrap();
            assert_eq!(problem.errors[0].field, field);
        }
    }

    #[test]
    fn a_v2_change_takes_its_fields_in_data() {
        let data = change_data(
            &fields(json!({"patch": true, "data": {"username": "bob", "admin": false}})),
            &["username", "admin"],
        )
        .unwrap();
        assert_eq!(data["username"], "bob");
        for (body, field) in [
            (json!({"patch": true}), "data"),
            (json!({"data": "bob"}), "data"),
            (
                json!({"data": {"username": "bob", "grouplist": []}}),
                "data.grouplist",
            ),
            (json!({"data": {}, "extra": 1}), "extra"),
        ] {
            let problem = change_data(&fields(body), &["username", "admin"]).unwrap_err();
            assert_eq!(problem.errors[0].field, field);
        }
    }
}
