//! The token aggregate, stream `token-<uuid>`. The log holds the token's SHA-256 digest, never
//! the token. A session token (from a login) expires; an API token may live until revoked. An
//! app token acts on one app only (`app`), never with the admin scope; its `username` is the user
//! who issued it, kept for the audit: its rights are the app's, not that user's.

use super::scope::{Scope, Scopes};
use super::values::{TokenDigest, Username};
use crate::aggregate::{Aggregate, DomainEvent};
use crate::error::DomainError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The longest lifetime a token may ask for: ten years, in seconds.
pub const MAX_EXPIRES_IN: i64 = 10 * 365 * 24 * 3600;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Session,
    Api,
    /// Acts only on its app: that app's jobs, env and restarts.
    App,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Session => "session",
            TokenKind::Api => "api",
            TokenKind::App => "app",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event_type", content = "data")]
pub enum TokenEvent {
    TokenIssued {
        token_id: Uuid,
        username: Username,
        kind: TokenKind,
        digest: TokenDigest,
        description: String,
        scopes: Scopes,
        expires_at: Option<DateTime<Utc>>,
        /// An app token's app; absent for the others (and in events stored before app tokens).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        app: Option<String>,
    },
    TokenRevoked {
        token_id: Uuid,
        username: Username,
        reason: String,
    },
}

impl DomainEvent for TokenEvent {
    fn event_type(&self) -> &'static str {
        match self {
            TokenEvent::TokenIssued { .. } => "TokenIssued",
            TokenEvent::TokenRevoked { .. } => "TokenRevoked",
        }
    }
}

#[derive(Clone, Debug)]
pub enum TokenCommand {
    Issue {
        token_id: Uuid,
        username: Username,
        kind: TokenKind,
        digest: TokenDigest,
        description: String,
        scopes: Scopes,
        /// Seconds from `now`; `None`: until revoked.
        expires_in: Option<i64>,
        now: DateTime<Utc>,
        /// The app of an app token (`kind: App`), and only of one.
        app: Option<String>,
    },
    Revoke {
        reason: String,
    },
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Token {
    pub token_id: Option<Uuid>,
    pub username: Option<Username>,
    /// The app an app token acts on.
    pub app: Option<String>,
    pub revoked: bool,
}

impl Aggregate for Token {
    type Command = TokenCommand;
    type Event = TokenEvent;
    const CATEGORY: &'static str = "token";

    fn handle(&self, command: TokenCommand) -> Result<Vec<TokenEvent>, DomainError> {
        match command {
            TokenCommand::Issue {
                token_id,
                username,
                kind,
                digest,
                description,
                scopes,
                expires_in,
                now,
                app,
            } => {
                if self.token_id.is_some() {
                    return Err(DomainError::conflict(
                        "token_exists",
                        "a token with this id exists",
                    ));
                }
                if description.chars().count() > 256 {
                    return Err(DomainError::invalid(
                        "description",
                        "must be at most 256 characters",
                    ));
                }
                match (kind, &app) {
                    (TokenKind::App, None) => {
                        return Err(DomainError::invalid(
                            "app",
                            "an app token must name its app",
                        ))
                    }
                    (TokenKind::App, Some(_)) if scopes.contains(Scope::Admin) => {
                        return Err(DomainError::invalid(
                            "scopes",
                            "an app token cannot have the admin scope",
                        ))
                    }
                    (TokenKind::Session | TokenKind::Api, Some(_)) => {
                        return Err(DomainError::invalid(
                            "app",
                            "only an app token acts on an app",
                        ))
                    }
                    _ => {}
                }
                let expires_at = match expires_in {
                    None => None,
                    Some(s) if (1..=MAX_EXPIRES_IN).contains(&s) => {
                        Some(now + chrono::Duration::seconds(s))
                    }
                    Some(_) => {
                        return Err(DomainError::invalid(
                            "expires_in",
                            format!("must be 1 to {MAX_EXPIRES_IN} seconds"),
                        ))
                    }
                };
                Ok(vec![TokenEvent::TokenIssued {
                    token_id,
                    username,
                    kind,
                    digest,
                    description,
                    scopes,
                    expires_at,
                    app,
                }])
            }
            TokenCommand::Revoke { reason } => {
                let (Some(token_id), Some(username)) = (self.token_id, self.username.clone())
                else {
                    return Err(DomainError::NotFound("no such token".into()));
                };
                if self.revoked {
                    return Ok(vec![]);
                }
                Ok(vec![TokenEvent::TokenRevoked {
                    token_id,
                    username,
                    reason,
                }])
            }
        }
    }

    fn apply(&mut self, event: &TokenEvent) {
        match event {
            TokenEvent::TokenIssued {
                token_id,
                username,
                app,
                ..
            } => {
                self.token_id = Some(*token_id);
                self.username = Some(username.clone());
                self.app = app.clone();
            }
            TokenEvent::TokenRevoked { .. } => self.revoked = true,
        }
    }

    fn exists(&self) -> bool {
        self.token_id.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_000_000, 0).unwrap()
    }

    fn issue(expires_in: Option<i64>) -> TokenCommand {
        TokenCommand::Issue {
            token_id: Uuid::nil(),
            username: Username::parse("ann").unwrap(),
            kind: TokenKind::Api,
            digest: TokenDigest("ab".into()),
            description: "ci".into(),
            scopes: Scopes::all(),
            expires_in,
            now: now(),
            app: None,
        }
    }

    fn issued(expires_at: Option<DateTime<Utc>>) -> TokenEvent {
        TokenEvent::TokenIssued {
            token_id: Uuid::nil(),
            username: Username::parse("ann").unwrap(),
            kind: TokenKind::Api,
            digest: TokenDigest("ab".into()),
            description: "ci".into(),
            scopes: Scopes::all(),
            expires_at,
            app: None,
        }
    }

    fn revoke() -> TokenCommand {
        TokenCommand::Revoke { reason: "r".into() }
    }

    #[test]
    fn expiry_is_now_plus_expires_in() {
        given::<Token>(&[])
            .when(issue(Some(60)))
            .then(vec![issued(DateTime::from_timestamp(1_000_060, 0))]);
        given::<Token>(&[])
            .when(issue(None))
            .then(vec![issued(None)]);
    }

    #[test]
    fn refuses_a_lifetime_out_of_range() {
        for bad in [0, -5, MAX_EXPIRES_IN + 1] {
            given::<Token>(&[])
                .when(issue(Some(bad)))
                .refused(DomainError::invalid(
                    "expires_in",
                    format!("must be 1 to {MAX_EXPIRES_IN} seconds"),
                ));
        }
    }

    #[test]
    fn refuses_a_description_longer_than_256_characters() {
        let TokenCommand::Issue {
            token_id,
            username,
            kind,
            digest,
            scopes,
            expires_in,
            now,
            app,
            ..
        } = issue(None)
        else {
            unreachable!()
        };
        given::<Token>(&[])
            .when(TokenCommand::Issue {
                token_id,
                username,
                kind,
                digest,
                description: "é".repeat(257),
                scopes,
                expires_in,
                now,
                app,
            })
            .refused(DomainError::invalid(
                "description",
                "must be at most 256 characters",
            ));
    }

    #[test]
    fn revoking_twice_writes_once_and_an_unknown_token_is_not_found() {
        let revoked = TokenEvent::TokenRevoked {
            token_id: Uuid::nil(),
            username: Username::parse("ann").unwrap(),
            reason: "r".into(),
        };
        given::<Token>(&[issued(None)])
            .when(revoke())
            .then(vec![revoked.clone()]);
        given::<Token>(&[issued(None), revoked])
            .when(revoke())
            .then_nothing();
        given::<Token>(&[])
            .when(revoke())
            .refused(DomainError::NotFound("no such token".into()));
    }

    #[test]
    fn refuses_issuing_the_same_id_twice() {
        given::<Token>(&[issued(None)])
            .when(issue(None))
            .refused(DomainError::conflict(
                "token_exists",
                "a token with this id exists",
            ));
    }
    fn read_write() -> Scopes {
        Scopes::parse(&["read".into(), "write".into()]).unwrap()
    }

    fn issue_app(app: Option<&str>, kind: TokenKind, scopes: Scopes) -> TokenCommand {
        TokenCommand::Issue {
            token_id: Uuid::nil(),
            username: Username::parse("ann").unwrap(),
            kind,
            digest: TokenDigest("ab".into()),
            description: "deploys".into(),
            scopes,
            expires_in: None,
            now: now(),
            app: app.map(str::to_string),
        }
    }

    fn app_issued() -> TokenEvent {
        TokenEvent::TokenIssued {
            token_id: Uuid::nil(),
            username: Username::parse("ann").unwrap(),
            kind: TokenKind::App,
            digest: TokenDigest("ab".into()),
            description: "deploys".into(),
            scopes: read_write(),
            expires_at: None,
            app: Some("shop".into()),
        }
    }

    #[test]
    fn an_app_token_names_its_app_and_the_user_who_issued_it() {
        given::<Token>(&[])
            .when(issue_app(Some("shop"), TokenKind::App, read_write()))
            .then(vec![app_issued()]);
        let mut token = Token::default();
        token.apply(&app_issued());
        assert_eq!(token.app.as_deref(), Some("shop"));
        assert_eq!(token.username, Some(Username::parse("ann").unwrap()));
    }

    #[test]
    fn an_app_token_must_name_its_app_and_no_other_token_may() {
        given::<Token>(&[])
            .when(issue_app(None, TokenKind::App, read_write()))
            .refused(DomainError::invalid(
                "app",
                "an app token must name its app",
            ));
        for kind in [TokenKind::Api, TokenKind::Session] {
            given::<Token>(&[])
                .when(issue_app(Some("shop"), kind, Scopes::all()))
                .refused(DomainError::invalid(
                    "app",
                    "only an app token acts on an app",
                ));
        }
    }

    #[test]
    fn an_app_token_never_has_the_admin_scope() {
        given::<Token>(&[])
            .when(issue_app(Some("shop"), TokenKind::App, Scopes::all()))
            .refused(DomainError::invalid(
                "scopes",
                "an app token cannot have the admin scope",
            ));
    }

    #[test]
    fn an_app_token_is_revoked_like_any_other() {
        given::<Token>(&[app_issued()])
            .when(revoke())
            .then(vec![TokenEvent::TokenRevoked {
                token_id: Uuid::nil(),
                username: Username::parse("ann").unwrap(),
                reason: "r".into(),
            }]);
    }

    #[test]
    fn a_token_stored_before_app_tokens_loads_without_an_app_and_others_are_stored_as_before() {
        let stored = serde_json::json!({
            "event_type": "TokenIssued",
            "data": {
                "token_id": Uuid::nil(), "username": "ann", "kind": "api", "digest": "ab",
                "description": "ci", "scopes": ["read", "write", "admin"], "expires_at": null
            }
        });
        let event: TokenEvent = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(event, issued(None));
        assert_eq!(serde_json::to_value(&event).unwrap(), stored);
        let app = serde_json::to_value(app_issued()).unwrap();
        assert_eq!(app["data"]["app"], "shop");
        assert_eq!(app["data"]["kind"], "app");
    }
}
