//! The first admin: on a first start with no admin, the server creates user `admin` with a
//! random password and an admin token, to be shown once.

use super::secrets::random_password;
use super::users::NewUser;
use crate::actor::{Actor, Origin};
use crate::error::CommandError;
use crate::execute::Commands;
use bosun_domain::identity::Username;

const ADMIN: &str = "admin";

/// The first admin's credentials. Shown once; only digests and hashes are kept.
pub struct Bootstrapped {
    pub username: String,
    pub password: String,
    pub token: String,
}

impl Commands {
    /// Creates the first admin if there is no admin; `None` if there already is one. Safe to
    /// run on many nodes at once: the identity lock lets one of them do it.
    #[tracing::instrument(skip_all)]
    pub async fn bootstrap_admin(&self) -> Result<Option<Bootstrapped>, CommandError> {
        let actor = Actor::System("system");
        let origin = Origin {
            request_id: Some(uuid::Uuid::new_v4().to_string()),
            user_agent: Some("bosun bootstrap".into()),
            source: Some("bootstrap".into()),
            ..Origin::default()
        };
        let created = self
            .with_identity_lock(async {
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
                self.register_locked(&actor, &origin, &user).await?;
                Ok(Some(password))
            })
            .await?;
        let Some(password) = created else {
            return Ok(None);
        };
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
