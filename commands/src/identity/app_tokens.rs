//! App tokens: a token that acts on one app only (its jobs and their output, its env, its
//! restarts, the app itself), for a deploy pipeline or a CI job of that app. A member of one of
//! the app's teams (or an admin) issues, and revokes, them; an app token manages no tokens.
//!
//! Its stream is a token's (`token-<uuid>`, `kind: app`, `app`), with the issuing user as its
//! `username`, for the audit: the token has the app's rights, never that user's, and outlives
//! them. Calls made with it are recorded as `app:<app>`, with `issued_by` in their metadata.
//! Removing the app revokes its tokens for good (the identity projection does, on
//! `AppRemoved`; one issued while the app was being removed is born revoked), so a later app of
//! the same name does not revive them.

use super::tokens::IssuedToken;
use crate::actor::{Actor, Origin};
use crate::error::CommandError;
use crate::execute::{Commands, Written};
use bosun_domain::identity::{Scopes, Token, TokenCommand, TokenKind, Username};
use bosun_domain::{Aggregate, DomainError};
use bosun_eventstore::EventStore;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// What `POST /v1/apps/{app}/tokens` asks for.
#[derive(Clone, Debug, Default)]
pub struct NewAppToken {
    pub description: String,
    /// Seconds; `None`: until revoked (or the app is removed).
    pub expires_in: Option<i64>,
}

/// An app token just issued: the only time its secret is shown. Its `Debug` leaves it out.
#[derive(Clone, Serialize)]
pub struct IssuedAppToken {
    pub token: String,
    pub token_id: Uuid,
    pub app: String,
    pub description: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// The user who issued it.
    pub issued_by: String,
}

impl std::fmt::Debug for IssuedAppToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedAppToken")
            .field("token", &"***")
            .field("token_id", &self.token_id)
            .field("app", &self.app)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// What an app token may do: read and write on its app, never `admin`.
pub fn app_token_scopes() -> Scopes {
    Scopes::parse(&["read".to_string(), "write".to_string()]).expect("read and write are scopes")
}

impl<S: EventStore> Commands<S> {
    /// The teams of app `app` if it exists and is not removed, from its stream; a 404 otherwise.
    pub(crate) async fn active_app_teams(&self, app: &str) -> Result<Vec<String>, CommandError> {
        self.registered_app_teams(app)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("no app {app}")).into())
    }

    /// Who may manage `app`'s tokens: a user who may write on the app (a member of one of its
    /// teams, or an admin); an app token may not (it would outlive itself). Returns the user.
    async fn app_token_manager<'a>(
        &self,
        actor: &'a Actor,
        app: &str,
    ) -> Result<Option<&'a str>, CommandError> {
        if actor.app_token().is_some() {
            return Err(CommandError::Forbidden(
                "an app token cannot manage app tokens: a member of the app's teams does".into(),
            ));
        }
        actor.require_writer()?;
        let teams = self.active_app_teams(app).await?;
        actor.require_on_app(app, &teams, crate::actor::AppAction::Manage)?;
        Ok(actor.username())
    }

    /// Issues a token of app `app` (201 with its secret, shown this once). A GitHub user may
    /// not (403 `github_user`): the token would outlive their GitHub sign-in.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), app = app))]
    pub async fn issue_app_token(
        &self,
        actor: &Actor,
        origin: &Origin,
        app: &str,
        request: NewAppToken,
    ) -> Result<(IssuedAppToken, Written), CommandError> {
        let Some(issuer) = self.app_token_manager(actor, app).await? else {
            return Err(CommandError::Forbidden(
                "only a user issues app tokens".into(),
            ));
        };
        let username = Username::parse(issuer)?;
        if username.is_github() {
            return Err(super::tokens::github_user_token(&username).into());
        }
        let (issued, written) = self
            .issue(
                actor,
                origin,
                Uuid::new_v4(),
                username,
                TokenKind::App,
                request.description,
                app_token_scopes(),
                request.expires_in,
                Some(app.to_string()),
            )
            .await?;
        let IssuedToken {
            token,
            token_id,
            user,
            description,
            expires_at,
            created_at,
            ..
        } = issued;
        Ok((
            IssuedAppToken {
                token,
                token_id,
                app: app.to_string(),
                description,
                expires_at,
                created_at,
                issued_by: user,
            },
            written,
        ))
    }

    /// Revokes token `token_id` of app `app` (404 if it is not one of that app's); it stops
    /// working on every node once this answers.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), app = app, token_id = %token_id))]
    pub async fn revoke_app_token(
        &self,
        actor: &Actor,
        origin: &Origin,
        app: &str,
        token_id: Uuid,
    ) -> Result<Written, CommandError> {
        self.app_token_manager(actor, app).await?;
        let (_, written) = self
            .execute_guarded::<Token>(
                &token_id.to_string(),
                actor,
                origin,
                |token| match &token.app {
                    Some(of) if of == app && token.exists() => Ok(()),
                    _ => Err(
                        DomainError::NotFound(format!("app {app} has no token {token_id}")).into(),
                    ),
                },
                |token| {
                    token.handle(TokenCommand::Revoke {
                        reason: "revoked".into(),
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
    use crate::actor::AppActor;
    use crate::tests::{admin, append, commands, head, log_summary, origin, stream, user};
    use bosun_domain::apps::AppEvent;
    use bosun_domain::identity::{TeamName, TokenEvent};

    fn member(name: &str, team: &str) -> Actor {
        let Actor::User {
            username,
            admin,
            token_id,
            scopes,
            ..
        } = user(name)
        else {
            unreachable!()
        };
        Actor::User {
            username,
            admin,
            teams: vec![team.into()],
            token_id,
            scopes,
        }
    }

    fn created(app: &str, team: &str) -> AppEvent {
        AppEvent::AppCreated {
            name: bosun_domain::apps::AppName::parse(app).unwrap(),
            platform: bosun_domain::apps::PlatformName::parse("python").unwrap(),
            team_owner: TeamName::parse(team).unwrap(),
            owner: Username::parse("ann").unwrap(),
            description: String::new(),
            at: Utc::now(),
        }
    }

    async fn with_app() -> (Commands<crate::tests::Racing>, crate::tests::Racing) {
        let (commands, log) = commands();
        append(&log, "app-shop", &[created("shop", "ops")]).await;
        (commands, log)
    }

    fn request() -> NewAppToken {
        NewAppToken {
            description: "deploys".into(),
            expires_in: Some(3600),
        }
    }

    #[tokio::test]
    async fn a_member_issues_a_token_of_the_app_recorded_as_theirs_with_read_and_write() {
        let (commands, log) = with_app().await;
        let (issued, _) = commands
            .issue_app_token(&member("ann", "ops"), &origin(), "shop", request())
            .await
            .unwrap();
        assert_eq!(
            (issued.app.as_str(), issued.issued_by.as_str()),
            ("shop", "ann")
        );
        assert!(issued.expires_at.is_some() && !issued.token.is_empty());
        assert!(!format!("{issued:?}").contains(&issued.token));
        let events: Vec<TokenEvent> = stream(&log, &format!("token-{}", issued.token_id)).await;
        let [TokenEvent::TokenIssued {
            username,
            kind,
            scopes,
            app,
            description,
            ..
        }] = events.as_slice()
        else {
            panic!("{events:?}")
        };
        assert_eq!(username.as_str(), "ann");
        assert_eq!(*kind, TokenKind::App);
        assert_eq!(*scopes, app_token_scopes());
        assert_eq!(app.as_deref(), Some("shop"));
        assert_eq!(description, "deploys");
        // An admin may too.
        commands
            .issue_app_token(&admin("root"), &origin(), "shop", request())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn an_outsider_an_app_token_and_an_unknown_or_removed_app_are_refused_writing_nothing() {
        let (commands, log) = with_app().await;
        append(&log, "app-gone", &[created("gone", "ops")]).await;
        append(&log, "app-gone", &[AppEvent::AppRemoved { at: Utc::now() }]).await;
        let before = head(&log).await;
        let outsider = commands
            .issue_app_token(&member("bob", "web"), &origin(), "shop", request())
            .await;
        assert!(
            matches!(&outsider, Err(CommandError::Forbidden(m)) if m.contains("shop")),
            "{outsider:?}"
        );
        let token = Actor::App(AppActor::new("shop", Uuid::new_v4(), "ann"));
        assert!(matches!(
            commands
                .issue_app_token(&token, &origin(), "shop", request())
                .await,
            Err(CommandError::Forbidden(_))
        ));
        for app in ["nope", "gone", "Not_An_App"] {
            let answer = commands
                .issue_app_token(&member("ann", "ops"), &origin(), app, request())
                .await;
            assert!(
                matches!(answer, Err(CommandError::Domain(DomainError::NotFound(_)))),
                "{app}: {answer:?}"
            );
        }
        assert!(matches!(
            commands
                .issue_app_token(&Actor::Anonymous, &origin(), "shop", request())
                .await,
            Err(CommandError::Unauthenticated)
        ));
        assert_eq!(head(&log).await, before);
    }

    #[tokio::test]
    async fn a_github_member_of_the_apps_team_issues_no_app_token() {
        let (commands, log) = with_app().await;
        let before = head(&log).await;
        let refused = commands
            .issue_app_token(&member("github:ann", "ops"), &origin(), "shop", request())
            .await;
        match refused {
            Err(CommandError::Domain(DomainError::Forbidden { code, message })) => {
                assert_eq!(code, Username::GITHUB_USER);
                assert!(message.contains("sign in with GitHub"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(head(&log).await, before, "nothing written");
    }

    #[tokio::test]
    async fn a_member_revokes_a_token_of_the_app_and_no_other() {
        let (commands, log) = with_app().await;
        append(&log, "app-blog", &[created("blog", "ops")]).await;
        let ann = member("ann", "ops");
        let (issued, _) = commands
            .issue_app_token(&ann, &origin(), "shop", request())
            .await
            .unwrap();
        // Through another app's path, or by an outsider: refused, nothing written.
        let before = head(&log).await;
        let elsewhere = commands
            .revoke_app_token(&ann, &origin(), "blog", issued.token_id)
            .await;
        assert!(
            matches!(
                elsewhere,
                Err(CommandError::Domain(DomainError::NotFound(_)))
            ),
            "{elsewhere:?}"
        );
        let outsider = commands
            .revoke_app_token(&member("bob", "web"), &origin(), "shop", issued.token_id)
            .await;
        assert!(matches!(outsider, Err(CommandError::Forbidden(_))));
        let unknown = commands
            .revoke_app_token(&ann, &origin(), "shop", Uuid::new_v4())
            .await;
        assert!(matches!(
            unknown,
            Err(CommandError::Domain(DomainError::NotFound(_)))
        ));
        assert_eq!(head(&log).await, before);
        // Another member of the app's teams revokes it.
        commands
            .revoke_app_token(&member("cy", "ops"), &origin(), "shop", issued.token_id)
            .await
            .unwrap();
        let events: Vec<TokenEvent> = stream(&log, &format!("token-{}", issued.token_id)).await;
        assert!(matches!(
            events.last(),
            Some(TokenEvent::TokenRevoked { .. })
        ));
        let summary = log_summary(&log).await;
        assert_eq!(summary.last().unwrap().2, "cy");
    }
}
