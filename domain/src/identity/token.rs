//! The token aggregate, stream `token-<uuid>`. The log holds the token's SHA-256 digest, never
//! the token. A session token (from a login) expires; an API token may live until revoked.

use super::scope::Scopes;
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
    },
    Revoke {
        reason: String,
    },
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Token {
    pub token_id: Option<Uuid>,
    pub username: Option<Username>,
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
                token_id, username, ..
            } => {
                self.token_id = Some(*token_id);
                self.username = Some(username.clone());
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
}
