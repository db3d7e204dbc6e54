//! Users' app quotas, set by an admin: `-1` is unlimited; a limit under what is in use keeps the
//! user from creating more until enough are removed. Without one set, `quota.apps_per_user`
//! applies.

use super::{AppRules, QuotaView};
use crate::actor::{Actor, Origin};
use crate::error::CommandError;
use crate::execute::{Commands, Written};
use bosun_domain::apps::{Quota, QuotaCommand};
use bosun_domain::identity::{Scope, User, Username};
use bosun_domain::{Aggregate, DomainError};
use bosun_eventstore::EventStore;

impl<S: EventStore> Commands<S> {
    /// Sets `username`'s app limit (200 with the quota); 404 for an unknown user, 400 `limit`
    /// under -1.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), username = username, limit))]
    pub async fn set_quota(
        &self,
        actor: &Actor,
        origin: &Origin,
        username: &str,
        limit: i64,
        rules: &AppRules,
    ) -> Result<(QuotaView, Written), CommandError> {
        actor.require(Scope::Write)?;
        actor.require_admin()?;
        let no_user = || DomainError::NotFound(format!("no user {username}"));
        let name = Username::parse(username).map_err(|_| no_user())?;
        let (user, _) = self.load::<User>(name.as_str()).await?;
        if !user.active {
            return Err(no_user().into());
        }
        let (state, written) = self
            .execute::<Quota>(name.as_str(), actor, origin, |state| {
                state.handle(QuotaCommand::SetLimit { limit })
            })
            .await?;
        Ok((
            QuotaView {
                limit: state.effective_limit(rules.default_quota),
                in_use: state.in_use(),
            },
            written,
        ))
    }
}
