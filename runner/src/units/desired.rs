//! Which units should run: every registered app (the `apps` read model, not removed) × the
//! catalog's processes of that app × their `units`; and, for the rolling restart, how the units
//! of each process stand (the `units` read model).
//!
//! Does not own: who runs them (`lease`, `supervisor`).

use bosun_domain::jobs::{Catalog, ProcessSpec};
use bosun_domain::units::UnitId;
use deadpool_postgres::Pool;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::lease::LeaseError;

/// The catalog's processes, by app: `(env, process, spec)`.
pub(crate) struct Processes(BTreeMap<String, Vec<(String, String, Arc<ProcessSpec>)>>);

impl Processes {
    pub fn of(catalog: &Catalog) -> Self {
        let mut by_app = BTreeMap::new();
        for app in catalog.apps() {
            let processes: Vec<_> = catalog
                .processes(app)
                .into_iter()
                .map(|(env, name, spec)| {
                    (env.to_string(), name.to_string(), Arc::new(spec.clone()))
                })
                .collect();
            if !processes.is_empty() {
                by_app.insert(app.to_string(), processes);
            }
        }
        Processes(by_app)
    }

    /// Apps with processes.
    pub fn apps(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A unit that should run, with the app's restart generation.
#[derive(Clone, Debug)]
pub(crate) struct Wanted {
    pub id: UnitId,
    pub spec: Arc<ProcessSpec>,
    pub generation: u64,
}

/// The units that should run, by id, and the registered apps (of those with processes).
#[derive(Default)]
pub(crate) struct Desired {
    pub units: BTreeMap<String, Wanted>,
    pub apps: BTreeSet<String>,
}

/// The units that should run now.
pub(crate) async fn desired(pool: &Pool, processes: &Processes) -> Result<Desired, LeaseError> {
    let mut desired = Desired::default();
    if processes.is_empty() {
        return Ok(desired);
    }
    let client = pool
        .get()
        .await
        .map_err(|e| LeaseError::Pool(e.to_string()))?;
    // The apps read model may not exist yet on a database an older bosun made: no apps then.
    let exists: bool = client
        .query_one("SELECT to_regclass('apps') IS NOT NULL", &[])
        .await?
        .get(0);
    if !exists {
        return Ok(desired);
    }
    let rows = client
        .query(
            "SELECT name, restart_generation FROM apps WHERE NOT removed AND name = ANY($1)",
            &[&processes.apps()],
        )
        .await?;
    for row in rows {
        let app: String = row.get(0);
        let generation = row.get::<_, i64>(1).max(0) as u64;
        for (env, process, spec) in processes.0.get(&app).into_iter().flatten() {
            for index in 0..spec.units {
                let id = UnitId::new(&app, env, process, index);
                let wanted = Wanted {
                    id: id.clone(),
                    spec: spec.clone(),
                    generation,
                };
                desired.units.insert(id.to_string(), wanted);
            }
        }
        desired.apps.insert(app);
    }
    Ok(desired)
}

/// How one unit stands, as the `units` read model says.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Standing {
    pub index: u32,
    pub state: String,
    pub generation: u64,
}

/// The units of `apps` as the read model has them, by `(app, env, process)`.
pub(crate) async fn standings(
    pool: &Pool,
    apps: &[String],
) -> Result<BTreeMap<(String, String, String), Vec<Standing>>, LeaseError> {
    let mut by_process: BTreeMap<(String, String, String), Vec<Standing>> = BTreeMap::new();
    if apps.is_empty() {
        return Ok(by_process);
    }
    let client = pool
        .get()
        .await
        .map_err(|e| LeaseError::Pool(e.to_string()))?;
    let rows = client
        .query(
            "SELECT app, env, process, idx, state, generation FROM units WHERE app = ANY($1)",
            &[&apps],
        )
        .await?;
    for row in rows {
        let key = (row.get(0), row.get(1), row.get(2));
        by_process.entry(key).or_default().push(Standing {
            index: row.get::<_, i32>(3).max(0) as u32,
            state: row.get(4),
            generation: row.get::<_, i64>(5).max(0) as u64,
        });
    }
    Ok(by_process)
}

/// Whether `id` may restart into `generation` now: every unit of its process with a lower
/// index runs `generation` (or a newer one) and is `started`.
pub(crate) fn may_restart(id: &UnitId, generation: u64, standings: &[Standing]) -> bool {
    (0..id.index).all(|index| {
        standings
            .iter()
            .any(|s| s.index == index && s.generation >= generation && s.state == "started")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standing(index: u32, state: &str, generation: u64) -> Standing {
        Standing {
            index,
            state: state.into(),
            generation,
        }
    }

    #[test]
    fn a_unit_restarts_only_after_every_lower_one_runs_the_new_generation() {
        let unit = |index| UnitId::new("web", "prod", "http", index);
        let old = [
            standing(0, "started", 1),
            standing(1, "started", 1),
            standing(2, "started", 1),
        ];
        assert!(may_restart(&unit(0), 2, &old), "the first goes first");
        assert!(!may_restart(&unit(1), 2, &old));
        let first_restarting = [
            standing(0, "starting", 2),
            standing(1, "started", 1),
            standing(2, "started", 1),
        ];
        assert!(!may_restart(&unit(1), 2, &first_restarting));
        let first_done = [
            standing(0, "started", 2),
            standing(1, "started", 1),
            standing(2, "started", 1),
        ];
        assert!(may_restart(&unit(1), 2, &first_done));
        assert!(!may_restart(&unit(2), 2, &first_done));
        assert!(!may_restart(&unit(1), 2, &[]), "a lower unit never seen");
    }

    #[test]
    fn only_apps_with_processes_are_asked_about() {
        let catalog: Catalog = serde_json::from_value(serde_json::json!({
            "tasks-only": {"prod": {"t": {"command": ["true"]}}},
            "web": {"prod": {"processes": {"http": {"command": ["true"], "units": 2}}}}
        }))
        .unwrap();
        let processes = Processes::of(&catalog);
        assert_eq!(processes.apps(), vec!["web".to_string()]);
    }
}
