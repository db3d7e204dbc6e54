//! App commands (tsuru's apps): create, update and remove apps, their teams, cnames,
//! environment and restarts, swap two apps; and the admins' platforms and quotas. Reads are
//! [`Queries`](crate::Queries)' (`queries/apps.rs`).
//!
//! Every command on an app loads the app's stream first (404 for no such app, or a removed one),
//! then asks [`Actor::require_on_app`] with the teams the stream has now and what it does
//! ([`AppAction`]: the app's own token restarts it and sets its env, and changes nothing else of
//! it) (403), and only then looks at the input; the same check runs again on every state a
//! decision is made on, so a team revoked meanwhile does not slip through a retry. Platforms and
//! quotas are the admins'.
//!
//! Decisions that span streams are appended in one atomic append
//! ([`Commands::execute_batch`]): creating an app takes a place in its owner's quota, a cname is
//! claimed (or released) with the app's change, a swap writes the same `AppsSwapped` to both
//! apps and moves the cnames' claims, and a removal releases the quota place and the cnames.
//! When the streams a decision needs depend on a state (an app's cnames, its owner, its swap
//! partner), they are read first, held, and checked again on the held states: a change between
//! the two plans again.
//!
//! Quotas are counted from the log (the quota stream's events), never from a read model. A
//! private variable is sealed (`app-<app>/env/<NAME>`) before it enters an event: its value is
//! never recorded in clear, in an event, a span or a log line. Each handler's span records
//! names only.

mod cnames;
mod env;
mod environment;
mod lifecycle;
mod platforms;
mod quota;
mod restart;
mod swap;
mod teams;

pub use bosun_projections::read_models::apps::{AppView, EnvView, PlatformView, QuotaView};
pub(crate) use env::seal_context;
pub use env::EnvInput;
pub use lifecycle::{CreateApp, UpdateApp};

use crate::actor::{Actor, AppAction, Origin};
use crate::error::CommandError;
use crate::execute::{Commands, Held, Written};
use bosun_domain::apps::{App, AppEvent, AppName};
use bosun_domain::{Aggregate, DomainError};
use bosun_eventstore::EventStore;
use bosun_projections::read_models::units as units_model;

/// The configured rules of apps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppRules {
    /// `quota.apps_per_user`: how many apps a user may own unless an admin set their limit;
    /// `-1`: unlimited.
    pub default_quota: i64,
}

impl Default for AppRules {
    fn default() -> Self {
        AppRules {
            default_quota: bosun_domain::apps::UNLIMITED,
        }
    }
}

/// Now, to the microsecond: the precision the read models keep, so a write's answer (folded
/// from the events) and a later read show the same times.
pub(crate) fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(6)
}

fn no_app(app: &str) -> CommandError {
    DomainError::NotFound(format!("no app {app}")).into()
}

/// The teams of an app's state, as [`Actor::require_on_app`] takes them.
pub(crate) fn team_names(state: &App) -> Vec<String> {
    state
        .teams()
        .iter()
        .map(|t| t.as_str().to_string())
        .collect()
}

/// `actor` may do `action` on app `app` (as `state`): 404 for no such app or a removed one, then
/// whatever [`Actor::require_on_app`] says.
pub(crate) fn require_on(
    actor: &Actor,
    app: &str,
    state: &App,
    action: AppAction,
) -> Result<(), CommandError> {
    if !state.is_active() {
        return Err(no_app(app));
    }
    actor.require_on_app(app, &team_names(state), action)
}

/// `held`'s state after `events`, and the version of its stream then.
pub(crate) fn after<A: Aggregate + Clone>(held: &Held<A>, events: &[A::Event]) -> (A, i64) {
    let mut state = held.state.clone();
    events.iter().for_each(|e| state.apply(e));
    let version = if events.is_empty() {
        held.version().map_or(-1, |v| v as i64)
    } else {
        (held.next_version() + events.len() as u64 - 1) as i64
    };
    (state, version)
}

impl<S: EventStore> Commands<S> {
    /// App `app` as its stream has it now, if `actor` may do `action` on it: 404 for no such
    /// app (a name no app can have, or a removed one) before 403.
    pub(crate) async fn authorized_app(
        &self,
        actor: &Actor,
        app: &str,
        action: AppAction,
    ) -> Result<App, CommandError> {
        if AppName::parse(app).is_err() {
            return Err(no_app(app));
        }
        let (state, _) = self.load::<App>(app).await?;
        require_on(actor, app, &state, action)?;
        Ok(state)
    }

    /// Writes what `decide` makes of app `app`'s state alone, in one append: `actor` must be
    /// allowed `action` on every state decided on (404, then 403), and a state that moved
    /// meanwhile is decided again. Returns the app's state after the events, with its stream's
    /// version then.
    pub(crate) async fn execute_on_app(
        &self,
        actor: &Actor,
        origin: &Origin,
        app: &str,
        action: AppAction,
        decide: impl Fn(&App) -> Result<Vec<AppEvent>, CommandError>,
    ) -> Result<((App, i64), Written), CommandError> {
        self.execute_batch(
            self.hold::<App>(app).await?,
            actor,
            origin,
            |held, batch| {
                require_on(actor, app, &held.state, action)?;
                let events = decide(&held.state)?;
                let answer = after(held, &events);
                batch.add(held, events)?;
                Ok(answer)
            },
        )
        .await
    }

    /// The answer of a write on an app: its state as written, with its units from the units
    /// read model.
    pub(crate) async fn app_answer(
        &self,
        state: &App,
        version: i64,
    ) -> Result<AppView, CommandError> {
        let mut view = AppView::of_state(state, version)
            .ok_or_else(|| CommandError::Internal("an app without its creation".into()))?;
        let client = self.read_models().await?;
        view.units = units_model::of_app(&**client, &view.name).await?;
        Ok(view)
    }
}
