//! Who is acting, from where, and what each kind of call requires of them.

use crate::error::CommandError;
use bosun_domain::identity::{Scope, Scopes};
use serde_json::{json, Value};
use uuid::Uuid;

/// The one on whose behalf a command runs.
#[derive(Clone, Debug)]
pub enum Actor {
    /// A user, through one of their tokens: their rights cut down to the token's scopes.
    User {
        username: String,
        admin: bool,
        teams: Vec<String>,
        token_id: Uuid,
        scopes: Scopes,
    },
    /// Someone who has not authenticated: only a login.
    Anonymous,
    /// The server itself or its command line (`system`, `cli`): every right.
    System(&'static str),
}

impl Actor {
    /// The name events record as their actor.
    pub fn name(&self) -> &str {
        match self {
            Actor::User { username, .. } => username,
            Actor::Anonymous => "anonymous",
            Actor::System(name) => name,
        }
    }

    pub fn username(&self) -> Option<&str> {
        match self {
            Actor::User { username, .. } => Some(username),
            _ => None,
        }
    }

    pub fn token_id(&self) -> Option<Uuid> {
        match self {
            Actor::User { token_id, .. } => Some(*token_id),
            _ => None,
        }
    }

    /// The token carries `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), CommandError> {
        match self {
            Actor::User { scopes, .. } if scopes.contains(scope) => Ok(()),
            Actor::User { .. } => Err(CommandError::Forbidden(format!(
                "this token lacks the {} scope",
                scope.as_str()
            ))),
            Actor::Anonymous => Err(CommandError::Unauthenticated),
            Actor::System(_) => Ok(()),
        }
    }

    /// An admin acting with the `admin` scope.
    pub fn is_admin(&self) -> bool {
        match self {
            Actor::User { admin, scopes, .. } => *admin && scopes.contains(Scope::Admin),
            Actor::Anonymous => false,
            Actor::System(_) => true,
        }
    }

    pub fn require_admin(&self) -> Result<(), CommandError> {
        if self.is_admin() {
            return Ok(());
        }
        match self {
            Actor::Anonymous => Err(CommandError::Unauthenticated),
            Actor::User { admin: true, .. } => Err(CommandError::Forbidden(
                "this needs a token with the admin scope".into(),
            )),
            _ => Err(CommandError::Forbidden("only an admin may do this".into())),
        }
    }

    pub fn is(&self, username: &str) -> bool {
        self.username() == Some(username)
    }

    /// The user themself, or an admin.
    pub fn require_self_or_admin(&self, username: &str) -> Result<(), CommandError> {
        if self.is(username) || self.is_admin() {
            Ok(())
        } else {
            self.require_admin().map_err(|_| {
                CommandError::Forbidden(format!("only {username} or an admin may do this"))
            })
        }
    }

    pub fn is_member(&self, team: &str) -> bool {
        matches!(self, Actor::User { teams, .. } if teams.iter().any(|t| t == team))
    }
}

/// Where a call came from, as events record it.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    pub request_id: Option<String>,
    pub correlation_id: Option<String>,
    pub user_agent: Option<String>,
    pub source: Option<String>,
}

/// The metadata every event of a command carries.
pub(crate) fn metadata(actor: &Actor, origin: &Origin) -> Value {
    json!({
        "actor": actor.name(),
        "token_id": actor.token_id(),
        "request_id": origin.request_id,
        "correlation_id": origin.correlation_id.as_ref().or(origin.request_id.as_ref()),
        "causation_id": null,
        "user_agent": origin.user_agent,
        "source": origin.source,
    })
}
