//! The task catalog: app → environment → task → how to run it, from configuration. A job names
//! an app, an environment and a task; only what the catalog holds can run.

use super::variables::Variables;
use crate::error::DomainError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How to run one task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// argv: the program and its arguments, run without a shell unless the program is one.
    pub command: Vec<String>,
    #[serde(default)]
    pub description: String,
    pub timeout_seconds: Option<u64>,
    pub working_dir: Option<String>,
    /// Environment of the process, under the job's variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// `catalog:` in the configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Catalog(BTreeMap<String, BTreeMap<String, BTreeMap<String, TaskSpec>>>);

/// One app and environment with its tasks, as `GET /v1/catalog` lists them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CatalogEntry {
    pub app: String,
    pub env: String,
    pub tasks: Vec<TaskSummary>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TaskSummary {
    pub name: String,
    pub description: String,
}

impl Catalog {
    /// Checks every task: a program to run, a positive timeout, valid environment names. The
    /// error names the task (`app/env/task`).
    pub fn validate(&self) -> Result<(), String> {
        for (app, envs) in &self.0 {
            for (env, tasks) in envs {
                for (task, spec) in tasks {
                    let at = format!("catalog.{app}.{env}.{task}");
                    if spec.command.first().is_none_or(|p| p.is_empty()) {
                        return Err(format!("{at}.command: must name a program to run"));
                    }
                    if spec.timeout_seconds == Some(0) {
                        return Err(format!("{at}.timeout_seconds: must be at least 1"));
                    }
                    Variables::parse(spec.env.clone()).map_err(|e| {
                        format!(
                            "{at}.env: {}",
                            e.to_string().trim_start_matches("variables: ")
                        )
                    })?;
                }
            }
        }
        Ok(())
    }

    /// The task to run for `app`/`env`/`task`; unknown ones are bad input (400), naming which
    /// part is unknown.
    pub fn task(&self, app: &str, env: &str, task: &str) -> Result<&TaskSpec, DomainError> {
        let envs = self
            .0
            .get(app)
            .ok_or_else(|| DomainError::invalid("app", format!("no app {app:?} in the catalog")))?;
        let tasks = envs.get(env).ok_or_else(|| {
            DomainError::invalid("env", format!("app {app} has no environment {env:?}"))
        })?;
        tasks.get(task).ok_or_else(|| {
            DomainError::invalid("task", format!("{app}/{env} has no task {task:?}"))
        })
    }

    pub fn entries(&self) -> Vec<CatalogEntry> {
        self.0
            .iter()
            .flat_map(|(app, envs)| {
                envs.iter().map(move |(env, tasks)| CatalogEntry {
                    app: app.clone(),
                    env: env.clone(),
                    tasks: tasks
                        .iter()
                        .map(|(name, spec)| TaskSummary {
                            name: name.clone(),
                            description: spec.description.clone(),
                        })
                        .collect(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(json: serde_json::Value) -> Catalog {
        serde_json::from_value(json).unwrap()
    }

    fn example() -> Catalog {
        catalog(serde_json::json!({
            "example": {"production": {"deploy": {
                "command": ["sh", "-c", "echo deploying $VERSION"],
                "description": "Deploy the app",
                "timeout_seconds": 600,
                "env": {"RAILS_ENV": "production"}
            }}}
        }))
    }

    #[test]
    fn resolves_a_task_and_names_what_is_unknown() {
        let c = example();
        assert!(c.validate().is_ok());
        assert_eq!(
            c.task("example", "production", "deploy")
                .unwrap()
                .timeout_seconds,
            Some(600)
        );
        for (app, env, task, field) in [
            ("nope", "production", "deploy", "app"),
            ("example", "staging", "deploy", "env"),
            ("example", "production", "restart", "task"),
        ] {
            match c.task(app, env, task) {
                Err(DomainError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("expected a refusal naming {field}, got {other:?}"),
            }
        }
    }

    #[test]
    fn refuses_tasks_that_cannot_run() {
        let no_program = catalog(serde_json::json!({"a": {"e": {"t": {"command": []}}}}));
        assert!(no_program
            .validate()
            .unwrap_err()
            .contains("catalog.a.e.t.command"));
        let zero = catalog(
            serde_json::json!({"a": {"e": {"t": {"command": ["true"], "timeout_seconds": 0}}}}),
        );
        assert!(zero.validate().unwrap_err().contains("timeout_seconds"));
        let bad_env = catalog(
            serde_json::json!({"a": {"e": {"t": {"command": ["true"], "env": {"A-B": "x"}}}}}),
        );
        assert!(bad_env
            .validate()
            .unwrap_err()
            .contains("catalog.a.e.t.env"));
        let unknown: Result<Catalog, _> = serde_json::from_value(
            serde_json::json!({"a": {"e": {"t": {"command": ["true"], "cmd": 1}}}}),
        );
        assert!(unknown.is_err());
    }

    #[test]
    fn lists_apps_environments_and_tasks() {
        let entries = example().entries();
        assert_eq!(entries.len(), 1);
        assert_eq!(
            (entries[0].app.as_str(), entries[0].env.as_str()),
            ("example", "production")
        );
        assert_eq!(entries[0].tasks[0].name, "deploy");
        assert_eq!(entries[0].tasks[0].description, "Deploy the app");
    }
}
