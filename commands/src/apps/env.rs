//! An app's environment. Names follow the rule of job variables; a public value is checked and
//! stored as is; a private one is checked, then sealed with the data key for its place
//! (`app-<app>/env/<NAME>`) before it enters the event, so the log never holds it in clear, and
//! answers show it as `null`. Changing the environment restarts the app's units unless
//! `restart` is false (the API's default is true). Names set by a bound service instance are
//! refused (409 `env_bound`, the domain's rule).

use super::EnvView;
use crate::actor::{Actor, AppAction, Origin};
use crate::error::CommandError;
use crate::execute::{Commands, Written};
use bosun_domain::apps::{check_env_value, AppCommand, EnvName, EnvVar};
use bosun_domain::Aggregate;
use bosun_eventstore::EventStore;

/// One variable to set. Its `Debug` never shows the value.
#[derive(Clone)]
pub struct EnvInput {
    pub name: String,
    pub value: String,
    /// `false`: a private variable, sealed and never shown.
    pub public: bool,
}

impl std::fmt::Debug for EnvInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvInput")
            .field("name", &self.name)
            .field("value", &"…")
            .field("public", &self.public)
            .finish()
    }
}

/// The place a private variable `name` of app `app` is sealed for.
pub(crate) fn seal_context(app: &str, name: &str) -> String {
    format!("app-{app}/env/{name}")
}

impl<S: EventStore> Commands<S> {
    /// Refuses, writing nothing, what [`Commands::set_app_env`] of a private variable `name`
    /// on app `app` would refuse now: 404, then 403, for the caller; 400 for the name; 409
    /// `env_bound` for a name a bound instance set; no data key to seal it with. For a caller
    /// that must write something else first and set the variable after (tsuru's `token-gen
    /// --export` issues the token it then sets), so that a refusal comes before either.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), app = app, name = name))]
    pub async fn check_private_env(
        &self,
        actor: &Actor,
        app: &str,
        name: &str,
    ) -> Result<(), CommandError> {
        let state = self.authorized_app(actor, app, AppAction::Env).await?;
        let name = EnvName::parse(name)?;
        let sealed = self.sealer()?.seal(&seal_context(app, name.as_str()), "")?;
        state.handle(AppCommand::SetEnv {
            envs: vec![EnvVar::private(name, sealed)],
            restart: false,
        })?;
        Ok(())
    }

    /// Sets variables of app `app` (200 with all its variables).
    #[tracing::instrument(skip_all, fields(actor = actor.name(), app = app, names = ?envs.iter().map(|e| e.name.as_str()).collect::<Vec<_>>()))]
    pub async fn set_app_env(
        &self,
        actor: &Actor,
        origin: &Origin,
        app: &str,
        envs: Vec<EnvInput>,
        restart: bool,
    ) -> Result<(Vec<EnvView>, Written), CommandError> {
        self.authorized_app(actor, app, AppAction::Env).await?;
        let mut vars = Vec::with_capacity(envs.len());
        for input in envs {
            let name = EnvName::parse(&input.name)?;
            let var = if input.public {
                EnvVar::public(name, input.value)?
            } else {
                check_env_value(&name, &input.value)?;
                let sealed = self
                    .sealer()?
                    .seal(&seal_context(app, name.as_str()), &input.value)?;
                EnvVar::private(name, sealed)
            };
            vars.push(var);
        }
        let ((state, _), written) = self
            .execute_on_app(actor, origin, app, AppAction::Env, |state| {
                Ok(state.handle(AppCommand::SetEnv {
                    envs: vars.clone(),
                    restart,
                })?)
            })
            .await?;
        Ok((EnvView::of_state(&state), written))
    }

    /// Unsets variables of app `app` (200 with the variables left); names not set are no change.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), app = app, names = ?names))]
    pub async fn unset_app_env(
        &self,
        actor: &Actor,
        origin: &Origin,
        app: &str,
        names: Vec<String>,
        restart: bool,
    ) -> Result<(Vec<EnvView>, Written), CommandError> {
        self.authorized_app(actor, app, AppAction::Env).await?;
        let names = names
            .iter()
            .map(|n| EnvName::parse_field("name", n))
            .collect::<Result<Vec<_>, _>>()?;
        let ((state, _), written) = self
            .execute_on_app(actor, origin, app, AppAction::Env, |state| {
                Ok(state.handle(AppCommand::UnsetEnv {
                    names: names.clone(),
                    restart,
                })?)
            })
            .await?;
        Ok((EnvView::of_state(&state), written))
    }
}
