//! Which units should run: every registered app (the `apps` read model, not removed) × the
//! catalog's processes of that app × their `units`; and, for the rolling restart, how the units
//! of each process stand (the `units` read model) and whether one may restart now. The read
//! models only ever *start* units: one that is missing an app never stops its units on its own
//! word (the supervisor asks the app's stream).
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

    /// Whether the catalog has unit `id` (its process, and that many units of it).
    pub fn has(&self, id: &UnitId) -> bool {
        self.0.get(&id.app).is_some_and(|processes| {
            processes.iter().any(|(env, process, spec)| {
                *env == id.env && *process == id.process && id.index < spec.units
            })
        })
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

/// The state of a unit in `error`: it failed again and again and waits to be tried again.
const ERROR: &str = "error";
const STARTED: &str = "started";

/// Whether `id`, one of `units` units of its process, may restart into `generation` now: every
/// *other* unit of its process is `started` (so at most one is down at a time, whichever order
/// restarts were asked in), and every one with a lower index runs `generation` already (one at a
/// time, in index order). A unit in `error` with another generation neither holds the restart
/// up nor counts as down: it is not running anyway, and starts with the current generation at
/// its next try. One in `error` *at* `generation` failed on it: the roll stops there (a bad
/// release does not go through every unit). A unit never seen counts as down.
pub(crate) fn may_restart(
    id: &UnitId,
    generation: u64,
    units: u32,
    standings: &[Standing],
) -> bool {
    (0..units).filter(|index| *index != id.index).all(|index| {
        let Some(s) = standings.iter().find(|s| s.index == index) else {
            return false;
        };
        if s.state == ERROR {
            return s.generation != generation;
        }
        s.state == STARTED && (index > id.index || s.generation == generation)
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
        assert!(may_restart(&unit(0), 2, 3, &old), "the first goes first");
        assert!(!may_restart(&unit(1), 2, 3, &old));
        let first_restarting = [
            standing(0, "starting", 2),
            standing(1, "started", 1),
            standing(2, "started", 1),
        ];
        assert!(!may_restart(&unit(1), 2, 3, &first_restarting));
        let first_done = [
            standing(0, "started", 2),
            standing(1, "started", 1),
            standing(2, "started", 1),
        ];
        assert!(may_restart(&unit(1), 2, 3, &first_done));
        assert!(!may_restart(&unit(2), 2, 3, &first_done));
        assert!(!may_restart(&unit(1), 2, 3, &[]), "a lower unit never seen");
        assert!(
            may_restart(&unit(0), 1, 1, &[]),
            "a single unit just restarts"
        );
    }

    #[test]
    fn a_second_restart_asked_during_the_first_waits_for_every_other_unit_to_be_up() {
        let unit = |index| UnitId::new("web", "prod", "http", index);
        // Generation 1 rolls: unit 0 done, unit 1 down for its turn; generation 2 is asked for.
        let rolling = [
            standing(0, "started", 1),
            standing(1, "stopped", 0),
            standing(2, "started", 0),
        ];
        for index in 0..3 {
            assert!(
                !may_restart(&unit(index), 2, 3, &rolling),
                "unit {index} would be a second one down"
            );
        }
        // A higher unit down holds a lower one too.
        let higher_down = [
            standing(0, "started", 1),
            standing(1, "started", 1),
            standing(2, "starting", 1),
        ];
        assert!(!may_restart(&unit(0), 2, 3, &higher_down));
    }

    #[test]
    fn a_unit_in_error_neither_holds_a_restart_up_nor_counts_as_down() {
        let unit = |index| UnitId::new("web", "prod", "http", index);
        let crashing = [
            standing(0, "error", 0),
            standing(1, "started", 0),
            standing(2, "started", 0),
        ];
        assert!(may_restart(&unit(1), 1, 3, &crashing));
        assert!(!may_restart(&unit(2), 1, 3, &crashing), "unit 1 goes first");
        let crashing_high = [
            standing(0, "started", 0),
            standing(1, "started", 0),
            standing(2, "error", 0),
        ];
        assert!(may_restart(&unit(0), 1, 3, &crashing_high));
    }

    #[test]
    fn a_unit_in_error_on_the_wanted_generation_holds_the_roll() {
        let unit = |index| UnitId::new("web", "prod", "http", index);
        // Unit 0 restarted into generation 1 and cannot start with it.
        let broken = [
            standing(0, "error", 1),
            standing(1, "started", 0),
            standing(2, "started", 0),
        ];
        for index in 1..3 {
            assert!(
                !may_restart(&unit(index), 1, 3, &broken),
                "unit {index} would restart into a broken release"
            );
        }
        // A release after it (generation 2) rolls again: unit 0, in error with an older one
        // now, holds nothing up (it starts with generation 2 at its next try).
        assert!(may_restart(&unit(1), 2, 3, &broken));
        assert!(!may_restart(&unit(2), 2, 3, &broken), "unit 1 goes first");
        // A higher unit failing on the new generation holds the lower ones too.
        let high_broken = [
            standing(0, "started", 0),
            standing(1, "started", 0),
            standing(2, "error", 1),
        ];
        assert!(!may_restart(&unit(0), 1, 3, &high_broken));
    }

    #[test]
    fn a_recreated_app_restarts_units_of_its_former_life() {
        let unit = |index| UnitId::new("web", "prod", "http", index);
        // The app was removed and created again: generation 0 again, its units ran 3.
        let former = [standing(0, "started", 3), standing(1, "started", 3)];
        assert!(may_restart(&unit(0), 0, 2, &former));
        assert!(
            !may_restart(&unit(1), 0, 2, &former),
            "a newer generation is not the one wanted"
        );
    }

    #[test]
    fn units_beyond_the_catalogs_count_do_not_hold_a_restart_up() {
        let unit = |index| UnitId::new("web", "prod", "http", index);
        let shrunk = [standing(0, "started", 0), standing(1, "stopped", 0)];
        assert!(may_restart(&unit(0), 1, 1, &shrunk));
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
        assert!(processes.has(&UnitId::new("web", "prod", "http", 1)));
        assert!(!processes.has(&UnitId::new("web", "prod", "http", 2)));
        assert!(!processes.has(&UnitId::new("web", "prod", "other", 0)));
        assert!(!processes.has(&UnitId::new("tasks-only", "prod", "t", 0)));
    }
}
