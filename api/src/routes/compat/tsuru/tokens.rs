//! tsuru's `POST /tokens` (0.3.9, tsuru-admin's `token-gen`): `{client, export}` → an app
//! token of app `client`, as `POST /v1/apps/{app}/tokens` issues one, with the same actor (the
//! native rule decides who may: a member of one of the app's teams, or an admin; tsuru asked
//! an admin). `export: true` also sets it in the app's environment as the private variable
//! `TSURU_APP_TOKEN` (the native env command, without restarting its units), as tsuru did.
//!
//! The answer is tsuru's Token `{token, creation, expires, email, app}`: `expires` is Go's
//! `time.Duration` in nanoseconds (0: the native token does not expire), `email` empty (an
//! app token is no user's).
//!
//! An export is checked before the token is issued (`Commands::check_private_env`: who may set
//! the app's environment, the name, the data key), so a refused one issues nothing. Should the
//! setting still be refused after the issue (the app changed in between), the token, unseen, is
//! revoked (`Commands::revoke_app_token`) and the refusal is the answer.

use super::body::Fields;
use super::{json, then, written, TsuruCaller};
use crate::auth::RequestOrigin;
use crate::problem::Problem;
use crate::startup::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use bosun_commands::apps::EnvInput;
use bosun_commands::identity::NewAppToken;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// The tokens routes, merged into the users routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/tokens", post(create))
}

/// tsuru's Token.
#[derive(Serialize)]
struct TsuruToken {
    token: String,
    creation: DateTime<Utc>,
    /// Nanoseconds (Go's `time.Duration`).
    expires: i64,
    email: String,
    app: String,
}

/// The variable `export` sets.
const EXPORTED: &str = "TSURU_APP_TOKEN";

/// `POST /tokens`: `{client, export}`; 200 with the token.
async fn create(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    fields: Fields,
) -> Result<Response, Problem> {
    let Some(app) = fields.non_empty("client")? else {
        return Err(Problem::invalid_field(
            "client",
            "is required: Missing client name in JSON body",
        ));
    };
    let export = fields.flag("export", false)?;
    if export {
        state
            .commands
            .check_private_env(&caller.actor, &app, EXPORTED)
            .await?;
    }
    let (issued, mut w) = state
        .commands
        .issue_app_token(
            &caller.actor,
            &origin,
            &app,
            NewAppToken {
                description: "tsuru token-gen".into(),
                expires_in: None,
            },
        )
        .await?;
    if export {
        let exported = state
            .commands
            .set_app_env(
                &caller.actor,
                &origin,
                &app,
                vec![EnvInput {
                    name: EXPORTED.into(),
                    value: issued.token.clone(),
                    public: false,
                }],
                false,
            )
            .await;
        match exported {
            Ok((_, exported)) => w = then(w, exported),
            Err(refused) => {
                let revoked = state
                    .commands
                    .revoke_app_token(&caller.actor, &origin, &app, issued.token_id)
                    .await;
                if let Err(e) = revoked {
                    tracing::error!(error = %e, token_id = %issued.token_id, app = %app,
                        "an app token whose export was refused could not be revoked");
                }
                return Err(refused.into());
            }
        }
    }
    let expires = issued
        .expires_at
        .and_then(|at| (at - issued.created_at).num_nanoseconds())
        .unwrap_or(0);
    let body = TsuruToken {
        token: issued.token,
        creation: issued.created_at,
        expires,
        email: String::new(),
        app: issued.app,
    };
    Ok(written(&state, json(StatusCode::OK, &body), w))
}
