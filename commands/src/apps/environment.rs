//! What the runner and the job rules read of an app, from its stream (never a read model, which
//! may lag): its environment with private values opened, and its teams.

use super::env::seal_context;
use crate::error::CommandError;
use crate::execute::Commands;
use bosun_domain::apps::{App, AppName, EnvValue};
use bosun_eventstore::EventStore;
use secrecy::SecretString;

impl<S: EventStore> Commands<S> {
    /// The variables of app `app`, by name, private ones opened with the data key, for a
    /// process's environment only (never an answer or a log line). `None` for no such app (or
    /// a removed one). A private value that does not open (another data key) is an error.
    pub async fn app_environment(
        &self,
        app: &str,
    ) -> Result<Option<Vec<(String, SecretString)>>, CommandError> {
        if AppName::parse(app).is_err() {
            return Ok(None);
        }
        let (state, _) = self.load::<App>(app).await?;
        if !state.is_active() {
            return Ok(None);
        }
        let mut variables = Vec::with_capacity(state.env().len());
        for (name, value) in state.env() {
            let value = match value {
                EnvValue::Public { value } => SecretString::from(value.clone()),
                EnvValue::Private { sealed } => self
                    .sealer()?
                    .open(&seal_context(app, name.as_str()), sealed)?,
            };
            variables.push((name.as_str().to_string(), value));
        }
        Ok(Some(variables))
    }

    /// The teams of app `app` (created and not removed), from its stream; `None` if it is not a
    /// registered app (see [`Commands::registered_app_teams`]).
    pub async fn app_teams(&self, app: &str) -> Result<Option<Vec<String>>, CommandError> {
        self.registered_app_teams(app).await
    }
}
