//! `services`, `service_instances` and `service_calls`: the services (stream `service-<name>`),
//! their instances (stream `instance-<service>.<instance>`), and the calls to a service recorded
//! as intents whose outcome is not in yet.
//!
//! - `services`: one row per registered service; a removed one's row is deleted (its name may
//!   be registered again, from a clean row). Its password is never stored here, neither in clear
//!   nor sealed: the runner opens it from the service's stream (`Commands::service_call`).
//!   `teams` and `owner_teams` are kept sorted and without duplicates (the sets the aggregate
//!   keeps). Its instances are not a column: the queries list the ones a caller may see.
//! - `service_instances`: one row per instance that exists (being created, ready or being
//!   removed); one whose creation failed or that was removed is deleted. `apps` is the apps it
//!   is bound to, sorted. The variables a bind answered are not stored here: they join the app's
//!   environment (the apps projection's `app_env`, value `NULL`), sealed in the app's stream.
//! - `service_calls`: one row per call recorded as an intent (`…Requested`) and not yet given an
//!   outcome; the outcome deletes it. The reactor reads the ones due ([`pending_calls`]) to
//!   finish what got no answer or what a crash left pending. `attempts` and `retry_at` are
//!   those of the instance's own fold (`ServiceCallFailed`).
//!
//! Every column comes from the events alone (their `at`, the stream's version), never the time
//! they were projected, so a replay rebuilds the same rows. Does not own who may see what (the
//! queries in `commands`), nor the calls themselves (the runner).

use crate::projection::{Param, Projection, Tables, Writes};
use crate::read_models::apps::sorted_with;
use bosun_domain::services::{Instance, InstanceEvent, Service, ServiceEvent};
use bosun_eventstore::{Filter, RecordedEvent};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::GenericClient;
use uuid::Uuid;

pub struct Services;

const SERVICES: &str = "services";
const INSTANCES: &str = "service_instances";
const CALLS: &str = "service_calls";

impl Projection for Services {
    fn name(&self) -> &'static str {
        "services"
    }

    fn version(&self) -> i32 {
        // 2: `service_calls` indexed by when a call is due; attempts counted as the fold does.
        2
    }

    fn tables(&self) -> &'static [&'static str] {
        &[SERVICES, INSTANCES, CALLS]
    }

    fn filter(&self) -> Filter {
        Filter {
            categories: vec!["service".into(), "instance".into()],
            ..Filter::default()
        }
    }

    fn create(&self, tables: &Tables) -> String {
        format!(
            "CREATE TABLE {services} (
                name        TEXT PRIMARY KEY,
                endpoint    TEXT NOT NULL,
                teams       TEXT[] NOT NULL,
                owner_teams TEXT[] NOT NULL,
                doc         TEXT NOT NULL,
                created_at  TIMESTAMPTZ NOT NULL,
                updated_at  TIMESTAMPTZ NOT NULL,
                version     BIGINT NOT NULL);
             CREATE TABLE {instances} (
                service     TEXT NOT NULL,
                name        TEXT NOT NULL,
                plan        TEXT NOT NULL,
                team_owner  TEXT NOT NULL,
                teams       TEXT[] NOT NULL,
                description TEXT NOT NULL,
                state       TEXT NOT NULL,
                apps        TEXT[] NOT NULL,
                version     BIGINT NOT NULL,
                created_at  TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (service, name));
             CREATE TABLE {calls} (
                request_id   UUID PRIMARY KEY,
                service      TEXT NOT NULL,
                instance     TEXT NOT NULL,
                operation    TEXT NOT NULL,
                app          TEXT,
                requested_at TIMESTAMPTZ NOT NULL,
                attempts     INTEGER NOT NULL,
                retry_at     TIMESTAMPTZ,
                last_error   TEXT);",
            services = tables.name(SERVICES),
            instances = tables.name(INSTANCES),
            calls = tables.name(CALLS),
        )
    }

    fn indexes(&self, tables: &Tables) -> String {
        let (services, instances, calls) = (
            tables.name(SERVICES),
            tables.name(INSTANCES),
            tables.name(CALLS),
        );
        format!(
            "CREATE INDEX ON {services} USING GIN (teams);
             CREATE INDEX ON {instances} USING GIN (apps);
             CREATE INDEX ON {calls} (service, instance);
             CREATE INDEX ON {calls} ((COALESCE(retry_at, requested_at)), request_id);"
        )
    }

    fn apply(&self, event: &RecordedEvent, tables: &Tables, writes: &mut Writes) {
        match event.stream_id.category() {
            "service" => {
                match bosun_domain::decode::<ServiceEvent>(&event.event_type, &event.data) {
                    Ok(decoded) => apply_service(event, decoded, tables, writes),
                    Err(e) => skipped(event, &e),
                }
            }
            "instance" => {
                match bosun_domain::decode::<InstanceEvent>(&event.event_type, &event.data) {
                    Ok(decoded) => apply_instance(event, decoded, tables, writes),
                    Err(e) => skipped(event, &e),
                }
            }
            _ => {}
        }
    }
}

fn skipped(event: &RecordedEvent, error: &dyn std::fmt::Display) {
    tracing::error!(position = event.position, event_type = %event.event_type, error = %error, "services projection cannot read this event; skipped");
}

fn apply_service(
    event: &RecordedEvent,
    decoded: ServiceEvent,
    tables: &Tables,
    writes: &mut Writes,
) {
    let services = tables.name(SERVICES);
    let name = event.stream_id.id().to_string();
    let version = event.version as i64;
    // Every change but the registration sets some columns and `version`: `$1` the service, `$2`
    // the version, its own parameters from `$3`.
    let mut set = |columns: &str, mut params: Vec<Param>| {
        let mut all: Vec<Param> = vec![Box::new(name.clone()), Box::new(version)];
        all.append(&mut params);
        writes.push(
            format!("UPDATE {services} SET {columns}, version = $2 WHERE name = $1"),
            all,
        );
    };
    match decoded {
        ServiceEvent::ServiceRegistered {
            name: registered,
            endpoint,
            teams,
            doc,
            at,
            ..
        } => {
            let mut teams: Vec<String> = teams.iter().map(|t| t.as_str().to_string()).collect();
            teams.sort();
            teams.dedup();
            // A removed service's row is gone; a conflict is only a log written twice.
            writes.push(
                format!(
                    "INSERT INTO {services} (name, endpoint, teams, owner_teams, doc, created_at,
                        updated_at, version)
                     VALUES ($1, $2, $3, $3, $4, $5, $5, $6)
                     ON CONFLICT (name) DO UPDATE SET
                        endpoint = EXCLUDED.endpoint, teams = EXCLUDED.teams,
                        owner_teams = EXCLUDED.owner_teams, doc = EXCLUDED.doc,
                        created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at,
                        version = EXCLUDED.version"
                ),
                vec![
                    Box::new(registered.as_str().to_string()),
                    Box::new(endpoint.as_str().to_string()),
                    Box::new(teams),
                    Box::new(doc),
                    Box::new(at),
                    Box::new(version),
                ],
            );
        }
        // The password is not a column: only the endpoint and the time change here.
        ServiceEvent::ServiceUpdated { endpoint, at, .. } => set(
            "endpoint = COALESCE($3, endpoint), updated_at = $4",
            vec![
                Box::new(endpoint.map(|e| e.as_str().to_string())),
                Box::new(at),
            ],
        ),
        ServiceEvent::ServiceDocSet { doc, at } => set(
            "doc = $3, updated_at = $4",
            vec![Box::new(doc), Box::new(at)],
        ),
        ServiceEvent::ServiceTeamGranted { team } => set(
            &format!("teams = {}", sorted_with("teams", "$3::TEXT")),
            vec![Box::new(team.as_str().to_string())],
        ),
        ServiceEvent::ServiceTeamRevoked { team } => set(
            "teams = array_remove(teams, $3::TEXT)",
            vec![Box::new(team.as_str().to_string())],
        ),
        // The instances are `service_instances`' rows; their count moves only the version.
        ServiceEvent::ServiceInstanceAdded { .. } | ServiceEvent::ServiceInstanceDropped { .. } => {
            writes.push(
                format!("UPDATE {services} SET version = $2 WHERE name = $1"),
                vec![Box::new(name.clone()), Box::new(version)],
            )
        }
        ServiceEvent::ServiceRemoved { .. } => writes.push(
            format!("DELETE FROM {services} WHERE name = $1"),
            vec![Box::new(name.clone())],
        ),
    }
}

/// An operation as `service_calls.operation` and the views name it (`Operation::as_str`).
const CREATE: &str = "create";
const BIND: &str = "bind";
const UNBIND: &str = "unbind";
const REMOVE: &str = "remove";

fn apply_instance(
    event: &RecordedEvent,
    decoded: InstanceEvent,
    tables: &Tables,
    writes: &mut Writes,
) {
    let instances = tables.name(INSTANCES);
    let calls = tables.name(CALLS);
    // The stream's id is `<service>.<instance>`; neither name holds a dot.
    let Some((service, name)) = event.stream_id.id().split_once('.') else {
        skipped(event, &"the stream's id is not <service>.<instance>");
        return;
    };
    let (service, name) = (service.to_string(), name.to_string());
    let version = event.version as i64;
    // A change of the instance's row: `$1` the service, `$2` the instance, `$3` the version,
    // its own parameters from `$4`.
    let set = |writes: &mut Writes, columns: &str, mut params: Vec<Param>| {
        let mut all: Vec<Param> = vec![
            Box::new(service.clone()),
            Box::new(name.clone()),
            Box::new(version),
        ];
        all.append(&mut params);
        let columns = if columns.is_empty() {
            "version = $3".to_string()
        } else {
            format!("{columns}, version = $3")
        };
        writes.push(
            format!("UPDATE {instances} SET {columns} WHERE service = $1 AND name = $2"),
            all,
        );
    };
    let requested = |writes: &mut Writes,
                     request_id: Uuid,
                     operation: &'static str,
                     app: Option<String>,
                     at: DateTime<Utc>| {
        writes.push(
            format!(
                "INSERT INTO {calls} (request_id, service, instance, operation, app, requested_at,
                    attempts, retry_at, last_error)
                 VALUES ($1, $2, $3, $4, $5, $6, 0, NULL, NULL)
                 ON CONFLICT (request_id) DO NOTHING"
            ),
            vec![
                Box::new(request_id),
                Box::new(service.clone()),
                Box::new(name.clone()),
                Box::new(operation),
                Box::new(app),
                Box::new(at),
            ],
        );
    };
    let finished = |writes: &mut Writes, request_id: Uuid| {
        writes.push(
            format!("DELETE FROM {calls} WHERE request_id = $1"),
            vec![Box::new(request_id)],
        );
    };
    let gone = |writes: &mut Writes| {
        writes.push(
            format!("DELETE FROM {instances} WHERE service = $1 AND name = $2"),
            vec![Box::new(service.clone()), Box::new(name.clone())],
        );
    };
    match decoded {
        InstanceEvent::InstanceCreationRequested {
            request_id,
            plan,
            team_owner,
            description,
            at,
            ..
        } => {
            let team_owner = team_owner.as_str().to_string();
            // An instance created again after a failed creation or a removal starts afresh.
            writes.push(
                format!(
                    "INSERT INTO {instances} (service, name, plan, team_owner, teams, description,
                        state, apps, version, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, 'creating', '{{}}', $7, $8)
                     ON CONFLICT (service, name) DO UPDATE SET
                        plan = EXCLUDED.plan, team_owner = EXCLUDED.team_owner,
                        teams = EXCLUDED.teams, description = EXCLUDED.description,
                        state = EXCLUDED.state, apps = EXCLUDED.apps,
                        version = EXCLUDED.version, created_at = EXCLUDED.created_at"
                ),
                vec![
                    Box::new(service.clone()),
                    Box::new(name.clone()),
                    Box::new(plan),
                    Box::new(team_owner.clone()),
                    Box::new(vec![team_owner]),
                    Box::new(description),
                    Box::new(version),
                    Box::new(at),
                ],
            );
            requested(writes, request_id, CREATE, None, at);
        }
        InstanceEvent::InstanceCreated { request_id, .. } => {
            set(writes, "state = 'ready'", vec![]);
            finished(writes, request_id);
        }
        InstanceEvent::InstanceCreationFailed { request_id, .. } => {
            gone(writes);
            finished(writes, request_id);
        }
        InstanceEvent::InstanceBindRequested {
            request_id,
            app,
            at,
            ..
        } => {
            set(writes, "", vec![]);
            requested(writes, request_id, BIND, Some(app.as_str().to_string()), at);
        }
        InstanceEvent::InstanceBound {
            request_id, app, ..
        } => {
            set(
                writes,
                &format!("apps = {}", sorted_with("apps", "$4::TEXT")),
                vec![Box::new(app.as_str().to_string())],
            );
            finished(writes, request_id);
        }
        InstanceEvent::InstanceUnbindRequested {
            request_id,
            app,
            at,
            ..
        } => {
            set(writes, "", vec![]);
            requested(
                writes,
                request_id,
                UNBIND,
                Some(app.as_str().to_string()),
                at,
            );
        }
        InstanceEvent::InstanceUnbound {
            request_id, app, ..
        } => {
            set(
                writes,
                "apps = array_remove(apps, $4::TEXT)",
                vec![Box::new(app.as_str().to_string())],
            );
            finished(writes, request_id);
        }
        InstanceEvent::InstanceBindFailed { request_id, .. }
        | InstanceEvent::InstanceUnbindFailed { request_id, .. } => {
            set(writes, "", vec![]);
            finished(writes, request_id);
        }
        InstanceEvent::InstanceRemovalRequested { request_id, at } => {
            set(writes, "state = 'removing'", vec![]);
            requested(writes, request_id, REMOVE, None, at);
        }
        InstanceEvent::InstanceRemoved { request_id, .. } => {
            gone(writes);
            finished(writes, request_id);
        }
        InstanceEvent::InstanceRemovalFailed { request_id, .. } => {
            set(writes, "state = 'ready'", vec![]);
            finished(writes, request_id);
        }
        // As the instance's fold counts: never fewer than one more than before.
        InstanceEvent::ServiceCallFailed {
            request_id,
            attempt,
            reason,
            retry_at,
        } => {
            set(writes, "", vec![]);
            writes.push(
                format!(
                    "UPDATE {calls} SET attempts = GREATEST($2, attempts + 1), last_error = $3,
                        retry_at = $4
                     WHERE request_id = $1"
                ),
                vec![
                    Box::new(request_id),
                    Box::new(i32::try_from(attempt).unwrap_or(i32::MAX)),
                    Box::new(reason),
                    Box::new(retry_at),
                ],
            );
        }
    }
}

/// A service as the API shows it: never its password.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ServiceView {
    pub name: String,
    /// The base URL Bosun calls (`{endpoint}/resources…`).
    pub endpoint: String,
    /// The teams whose members may create instances of it, by name.
    pub teams: Vec<String>,
    /// The teams that registered it, whose members manage it (never revoked), by name.
    pub owner_teams: Vec<String>,
    /// Its instances the caller may see, by name.
    pub instances: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ServiceView {
    /// The view of a service's state as folded from its stream (for a write's answer), without
    /// its instances (the caller adds those the caller may see). `None` for a state that was
    /// never registered or is removed.
    pub fn of_state(service: &Service) -> Option<ServiceView> {
        if !service.is_active() {
            return None;
        }
        let names = |teams: &std::collections::BTreeSet<bosun_domain::identity::TeamName>| {
            teams.iter().map(|t| t.as_str().to_string()).collect()
        };
        Some(ServiceView {
            name: service.name()?.as_str().to_string(),
            endpoint: service.endpoint()?.as_str().to_string(),
            teams: names(service.teams()),
            owner_teams: names(service.owner_teams()),
            instances: vec![],
            created_at: service.created_at()?,
            updated_at: service.updated_at()?,
        })
    }
}

/// An instance of a service as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct InstanceView {
    pub name: String,
    pub service: String,
    pub plan: String,
    pub team_owner: String,
    /// The teams whose members act on it: its `team_owner`.
    pub teams: Vec<String>,
    /// The apps it is bound to, by name.
    pub apps: Vec<String>,
    pub description: String,
    /// Its stream's version.
    pub version: u64,
    /// `creating` until the service created it, `ready`, `removing` once its removal is asked.
    #[schema(example = "ready")]
    pub state: String,
    /// The call to the service recorded and not finished yet, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingView>,
    pub created_at: DateTime<Utc>,
}

/// A call to a service whose outcome is not recorded yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PendingView {
    /// `create`, `bind`, `unbind` or `remove`.
    #[schema(example = "bind")]
    pub operation: String,
    /// The app a bind or unbind is of.
    pub app: Option<String>,
    /// How many attempts went unanswered.
    pub attempts: u32,
    /// Why the last attempt got no answer.
    pub last_error: Option<String>,
    pub requested_at: DateTime<Utc>,
    /// When it is tried again, after an attempt that got no answer.
    pub retry_at: Option<DateTime<Utc>>,
}

impl InstanceView {
    /// The view of an instance's state as folded from its stream at `version` (for a write's
    /// answer). `None` for an instance that does not exist (never created, its creation failed,
    /// or removed).
    pub fn of_state(instance: &Instance, version: u64) -> Option<InstanceView> {
        let team_owner = instance.team_owner()?.as_str().to_string();
        Some(InstanceView {
            name: instance.name()?.as_str().to_string(),
            service: instance.service()?.as_str().to_string(),
            plan: instance.plan().to_string(),
            team_owner,
            teams: instance
                .teams()
                .iter()
                .map(|t| t.as_str().to_string())
                .collect(),
            apps: instance
                .apps()
                .iter()
                .map(|a| a.as_str().to_string())
                .collect(),
            description: instance.description().to_string(),
            version,
            state: instance.state()?.as_str().to_string(),
            pending: instance.pending().map(|call| PendingView {
                operation: call.operation.as_str().to_string(),
                app: call.operation.app().map(|a| a.as_str().to_string()),
                attempts: call.attempts,
                last_error: call.last_error.clone(),
                requested_at: call.requested_at,
                retry_at: call.retry_at,
            }),
            created_at: instance.created_at()?,
        })
    }
}

/// A pending call as the reactor reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingCallRow {
    pub service: String,
    pub instance: String,
    pub request_id: Uuid,
    /// `create`, `bind`, `unbind` or `remove`.
    pub operation: String,
    pub app: Option<String>,
    pub requested_at: DateTime<Utc>,
    pub attempts: u32,
    pub retry_at: Option<DateTime<Utc>>,
}

fn count(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

const SERVICE_COLUMNS: &str = "name, endpoint, teams, owner_teams, created_at, updated_at";

/// A service row, without its instances.
fn service_view(r: &tokio_postgres::Row) -> ServiceView {
    ServiceView {
        name: r.get(0),
        endpoint: r.get(1),
        teams: r.get(2),
        owner_teams: r.get(3),
        instances: vec![],
        created_at: r.get(4),
        updated_at: r.get(5),
    }
}

/// The services, by name, without their instances: every one (`of_teams` `None`, an admin), or
/// those granted one of `of_teams`.
pub async fn services(
    client: &impl GenericClient,
    of_teams: Option<&[String]>,
) -> Result<Vec<ServiceView>, tokio_postgres::Error> {
    let rows = match of_teams {
        None => {
            client
                .query(
                    &format!("SELECT {SERVICE_COLUMNS} FROM {SERVICES} ORDER BY name"),
                    &[],
                )
                .await?
        }
        Some(teams) => {
            client
                .query(
                    &format!(
                        "SELECT {SERVICE_COLUMNS} FROM {SERVICES} WHERE teams && $1::TEXT[]
                         ORDER BY name"
                    ),
                    &[&teams],
                )
                .await?
        }
    };
    Ok(rows.iter().map(service_view).collect())
}

/// Service `name` if it is registered, without its instances.
pub async fn service(
    client: &impl GenericClient,
    name: &str,
) -> Result<Option<ServiceView>, tokio_postgres::Error> {
    Ok(client
        .query_opt(
            &format!("SELECT {SERVICE_COLUMNS} FROM {SERVICES} WHERE name = $1"),
            &[&name],
        )
        .await?
        .map(|r| service_view(&r)))
}

/// Service `name`'s documentation if it is registered (`""` when none was set).
pub async fn doc(
    client: &impl GenericClient,
    name: &str,
) -> Result<Option<String>, tokio_postgres::Error> {
    Ok(client
        .query_opt(
            &format!("SELECT doc FROM {SERVICES} WHERE name = $1"),
            &[&name],
        )
        .await?
        .map(|r| r.get(0)))
}

/// The instance columns, its pending call's (NULL for none) after them.
fn instance_select(condition: &str) -> String {
    format!(
        "SELECT i.name, i.service, i.plan, i.team_owner, i.teams, i.apps, i.description,
                i.version, i.state, i.created_at,
                c.operation, c.app, c.attempts, c.last_error, c.requested_at, c.retry_at
         FROM {INSTANCES} i
         LEFT JOIN LATERAL (
            SELECT * FROM {CALLS} c
            WHERE c.service = i.service AND c.instance = i.name
            ORDER BY c.requested_at DESC, c.request_id LIMIT 1) c ON true
         WHERE {condition}
         ORDER BY i.service, i.name"
    )
}

fn instance_view(r: &tokio_postgres::Row) -> InstanceView {
    let pending = r.get::<_, Option<String>>(10).map(|operation| PendingView {
        operation,
        app: r.get(11),
        attempts: count(r.get(12)),
        last_error: r.get(13),
        requested_at: r.get(14),
        retry_at: r.get(15),
    });
    InstanceView {
        name: r.get(0),
        service: r.get(1),
        plan: r.get(2),
        team_owner: r.get(3),
        teams: r.get(4),
        apps: r.get(5),
        description: r.get(6),
        version: u64::try_from(r.get::<_, i64>(7)).unwrap_or(0),
        state: r.get(8),
        pending,
        created_at: r.get(9),
    }
}

/// The instances of `service`, by name, with their pending call: every one (`of_teams` `None`,
/// an admin), or those of one of `of_teams`.
pub async fn instances(
    client: &impl GenericClient,
    service: &str,
    of_teams: Option<&[String]>,
) -> Result<Vec<InstanceView>, tokio_postgres::Error> {
    let rows = match of_teams {
        None => {
            client
                .query(&instance_select("i.service = $1"), &[&service])
                .await?
        }
        Some(teams) => {
            client
                .query(
                    &instance_select("i.service = $1 AND i.teams && $2::TEXT[]"),
                    &[&service, &teams],
                )
                .await?
        }
    };
    Ok(rows.iter().map(instance_view).collect())
}

/// Instance `name` of `service` if it exists, with its pending call.
pub async fn instance(
    client: &impl GenericClient,
    service: &str,
    name: &str,
) -> Result<Option<InstanceView>, tokio_postgres::Error> {
    Ok(client
        .query_opt(
            &instance_select("i.service = $1 AND i.name = $2"),
            &[&service, &name],
        )
        .await?
        .map(|r| instance_view(&r)))
}

/// The instances bound to app `app`, as `service/instance`, sorted: an app's `instances`.
pub async fn bound_to_app(
    client: &impl GenericClient,
    app: &str,
) -> Result<Vec<String>, tokio_postgres::Error> {
    Ok(client
        .query(
            &format!(
                "SELECT service || '/' || name FROM {INSTANCES} WHERE $1::TEXT = ANY(apps)
                 ORDER BY service, name"
            ),
            &[&app],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// At most `limit` pending calls that are due now (the database's clock), the longest due
/// first: what the reactor finishes. Due: one that got no answer, once its `retry_at` has come;
/// one never tried again, once `grace_seconds` have passed since it was requested (the request
/// that made its first attempt has given up on it, or died with its process).
pub async fn pending_calls(
    client: &impl GenericClient,
    limit: i64,
    grace_seconds: f64,
) -> Result<Vec<PendingCallRow>, tokio_postgres::Error> {
    Ok(client
        .query(
            &format!(
                "SELECT service, instance, request_id, operation, app, requested_at, attempts,
                        retry_at
                 FROM {CALLS}
                 WHERE retry_at <= now()
                    OR (retry_at IS NULL
                        AND requested_at <= now() - make_interval(secs => $2::FLOAT8))
                 ORDER BY COALESCE(retry_at, requested_at), request_id LIMIT $1"
            ),
            &[&limit, &grace_seconds],
        )
        .await?
        .iter()
        .map(|r| PendingCallRow {
            service: r.get(0),
            instance: r.get(1),
            request_id: r.get(2),
            operation: r.get(3),
            app: r.get(4),
            requested_at: r.get(5),
            attempts: count(r.get(6)),
            retry_at: r.get(7),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{rebuild, Projections};
    use bosun_domain::apps::{AppName, EnvName, EnvValue, EnvVar};
    use bosun_domain::identity::TeamName;
    use bosun_domain::sealed::Sealed;
    use bosun_domain::services::{Endpoint, InstanceName, Operation, ServiceName};

    use bosun_eventstore::{EventStore, ExpectedVersion, PgEventStore, StreamAppend, StreamId};
    use std::sync::Arc;
    use std::time::Duration;

    use crate::read_models::test_events::{new_event, write};

    fn team(t: &str) -> TeamName {
        TeamName::parse(t).unwrap()
    }

    fn app(a: &str) -> AppName {
        AppName::parse(a).unwrap()
    }

    fn endpoint(url: &str) -> Endpoint {
        Endpoint::parse(url, &[]).unwrap()
    }

    fn registered(name: &str, teams: &[&str], at: DateTime<Utc>) -> ServiceEvent {
        ServiceEvent::ServiceRegistered {
            name: ServiceName::parse(name).unwrap(),
            endpoint: endpoint(&format!("https://{name}.example")),
            password: Sealed::from_stored("v1.sealed-password".into()),
            teams: teams.iter().map(|t| team(t)).collect(),
            doc: format!("{name}'s doc"),
            at,
        }
    }

    fn creation(request_id: Uuid, name: &str, owner: &str, at: DateTime<Utc>) -> InstanceEvent {
        InstanceEvent::InstanceCreationRequested {
            request_id,
            service: ServiceName::parse("pg").unwrap(),
            name: InstanceName::parse(name).unwrap(),
            plan: "small".into(),
            team_owner: team(owner),
            description: format!("{name} db"),
            at,
        }
    }

    /// The instance's creation, as the command handler appends it with the service's count.
    async fn create(store: &PgEventStore, request_id: Uuid, name: &str, at: DateTime<Utc>) {
        store
            .append_many(vec![
                StreamAppend::new(
                    StreamId::parse(format!("instance-pg.{name}")).unwrap(),
                    ExpectedVersion::Any,
                    vec![new_event(&creation(request_id, name, "ops", at))],
                ),
                StreamAppend::new(
                    StreamId::parse("service-pg").unwrap(),
                    ExpectedVersion::Any,
                    vec![new_event(&ServiceEvent::ServiceInstanceAdded {
                        instance: InstanceName::parse(name).unwrap(),
                    })],
                ),
            ])
            .await
            .unwrap();
    }

    /// Every row of the three tables, ordered: the thing compared row for row.
    async fn rows(store: &PgEventStore) -> Vec<serde_json::Value> {
        crate::read_models::test_events::rows(
            store,
            &[
                (SERVICES, "name"),
                (INSTANCES, "service, name"),
                (CALLS, "request_id"),
            ],
        )
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_projects_into_services_instances_and_pending_calls_and_a_rebuild_gives_the_same_rows(
    ) {
        let config = bosun_eventstore::testing::fresh_database().await;
        let store = PgEventStore::open(&config).await.unwrap();
        let projections = Projections::new(vec![Arc::new(Services)]);
        projections.prepare(&config).await.unwrap();
        let running = projections.start(store.clone(), &config).await.unwrap();
        let at = "2024-05-01T10:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let later = "2024-05-01T11:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let retry = "2024-05-01T11:00:05Z".parse::<DateTime<Utc>>().unwrap();
        let newest = "2024-05-01T12:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let ids: Vec<Uuid> = (0..12).map(|_| Uuid::new_v4()).collect();

        write(
            &store,
            "service-pg",
            &[
                registered("pg", &["ops", "dev", "ops"], at),
                ServiceEvent::ServiceUpdated {
                    endpoint: Some(endpoint("https://pg2.example/api/")),
                    password: Some(Sealed::from_stored("v1.sealed-new-password".into())),
                    at: later,
                },
                ServiceEvent::ServiceDocSet {
                    doc: "ask ops".into(),
                    at: later,
                },
                ServiceEvent::ServiceTeamGranted { team: team("qa") },
                ServiceEvent::ServiceTeamGranted { team: team("web") },
                ServiceEvent::ServiceTeamRevoked { team: team("web") },
            ],
        )
        .await;
        write(
            &store,
            "service-old",
            &[
                registered("old", &["ops"], at),
                ServiceEvent::ServiceRemoved { at },
            ],
        )
        .await;
        write(&store, "service-mq", &[registered("mq", &["web"], at)]).await;

        // db: created, bound to shop, a bind to blog failed after no answer, bound to cart and
        // unbound, its removal refused, then a bind to blog pending after no answer.
        create(&store, ids[0], "db", at).await;
        write(
            &store,
            "instance-pg.db",
            &[
                InstanceEvent::InstanceCreated {
                    request_id: ids[0],
                    at,
                },
                InstanceEvent::InstanceBindRequested {
                    request_id: ids[1],
                    app: app("shop"),
                    app_host: "shop.example".into(),
                    restart: true,
                    at,
                },
                InstanceEvent::InstanceBound {
                    request_id: ids[1],
                    app: app("shop"),
                    envs: vec![EnvVar {
                        name: EnvName::parse("PG_URL").unwrap(),
                        value: EnvValue::Private {
                            sealed: Sealed::from_stored("v1.sealed-url".into()),
                        },
                    }],
                    at,
                },
                InstanceEvent::InstanceBindRequested {
                    request_id: ids[2],
                    app: app("blog"),
                    app_host: "blog".into(),
                    restart: true,
                    at,
                },
                InstanceEvent::ServiceCallFailed {
                    request_id: ids[2],
                    attempt: 1,
                    reason: "connection refused".into(),
                    retry_at: retry,
                },
                InstanceEvent::InstanceBindFailed {
                    request_id: ids[2],
                    app: app("blog"),
                    status: Some(500),
                    message: "no".into(),
                    at,
                },
                InstanceEvent::InstanceBindRequested {
                    request_id: ids[3],
                    app: app("cart"),
                    app_host: "cart".into(),
                    restart: false,
                    at,
                },
                InstanceEvent::InstanceBound {
                    request_id: ids[3],
                    app: app("cart"),
                    envs: vec![],
                    at,
                },
                InstanceEvent::InstanceUnbindRequested {
                    request_id: ids[4],
                    app: app("cart"),
                    restart: false,
                    at,
                },
                InstanceEvent::InstanceUnbound {
                    request_id: ids[4],
                    app: app("cart"),
                    at,
                },
                InstanceEvent::InstanceRemovalRequested {
                    request_id: ids[5],
                    at,
                },
                InstanceEvent::InstanceRemovalFailed {
                    request_id: ids[5],
                    status: Some(500),
                    message: "stays".into(),
                    at,
                },
                InstanceEvent::InstanceBindRequested {
                    request_id: ids[6],
                    app: app("blog"),
                    app_host: "blog".into(),
                    restart: true,
                    at: later,
                },
                InstanceEvent::ServiceCallFailed {
                    request_id: ids[6],
                    attempt: 2,
                    reason: "timed out".into(),
                    retry_at: retry,
                },
            ],
        )
        .await;
        // gone: its creation failed. tmp: created and removed. new: its creation pending.
        create(&store, ids[7], "gone", at).await;
        write(
            &store,
            "instance-pg.gone",
            &[InstanceEvent::InstanceCreationFailed {
                request_id: ids[7],
                status: None,
                message: "the service did not answer".into(),
                at,
            }],
        )
        .await;
        create(&store, ids[8], "tmp", at).await;
        write(
            &store,
            "instance-pg.tmp",
            &[
                InstanceEvent::InstanceCreated {
                    request_id: ids[8],
                    at,
                },
                InstanceEvent::InstanceRemovalRequested {
                    request_id: Uuid::nil(),
                    at,
                },
                InstanceEvent::InstanceRemoved {
                    request_id: Uuid::nil(),
                    at,
                },
            ],
        )
        .await;
        write(
            &store,
            "service-pg",
            &[
                ServiceEvent::ServiceInstanceDropped {
                    instance: InstanceName::parse("gone").unwrap(),
                },
                ServiceEvent::ServiceInstanceDropped {
                    instance: InstanceName::parse("tmp").unwrap(),
                },
            ],
        )
        .await;
        create(&store, ids[9], "new", newest).await;
        // wait: its removal got no answer twice (the same attempt number recorded twice counts
        // two), tried again only in the far future. fresh: its creation requested just now.
        let never = "2999-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap();
        create(&store, ids[10], "wait", at).await;
        let no_answer = InstanceEvent::ServiceCallFailed {
            request_id: ids[11],
            attempt: 1,
            reason: "connection refused".into(),
            retry_at: never,
        };
        write(
            &store,
            "instance-pg.wait",
            &[
                InstanceEvent::InstanceCreated {
                    request_id: ids[10],
                    at,
                },
                InstanceEvent::InstanceRemovalRequested {
                    request_id: ids[11],
                    at,
                },
                no_answer.clone(),
                no_answer,
            ],
        )
        .await;
        create(&store, Uuid::new_v4(), "fresh", Utc::now()).await;
        let head = store.head().await.unwrap();
        running
            .freshness()
            .wait_for(head, Duration::from_secs(10))
            .await
            .unwrap();

        let client = store.pool().get().await.unwrap();
        let pg = service(&**client, "pg").await.unwrap().unwrap();
        assert_eq!(
            pg,
            ServiceView {
                name: "pg".into(),
                endpoint: "https://pg2.example/api".into(),
                teams: vec!["dev".into(), "ops".into(), "qa".into()],
                owner_teams: vec!["dev".into(), "ops".into()],
                instances: vec![],
                created_at: at,
                updated_at: later,
            }
        );
        assert!(
            service(&**client, "old").await.unwrap().is_none(),
            "removed"
        );
        assert_eq!(
            doc(&**client, "pg").await.unwrap().as_deref(),
            Some("ask ops")
        );
        assert_eq!(doc(&**client, "old").await.unwrap(), None);
        let names = |all: Vec<ServiceView>| all.into_iter().map(|s| s.name).collect::<Vec<_>>();
        assert_eq!(
            names(services(&**client, None).await.unwrap()),
            ["mq", "pg"]
        );
        assert_eq!(
            names(
                services(&**client, Some(&["qa".to_string(), "x".to_string()]))
                    .await
                    .unwrap()
            ),
            ["pg"]
        );
        assert!(services(&**client, Some(&[])).await.unwrap().is_empty());

        let db = instance(&**client, "pg", "db").await.unwrap().unwrap();
        assert_eq!(
            db,
            InstanceView {
                name: "db".into(),
                service: "pg".into(),
                plan: "small".into(),
                team_owner: "ops".into(),
                teams: vec!["ops".into()],
                apps: vec!["shop".into()],
                description: "db db".into(),
                version: 14,
                state: "ready".into(),
                pending: Some(PendingView {
                    operation: "bind".into(),
                    app: Some("blog".into()),
                    attempts: 2,
                    last_error: Some("timed out".into()),
                    requested_at: later,
                    retry_at: Some(retry),
                }),
                created_at: at,
            }
        );
        for gone in ["gone", "tmp"] {
            assert!(instance(&**client, "pg", gone).await.unwrap().is_none());
        }
        let new = instance(&**client, "pg", "new").await.unwrap().unwrap();
        assert_eq!((new.state.as_str(), new.version), ("creating", 0));
        let pending = new.pending.unwrap();
        assert_eq!(
            (
                pending.operation.as_str(),
                pending.attempts,
                pending.retry_at
            ),
            ("create", 0, None)
        );
        let of = |all: Vec<InstanceView>| all.into_iter().map(|i| i.name).collect::<Vec<_>>();
        assert_eq!(
            of(instances(&**client, "pg", None).await.unwrap()),
            ["db", "fresh", "new", "wait"]
        );
        assert_eq!(
            of(instances(&**client, "pg", Some(&["ops".to_string()]))
                .await
                .unwrap()),
            ["db", "fresh", "new", "wait"]
        );
        let wait = instance(&**client, "pg", "wait").await.unwrap().unwrap();
        let pending = wait.pending.unwrap();
        assert_eq!(
            (wait.state.as_str(), pending.attempts, pending.retry_at),
            ("removing", 2, Some(never)),
            "counted as the fold counts"
        );
        assert!(instances(&**client, "pg", Some(&["qa".to_string()]))
            .await
            .unwrap()
            .is_empty());
        assert!(instances(&**client, "mq", None).await.unwrap().is_empty());
        assert_eq!(bound_to_app(&**client, "shop").await.unwrap(), ["pg/db"]);
        assert!(bound_to_app(&**client, "cart").await.unwrap().is_empty());

        assert_eq!(
            pending_calls(&**client, 10, 60.0).await.unwrap(),
            [
                PendingCallRow {
                    service: "pg".into(),
                    instance: "db".into(),
                    request_id: ids[6],
                    operation: "bind".into(),
                    app: Some("blog".into()),
                    requested_at: later,
                    attempts: 2,
                    retry_at: Some(retry),
                },
                PendingCallRow {
                    service: "pg".into(),
                    instance: "new".into(),
                    request_id: ids[9],
                    operation: "create".into(),
                    app: None,
                    requested_at: newest,
                    attempts: 0,
                    retry_at: None,
                },
            ],
            "due only (not wait's before its retry_at, nor fresh's within the grace), the longest due first"
        );
        assert_eq!(pending_calls(&**client, 1, 60.0).await.unwrap().len(), 1);
        let due: Vec<String> = pending_calls(&**client, 10, 0.0)
            .await
            .unwrap()
            .into_iter()
            .map(|call| call.instance)
            .collect();
        assert_eq!(due, ["db", "new", "fresh"], "fresh's grace over");
        drop(client);

        let live = rows(&store).await;
        let text = serde_json::to_string(&live).unwrap();
        assert!(!text.contains("sealed"), "no password, no variable: {text}");
        rebuild(&store, &config, &Services, |_, _| {})
            .await
            .unwrap();
        assert_eq!(rows(&store).await, live, "a replay rebuilds the same rows");
    }

    #[test]
    fn operations_are_named_as_the_domain_names_them() {
        let shop = app("shop");
        assert_eq!(Operation::Create.as_str(), CREATE);
        assert_eq!(Operation::Bind { app: shop.clone() }.as_str(), BIND);
        assert_eq!(Operation::Unbind { app: shop }.as_str(), UNBIND);
        assert_eq!(Operation::Remove.as_str(), REMOVE);
    }
}
