//! Reading a user's SSH keys: the user themself or an admin (the same rule as reading the user).

use super::{Page, Queries};
use crate::actor::Actor;
use crate::error::CommandError;
use bosun_domain::DomainError;
use bosun_projections::read_models::identity as users;
use bosun_projections::read_models::keys::{self as model, KeyView};

impl Queries {
    /// A page of `username`'s keys by name, and how many they have; 404 for an unknown user.
    pub async fn keys(
        &self,
        actor: &Actor,
        username: &str,
        page: Page,
    ) -> Result<(Vec<KeyView>, i64), CommandError> {
        actor.require_reader()?;
        actor.require_self_or_admin(username)?;
        let client = self.client().await?;
        if users::user(&**client, username).await?.is_none() {
            return Err(DomainError::NotFound(format!("no user {username}")).into());
        }
        Ok(model::list(&**client, username, page.limit, page.offset).await?)
    }
}
