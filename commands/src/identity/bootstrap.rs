//! The first admin: on a first start with no admin, the server creates user `admin` with a
//! random password and an admin token, to be shown once.

use super::secrets::random_password;
use super::users::NewUser;
use crate::actor::{Actor, Origin};
use crate::error::CommandError;
use crate::execute::Commands;
use bosun_domain::identity::Username;
use bosun_domain::DomainError;
use bosun_eventstore::EventStore;

const ADMIN: &str = "admin";

/// The first admin's credentials. Shown once; only digests and hashes are kept.
pub struct Bootstrapped {
    pub username: String,
    pub password: String,
    pub token: String,
}

impl<S: EventStore> Commands<S> {
    /// Creates the first admin if there is no admin; `None` if there already is one. Whether
    /// one is comes from the read models, caught up. Safe to run on many nodes at once: the
    /// reservation of the name `admin` lets one of them create it. Also makes the identity
    /// backfill, so a start does it before anything relies on it.
    #[tracing::instrument(skip_all)]
    pub async fn bootstrap_admin(&self) -> Result<Option<Bootstrapped>, CommandError> {
        let actor = Actor::System("system");
        let origin = Origin {
            request_id: Some(uuid::Uuid::new_v4().to_string()),
            user_agent: Some("bosun bootstrap".into()),
            source: Some("bootstrap".into()),
            ..Origin::default()
        };
        self.identity_backfill(&origin).await?;
        self.catch_up().await?;
        if self.admin_count().await? > 0 {
            return Ok(None);
        }
        let password = random_password();
        let user = NewUser {
            username: Username::parse(ADMIN)?,
            password: password.clone(),
            email: None,
            admin: true,
        };
        match self.register(&actor, &origin, &user).await {
            Ok(written) => self.settle(written).await,
            // Another node made it at the same time; unless a user `admin` who is no admin
            // exists, and so no admin does: that is said.
            Err(CommandError::Domain(DomainError::Conflict {
                code: "user_exists",
                message,
            })) => {
                self.catch_up().await?;
                if self.admin_count().await? > 0 {
                    return Ok(None);
                }
                return Err(DomainError::conflict("user_exists", message).into());
            }
            Err(e) => return Err(e),
        }
        let (token, _) = self
            .issue_token_for(&actor, &origin, ADMIN, "bootstrap admin token".into(), None)
            .await?;
        Ok(Some(Bootstrapped {
            username: ADMIN.into(),
            password: password.expose().to_string(),
            token: token.token,
        }))
    }
}
