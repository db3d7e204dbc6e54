//! Logins (session tokens), API tokens, and revocation.

use super::secrets::{new_token, verify_password};
use crate::actor::{Actor, Origin};
use crate::error::CommandError;
use crate::execute::{Commands, Written};
use bosun_domain::identity::{Scope, Scopes, Token, TokenCommand, TokenKind, Username};
use bosun_domain::{Aggregate, DomainError};
use bosun_eventstore::EventStore;
use bosun_projections::read_models::identity as model;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// A login's token lives a day unless asked otherwise.
pub const DEFAULT_SESSION_SECONDS: i64 = 86_400;

/// The refusal of a token that would outlive GitHub user `username`'s sign-in (an API token,
/// an app token): 403 `github_user`.
pub(crate) fn github_user_token(username: &Username) -> DomainError {
    DomainError::forbidden(
        Username::GITHUB_USER,
        format!(
            "user {username} signs in through GitHub and may hold no token that outlives it: use your GitHub token or sign in with GitHub"
        ),
    )
}

/// A token just issued: the only time its secret is shown. Its `Debug` leaves the secret out.
#[derive(Clone, Serialize)]
pub struct IssuedToken {
    pub token: String,
    pub token_id: Uuid,
    pub user: String,
    pub kind: TokenKind,
    pub description: String,
    pub scopes: Scopes,
    pub expires_at: Option<DateTime<Utc>>,
    /// An app token's app.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    #[serde(skip)]
    pub created_at: DateTime<Utc>,
    /// Whether its holder is an admin, as a login read the user it checked the password of
    /// (`None` for the tokens issued otherwise). Not shown: a caller reads its own user for it.
    #[serde(skip)]
    pub holder_admin: Option<bool>,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token", &"***")
            .field("token_id", &self.token_id)
            .field("user", &self.user)
            .field("scopes", &self.scopes)
            .field("expires_at", &self.expires_at)
            .field("app", &self.app)
            .finish()
    }
}

pub struct NewApiToken {
    pub description: String,
    pub expires_in: Option<i64>,
    /// `None`: the scopes of the token making the request.
    pub scopes: Option<Scopes>,
}

impl<S: EventStore> Commands<S> {
    /// A login: the right name and password give a session token. A wrong name and a wrong
    /// password get the same answer, after the same work.
    // The name is recorded only once it parses as one: a password typed into the name field
    // must not reach a log line.
    #[tracing::instrument(skip_all, fields(username = tracing::field::Empty))]
    pub async fn login(
        &self,
        origin: &Origin,
        username: &str,
        password: &str,
        expires_in: Option<i64>,
    ) -> Result<(IssuedToken, Written), CommandError> {
        let hash = match Username::parse(username) {
            // An anonymous user has no password, nor has a GitHub user (they sign in through
            // GitHub only, whatever password their stream holds): as if unknown.
            Ok(name) if !name.is_anonymous() && !name.is_github() => {
                tracing::Span::current().record("username", name.as_str());
                let client = self.read_models().await?;
                model::password_hash(&**client, name.as_str()).await?
            }
            _ => None,
        };
        if !verify_password(password, hash).await {
            return Err(CommandError::Unauthenticated);
        }
        let username = Username::parse(username).map_err(|_| CommandError::Unauthenticated)?;
        // Removed between the password check and here: as if the password were wrong.
        let user = self
            .user_view(username.as_str())
            .await
            .map_err(|_| CommandError::Unauthenticated)?;
        let token_id = Uuid::new_v4();
        let actor = Actor::User {
            username: user.username.clone(),
            admin: user.admin,
            teams: user.teams.clone(),
            token_id,
            scopes: Scopes::all(),
        };
        let (mut issued, written) = self
            .issue(
                &actor,
                origin,
                token_id,
                username,
                TokenKind::Session,
                "login".into(),
                Scopes::all(),
                Some(expires_in.unwrap_or(DEFAULT_SESSION_SECONDS)),
                None,
            )
            .await?;
        issued.holder_admin = Some(user.admin);
        Ok((issued, written))
    }

    /// A long-lived API token for the caller, with at most the caller's token's scopes. A
    /// GitHub user may not have one (403 `github_user`): their access lasts only while GitHub
    /// vouches for them, so they use their GitHub token, or sign in with GitHub again.
    #[tracing::instrument(skip_all, fields(actor = actor.name()))]
    pub async fn issue_api_token(
        &self,
        actor: &Actor,
        origin: &Origin,
        request: NewApiToken,
    ) -> Result<(IssuedToken, Written), CommandError> {
        actor.require_writer()?;
        let Actor::User {
            username, scopes, ..
        } = actor
        else {
            return Err(CommandError::Forbidden(
                "only a user can hold a token".into(),
            ));
        };
        let wanted = request.scopes.unwrap_or_else(|| scopes.clone());
        if !wanted.is_subset(scopes) {
            return Err(CommandError::Forbidden(
                "a token cannot have scopes the token creating it lacks".into(),
            ));
        }
        let username = Username::parse(username)?;
        if username.is_github() {
            return Err(github_user_token(&username).into());
        }
        self.issue(
            actor,
            origin,
            Uuid::new_v4(),
            username,
            TokenKind::Api,
            request.description,
            wanted,
            request.expires_in,
            None,
        )
        .await
    }

    /// An API token for `username`, issued by an admin: the server or its command line.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), username = username))]
    pub async fn issue_token_for(
        &self,
        actor: &Actor,
        origin: &Origin,
        username: &str,
        description: String,
        expires_in: Option<i64>,
    ) -> Result<(IssuedToken, Written), CommandError> {
        actor.require_admin()?;
        let user = self.user_view(username).await?;
        let username = Username::parse(&user.username)?;
        self.issue(
            actor,
            origin,
            Uuid::new_v4(),
            username,
            TokenKind::Api,
            description,
            Scopes::all(),
            expires_in,
            None,
        )
        .await
    }

    /// Issues a token of `username` (for an app token, `app`'s, issued by `username`).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn issue(
        &self,
        actor: &Actor,
        origin: &Origin,
        token_id: Uuid,
        username: Username,
        kind: TokenKind,
        description: String,
        scopes: Scopes,
        expires_in: Option<i64>,
        app: Option<String>,
    ) -> Result<(IssuedToken, Written), CommandError> {
        let secret = new_token();
        let now = Utc::now();
        let (_, written) = self
            .execute::<Token>(&token_id.to_string(), actor, origin, |state| {
                state.handle(TokenCommand::Issue {
                    token_id,
                    username: username.clone(),
                    kind,
                    digest: secret.digest.clone(),
                    description: description.clone(),
                    scopes: scopes.clone(),
                    expires_in,
                    now,
                    app: app.clone(),
                })
            })
            .await?;
        let expires_at = expires_in.map(|s| now + chrono::Duration::seconds(s));
        Ok((
            IssuedToken {
                token: secret.secret,
                token_id,
                user: username.as_str().to_string(),
                kind,
                description,
                scopes,
                expires_at,
                app,
                created_at: now,
                holder_admin: None,
            },
            written,
        ))
    }

    /// A holder gives up the token they call with (logging out); any scope may.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), token_id = ?actor.token_id()))]
    pub async fn revoke_current_token(
        &self,
        actor: &Actor,
        origin: &Origin,
    ) -> Result<Written, CommandError> {
        let Some(token_id) = actor.token_id() else {
            return Err(CommandError::Unauthenticated);
        };
        let (_, written) = self
            .execute::<Token>(&token_id.to_string(), actor, origin, |state| {
                state.handle(TokenCommand::Revoke {
                    reason: "logout".into(),
                })
            })
            .await?;
        Ok(written)
    }

    /// Revokes a token: its owner or an admin may. It stops working on every node once this
    /// answers.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), token_id = %token_id))]
    pub async fn revoke_token(
        &self,
        actor: &Actor,
        origin: &Origin,
        token_id: Uuid,
        reason: &str,
    ) -> Result<Written, CommandError> {
        actor.require(Scope::Write)?;
        let (_, written) = self
            .execute_guarded::<Token>(
                &token_id.to_string(),
                actor,
                origin,
                |token| match &token.username {
                    None => Err(DomainError::NotFound(format!("no token {token_id}")).into()),
                    Some(owner) if actor.is(owner.as_str()) || actor.is_admin() => Ok(()),
                    Some(_) => Err(CommandError::Forbidden(
                        "only the token's owner or an admin may revoke it".into(),
                    )),
                },
                |token| {
                    token.handle(TokenCommand::Revoke {
                        reason: reason.to_string(),
                    })
                },
            )
            .await?;
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{commands, head, origin, user};

    #[tokio::test]
    async fn a_github_user_gets_no_api_token_and_others_do() {
        let (commands, log) = commands();
        let before = head(&log).await;
        let request = || NewApiToken {
            description: "ci".into(),
            expires_in: None,
            scopes: None,
        };
        let refused = commands
            .issue_api_token(&user("github:ann"), &origin(), request())
            .await;
        match refused {
            Err(CommandError::Domain(DomainError::Forbidden { code, message })) => {
                assert_eq!(code, Username::GITHUB_USER);
                assert!(message.contains("use your GitHub token"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(head(&log).await, before, "nothing written");
        let (issued, _) = commands
            .issue_api_token(&user("ann"), &origin(), request())
            .await
            .unwrap();
        assert_eq!(issued.kind, TokenKind::Api);
    }
}
