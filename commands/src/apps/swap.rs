//! Swapping two apps (tsuru's swap): their cnames are exchanged and, unless `cname_only`, the
//! units their addresses serve. One decision ([`Swap::decide`]): the same `AppsSwapped` on both
//! apps' streams and a `CnameTransferred` on each exchanged cname's claim, in one atomic
//! append. Refused (409) while either app has a restart running (computed from the units read
//! model, see [`Commands::restarting`]) or when their platforms differ; the caller must be able
//! to change both (an app token cannot: [`AppAction::Manage`]).
//!
//! `app1` is loaded and authorized before `app2` is even loaded, so someone who may not act on
//! `app1` learns nothing of `app2` (404 or 403) through a swap. Whether a restart is running is
//! computed for each app's restart generation as loaded; if the held states (the ones decided
//! on) have another generation (a restart, or an env change that restarts, came meanwhile),
//! the swap is planned again from the start, so the decision never rests on a stale answer.

use super::require_on;
use crate::actor::{Actor, AppAction, Origin};
use crate::error::CommandError;
use crate::execute::{Commands, Held, Written, ATTEMPTS};
use bosun_domain::apps::{App, AppName, CnameClaim, CnameClaimCommand, Swap};
use bosun_domain::{Aggregate, DomainError};
use bosun_eventstore::EventStore;
use std::collections::BTreeSet;

/// The cnames of both apps: the claims a swap of them moves.
fn cnames_of(one: &App, two: &App) -> BTreeSet<String> {
    one.cnames()
        .iter()
        .chain(two.cnames())
        .map(|c| c.as_str().to_string())
        .collect()
}

impl<S: EventStore> Commands<S> {
    /// Swaps apps `app1` and `app2` (200).
    #[tracing::instrument(skip_all, fields(actor = actor.name(), app1 = app1, app2 = app2, cname_only))]
    pub async fn swap_apps(
        &self,
        actor: &Actor,
        origin: &Origin,
        app1: &str,
        app2: &str,
        cname_only: bool,
    ) -> Result<Written, CommandError> {
        let no_app = |app: &str| CommandError::from(DomainError::NotFound(format!("no app {app}")));
        if AppName::parse(app1).is_err() {
            return Err(no_app(app1));
        }
        for _ in 0..ATTEMPTS {
            // app1 is authorized before app2 is looked at: 404 before 403 on each, and nothing
            // learnt of app2 by whoever may not change app1.
            let (one, _) = self.load::<App>(app1).await?;
            require_on(actor, app1, &one, AppAction::Manage)?;
            if AppName::parse(app2).is_err() {
                return Err(no_app(app2));
            }
            let (two, _) = self.load::<App>(app2).await?;
            require_on(actor, app2, &two, AppAction::Manage)?;
            let restarting1 = self.restarting(&one).await?;
            let restarting2 = self.restarting(&two).await?;
            let mut claims = Vec::new();
            for cname in cnames_of(&one, &two) {
                claims.push(self.hold::<CnameClaim>(&cname).await?);
            }
            let held = (
                self.hold::<App>(app1).await?,
                self.hold::<App>(app2).await?,
                claims,
            );
            let (done, written) = self
                .execute_batch(held, actor, origin, |(one, two, claims), batch| {
                    require_on(actor, app1, &one.state, AppAction::Manage)?;
                    require_on(actor, app2, &two.state, AppAction::Manage)?;
                    let held_cnames: BTreeSet<String> =
                        claims.iter().map(|c| c.id().to_string()).collect();
                    if held_cnames != cnames_of(&one.state, &two.state)
                        || !restarting1.holds_for(&one.state)
                        || !restarting2.holds_for(&two.state)
                    {
                        // A cname came or went since, or a restart was asked for: plan again.
                        return Ok(false);
                    }
                    let swap = Swap {
                        app1: &one.state,
                        app2: &two.state,
                        cname_only,
                        restarting1: restarting1.running,
                        restarting2: restarting2.running,
                    };
                    let swapped = swap.decide()?;
                    batch.add(one, vec![swapped.clone()])?;
                    batch.add(two, vec![swapped])?;
                    for transfer in swap.cname_transfers() {
                        let CnameClaimCommand::Transfer { cname, .. } = &transfer else {
                            continue;
                        };
                        let claim: &Held<CnameClaim> = claims
                            .iter()
                            .find(|c| c.id() == cname.as_str())
                            .ok_or_else(|| {
                                CommandError::Internal(format!("the claim of {cname} not held"))
                            })?;
                        batch.add(claim, claim.state.handle(transfer)?)?;
                    }
                    Ok(true)
                })
                .await?;
            if done {
                return Ok(written);
            }
        }
        Err(CommandError::Contended(format!("app-{app1}")))
    }
}
