//! Reading an app's tokens (never their secrets, nor their digests): whoever may manage them, a
//! member of one of the app's teams or an admin; an app token may not.

use super::{Page, Queries};
use crate::actor::Actor;
use crate::error::CommandError;
use bosun_domain::DomainError;
use bosun_projections::read_models::identity::{self as identity_model, TokenView};
use bosun_projections::read_models::jobs::app_teams;

impl Queries {
    /// A page of the tokens of app `app`, newest first, and how many there are: 404 for no such
    /// app (or a removed one), 403 for a caller outside its teams.
    pub async fn app_tokens(
        &self,
        actor: &Actor,
        app: &str,
        page: Page,
    ) -> Result<(Vec<TokenView>, i64), CommandError> {
        if actor.app_token().is_some() {
            return Err(CommandError::Forbidden(
                "an app token cannot manage app tokens: a member of the app's teams does".into(),
            ));
        }
        actor.require_reader()?;
        let client = self.client().await?;
        let teams = app_teams(&**client, app)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("no app {app}")))?;
        actor.require_on_app(app, &teams, crate::actor::AppAction::ListTokens)?;
        Ok(identity_model::app_tokens(&**client, app, page).await?)
    }
}
