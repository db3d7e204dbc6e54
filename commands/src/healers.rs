//! Healers, after tsuru's: named catalog tasks that an admin runs by name, configured as
//! `healers: {name: app/env/task}` and checked against the catalog when the server starts.
//! Running one submits its task as a job, by the same command and rules as `POST /v1/jobs`.

use crate::actor::{Actor, Origin};
use crate::error::CommandError;
use crate::execute::Commands;
use crate::jobs::{SubmitJob, Submitted};
use bosun_domain::identity::Scope;
use bosun_domain::jobs::Catalog;
use bosun_domain::DomainError;
use bosun_eventstore::EventStore;
use serde::Serialize;
use std::collections::BTreeMap;

/// A healer as a client sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Healer {
    pub name: String,
    /// The catalog task it runs, `app/env/task`.
    pub task: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    app: String,
    env: String,
    task: String,
}

/// The configured healers, each naming a task of the catalog.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Healers(BTreeMap<String, Target>);

impl Healers {
    /// The healers of `config` (name → `app/env/task`), each checked: a name of
    /// `[A-Za-z0-9_.-]`, 1 to 64 characters, and a task `catalog` holds. An error names the
    /// key (`healers.<name>`).
    pub fn parse(config: &BTreeMap<String, String>, catalog: &Catalog) -> Result<Self, String> {
        let mut healers = BTreeMap::new();
        for (name, task) in config {
            let key = format!("healers.{name}");
            let good_name = (1..=64).contains(&name.len())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
            if !good_name {
                return Err(format!(
                    "{key}: a healer's name must be 1 to 64 letters, digits, dots, dashes or underscores"
                ));
            }
            let parts: Vec<&str> = task.split('/').collect();
            let [app, env, name_of_task] = parts[..] else {
                return Err(format!(
                    "{key}: {task:?} is not a catalog task written app/env/task"
                ));
            };
            catalog
                .task(app, env, name_of_task)
                .map_err(|_| format!("{key}: the catalog has no task {task}"))?;
            healers.insert(
                name.clone(),
                Target {
                    app: app.to_string(),
                    env: env.to_string(),
                    task: name_of_task.to_string(),
                },
            );
        }
        Ok(Healers(healers))
    }

    /// Every healer, by name: any holder of the read scope may list them.
    pub fn list(&self, actor: &Actor) -> Result<Vec<Healer>, CommandError> {
        actor.require_reader()?;
        Ok(self
            .0
            .iter()
            .map(|(name, t)| Healer {
                name: name.clone(),
                task: format!("{}/{}/{}", t.app, t.env, t.task),
            })
            .collect())
    }
}

impl<S: EventStore> Commands<S> {
    /// An admin runs the healer `name`: its task is submitted as a job (named `healer <name>`),
    /// as `POST /v1/jobs` would; 404 for a healer not configured. `idempotency_key` works as
    /// on a submission.
    #[tracing::instrument(skip_all, fields(actor = actor.name(), healer = name))]
    pub async fn run_healer(
        &self,
        actor: &Actor,
        origin: &Origin,
        catalog: &Catalog,
        healers: &Healers,
        name: &str,
        idempotency_key: Option<String>,
    ) -> Result<Submitted, CommandError> {
        actor.require(Scope::Write)?;
        actor.require_admin()?;
        let target = healers
            .0
            .get(name)
            .ok_or_else(|| DomainError::NotFound(format!("no healer {name}")))?;
        self.submit_job(
            actor,
            origin,
            catalog,
            SubmitJob {
                app: target.app.clone(),
                env: target.env.clone(),
                task: target.task.clone(),
                variables: BTreeMap::new(),
                name: Some(format!("healer {name}")),
                timeout_seconds: None,
                notification_emails: vec![],
                idempotency_key,
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        serde_json::from_str(r#"{"shop": {"production": {"heal": {"command": ["true"]}}}}"#)
            .expect("a catalog")
    }

    fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn healers_name_catalog_tasks() {
        let healers = Healers::parse(
            &config(&[("restart-shop", "shop/production/heal")]),
            &catalog(),
        )
        .unwrap();
        assert_eq!(
            healers.list(&Actor::System("test")).unwrap(),
            [Healer {
                name: "restart-shop".into(),
                task: "shop/production/heal".into()
            }]
        );
    }

    #[test]
    fn an_unknown_task_or_a_bad_name_is_refused_naming_the_key() {
        for (name, task, wanted) in [
            (
                "fix",
                "shop/production/nope",
                "healers.fix: the catalog has no task shop/production/nope",
            ),
            (
                "fix",
                "shop/production",
                "healers.fix: \"shop/production\" is not a catalog task written app/env/task",
            ),
            ("fix", "a/b/c/d", "healers.fix: \"a/b/c/d\" is not"),
            (
                "no way",
                "shop/production/heal",
                "healers.no way: a healer's name",
            ),
        ] {
            let err = Healers::parse(&config(&[(name, task)]), &catalog()).unwrap_err();
            assert!(err.starts_with(wanted), "{err}");
        }
    }
}
