//! An app's cnames: a host name is one app's at most, kept by its claim stream
//! (`cname-<host>`), which is appended with the app's change in one atomic append: adding one
//! another app holds is a 409 `cname_taken` and writes nothing.

use super::{after, require_on, AppView};
use crate::actor::{Actor, AppAction, Origin};
use crate::error::CommandError;
use crate::execute::{Commands, Written};
use bosun_domain::apps::{App, AppCommand, AppName, Cname, CnameClaim, CnameClaimCommand};
use bosun_domain::{Aggregate, DomainError};
use bosun_eventstore::{EventStore, StreamId};

/// `cname` parsed (400 `cname`), and short enough to name its claim stream.
fn parse_cname(cname: &str) -> Result<Cname, CommandError> {
    let cname = Cname::parse(cname)?;
    if StreamId::new(CnameClaim::CATEGORY, cname.as_str()).is_err() {
        return Err(DomainError::invalid("cname", "at most 250 characters").into());
    }
    Ok(cname)
}

impl<S: EventStore> Commands<S> {
    /// Adds `cname` to app `app` (200 with the app); its own cname again changes nothing.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), app = app, cname = cname))]
    pub async fn add_app_cname(
        &self,
        actor: &Actor,
        origin: &Origin,
        app: &str,
        cname: &str,
    ) -> Result<(AppView, Written), CommandError> {
        self.change_app_cname(actor, origin, app, cname, true).await
    }

    /// Removes `cname` from app `app` (200 with the app); 404 if it is not one of its cnames.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), app = app, cname = cname))]
    pub async fn remove_app_cname(
        &self,
        actor: &Actor,
        origin: &Origin,
        app: &str,
        cname: &str,
    ) -> Result<(AppView, Written), CommandError> {
        self.change_app_cname(actor, origin, app, cname, false)
            .await
    }

    /// Removes every one of `cnames` from app `app` in one append (200 with the app), releasing
    /// their claims in it: refused as [`Commands::remove_app_cname`] refuses any one of them
    /// (404 for one it has not), with nothing removed. For tsuru 0.3.9's `DELETE
    /// /apps/{app}/cname`, which took all of an app's cnames away.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), app = app, cnames = ?cnames))]
    pub async fn remove_app_cnames(
        &self,
        actor: &Actor,
        origin: &Origin,
        app: &str,
        cnames: &[String],
    ) -> Result<(AppView, Written), CommandError> {
        self.authorized_app(actor, app, AppAction::Manage).await?;
        let mut cnames = cnames
            .iter()
            .map(|cname| parse_cname(cname))
            .collect::<Result<Vec<_>, _>>()?;
        // One claim stream held once.
        let mut seen = std::collections::BTreeSet::new();
        cnames.retain(|cname| seen.insert(cname.as_str().to_string()));
        let mut claims = Vec::with_capacity(cnames.len());
        for cname in &cnames {
            claims.push(self.hold::<CnameClaim>(cname.as_str()).await?);
        }
        let held = (self.hold::<App>(app).await?, claims);
        let ((state, version), written) = self
            .execute_batch(held, actor, origin, |(held, claims), batch| {
                require_on(actor, app, &held.state, AppAction::Manage)?;
                let app_name: AppName = held.state.active_name()?.clone();
                let mut state = held.state.clone();
                let mut changed = Vec::new();
                let mut released = Vec::with_capacity(claims.len());
                for (cname, claim) in cnames.iter().zip(claims.iter()) {
                    let events = state.handle(AppCommand::RemoveCname {
                        cname: cname.clone(),
                    })?;
                    events.iter().for_each(|event| state.apply(event));
                    changed.extend(events);
                    released.push(claim.state.handle(CnameClaimCommand::Release {
                        cname: cname.clone(),
                        app: app_name.clone(),
                    })?);
                }
                let answer = after(held, &changed);
                batch.add(held, changed)?;
                for (claim, events) in claims.iter().zip(released) {
                    batch.add(claim, events)?;
                }
                Ok(answer)
            })
            .await?;
        Ok((self.app_answer(&state, version).await?, written))
    }

    /// Adds (`add`) or removes `cname` on app `app`, claiming or releasing it in the same append.
    async fn change_app_cname(
        &self,
        actor: &Actor,
        origin: &Origin,
        app: &str,
        cname: &str,
        add: bool,
    ) -> Result<(AppView, Written), CommandError> {
        self.authorized_app(actor, app, AppAction::Manage).await?;
        let cname = parse_cname(cname)?;
        let held = (
            self.hold::<App>(app).await?,
            self.hold::<CnameClaim>(cname.as_str()).await?,
        );
        let ((state, version), written) = self
            .execute_batch(held, actor, origin, |(held, claim), batch| {
                require_on(actor, app, &held.state, AppAction::Manage)?;
                let app_name: AppName = held.state.active_name()?.clone();
                let cname = cname.clone();
                let (changed, claimed) = if add {
                    (
                        held.state.handle(AppCommand::AddCname {
                            cname: cname.clone(),
                        })?,
                        claim.state.handle(CnameClaimCommand::Claim {
                            cname,
                            app: app_name,
                        })?,
                    )
                } else {
                    (
                        held.state.handle(AppCommand::RemoveCname {
                            cname: cname.clone(),
                        })?,
                        claim.state.handle(CnameClaimCommand::Release {
                            cname,
                            app: app_name,
                        })?,
                    )
                };
                let answer = after(held, &changed);
                batch.add(held, changed)?;
                batch.add(claim, claimed)?;
                Ok(answer)
            })
            .await?;
        Ok((self.app_answer(&state, version).await?, written))
    }
}
