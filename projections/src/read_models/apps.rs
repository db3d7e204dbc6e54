//! `apps`, `app_env`, `platforms` and `quotas`: the apps (stream `app-<name>`) with their teams,
//! cnames, swap and restart state; each app's variables; the platforms; and each user's app quota.
//!
//! - `apps`: one row per app name, removed ones too (`removed`), so the jobs read model can tell
//!   a registered app from a catalog app no one registered. A removed app's name created again
//!   starts a fresh row. `teams` and `cnames` are kept sorted and without duplicates (the sets
//!   the aggregate keeps); an answer shows `team_owner` first ([`AppView`]). `instances` is
//!   the service instances bound to it, as `service/instance`, by service then instance.
//! - `app_env`: one row per variable of an app not removed. A private value is never stored here,
//!   neither in clear nor sealed: `value` is NULL for it. The runner opens private values from
//!   the app's stream (`Commands::app_environment`), never from this table. A row is the
//!   variable's effective value: the app's own, overridden by its bound instances' in bind order.
//!   A variable a bound service instance set is private, and names that instance
//!   (`bound_service`, `bound_instance`, NULL for the app's own variables); its unbinding deletes
//!   the names that leave the environment and writes those that take another value now (an
//!   earlier binding's, or the app's own), as the event says.
//! - `platforms`: one row per platform name, removed ones marked.
//! - `quotas`: one row per user who ever had a limit set or an app counted: the limit set (NULL:
//!   the configured default applies) and how many apps are counted.
//!
//! `AppsSwapped` is one event appended to both apps' streams: each copy updates only the row of
//! the stream it was read from (its `app1` or `app2` side). Every column comes from the events
//! alone (their `at`, the stream's version), never the time they were projected, so a replay
//! rebuilds the same rows.
//!
//! `apps.registered_at` is the `recorded_at` of the app's `AppCreated` (the database's clock,
//! as the log stored it), not its `at` (the API node's clock, which `created_at` keeps for the
//! answer): the jobs read model compares it with a job's `created_at`, which is its
//! `JobSubmitted`'s `recorded_at`, so that both times come from the same clock.

use crate::projection::{Param, Projection, Tables, Writes};
use crate::read_models::identity::Page;
use crate::read_models::units::UnitView;
use bosun_domain::apps::{App, AppEvent, Binding, EnvValue, PlatformEvent, QuotaEvent};
use bosun_eventstore::{Filter, RecordedEvent};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::types::ToSql;
use tokio_postgres::GenericClient;

pub struct Apps;

const APPS: &str = "apps";
const ENV: &str = "app_env";
const PLATFORMS: &str = "platforms";
const QUOTAS: &str = "quotas";

/// `column` (a sorted TEXT[]) with `$n` added, still sorted and without duplicates.
pub(crate) fn sorted_with(column: &str, param: &str) -> String {
    format!("ARRAY(SELECT DISTINCT x FROM unnest(array_append({column}, {param})) AS x ORDER BY x)")
}

/// `apps.instances` with `service/instance` `param` added, without duplicates, by service then
/// instance (byte order, as the app's state orders its bindings: not the text's collation, and
/// not `pg-x/…` before `pg/…`).
fn instances_with(param: &str) -> String {
    format!(
        "ARRAY(SELECT x FROM (SELECT DISTINCT unnest(array_append(instances, {param})) AS x) d
               ORDER BY split_part(x, '/', 1) COLLATE \"C\", split_part(x, '/', 2) COLLATE \"C\")"
    )
}

impl Projection for Apps {
    fn name(&self) -> &'static str {
        "apps"
    }

    fn version(&self) -> i32 {
        // 2: `apps.registered_at`. 3: `app_env.bound_service` and `bound_instance`.
        // 4: `apps.instances`; an unbinding restores the values under it.
        4
    }

    fn tables(&self) -> &'static [&'static str] {
        &[APPS, ENV, PLATFORMS, QUOTAS]
    }

    fn filter(&self) -> Filter {
        Filter {
            categories: vec!["app".into(), "platform".into(), "quota".into()],
            ..Filter::default()
        }
    }

    fn create(&self, tables: &Tables) -> String {
        format!(
            "CREATE TABLE {apps} (
                name               TEXT PRIMARY KEY,
                platform           TEXT NOT NULL,
                team_owner         TEXT NOT NULL,
                teams              TEXT[] NOT NULL,
                owner              TEXT NOT NULL,
                description        TEXT NOT NULL,
                cnames             TEXT[] NOT NULL,
                units_of           TEXT NOT NULL,
                restart_generation BIGINT NOT NULL,
                created_at         TIMESTAMPTZ NOT NULL,
                registered_at      TIMESTAMPTZ NOT NULL,
                updated_at         TIMESTAMPTZ NOT NULL,
                removed            BOOLEAN NOT NULL,
                instances          TEXT[] NOT NULL,
                version            BIGINT NOT NULL);
             CREATE TABLE {env} (
                app    TEXT NOT NULL,
                name   TEXT NOT NULL,
                value  TEXT,
                public BOOLEAN NOT NULL,
                bound_service  TEXT,
                bound_instance TEXT,
                PRIMARY KEY (app, name));
             CREATE TABLE {platforms} (
                name     TEXT PRIMARY KEY,
                disabled BOOLEAN NOT NULL,
                removed  BOOLEAN NOT NULL,
                version  BIGINT NOT NULL);
             CREATE TABLE {quotas} (
                username TEXT PRIMARY KEY,
                lim      BIGINT,
                in_use   BIGINT NOT NULL,
                version  BIGINT NOT NULL);",
            apps = tables.name(APPS),
            env = tables.name(ENV),
            platforms = tables.name(PLATFORMS),
            quotas = tables.name(QUOTAS),
        )
    }

    fn indexes(&self, tables: &Tables) -> String {
        let apps = tables.name(APPS);
        format!(
            "CREATE INDEX ON {apps} (platform) WHERE NOT removed;
             CREATE INDEX ON {apps} USING GIN (teams);"
        )
    }

    fn apply(&self, event: &RecordedEvent, tables: &Tables, writes: &mut Writes) {
        match event.stream_id.category() {
            "app" => match bosun_domain::decode::<AppEvent>(&event.event_type, &event.data) {
                Ok(decoded) => apply_app(event, decoded, tables, writes),
                Err(e) => skipped(event, &e),
            },
            "platform" => {
                match bosun_domain::decode::<PlatformEvent>(&event.event_type, &event.data) {
                    Ok(decoded) => apply_platform(event, decoded, tables, writes),
                    Err(e) => skipped(event, &e),
                }
            }
            "quota" => match bosun_domain::decode::<QuotaEvent>(&event.event_type, &event.data) {
                Ok(decoded) => apply_quota(event, decoded, tables, writes),
                Err(e) => skipped(event, &e),
            },
            _ => {}
        }
    }
}

fn skipped(event: &RecordedEvent, error: &dyn std::fmt::Display) {
    tracing::error!(position = event.position, event_type = %event.event_type, error = %error, "apps projection cannot read this event; skipped");
}

fn apply_app(event: &RecordedEvent, decoded: AppEvent, tables: &Tables, writes: &mut Writes) {
    let apps = tables.name(APPS);
    let env = tables.name(ENV);
    let name = event.stream_id.id().to_string();
    let version = event.version as i64;
    // Every change but the creation sets some columns and `version`: `$1` the app, `$2` the
    // version, its own parameters from `$3`.
    let mut set = |columns: &str, mut params: Vec<Param>| {
        let mut all: Vec<Param> = vec![Box::new(name.clone()), Box::new(version)];
        all.append(&mut params);
        writes.push(
            format!("UPDATE {apps} SET {columns}, version = $2 WHERE name = $1"),
            all,
        );
    };
    match decoded {
        AppEvent::AppCreated {
            name: created,
            platform,
            team_owner,
            owner,
            description,
            at,
        } => {
            let (created, team_owner) = (created.as_str().to_string(), team_owner.as_str());
            writes.push(
                format!(
                    "INSERT INTO {apps} (name, platform, team_owner, teams, owner, description,
                        cnames, units_of, restart_generation, created_at, registered_at,
                        updated_at, removed, instances, version)
                     VALUES ($1, $2, $3, $4, $5, $6, '{{}}', $1, 0, $7, $9, $7, false, '{{}}', $8)
                     ON CONFLICT (name) DO UPDATE SET
                        platform = EXCLUDED.platform, team_owner = EXCLUDED.team_owner,
                        teams = EXCLUDED.teams, owner = EXCLUDED.owner,
                        description = EXCLUDED.description, cnames = EXCLUDED.cnames,
                        units_of = EXCLUDED.units_of, restart_generation = 0,
                        created_at = EXCLUDED.created_at,
                        registered_at = EXCLUDED.registered_at,
                        updated_at = EXCLUDED.updated_at, removed = false,
                        instances = EXCLUDED.instances, version = EXCLUDED.version"
                ),
                vec![
                    Box::new(created.clone()),
                    Box::new(platform.as_str().to_string()),
                    Box::new(team_owner.to_string()),
                    Box::new(vec![team_owner.to_string()]),
                    Box::new(owner.as_str().to_string()),
                    Box::new(description),
                    Box::new(at),
                    Box::new(version),
                    Box::new(event.recorded_at),
                ],
            );
            // A name created again starts afresh.
            writes.push(
                format!("DELETE FROM {env} WHERE app = $1"),
                vec![Box::new(created)],
            );
        }
        AppEvent::AppUpdated {
            description,
            platform,
            team_owner,
            at,
        } => set(
            &format!(
                "description = COALESCE($3, description), platform = COALESCE($4, platform),
                 team_owner = COALESCE($5, team_owner),
                 teams = CASE WHEN $5::TEXT IS NULL THEN teams ELSE {} END,
                 updated_at = $6",
                sorted_with("teams", "$5::TEXT")
            ),
            vec![
                Box::new(description),
                Box::new(platform.map(String::from)),
                Box::new(team_owner.map(|t| t.as_str().to_string())),
                Box::new(at),
            ],
        ),
        AppEvent::AppTeamGranted { team } => set(
            &format!("teams = {}", sorted_with("teams", "$3::TEXT")),
            vec![Box::new(team.as_str().to_string())],
        ),
        AppEvent::AppTeamRevoked { team } => set(
            "teams = array_remove(teams, $3::TEXT)",
            vec![Box::new(team.as_str().to_string())],
        ),
        AppEvent::AppCnameAdded { cname } => set(
            &format!("cnames = {}", sorted_with("cnames", "$3::TEXT")),
            vec![Box::new(String::from(cname))],
        ),
        AppEvent::AppCnameRemoved { cname } => set(
            "cnames = array_remove(cnames, $3::TEXT)",
            vec![Box::new(String::from(cname))],
        ),
        AppEvent::AppEnvSet { envs, restart } => {
            set(
                "restart_generation = restart_generation + $3",
                vec![Box::new(i64::from(restart))],
            );
            for var in envs {
                let (value, public) = match &var.value {
                    EnvValue::Public { value } => (Some(value.clone()), true),
                    EnvValue::Private { .. } => (None, false),
                };
                writes.push(
                    format!(
                        "INSERT INTO {env} (app, name, value, public) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (app, name) DO UPDATE SET
                            value = EXCLUDED.value, public = EXCLUDED.public,
                            bound_service = NULL, bound_instance = NULL"
                    ),
                    vec![
                        Box::new(name.clone()),
                        Box::new(String::from(var.name)),
                        Box::new(value),
                        Box::new(public),
                    ],
                );
            }
        }
        AppEvent::AppEnvUnset { names, restart } => {
            set(
                "restart_generation = restart_generation + $3",
                vec![Box::new(i64::from(restart))],
            );
            let names: Vec<String> = names.into_iter().map(String::from).collect();
            writes.push(
                format!("DELETE FROM {env} WHERE app = $1 AND name = ANY($2)"),
                vec![Box::new(name.clone()), Box::new(names)],
            );
        }
        AppEvent::AppsSwapped {
            app1,
            app2,
            cname_only,
            cnames1,
            cnames2,
            units_of1,
            units_of2,
        } => {
            // The copy on this stream changes this app's row only.
            let (cnames, units_of) = if app1.as_str() == name {
                (cnames1, units_of1)
            } else if app2.as_str() == name {
                (cnames2, units_of2)
            } else {
                return;
            };
            let mut cnames: Vec<String> = cnames.into_iter().map(String::from).collect();
            cnames.sort();
            cnames.dedup();
            if cname_only {
                set("cnames = $3", vec![Box::new(cnames)]);
            } else {
                set(
                    "cnames = $3, units_of = $4, restart_generation = restart_generation + 1",
                    vec![Box::new(cnames), Box::new(String::from(units_of))],
                );
            }
        }
        AppEvent::AppRestartRequested { generation, .. } => set(
            "restart_generation = GREATEST($3, restart_generation + 1)",
            vec![Box::new(i64::try_from(generation).unwrap_or(i64::MAX))],
        ),
        // The bind's outcome is what changes the environment.
        AppEvent::AppInstanceBindRequested { .. } | AppEvent::AppInstanceBindFailed { .. } => {
            writes.push(
                format!("UPDATE {apps} SET version = $2 WHERE name = $1"),
                vec![Box::new(name.clone()), Box::new(version)],
            )
        }
        AppEvent::AppInstanceBound {
            service,
            instance,
            envs,
            restart,
        } => {
            set(
                &format!(
                    "restart_generation = restart_generation + $3, instances = {}",
                    instances_with("$4::TEXT")
                ),
                vec![
                    Box::new(i64::from(restart)),
                    Box::new(format!("{service}/{instance}")),
                ],
            );
            // The instance's variables are private: overwriting the app's own of those names.
            for var in envs {
                writes.push(
                    format!(
                        "INSERT INTO {env} (app, name, value, public, bound_service, bound_instance)
                         VALUES ($1, $2, NULL, false, $3, $4)
                         ON CONFLICT (app, name) DO UPDATE SET
                            value = NULL, public = false,
                            bound_service = EXCLUDED.bound_service,
                            bound_instance = EXCLUDED.bound_instance"
                    ),
                    vec![
                        Box::new(name.clone()),
                        Box::new(String::from(var.name)),
                        Box::new(service.as_str().to_string()),
                        Box::new(instance.as_str().to_string()),
                    ],
                );
            }
        }
        AppEvent::AppInstanceUnbound {
            service,
            instance,
            names,
            restored,
            restart,
        } => {
            set(
                "restart_generation = restart_generation + $3,
                 instances = array_remove(instances, $4::TEXT)",
                vec![
                    Box::new(i64::from(restart)),
                    Box::new(format!("{service}/{instance}")),
                ],
            );
            // The names that leave the environment were this instance's.
            let names: Vec<String> = names.into_iter().map(String::from).collect();
            writes.push(
                format!(
                    "DELETE FROM {env} WHERE app = $1 AND name = ANY($2)
                        AND bound_service = $3 AND bound_instance = $4"
                ),
                vec![
                    Box::new(name.clone()),
                    Box::new(names),
                    Box::new(service.as_str().to_string()),
                    Box::new(instance.as_str().to_string()),
                ],
            );
            // The names that take another value now: an earlier binding's, or the app's own.
            for var in restored {
                let (value, public) = match &var.value {
                    EnvValue::Public { value } => (Some(value.clone()), true),
                    EnvValue::Private { .. } => (None, false),
                };
                let (bound_service, bound_instance) = match var.bound {
                    Some(bound) => (
                        Some(bound.service.as_str().to_string()),
                        Some(bound.instance.as_str().to_string()),
                    ),
                    None => (None, None),
                };
                writes.push(
                    format!(
                        "INSERT INTO {env} (app, name, value, public, bound_service, bound_instance)
                         VALUES ($1, $2, $3, $4, $5, $6)
                         ON CONFLICT (app, name) DO UPDATE SET
                            value = EXCLUDED.value, public = EXCLUDED.public,
                            bound_service = EXCLUDED.bound_service,
                            bound_instance = EXCLUDED.bound_instance"
                    ),
                    vec![
                        Box::new(name.clone()),
                        Box::new(String::from(var.name)),
                        Box::new(value),
                        Box::new(public),
                        Box::new(bound_service),
                        Box::new(bound_instance),
                    ],
                );
            }
        }
        AppEvent::AppRemoved { at } => {
            set("removed = true, updated_at = $3", vec![Box::new(at)]);
            writes.push(
                format!("DELETE FROM {env} WHERE app = $1"),
                vec![Box::new(name.clone())],
            );
        }
    }
}

fn apply_platform(
    event: &RecordedEvent,
    decoded: PlatformEvent,
    tables: &Tables,
    writes: &mut Writes,
) {
    let p = tables.name(PLATFORMS);
    let name = event.stream_id.id().to_string();
    let version = event.version as i64;
    let (sql, params): (String, Vec<Param>) = match decoded {
        PlatformEvent::PlatformAdded { .. } => (
            format!(
                "INSERT INTO {p} (name, disabled, removed, version) VALUES ($1, false, false, $2)
                 ON CONFLICT (name) DO UPDATE SET disabled = false, removed = false,
                    version = EXCLUDED.version"
            ),
            vec![Box::new(name), Box::new(version)],
        ),
        PlatformEvent::PlatformUpdated { disabled } => (
            format!("UPDATE {p} SET disabled = $3, version = $2 WHERE name = $1"),
            vec![Box::new(name), Box::new(version), Box::new(disabled)],
        ),
        PlatformEvent::PlatformRemoved {} => (
            format!("UPDATE {p} SET removed = true, version = $2 WHERE name = $1"),
            vec![Box::new(name), Box::new(version)],
        ),
    };
    writes.push(sql, params);
}

fn apply_quota(event: &RecordedEvent, decoded: QuotaEvent, tables: &Tables, writes: &mut Writes) {
    let q = tables.name(QUOTAS);
    let username = event.stream_id.id().to_string();
    let version = event.version as i64;
    // The aggregate counts an app once, and releases only one it counts: a count is its set's size.
    let (sql, params): (String, Vec<Param>) = match decoded {
        QuotaEvent::QuotaLimitSet { limit } => (
            format!(
                "INSERT INTO {q} (username, lim, in_use, version) VALUES ($1, $3, 0, $2)
                 ON CONFLICT (username) DO UPDATE SET lim = EXCLUDED.lim,
                    version = EXCLUDED.version"
            ),
            vec![Box::new(username), Box::new(version), Box::new(limit)],
        ),
        QuotaEvent::QuotaAppTaken { .. } => (
            format!(
                "INSERT INTO {q} AS q (username, lim, in_use, version) VALUES ($1, NULL, 1, $2)
                 ON CONFLICT (username) DO UPDATE SET in_use = q.in_use + 1,
                    version = EXCLUDED.version"
            ),
            vec![Box::new(username), Box::new(version)],
        ),
        QuotaEvent::QuotaAppReleased { .. } => (
            format!(
                "UPDATE {q} SET in_use = GREATEST(in_use - 1, 0), version = $2
                 WHERE username = $1"
            ),
            vec![Box::new(username), Box::new(version)],
        ),
    };
    writes.push(sql, params);
}

/// An app as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AppView {
    pub name: String,
    pub platform: String,
    /// The team that owns it: also the first of `teams`.
    pub team_owner: String,
    /// The teams whose members act on it, `team_owner` first, then by name.
    pub teams: Vec<String>,
    /// The user who created it, whose quota counts it.
    pub owner: String,
    pub description: String,
    /// The host names it answers to, by name.
    pub cnames: Vec<String>,
    /// Its units (the running copies of its catalog processes), by environment, process and
    /// index; stopped ones too.
    pub units: Vec<UnitView>,
    /// The service instances bound to it, as `service/instance`, by service then instance.
    pub instances: Vec<String>,
    pub created_at: DateTime<Utc>,
    /// Its stream's version (its `ETag`).
    pub version: i64,
}

impl AppView {
    /// The view of an app's state as folded from its stream at `version` (for a write's answer
    /// and `?as_of_version=`), without its units (the caller adds them). `None` for a state
    /// that was never created.
    pub fn of_state(app: &App, version: i64) -> Option<AppView> {
        let name = app.name()?.as_str().to_string();
        let team_owner = app.team_owner()?.as_str().to_string();
        let teams = owner_first(
            &team_owner,
            app.teams().iter().map(|t| t.as_str().to_string()).collect(),
        );
        Some(AppView {
            name,
            platform: app.platform()?.as_str().to_string(),
            team_owner,
            teams,
            owner: app.owner()?.as_str().to_string(),
            description: app.description().to_string(),
            cnames: app
                .cnames()
                .iter()
                .map(|c| c.as_str().to_string())
                .collect(),
            units: vec![],
            instances: app
                .bindings()
                .iter()
                .filter(|(_, binding)| **binding == Binding::Bound)
                .map(|(instance, _)| instance.to_string())
                .collect(),
            created_at: app.created_at()?,
            version,
        })
    }
}

/// `teams` (sorted) with `team_owner` moved to the front.
fn owner_first(team_owner: &str, teams: Vec<String>) -> Vec<String> {
    let mut ordered = Vec::with_capacity(teams.len() + 1);
    ordered.push(team_owner.to_string());
    ordered.extend(teams.into_iter().filter(|t| t != team_owner));
    ordered
}

/// One of an app's variables as the API shows it: a private one's value is `null`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EnvView {
    pub name: String,
    /// The value of a public variable; `null` for a private one.
    pub value: Option<String>,
    pub public: bool,
    /// The service instance that set it, for a variable a bind set (absent for the app's own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bound: Option<BoundView>,
}

/// The service instance a bound variable comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BoundView {
    pub service: String,
    pub instance: String,
}

impl EnvView {
    /// The variables of an app's state, by name, private values left out.
    pub fn of_state(app: &App) -> Vec<EnvView> {
        app.env()
            .iter()
            .map(|(name, value)| EnvView {
                name: name.as_str().to_string(),
                value: value.public_value().map(str::to_string),
                public: value.is_public(),
                bound: app.bound().get(name).map(|bound| BoundView {
                    service: bound.service.as_str().to_string(),
                    instance: bound.instance.as_str().to_string(),
                }),
            })
            .collect()
    }
}

/// A platform as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PlatformView {
    pub name: String,
    /// A disabled platform takes no new apps (nor apps moved to it).
    pub disabled: bool,
}

/// A user's app quota as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct QuotaView {
    /// How many apps the user may own; `-1`: unlimited.
    pub limit: i64,
    /// How many they own.
    pub in_use: i64,
}

const APP_COLUMNS: &str =
    "name, platform, team_owner, teams, owner, description, cnames, created_at, version, instances";

/// An app row, without its units.
fn app_view(r: &tokio_postgres::Row) -> AppView {
    let team_owner: String = r.get(2);
    let teams = owner_first(&team_owner, r.get(3));
    AppView {
        name: r.get(0),
        platform: r.get(1),
        team_owner,
        teams,
        owner: r.get(4),
        description: r.get(5),
        cnames: r.get(6),
        units: vec![],
        instances: r.get(9),
        created_at: r.get(7),
        version: r.get(8),
    }
}

/// Which apps a list shows: those a caller may see, narrowed by the query's filters.
#[derive(Clone, Debug, Default)]
pub struct AppQuery {
    /// `None`: every app (an admin); `Some(teams)`: apps with one of these teams.
    pub of_teams: Option<Vec<String>>,
    /// Only this app (an app token's).
    pub only: Option<String>,
    /// `?team=`: apps this team has access to.
    pub team: Option<String>,
    /// `?platform=`.
    pub platform: Option<String>,
    /// Apps whose name holds this text.
    pub name_contains: Option<String>,
    /// Apps whose team owner is this team.
    pub team_owner: Option<String>,
    /// Apps this user owns.
    pub owner: Option<String>,
}

/// A page of the apps (not removed) `query` selects, by name, without their units, and how many
/// it selects in all.
pub async fn list(
    client: &impl GenericClient,
    query: &AppQuery,
    page: Page,
) -> Result<(Vec<AppView>, i64), tokio_postgres::Error> {
    let mut conditions = vec!["NOT removed".to_string()];
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![];
    let next = |conditions: &mut Vec<String>, condition: &str| {
        conditions.push(condition.replace('?', &format!("${}", conditions.len())));
    };
    if let Some(teams) = &query.of_teams {
        next(&mut conditions, "teams && ?::TEXT[]");
        params.push(teams);
    }
    if let Some(only) = &query.only {
        next(&mut conditions, "name = ?");
        params.push(only);
    }
    if let Some(team) = &query.team {
        next(&mut conditions, "?::TEXT = ANY(teams)");
        params.push(team);
    }
    if let Some(platform) = &query.platform {
        next(&mut conditions, "platform = ?");
        params.push(platform);
    }
    if let Some(text) = &query.name_contains {
        next(&mut conditions, "strpos(name, ?::TEXT) > 0");
        params.push(text);
    }
    if let Some(team_owner) = &query.team_owner {
        next(&mut conditions, "team_owner = ?");
        params.push(team_owner);
    }
    if let Some(owner) = &query.owner {
        next(&mut conditions, "owner = ?");
        params.push(owner);
    }
    let filter = conditions.join(" AND ");
    let total: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM {APPS} WHERE {filter}"),
            &params,
        )
        .await?
        .get(0);
    let (limit, offset) = (params.len() + 1, params.len() + 2);
    params.push(&page.limit);
    params.push(&page.offset);
    let rows = client
        .query(
            &format!(
                "SELECT {APP_COLUMNS} FROM {APPS} WHERE {filter}
                 ORDER BY name LIMIT ${limit} OFFSET ${offset}"
            ),
            &params,
        )
        .await?;
    Ok((rows.iter().map(app_view).collect(), total))
}

/// App `name` if it exists and is not removed, without its units.
pub async fn get(
    client: &impl GenericClient,
    name: &str,
) -> Result<Option<AppView>, tokio_postgres::Error> {
    Ok(client
        .query_opt(
            &format!("SELECT {APP_COLUMNS} FROM {APPS} WHERE name = $1 AND NOT removed"),
            &[&name],
        )
        .await?
        .map(|r| app_view(&r)))
}

/// How many apps not removed run on `platform`.
pub async fn apps_on_platform(
    client: &impl GenericClient,
    platform: &str,
) -> Result<i64, tokio_postgres::Error> {
    Ok(client
        .query_one(
            &format!("SELECT count(*) FROM {APPS} WHERE platform = $1 AND NOT removed"),
            &[&platform],
        )
        .await?
        .get(0))
}

/// The variables of app `app`, by name (a private one's value `null`).
pub async fn env(
    client: &impl GenericClient,
    app: &str,
) -> Result<Vec<EnvView>, tokio_postgres::Error> {
    Ok(client
        .query(
            &format!(
                "SELECT name, value, public, bound_service, bound_instance FROM {ENV}
                 WHERE app = $1 ORDER BY name"
            ),
            &[&app],
        )
        .await?
        .iter()
        .map(|r| EnvView {
            name: r.get(0),
            value: r.get(1),
            public: r.get(2),
            bound: match (r.get(3), r.get(4)) {
                (Some(service), Some(instance)) => Some(BoundView { service, instance }),
                _ => None,
            },
        })
        .collect())
}

/// A page of the platforms (not removed), by name, and how many there are.
pub async fn platforms(
    client: &impl GenericClient,
    page: Page,
) -> Result<(Vec<PlatformView>, i64), tokio_postgres::Error> {
    let rows = client
        .query(
            &format!(
                "SELECT name, disabled FROM {PLATFORMS} WHERE NOT removed
                 ORDER BY name LIMIT $1 OFFSET $2"
            ),
            &[&page.limit, &page.offset],
        )
        .await?;
    let total: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM {PLATFORMS} WHERE NOT removed"),
            &[],
        )
        .await?
        .get(0);
    Ok((
        rows.iter()
            .map(|r| PlatformView {
                name: r.get(0),
                disabled: r.get(1),
            })
            .collect(),
        total,
    ))
}

/// Platform `name` if it exists and is not removed.
pub async fn platform(
    client: &impl GenericClient,
    name: &str,
) -> Result<Option<PlatformView>, tokio_postgres::Error> {
    Ok(client
        .query_opt(
            &format!("SELECT name, disabled FROM {PLATFORMS} WHERE name = $1 AND NOT removed"),
            &[&name],
        )
        .await?
        .map(|r| PlatformView {
            name: r.get(0),
            disabled: r.get(1),
        }))
}

/// `username`'s quota: the limit set, else `default_limit`, and how many apps it counts.
pub async fn quota(
    client: &impl GenericClient,
    username: &str,
    default_limit: i64,
) -> Result<QuotaView, tokio_postgres::Error> {
    let row = client
        .query_opt(
            &format!("SELECT lim, in_use FROM {QUOTAS} WHERE username = $1"),
            &[&username],
        )
        .await?;
    Ok(match row {
        Some(r) => QuotaView {
            limit: r.get::<_, Option<i64>>(0).unwrap_or(default_limit),
            in_use: r.get(1),
        },
        None => QuotaView {
            limit: default_limit,
            in_use: 0,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{rebuild, Projections};
    use bosun_domain::apps::{AppName, Cname, EnvName, EnvVar, PlatformName};
    use bosun_domain::identity::{TeamName, Username};
    use bosun_domain::sealed::Sealed;

    use bosun_eventstore::{EventStore, ExpectedVersion, PgEventStore, StreamAppend, StreamId};
    use std::sync::Arc;
    use std::time::Duration;

    use crate::read_models::test_events::{new_event, write};

    fn created(name: &str, team: &str, owner: &str, at: DateTime<Utc>) -> AppEvent {
        AppEvent::AppCreated {
            name: AppName::parse(name).unwrap(),
            platform: PlatformName::parse("python").unwrap(),
            team_owner: TeamName::parse(team).unwrap(),
            owner: Username::parse(owner).unwrap(),
            description: format!("{name} app"),
            at,
        }
    }

    fn team(t: &str) -> TeamName {
        TeamName::parse(t).unwrap()
    }

    fn cname(c: &str) -> Cname {
        Cname::parse(c).unwrap()
    }

    fn var(name: &str, value: EnvValue) -> EnvVar {
        EnvVar {
            name: EnvName::parse(name).unwrap(),
            value,
        }
    }

    /// Every row of the four tables, ordered: the thing compared row for row.
    async fn rows(store: &PgEventStore) -> Vec<serde_json::Value> {
        crate::read_models::test_events::rows(
            store,
            &[
                (APPS, "name"),
                (ENV, "app, name"),
                (PLATFORMS, "name"),
                (QUOTAS, "username"),
            ],
        )
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_projects_into_apps_env_platforms_and_quotas_and_a_rebuild_gives_the_same_rows()
    {
        let config = bosun_eventstore::testing::fresh_database().await;
        let store = PgEventStore::open(&config).await.unwrap();
        let projections = Projections::new(vec![Arc::new(Apps)]);
        projections.prepare(&config).await.unwrap();
        let running = projections.start(store.clone(), &config).await.unwrap();
        let at = "2024-05-01T10:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let python = || PlatformName::parse("python").unwrap();

        write(
            &store,
            "platform-python",
            &[PlatformEvent::PlatformAdded { name: python() }],
        )
        .await;
        write(
            &store,
            "platform-go",
            &[
                PlatformEvent::PlatformAdded {
                    name: PlatformName::parse("go").unwrap(),
                },
                PlatformEvent::PlatformUpdated { disabled: true },
            ],
        )
        .await;
        write(
            &store,
            "platform-old",
            &[
                PlatformEvent::PlatformAdded {
                    name: PlatformName::parse("old").unwrap(),
                },
                PlatformEvent::PlatformRemoved {},
            ],
        )
        .await;
        for (app, owner) in [("shop", "ann"), ("blog", "ann"), ("gone", "bob")] {
            let appends = vec![
                StreamAppend::new(
                    StreamId::parse(format!("app-{app}")).unwrap(),
                    ExpectedVersion::Any,
                    vec![new_event(&created(app, "ops", owner, at))],
                ),
                StreamAppend::new(
                    StreamId::parse(format!("quota-{owner}")).unwrap(),
                    ExpectedVersion::Any,
                    vec![new_event(&QuotaEvent::QuotaAppTaken {
                        app: AppName::parse(app).unwrap(),
                    })],
                ),
            ];
            store.append_many(appends).await.unwrap();
        }
        write(
            &store,
            "quota-ann",
            &[QuotaEvent::QuotaLimitSet { limit: 5 }],
        )
        .await;
        write(
            &store,
            "app-shop",
            &[
                AppEvent::AppTeamGranted { team: team("web") },
                AppEvent::AppTeamGranted { team: team("dev") },
                AppEvent::AppUpdated {
                    description: Some("the shop".into()),
                    platform: None,
                    team_owner: Some(team("web")),
                    at,
                },
                AppEvent::AppCnameAdded {
                    cname: cname("www.shop.example"),
                },
                AppEvent::AppCnameAdded {
                    cname: cname("api.shop.example"),
                },
                AppEvent::AppEnvSet {
                    envs: vec![
                        var(
                            "MODE",
                            EnvValue::Public {
                                value: "production".into(),
                            },
                        ),
                        var(
                            "DB_PASSWORD",
                            EnvValue::Private {
                                sealed: Sealed::from_stored("v1.sealed-not-clear".into()),
                            },
                        ),
                        var("GONE", EnvValue::Public { value: "x".into() }),
                    ],
                    restart: true,
                },
                AppEvent::AppEnvUnset {
                    names: vec![EnvName::parse("GONE").unwrap()],
                    restart: false,
                },
                AppEvent::AppRestartRequested {
                    process: Some("web".into()),
                    generation: 2,
                },
            ],
        )
        .await;
        let swapped = AppEvent::AppsSwapped {
            app1: AppName::parse("shop").unwrap(),
            app2: AppName::parse("blog").unwrap(),
            cname_only: false,
            cnames1: vec![],
            cnames2: vec![cname("www.shop.example"), cname("api.shop.example")],
            units_of1: AppName::parse("blog").unwrap(),
            units_of2: AppName::parse("shop").unwrap(),
        };
        store
            .append_many(vec![
                StreamAppend::new(
                    StreamId::parse("app-shop").unwrap(),
                    ExpectedVersion::Any,
                    vec![new_event(&swapped)],
                ),
                StreamAppend::new(
                    StreamId::parse("app-blog").unwrap(),
                    ExpectedVersion::Any,
                    vec![new_event(&swapped)],
                ),
            ])
            .await
            .unwrap();
        write(
            &store,
            "app-gone",
            &[
                AppEvent::AppEnvSet {
                    envs: vec![var("A", EnvValue::Public { value: "1".into() })],
                    restart: false,
                },
                AppEvent::AppRemoved { at },
            ],
        )
        .await;
        write(
            &store,
            "quota-bob",
            &[QuotaEvent::QuotaAppReleased {
                app: AppName::parse("gone").unwrap(),
            }],
        )
        .await;
        let head = store.head().await.unwrap();
        running
            .freshness()
            .wait_for(head, Duration::from_secs(10))
            .await
            .unwrap();

        let client = store.pool().get().await.unwrap();
        let shop = get(&**client, "shop").await.unwrap().unwrap();
        assert_eq!(shop.team_owner, "web");
        assert_eq!(
            shop.teams,
            ["web", "dev", "ops"],
            "team_owner first, then by name"
        );
        assert_eq!(shop.description, "the shop");
        assert!(shop.cnames.is_empty(), "swapped away");
        assert_eq!(shop.version, 9);
        assert_eq!(shop.created_at, at);
        let blog = get(&**client, "blog").await.unwrap().unwrap();
        assert_eq!(blog.cnames, ["api.shop.example", "www.shop.example"]);
        assert_eq!(blog.version, 1);
        let row = client
            .query_one(
                "SELECT units_of, restart_generation FROM apps WHERE name = $1",
                &[&"shop"],
            )
            .await
            .unwrap();
        assert_eq!(
            (row.get::<_, String>(0), row.get::<_, i64>(1)),
            ("blog".to_string(), 3),
            "env set with restart, restart requested, swapped"
        );
        assert!(get(&**client, "gone").await.unwrap().is_none(), "removed");
        assert_eq!(
            env(&**client, "shop").await.unwrap(),
            [
                EnvView {
                    name: "DB_PASSWORD".into(),
                    value: None,
                    public: false,
                    bound: None
                },
                EnvView {
                    name: "MODE".into(),
                    value: Some("production".into()),
                    public: true,
                    bound: None
                },
            ]
        );
        assert!(env(&**client, "gone").await.unwrap().is_empty());
        let sealed_anywhere: i64 = client
            .query_one(
                "SELECT count(*) FROM app_env WHERE value LIKE '%sealed%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            sealed_anywhere, 0,
            "a private value is not stored, not even sealed"
        );

        let page = Page {
            limit: 10,
            offset: 0,
        };
        let names = |apps: Vec<AppView>| apps.into_iter().map(|a| a.name).collect::<Vec<_>>();
        let (all, total) = list(&**client, &AppQuery::default(), page).await.unwrap();
        assert_eq!(
            (names(all), total),
            (vec!["blog".to_string(), "shop".to_string()], 2)
        );
        let of_dev = AppQuery {
            of_teams: Some(vec!["dev".into(), "qa".into()]),
            ..AppQuery::default()
        };
        assert_eq!(
            names(list(&**client, &of_dev, page).await.unwrap().0),
            ["shop"]
        );
        let narrowed = AppQuery {
            of_teams: Some(vec!["ops".into()]),
            team: Some("ops".into()),
            platform: Some("python".into()),
            only: Some("blog".into()),
            name_contains: Some("lo".into()),
            team_owner: Some(blog.team_owner.clone()),
            owner: Some(blog.owner.clone()),
        };
        assert_eq!(
            list(&**client, &narrowed, page).await.unwrap(),
            (vec![blog.clone()], 1)
        );
        for unmatched in [
            AppQuery {
                name_contains: Some("zz".into()),
                ..AppQuery::default()
            },
            AppQuery {
                team_owner: Some("nobody".into()),
                ..AppQuery::default()
            },
            AppQuery {
                owner: Some("nobody".into()),
                ..AppQuery::default()
            },
        ] {
            assert_eq!(list(&**client, &unmatched, page).await.unwrap().1, 0);
        }
        let second = Page {
            limit: 1,
            offset: 1,
        };
        assert_eq!(
            list(&**client, &AppQuery::default(), second).await.unwrap(),
            (vec![shop], 2)
        );
        assert_eq!(apps_on_platform(&**client, "python").await.unwrap(), 2);

        assert_eq!(
            platforms(&**client, page).await.unwrap(),
            (
                vec![
                    PlatformView {
                        name: "go".into(),
                        disabled: true
                    },
                    PlatformView {
                        name: "python".into(),
                        disabled: false
                    },
                ],
                2
            )
        );
        assert!(platform(&**client, "old").await.unwrap().is_none());
        assert_eq!(
            quota(&**client, "ann", -1).await.unwrap(),
            QuotaView {
                limit: 5,
                in_use: 2
            }
        );
        assert_eq!(
            quota(&**client, "bob", 3).await.unwrap(),
            QuotaView {
                limit: 3,
                in_use: 0
            }
        );
        assert_eq!(
            quota(&**client, "nobody", 3).await.unwrap(),
            QuotaView {
                limit: 3,
                in_use: 0
            }
        );

        // A removed app's name created again starts afresh.
        write(&store, "app-gone", &[created("gone", "qa", "bob", at)]).await;
        let head = store.head().await.unwrap();
        running
            .freshness()
            .wait_for(head, Duration::from_secs(10))
            .await
            .unwrap();
        let again = get(&**client, "gone").await.unwrap().unwrap();
        assert_eq!((again.teams, again.version), (vec!["qa".to_string()], 3));
        assert!(env(&**client, "gone").await.unwrap().is_empty());

        drop(client);
        let live = rows(&store).await;
        assert!(live.len() > 8);
        rebuild(&store, &config, &Apps, |_, _| {}).await.unwrap();
        assert_eq!(rows(&store).await, live, "a replay rebuilds the same rows");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bound_variables_override_the_apps_own_in_bind_order_and_an_unbinding_restores_the_one_under_it(
    ) {
        use bosun_domain::apps::RestoredEnv;
        use bosun_domain::services::{InstanceName, InstanceRef, ServiceName};
        use bosun_domain::Aggregate;
        let config = bosun_eventstore::testing::fresh_database().await;
        let store = PgEventStore::open(&config).await.unwrap();
        let projections = Projections::new(vec![Arc::new(Apps)]);
        projections.prepare(&config).await.unwrap();
        let running = projections.start(store.clone(), &config).await.unwrap();
        let at = "2024-05-01T10:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let service = |s: &str| ServiceName::parse(s).unwrap();
        let instance = |i: &str| InstanceName::parse(i).unwrap();
        let private = |name: &str| {
            var(
                name,
                EnvValue::Private {
                    sealed: Sealed::from_stored(format!("v1.sealed-{name}")),
                },
            )
        };
        let requested = |s: &str, i: &str| AppEvent::AppInstanceBindRequested {
            service: service(s),
            instance: instance(i),
        };
        let first = vec![
            created("shop", "ops", "ann", at),
            AppEvent::AppEnvSet {
                envs: vec![
                    var(
                        "MODE",
                        EnvValue::Public {
                            value: "prod".into(),
                        },
                    ),
                    var(
                        "PG_URL",
                        EnvValue::Public {
                            value: "own".into(),
                        },
                    ),
                ],
                restart: false,
            },
            requested("pg", "db"),
            // Over the app's own PG_URL.
            AppEvent::AppInstanceBound {
                service: service("pg"),
                instance: instance("db"),
                envs: vec![private("PG_URL"), private("PG_PASSWORD")],
                restart: true,
            },
            requested("pg", "db2"),
            // Over db's PG_URL: the latest bind wins.
            AppEvent::AppInstanceBound {
                service: service("pg"),
                instance: instance("db2"),
                envs: vec![private("PG_URL")],
                restart: false,
            },
            requested("mq", "q"),
            AppEvent::AppInstanceBindFailed {
                service: service("mq"),
                instance: instance("q"),
            },
            requested("pg-x", "db"),
            AppEvent::AppInstanceBound {
                service: service("pg-x"),
                instance: instance("db"),
                envs: vec![],
                restart: false,
            },
            // PG_URL falls back to db's value.
            AppEvent::AppInstanceUnbound {
                service: service("pg"),
                instance: instance("db2"),
                names: vec![],
                restored: vec![RestoredEnv {
                    name: EnvName::parse("PG_URL").unwrap(),
                    value: private("PG_URL").value,
                    bound: Some(InstanceRef {
                        service: service("pg"),
                        instance: instance("db"),
                    }),
                }],
                restart: true,
            },
        ];
        // PG_PASSWORD leaves; PG_URL falls back to the app's own value.
        let second = vec![AppEvent::AppInstanceUnbound {
            service: service("pg"),
            instance: instance("db"),
            names: vec![EnvName::parse("PG_PASSWORD").unwrap()],
            restored: vec![RestoredEnv {
                name: EnvName::parse("PG_URL").unwrap(),
                value: EnvValue::Public {
                    value: "own".into(),
                },
                bound: None,
            }],
            restart: true,
        }];
        let mut app = App::default();
        let project = |events: Vec<AppEvent>| {
            let (store, freshness) = (store.clone(), running.freshness());
            async move {
                write(&store, "app-shop", &events).await;
                let head = store.head().await.unwrap();
                freshness
                    .wait_for(head, Duration::from_secs(10))
                    .await
                    .unwrap();
            }
        };
        first.iter().for_each(|event| app.apply(event));
        project(first).await;

        let client = store.pool().get().await.unwrap();
        let bound_to_db = |name: &str| EnvView {
            name: name.into(),
            value: None,
            public: false,
            bound: Some(BoundView {
                service: "pg".into(),
                instance: "db".into(),
            }),
        };
        let mode = EnvView {
            name: "MODE".into(),
            value: Some("prod".into()),
            public: true,
            bound: None,
        };
        let expected = [
            mode.clone(),
            bound_to_db("PG_PASSWORD"),
            bound_to_db("PG_URL"),
        ];
        assert_eq!(env(&**client, "shop").await.unwrap(), expected);
        assert_eq!(generation(&**client).await, (2, 10));
        let shop = get(&**client, "shop").await.unwrap().unwrap();
        assert_eq!(
            shop.instances,
            ["pg/db", "pg-x/db"],
            "bound ones only (not a failed bind, not an unbound one), by service then instance"
        );
        assert_eq!(
            list(
                &**client,
                &AppQuery::default(),
                Page {
                    limit: 10,
                    offset: 0
                }
            )
            .await
            .unwrap()
            .0[0]
                .instances,
            shop.instances
        );
        assert_eq!(
            serde_json::to_value(&mode).unwrap(),
            serde_json::json!({"name": "MODE", "value": "prod", "public": true}),
            "no `bound` for the app's own"
        );
        // The state's views say the same.
        assert_eq!(EnvView::of_state(&app), expected);
        assert_eq!(
            AppView::of_state(&app, 10).unwrap().instances,
            shop.instances
        );

        drop(client);
        second.iter().for_each(|event| app.apply(event));
        project(second).await;
        let client = store.pool().get().await.unwrap();
        let own = EnvView {
            name: "PG_URL".into(),
            value: Some("own".into()),
            public: true,
            bound: None,
        };
        assert_eq!(
            env(&**client, "shop").await.unwrap(),
            [mode.clone(), own.clone()]
        );
        assert_eq!(generation(&**client).await, (3, 11));
        assert_eq!(
            get(&**client, "shop").await.unwrap().unwrap().instances,
            ["pg-x/db"]
        );
        assert_eq!(EnvView::of_state(&app), [mode, own]);
        assert_eq!(AppView::of_state(&app, 11).unwrap().instances, ["pg-x/db"]);
        drop(client);

        let live = rows(&store).await;
        assert!(!serde_json::to_string(&live).unwrap().contains("sealed"));
        rebuild(&store, &config, &Apps, |_, _| {}).await.unwrap();
        assert_eq!(rows(&store).await, live, "a replay rebuilds the same rows");
    }

    /// App shop's restart generation and version.
    async fn generation(client: &impl GenericClient) -> (i64, i64) {
        let row = client
            .query_one(
                "SELECT restart_generation, version FROM apps WHERE name = $1",
                &[&"shop"],
            )
            .await
            .unwrap();
        (row.get::<_, i64>(0), row.get::<_, i64>(1))
    }

    #[test]
    fn the_team_owner_comes_first() {
        assert_eq!(
            owner_first("ops", vec!["dev".into(), "ops".into(), "qa".into()]),
            ["ops", "dev", "qa"]
        );
        assert_eq!(owner_first("ops", vec!["ops".into()]), ["ops"]);
    }

    #[test]
    fn a_sorted_set_column_takes_a_value() {
        assert_eq!(
            sorted_with("teams", "$3::TEXT"),
            "ARRAY(SELECT DISTINCT x FROM unnest(array_append(teams, $3::TEXT)) AS x ORDER BY x)"
        );
    }
}
