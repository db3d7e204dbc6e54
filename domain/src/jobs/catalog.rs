//! The catalog, from configuration: app → environment → its tasks (how to run each), and beside
//! them under `processes` the app's long-running processes, run by workers as units. A job names
//! an app, an environment and a task; only what the catalog holds can run.
//!
//! ```yaml
//! catalog:
//!   web:
//!     production:
//!       migrate: {command: [./migrate]}          # a task
//!       processes:                               # not a task: the env's processes
//!         http: {command: [./serve], units: 2, port_env: PORT, env: {MODE: prod}}
//! ```

use super::variables::Variables;
use crate::error::DomainError;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

/// The key of an environment's processes, beside its tasks: no task can be named so.
pub const PROCESSES: &str = "processes";

/// The most units one process may declare.
pub const MAX_UNITS: u32 = 100;

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

/// How to run one of an app's long-running processes: `units` copies of it, each a unit with a
/// port of its own in `port_env`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessSpec {
    /// argv: the program and its arguments, run without a shell unless the program is one.
    pub command: Vec<String>,
    /// How many units run it, 1 to [`MAX_UNITS`].
    #[serde(default = "one_unit")]
    pub units: u32,
    /// The variable holding the unit's port; `PORT` when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Environment of each unit, over the app's environment (the operator's value wins); the port
    /// variable comes last.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

fn one_unit() -> u32 {
    1
}

impl ProcessSpec {
    /// The variable holding the unit's port.
    pub fn port_variable(&self) -> &str {
        self.port_env.as_deref().unwrap_or("PORT")
    }
}

/// One environment of an app: its tasks, and its processes (`processes:` among the tasks).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnvCatalog {
    pub tasks: BTreeMap<String, TaskSpec>,
    pub processes: BTreeMap<String, ProcessSpec>,
}

impl Serialize for EnvCatalog {
    /// As it is written: the tasks, and `processes` beside them when there are any.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let extra = usize::from(!self.processes.is_empty());
        let mut map = serializer.serialize_map(Some(self.tasks.len() + extra))?;
        for (name, spec) in &self.tasks {
            map.serialize_entry(name, spec)?;
        }
        if !self.processes.is_empty() {
            map.serialize_entry(PROCESSES, &self.processes)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for EnvCatalog {
    /// A map of tasks, where the key `processes` holds the processes instead. Each value is read
    /// through the map itself, so an error names its key (`catalog.a.e.t.cmd: unknown field`).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EnvVisitor;
        impl<'de> Visitor<'de> for EnvVisitor {
            type Value = EnvCatalog;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of tasks (and `processes`)")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<EnvCatalog, M::Error> {
                let mut env = EnvCatalog::default();
                while let Some(key) = map.next_key::<String>()? {
                    if key == PROCESSES {
                        env.processes = map.next_value()?;
                    } else {
                        let spec: TaskSpec = map.next_value()?;
                        env.tasks.insert(key, spec);
                    }
                }
                Ok(env)
            }
        }
        deserializer.deserialize_map(EnvVisitor)
    }
}

/// `catalog:` in the configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Catalog(BTreeMap<String, BTreeMap<String, EnvCatalog>>);

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
    /// Checks every task: a program to run, a positive timeout, valid environment names; and
    /// every process: a program, 1 to [`MAX_UNITS`] units, a valid port variable and
    /// environment, and names that make a unit's id (`<app>.<env>.<process>.<index>`): the app a
    /// registrable app name, the environment `[A-Za-z0-9_-]`, the process `[a-z][a-z0-9-]*`. The
    /// error names the task or process (`catalog.app.env.task`).
    pub fn validate(&self) -> Result<(), String> {
        for (app, envs) in &self.0 {
            for (env, catalog) in envs {
                for (task, spec) in &catalog.tasks {
                    let at = format!("catalog.{app}.{env}.{task}");
                    if spec.command.first().is_none_or(|p| p.is_empty()) {
                        return Err(format!("{at}.command: must name a program to run"));
                    }
                    if spec.timeout_seconds == Some(0) {
                        return Err(format!("{at}.timeout_seconds: must be at least 1"));
                    }
                    environment(&at, &spec.env)?;
                }
                for (process, spec) in &catalog.processes {
                    let at = format!("catalog.{app}.{env}.{PROCESSES}.{process}");
                    validate_process(app, env, process, spec, &at)?;
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
        let catalog = envs.get(env).ok_or_else(|| {
            DomainError::invalid("env", format!("app {app} has no environment {env:?}"))
        })?;
        catalog.tasks.get(task).ok_or_else(|| {
            DomainError::invalid("task", format!("{app}/{env} has no task {task:?}"))
        })
    }

    /// The long-running processes of `app`: `(env, process, spec)`, by environment then name;
    /// none for an app the catalog does not hold.
    pub fn processes(&self, app: &str) -> Vec<(&str, &str, &ProcessSpec)> {
        self.0
            .get(app)
            .into_iter()
            .flat_map(|envs| {
                envs.iter().flat_map(|(env, catalog)| {
                    catalog
                        .processes
                        .iter()
                        .map(move |(name, spec)| (env.as_str(), name.as_str(), spec))
                })
            })
            .collect()
    }

    /// The apps of the catalog, by name.
    pub fn apps(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The process `app`/`env`/`process`, if the catalog holds it.
    pub fn process(&self, app: &str, env: &str, process: &str) -> Option<&ProcessSpec> {
        self.0.get(app)?.get(env)?.processes.get(process)
    }

    /// Each app and environment with its tasks (its processes are not listed).
    pub fn entries(&self) -> Vec<CatalogEntry> {
        self.0
            .iter()
            .flat_map(|(app, envs)| {
                envs.iter().map(move |(env, catalog)| CatalogEntry {
                    app: app.clone(),
                    env: env.clone(),
                    tasks: catalog
                        .tasks
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

/// Environment variables as a process gets them: names and values as a job's variables.
fn environment(at: &str, env: &BTreeMap<String, String>) -> Result<(), String> {
    Variables::parse(env.clone()).map(|_| ()).map_err(|e| {
        format!(
            "{at}.env: {}",
            e.to_string().trim_start_matches("variables: ")
        )
    })
}

fn validate_process(
    app: &str,
    env: &str,
    process: &str,
    spec: &ProcessSpec,
    at: &str,
) -> Result<(), String> {
    if !is_name(app) {
        return Err(format!(
            "{at}: app {app:?} cannot have processes: an app's name is [a-z][a-z0-9-]*, at most 40 characters"
        ));
    }
    if env.is_empty()
        || env.len() > 64
        || !env
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "{at}: environment {env:?} cannot have processes: its name must be 1 to 64 of [A-Za-z0-9_-]"
        ));
    }
    if !is_name(process) {
        return Err(format!(
            "{at}: a process's name is [a-z][a-z0-9-]*, at most 40 characters"
        ));
    }
    if spec.command.first().is_none_or(|p| p.is_empty()) {
        return Err(format!("{at}.command: must name a program to run"));
    }
    if !(1..=MAX_UNITS).contains(&spec.units) {
        return Err(format!("{at}.units: must be 1 to {MAX_UNITS}"));
    }
    if let Some(port_env) = &spec.port_env {
        Variables::parse([(port_env.clone(), String::new())].into()).map_err(|e| {
            format!(
                "{at}.port_env: {}",
                e.to_string().trim_start_matches("variables: ")
            )
        })?;
    }
    environment(at, &spec.env)
}

/// `^[a-z][a-z0-9-]{0,39}$`: an app's (and a process's) name.
fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 40
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
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

    fn with_processes() -> Catalog {
        catalog(serde_json::json!({
            "web": {"production": {
                "migrate": {"command": ["true"]},
                "processes": {
                    "http": {"command": ["sh", "-c", "exec sleep 60"], "units": 2,
                             "env": {"MODE": "prod"}},
                    "worker": {"command": ["sleep", "60"], "port_env": "HTTP_PORT"}
                }
            }}
        }))
    }

    #[test]
    fn processes_stand_beside_the_tasks_of_an_environment() {
        let c = with_processes();
        assert!(c.validate().is_ok(), "{:?}", c.validate());
        assert!(c.task("web", "production", "migrate").is_ok());
        assert!(c.task("web", "production", "processes").is_err());
        let processes = c.processes("web");
        let names: Vec<_> = processes
            .iter()
            .map(|(e, p, s)| (*e, *p, s.units))
            .collect();
        assert_eq!(
            names,
            vec![("production", "http", 2), ("production", "worker", 1)]
        );
        assert_eq!(processes[0].2.port_variable(), "PORT");
        assert_eq!(processes[1].2.port_variable(), "HTTP_PORT");
        assert_eq!(processes[0].2.env["MODE"], "prod");
        assert!(c.processes("nope").is_empty());
        assert!(c.process("web", "production", "http").is_some());
        // The catalog's listing is of tasks only.
        let entries = c.entries();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].tasks.len(), 1);
        // Written back as it was read.
        let again: Catalog = serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(again, c);
        let plain = example();
        assert!(!serde_json::to_string(&plain).unwrap().contains("processes"));
    }

    #[test]
    fn refuses_processes_that_cannot_run_and_names_them() {
        let refused = |process: serde_json::Value| {
            catalog(serde_json::json!({"web": {"prod": {"processes": {"http": process}}}}))
                .validate()
                .unwrap_err()
        };
        let e = refused(serde_json::json!({"command": []}));
        assert!(e.contains("catalog.web.prod.processes.http.command"), "{e}");
        let e = refused(serde_json::json!({"command": ["x"], "units": 0}));
        assert!(e.contains("processes.http.units"), "{e}");
        let e = refused(serde_json::json!({"command": ["x"], "units": MAX_UNITS + 1}));
        assert!(e.contains("processes.http.units"), "{e}");
        let e = refused(serde_json::json!({"command": ["x"], "port_env": "A-B"}));
        assert!(e.contains("processes.http.port_env"), "{e}");
        let e = refused(serde_json::json!({"command": ["x"], "port_env": "LD_PRELOAD"}));
        assert!(e.contains("processes.http.port_env"), "{e}");
        let e = refused(serde_json::json!({"command": ["x"], "env": {"PATH": "/"}}));
        assert!(e.contains("processes.http.env"), "{e}");
        let bad_name = catalog(
            serde_json::json!({"web": {"prod": {"processes": {"Http.x": {"command": ["x"]}}}}}),
        );
        assert!(bad_name.validate().unwrap_err().contains("process's name"));
        let bad_env = catalog(
            serde_json::json!({"web": {"pro.d": {"processes": {"http": {"command": ["x"]}}}}}),
        );
        assert!(bad_env.validate().unwrap_err().contains("environment"));
        let bad_app = catalog(
            serde_json::json!({"Web": {"prod": {"processes": {"http": {"command": ["x"]}}}}}),
        );
        assert!(bad_app.validate().unwrap_err().contains("app \"Web\""));
        // An app of tasks only may keep any name, as before.
        let tasks_only = catalog(serde_json::json!({"Web": {"pro.d": {"t": {"command": ["x"]}}}}));
        assert!(tasks_only.validate().is_ok());
        let unknown: Result<Catalog, _> = serde_json::from_value(serde_json::json!(
            {"web": {"prod": {"processes": {"http": {"command": ["x"], "replicas": 2}}}}}
        ));
        assert!(unknown.is_err());
        // `processes` is not a task.
        let as_task: Result<Catalog, _> = serde_json::from_value(serde_json::json!(
            {"web": {"prod": {"processes": {"command": ["x"]}}}}
        ));
        assert!(as_task.is_err());
    }
}
