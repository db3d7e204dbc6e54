//! tsuru's user quotas: 0.3.9's `GET /quota/{user}` and 1.x's `GET|PUT /users/{email}/quota`,
//! each `/v1/users/{username}/quota` with the same actor (the user or an admin reads, an admin
//! sets). A user is named by email (the Bosun user with that email, resolved under the user's
//! rule: [`super::users::username_of`]) or, with no `@`, by username. The answer is 1.x's `{Limit, InUse}` with 0.3.9's documented `{items, available}`
//! beside it (`available`: how many more apps, `-1` unlimited). An app's quota is
//! [`super::apps`]'.

use super::body::Fields;
use super::users::username_of;
use super::{json, written, TsuruCaller};
use crate::auth::RequestOrigin;
use crate::extract::Path;
use crate::problem::Problem;
use crate::startup::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bosun_commands::apps::QuotaView;
use serde_json::json;

/// The routes of this file (bare paths).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/quota/{user}", get(read))
        .route("/users/{email}/quota", get(read).put(set))
}

fn render(quota: &QuotaView) -> serde_json::Value {
    let available = if quota.limit < 0 {
        -1
    } else {
        (quota.limit - quota.in_use).max(0)
    };
    json!({
        "Limit": quota.limit,
        "InUse": quota.in_use,
        "items": quota.in_use,
        "available": available,
    })
}

/// `GET /quota/{user}` and `GET /users/{email}/quota`: see the module.
pub async fn read(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    Path(user): Path<String>,
) -> Result<Response, Problem> {
    let username = username_of(&state, &caller.actor, &user).await?;
    let quota = state
        .queries
        .quota(&caller.actor, &username, &state.app_rules)
        .await?;
    Ok(json(StatusCode::OK, &render(&quota)))
}

/// `PUT /users/{email}/quota` (admin), form `limit` (`-1`: unlimited) → 200 with no body, as
/// tsuru answered.
pub async fn set(
    State(state): State<AppState>,
    TsuruCaller(caller): TsuruCaller,
    RequestOrigin(origin): RequestOrigin,
    Path(user): Path<String>,
    fields: Fields,
) -> Result<Response, Problem> {
    let limit = fields
        .integer("limit")?
        .ok_or_else(|| Problem::invalid_field("limit", "Invalid limit"))?;
    let username = username_of(&state, &caller.actor, &user).await?;
    let (_, w) = state
        .commands
        .set_quota(&caller.actor, &origin, &username, limit, &state.app_rules)
        .await?;
    Ok(written(&state, StatusCode::OK.into_response(), w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn available_is_what_is_left_or_unlimited() {
        let shown = render(&QuotaView {
            limit: 3,
            in_use: 1,
        });
        assert_eq!(
            shown,
            json!({"Limit": 3, "InUse": 1, "items": 1, "available": 2})
        );
        assert_eq!(
            render(&QuotaView {
                limit: -1,
                in_use: 4
            })["available"],
            -1
        );
        assert_eq!(
            render(&QuotaView {
                limit: 1,
                in_use: 4
            })["available"],
            0
        );
    }
}
