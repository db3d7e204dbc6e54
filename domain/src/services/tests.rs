//! Given these past events, when this command, then these events or this refusal.

use super::*;
use crate::aggregate::{decode, encode, Aggregate, DomainEvent};
use crate::apps::{AppName, EnvName, EnvVar};
use crate::identity::TeamName;
use crate::sealed::Sealed;
use crate::testing::given;
use crate::DomainError;
use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}
fn t0() -> DateTime<Utc> {
    at("2024-05-01T10:00:00Z")
}
fn t1() -> DateTime<Utc> {
    at("2024-05-01T11:00:00Z")
}
fn t2() -> DateTime<Utc> {
    at("2024-05-01T12:00:00Z")
}
fn service(n: &str) -> ServiceName {
    ServiceName::parse(n).unwrap()
}
fn instance(n: &str) -> InstanceName {
    InstanceName::parse(n).unwrap()
}
fn team(n: &str) -> TeamName {
    TeamName::parse(n).unwrap()
}
fn app(n: &str) -> AppName {
    AppName::parse(n).unwrap()
}
fn endpoint(url: &str) -> Endpoint {
    Endpoint::parse(url, &[]).unwrap()
}
fn sealed(s: &str) -> Sealed {
    Sealed::from_stored(s.into())
}
fn invalid(field: &'static str, message: &str) -> DomainError {
    DomainError::invalid(field, message)
}
fn conflict(code: &'static str, message: &str) -> DomainError {
    DomainError::conflict(code, message)
}
fn insecure(hosts: &[&str]) -> Vec<String> {
    hosts.iter().map(|h| h.to_string()).collect()
}

// ---- values ----

#[test]
fn service_and_instance_names_are_lowercase_letters_digits_and_dashes() {
    for bad in ["", "Mysql", "1db", "-db", "db_1", "db.a", &"a".repeat(41)] {
        assert!(ServiceName::parse(bad).is_err(), "accepted {bad:?}");
        assert!(InstanceName::parse(bad).is_err(), "accepted {bad:?}");
    }
    for good in ["a", "mysql-8", &"a".repeat(40)] {
        assert_eq!(ServiceName::parse(good).unwrap().as_str(), good);
        assert_eq!(InstanceName::parse(good).unwrap().to_string(), good);
    }
    assert!(matches!(
        ServiceName::parse("DB"),
        Err(DomainError::Invalid { field: "name", .. })
    ));
    assert!(matches!(
        InstanceName::parse_field("instance", "DB"),
        Err(DomainError::Invalid {
            field: "instance",
            ..
        })
    ));
    assert!(serde_json::from_value::<ServiceName>(json!("DB")).is_err());
    assert_eq!(serde_json::to_value(service("db")).unwrap(), json!("db"));
}

#[test]
fn an_endpoint_is_https_without_trailing_slash() {
    assert_eq!(
        endpoint("https://db.example.com/api/").as_str(),
        "https://db.example.com/api"
    );
    assert_eq!(
        endpoint("https://db.example.com").as_str(),
        "https://db.example.com"
    );
    let with_port = endpoint("https://db.example.com:8443/");
    assert_eq!(with_port.as_str(), "https://db.example.com:8443");
    assert_eq!(with_port.host(), "db.example.com");
    assert!(with_port.is_allowed(&[]));
    assert_eq!(with_port.to_string(), "https://db.example.com:8443");
}

#[test]
fn an_endpoint_is_plain_http_only_to_an_allowed_host() {
    let allowed = insecure(&["127.0.0.1"]);
    let local = Endpoint::parse("http://127.0.0.1:8080", &allowed).unwrap();
    assert_eq!(local.as_str(), "http://127.0.0.1:8080");
    assert_eq!(local.host(), "127.0.0.1");
    assert!(local.is_allowed(&allowed));
    assert!(!local.is_allowed(&[]), "re-checked against today's list");
    assert_eq!(
        Endpoint::parse("http://db.example.com", &allowed),
        Err(invalid(
            "endpoint",
            "endpoint \"http://db.example.com\" must use https (plain http only to hosts in \
             http_tasks.allow_insecure_hosts)"
        ))
    );
    assert_eq!(
        Endpoint::parse("ftp://db.example.com", &allowed),
        Err(invalid(
            "endpoint",
            "endpoint \"ftp://db.example.com/\": scheme \"ftp\" is not https"
        ))
    );
}

#[test]
fn an_endpoint_has_no_user_info_query_or_fragment() {
    let refusal = Endpoint::parse("https://svc:s3cret@db.example.com", &[]).unwrap_err();
    assert!(matches!(
        &refusal,
        DomainError::Invalid {
            field: "endpoint",
            ..
        }
    ));
    assert!(!refusal.to_string().contains("s3cret"), "{refusal}");
    assert_eq!(
        Endpoint::parse("https://db.example.com/?key=1", &[]),
        Err(invalid("endpoint", "the endpoint may not have a query"))
    );
    assert_eq!(
        Endpoint::parse("https://db.example.com/#top", &[]),
        Err(invalid("endpoint", "the endpoint may not have a fragment"))
    );
    for bad in ["", "db.example.com", "/resources", "https://"] {
        assert!(
            matches!(
                Endpoint::parse(bad, &[]),
                Err(DomainError::Invalid {
                    field: "endpoint",
                    ..
                })
            ),
            "accepted {bad:?}"
        );
    }
}

#[test]
fn an_endpoint_loads_from_the_log_without_the_host_check() {
    let stored: Endpoint = serde_json::from_value(json!("http://db.internal:80/api")).unwrap();
    assert_eq!(stored.as_str(), "http://db.internal/api");
    assert_eq!(stored.host(), "db.internal");
    assert!(!stored.is_allowed(&[]));
    assert_eq!(
        serde_json::to_value(endpoint("https://db.example.com/")).unwrap(),
        json!("https://db.example.com")
    );
}

#[test]
fn an_instance_ref_shows_as_service_slash_instance() {
    let reference = InstanceRef {
        service: service("mysql"),
        instance: instance("db"),
    };
    assert_eq!(reference.to_string(), "mysql/db");
    assert_eq!(
        serde_json::to_value(&reference).unwrap(),
        json!({"service": "mysql", "instance": "db"})
    );
    let other = InstanceRef {
        service: service("mysql"),
        instance: instance("db2"),
    };
    assert!(reference < other);
    assert_eq!(
        instance_stream_id(&service("mysql"), &instance("db")),
        "mysql.db"
    );
}

#[test]
fn plans_passwords_and_docs_are_bounded() {
    assert!(check_plan("").is_ok());
    assert!(check_plan(&"p".repeat(100)).is_ok());
    assert_eq!(
        check_plan(&"p".repeat(101)),
        Err(invalid("plan", "must be at most 100 characters"))
    );
    assert_eq!(
        check_plan("small\n"),
        Err(invalid("plan", "may not hold control characters"))
    );
    assert!(check_service_password("x").is_ok());
    assert!(check_service_password(&"é".repeat(256)).is_ok());
    for bad in [String::new(), "x".repeat(257)] {
        assert_eq!(
            check_service_password(&bad),
            Err(invalid("password", "must be 1 to 256 characters"))
        );
    }
    assert!(check_doc(&"d".repeat(MAX_DOC_BYTES)).is_ok());
    assert_eq!(
        check_doc(&"d".repeat(MAX_DOC_BYTES + 1)),
        Err(invalid("doc", "must be at most 65536 bytes"))
    );
}

// ---- services ----

fn registered() -> ServiceEvent {
    ServiceEvent::ServiceRegistered {
        name: service("mysql"),
        endpoint: endpoint("https://mysql.example.com"),
        password: sealed("v1.pw"),
        teams: vec![team("ops")],
        doc: "# MySQL".into(),
        at: t0(),
    }
}
fn register(teams: &[&str]) -> ServiceCommand {
    ServiceCommand::Register {
        name: service("mysql"),
        endpoint: endpoint("https://mysql.example.com"),
        password: sealed("v1.pw"),
        teams: teams.iter().map(|t| team(t)).collect(),
        doc: "# MySQL".into(),
        at: t0(),
    }
}
fn added(i: &str) -> ServiceEvent {
    ServiceEvent::ServiceInstanceAdded {
        instance: instance(i),
    }
}
fn no_such_service() -> DomainError {
    DomainError::NotFound("no such service".into())
}

#[test]
fn service_events_round_trip_with_their_type() {
    for event in [
        registered(),
        ServiceEvent::ServiceUpdated {
            endpoint: None,
            password: Some(sealed("v1.new")),
            at: t1(),
        },
        ServiceEvent::ServiceDocSet {
            doc: "doc".into(),
            at: t1(),
        },
        ServiceEvent::ServiceTeamGranted { team: team("dev") },
        ServiceEvent::ServiceTeamRevoked { team: team("dev") },
        added("db"),
        ServiceEvent::ServiceInstanceDropped {
            instance: instance("db"),
        },
        ServiceEvent::ServiceRemoved { at: t1() },
    ] {
        let (event_type, data) = encode(&event).unwrap();
        assert_eq!(event_type, event.event_type());
        assert_eq!(decode::<ServiceEvent>(&event_type, &data).unwrap(), event);
    }
    let (event_type, data) = encode(&registered()).unwrap();
    assert_eq!(event_type, "ServiceRegistered");
    assert_eq!(
        data,
        json!({"name": "mysql", "endpoint": "https://mysql.example.com", "password": "v1.pw",
               "teams": ["ops"], "doc": "# MySQL", "at": "2024-05-01T10:00:00Z"})
    );
    let (_, data) = encode(&ServiceEvent::ServiceUpdated {
        endpoint: None,
        password: Some(sealed("v1.new")),
        at: t1(),
    })
    .unwrap();
    assert_eq!(
        data,
        json!({"password": "v1.new", "at": "2024-05-01T11:00:00Z"})
    );
}

#[test]
fn registers_a_service_owned_by_its_teams() {
    given::<Service>(&[])
        .when(register(&["ops"]))
        .then(vec![registered()]);
    let given_state = given::<Service>(&[registered()]);
    let state = given_state.state();
    assert!(state.exists() && state.is_active());
    assert_eq!(state.name(), Some(&service("mysql")));
    assert_eq!(state.active_name(), Ok(&service("mysql")));
    assert_eq!(
        state.endpoint(),
        Some(&endpoint("https://mysql.example.com"))
    );
    assert_eq!(state.password(), Some(&sealed("v1.pw")));
    assert_eq!(state.teams(), &[team("ops")].into());
    assert_eq!(state.owner_teams(), &[team("ops")].into());
    assert_eq!(state.doc(), "# MySQL");
    assert!(state.instances().is_empty());
    assert_eq!(state.created_at(), Some(t0()));
    assert_eq!(state.updated_at(), Some(t0()));
    assert!(state.may_use(&team("ops")) && !state.may_use(&team("dev")));
}

#[test]
fn registers_with_teams_given_twice_counted_once() {
    given::<Service>(&[])
        .when(register(&["ops", "dev", "ops"]))
        .then(vec![ServiceEvent::ServiceRegistered {
            name: service("mysql"),
            endpoint: endpoint("https://mysql.example.com"),
            password: sealed("v1.pw"),
            teams: vec![team("ops"), team("dev")],
            doc: "# MySQL".into(),
            at: t0(),
        }]);
}

#[test]
fn refuses_a_service_without_teams_or_with_a_too_long_doc() {
    given::<Service>(&[])
        .when(register(&[]))
        .refused(invalid("teams", "give at least one team"));
    given::<Service>(&[])
        .when(ServiceCommand::Register {
            name: service("mysql"),
            endpoint: endpoint("https://mysql.example.com"),
            password: sealed("v1.pw"),
            teams: vec![team("ops")],
            doc: "d".repeat(MAX_DOC_BYTES + 1),
            at: t0(),
        })
        .refused(invalid("doc", "must be at most 65536 bytes"));
}

#[test]
fn refuses_a_service_that_exists() {
    given::<Service>(&[registered()])
        .when(register(&["ops"]))
        .refused(conflict("service_exists", "service mysql already exists"));
}

#[test]
fn a_removed_service_name_registers_again_from_a_clean_state() {
    let past = [
        registered(),
        ServiceEvent::ServiceTeamGranted { team: team("dev") },
        ServiceEvent::ServiceDocSet {
            doc: "old".into(),
            at: t1(),
        },
        ServiceEvent::ServiceRemoved { at: t1() },
    ];
    assert!(!given::<Service>(&past).state().is_active());
    assert!(given::<Service>(&past).state().exists());
    given::<Service>(&past)
        .when(register(&["ops"]))
        .then(vec![registered()]);
    let mut again = past.to_vec();
    again.push(ServiceEvent::ServiceRegistered {
        name: service("mysql"),
        endpoint: endpoint("https://other.example.com"),
        password: sealed("v1.pw2"),
        teams: vec![team("web")],
        doc: String::new(),
        at: t2(),
    });
    let given_state = given::<Service>(&again);
    let state = given_state.state();
    assert!(state.is_active());
    assert_eq!(state.teams(), &[team("web")].into());
    assert_eq!(state.owner_teams(), &[team("web")].into());
    assert_eq!(state.doc(), "");
    assert_eq!(state.created_at(), Some(t2()));
}

#[test]
fn a_missing_or_removed_service_refuses_every_other_command() {
    let removed = [registered(), ServiceEvent::ServiceRemoved { at: t1() }];
    let commands = || {
        vec![
            ServiceCommand::Update {
                endpoint: None,
                password: Some(sealed("v1.x")),
                at: t1(),
            },
            ServiceCommand::SetDoc {
                doc: "x".into(),
                at: t1(),
            },
            ServiceCommand::GrantTeam {
                team: team("dev"),
                team_exists: true,
            },
            ServiceCommand::RevokeTeam { team: team("ops") },
            ServiceCommand::AddInstance {
                instance: instance("db"),
                team_owner: team("ops"),
            },
            ServiceCommand::DropInstance {
                instance: instance("db"),
            },
            ServiceCommand::Remove { at: t1() },
        ]
    };
    for command in commands() {
        given::<Service>(&[])
            .when(command)
            .refused(no_such_service());
    }
    for command in commands() {
        given::<Service>(&removed)
            .when(command)
            .refused(no_such_service());
    }
    assert_eq!(
        given::<Service>(&removed).state().active_name(),
        Err(no_such_service())
    );
    assert!(!given::<Service>(&removed).state().may_use(&team("ops")));
}

#[test]
fn updates_what_changed_and_always_a_new_password() {
    let update = |endpoint: Option<Endpoint>, password: Option<Sealed>| ServiceCommand::Update {
        endpoint,
        password,
        at: t1(),
    };
    given::<Service>(&[registered()])
        .when(update(Some(endpoint("https://mysql.example.com/")), None))
        .then_nothing();
    given::<Service>(&[registered()])
        .when(update(None, None))
        .then_nothing();
    given::<Service>(&[registered()])
        .when(update(
            Some(endpoint("https://mysql.example.com")),
            Some(sealed("v1.pw")),
        ))
        .then(vec![ServiceEvent::ServiceUpdated {
            endpoint: None,
            password: Some(sealed("v1.pw")),
            at: t1(),
        }]);
    given::<Service>(&[registered()])
        .when(update(
            Some(endpoint("https://db.example.com")),
            Some(sealed("v1.pw")),
        ))
        .then(vec![ServiceEvent::ServiceUpdated {
            endpoint: Some(endpoint("https://db.example.com")),
            password: Some(sealed("v1.pw")),
            at: t1(),
        }]);
    let given_state = given::<Service>(&[
        registered(),
        ServiceEvent::ServiceUpdated {
            endpoint: Some(endpoint("https://db.example.com")),
            password: Some(sealed("v1.new")),
            at: t1(),
        },
    ]);
    let state = given_state.state();
    assert_eq!(state.endpoint(), Some(&endpoint("https://db.example.com")));
    assert_eq!(state.password(), Some(&sealed("v1.new")));
    assert_eq!(state.updated_at(), Some(t1()));
    assert_eq!(state.created_at(), Some(t0()));
}

#[test]
fn a_new_endpoint_needs_the_password_again() {
    // The stored password is never sent to a host it was not given for.
    given::<Service>(&[registered()])
        .when(ServiceCommand::Update {
            endpoint: Some(endpoint("https://elsewhere.example.com")),
            password: None,
            at: t1(),
        })
        .refused(DomainError::invalid(
            "password",
            "a new endpoint needs the service's password again",
        ));
    // The same endpoint (its trailing `/` aside) is no new endpoint.
    given::<Service>(&[registered()])
        .when(ServiceCommand::Update {
            endpoint: Some(endpoint("https://mysql.example.com/")),
            password: None,
            at: t1(),
        })
        .then_nothing();
}

#[test]
fn sets_a_doc_unless_it_is_the_same() {
    let set = |doc: &str| ServiceCommand::SetDoc {
        doc: doc.into(),
        at: t1(),
    };
    given::<Service>(&[registered()])
        .when(set("# MySQL"))
        .then_nothing();
    given::<Service>(&[registered()])
        .when(set(""))
        .then(vec![ServiceEvent::ServiceDocSet {
            doc: String::new(),
            at: t1(),
        }]);
    given::<Service>(&[registered()])
        .when(set(&"d".repeat(MAX_DOC_BYTES + 1)))
        .refused(invalid("doc", "must be at most 65536 bytes"));
    let state = given::<Service>(&[
        registered(),
        ServiceEvent::ServiceDocSet {
            doc: "new".into(),
            at: t1(),
        },
    ]);
    assert_eq!(state.state().doc(), "new");
    assert_eq!(state.state().updated_at(), Some(t1()));
}

#[test]
fn grants_a_registered_team_once() {
    let grant = |t: &str, exists| ServiceCommand::GrantTeam {
        team: team(t),
        team_exists: exists,
    };
    given::<Service>(&[registered()])
        .when(grant("dev", true))
        .then(vec![ServiceEvent::ServiceTeamGranted { team: team("dev") }]);
    given::<Service>(&[registered()])
        .when(grant("ops", true))
        .then_nothing();
    given::<Service>(&[registered()])
        .when(grant("ghost", false))
        .refused(DomainError::NotFound("no team ghost".into()));
    let state = given::<Service>(&[
        registered(),
        ServiceEvent::ServiceTeamGranted { team: team("dev") },
    ]);
    assert_eq!(state.state().teams(), &[team("dev"), team("ops")].into());
    assert_eq!(state.state().owner_teams(), &[team("ops")].into());
    assert!(state.state().may_use(&team("dev")));
}

#[test]
fn revokes_a_granted_team_but_never_an_owner_team() {
    let past = [
        registered(),
        ServiceEvent::ServiceTeamGranted { team: team("dev") },
    ];
    given::<Service>(&past)
        .when(ServiceCommand::RevokeTeam { team: team("dev") })
        .then(vec![ServiceEvent::ServiceTeamRevoked { team: team("dev") }]);
    given::<Service>(&past)
        .when(ServiceCommand::RevokeTeam { team: team("ops") })
        .refused(conflict(
            "owner_team",
            "team ops owns the service and cannot be revoked",
        ));
    given::<Service>(&past)
        .when(ServiceCommand::RevokeTeam { team: team("web") })
        .refused(DomainError::NotFound(
            "team web has no access to this service".into(),
        ));
    let mut revoked = past.to_vec();
    revoked.push(ServiceEvent::ServiceTeamRevoked { team: team("dev") });
    assert!(!given::<Service>(&revoked).state().may_use(&team("dev")));
}

#[test]
fn adds_instances_only_for_granted_teams_once_per_name() {
    let add = |i: &str, t: &str| ServiceCommand::AddInstance {
        instance: instance(i),
        team_owner: team(t),
    };
    given::<Service>(&[registered()])
        .when(add("db", "ops"))
        .then(vec![added("db")]);
    given::<Service>(&[registered()])
        .when(add("db", "dev"))
        .refused(DomainError::forbidden(
            "team_not_granted",
            "team dev has no access to this service",
        ));
    given::<Service>(&[registered(), added("db")])
        .when(add("db", "ops"))
        .refused(conflict("instance_exists", "instance db already exists"));
    let state = given::<Service>(&[registered(), added("db"), added("cache")]);
    assert_eq!(
        state.state().instances(),
        &[instance("cache"), instance("db")].into()
    );
}

#[test]
fn drops_a_counted_instance_and_frees_its_name() {
    let dropped = ServiceEvent::ServiceInstanceDropped {
        instance: instance("db"),
    };
    given::<Service>(&[registered(), added("db")])
        .when(ServiceCommand::DropInstance {
            instance: instance("db"),
        })
        .then(vec![dropped.clone()]);
    given::<Service>(&[registered()])
        .when(ServiceCommand::DropInstance {
            instance: instance("db"),
        })
        .then_nothing();
    given::<Service>(&[registered(), added("db"), dropped])
        .when(ServiceCommand::AddInstance {
            instance: instance("db"),
            team_owner: team("ops"),
        })
        .then(vec![added("db")]);
}

#[test]
fn removes_a_service_only_without_instances() {
    given::<Service>(&[registered()])
        .when(ServiceCommand::Remove { at: t1() })
        .then(vec![ServiceEvent::ServiceRemoved { at: t1() }]);
    given::<Service>(&[registered(), added("db"), added("cache")])
        .when(ServiceCommand::Remove { at: t1() })
        .refused(conflict(
            "service_has_instances",
            "the service has 2 instances: remove them first",
        ));
    given::<Service>(&[registered(), added("db")])
        .when(ServiceCommand::Remove { at: t1() })
        .refused(conflict(
            "service_has_instances",
            "the service has 1 instance: remove it first",
        ));
    given::<Service>(&[
        registered(),
        added("db"),
        ServiceEvent::ServiceInstanceDropped {
            instance: instance("db"),
        },
    ])
    .when(ServiceCommand::Remove { at: t1() })
    .then(vec![ServiceEvent::ServiceRemoved { at: t1() }]);
}

// ---- instances ----

fn rid(n: u128) -> Uuid {
    Uuid::from_u128(n)
}
fn requested() -> InstanceEvent {
    InstanceEvent::InstanceCreationRequested {
        request_id: rid(1),
        service: service("mysql"),
        name: instance("db"),
        plan: "small".into(),
        team_owner: team("ops"),
        description: "orders".into(),
        at: t0(),
    }
}
fn create() -> InstanceCommand {
    InstanceCommand::Create {
        request_id: rid(1),
        service: service("mysql"),
        name: instance("db"),
        plan: "small".into(),
        team_owner: team("ops"),
        description: "orders".into(),
        at: t0(),
    }
}
fn created() -> InstanceEvent {
    InstanceEvent::InstanceCreated {
        request_id: rid(1),
        at: t0(),
    }
}
fn ready() -> Vec<InstanceEvent> {
    vec![requested(), created()]
}
fn bind_requested(n: u128, a: &str) -> InstanceEvent {
    InstanceEvent::InstanceBindRequested {
        request_id: rid(n),
        app: app(a),
        app_host: format!("{a}.example.com"),
        restart: true,
        at: t1(),
    }
}
fn bind(n: u128, a: &str) -> InstanceCommand {
    InstanceCommand::RequestBind {
        request_id: rid(n),
        app: app(a),
        app_host: format!("{a}.example.com"),
        restart: true,
        at: t1(),
    }
}
fn var(name: &str) -> EnvVar {
    EnvVar::private(EnvName::parse(name).unwrap(), sealed("v1.value"))
}
fn bound(n: u128, a: &str) -> InstanceEvent {
    InstanceEvent::InstanceBound {
        request_id: rid(n),
        app: app(a),
        envs: vec![var("DATABASE_URL")],
        at: t1(),
    }
}
/// Ready, with `shop` bound (request 2).
fn bound_to_shop() -> Vec<InstanceEvent> {
    let mut past = ready();
    past.extend([bind_requested(2, "shop"), bound(2, "shop")]);
    past
}
fn unbind(n: u128, a: &str) -> InstanceCommand {
    InstanceCommand::RequestUnbind {
        request_id: rid(n),
        app: app(a),
        restart: false,
        at: t2(),
    }
}
fn unbind_requested(n: u128, a: &str) -> InstanceEvent {
    InstanceEvent::InstanceUnbindRequested {
        request_id: rid(n),
        app: app(a),
        restart: false,
        at: t2(),
    }
}
fn removal(n: u128) -> InstanceCommand {
    InstanceCommand::RequestRemoval {
        request_id: rid(n),
        at: t2(),
    }
}
fn removal_requested(n: u128) -> InstanceEvent {
    InstanceEvent::InstanceRemovalRequested {
        request_id: rid(n),
        at: t2(),
    }
}
fn record(n: u128, outcome: CallOutcome) -> InstanceCommand {
    InstanceCommand::Record {
        request_id: rid(n),
        outcome,
        at: t2(),
    }
}
fn done() -> CallOutcome {
    CallOutcome::Done { envs: vec![] }
}
fn refused_500() -> CallOutcome {
    CallOutcome::Refused {
        status: Some(500),
        message: "out of disks".into(),
    }
}
fn no_such_instance() -> DomainError {
    DomainError::NotFound("no such instance".into())
}
fn busy(operation: &str) -> DomainError {
    conflict(
        "instance_busy",
        &format!(
            "the instance waits for the outcome of a {operation} call to the service: try again \
             once it is in"
        ),
    )
}
fn being_created() -> DomainError {
    conflict(
        "instance_pending",
        "the instance is being created: try again once the service has created it",
    )
}

#[test]
fn instance_events_round_trip_with_their_type() {
    let failed = |status| (status, "no".to_string());
    let (status, message) = failed(Some(500));
    for event in [
        requested(),
        created(),
        InstanceEvent::InstanceCreationFailed {
            request_id: rid(1),
            status,
            message: message.clone(),
            at: t1(),
        },
        bind_requested(2, "shop"),
        bound(2, "shop"),
        InstanceEvent::InstanceBindFailed {
            request_id: rid(2),
            app: app("shop"),
            status: None,
            message: message.clone(),
            at: t1(),
        },
        unbind_requested(3, "shop"),
        InstanceEvent::InstanceUnbound {
            request_id: rid(3),
            app: app("shop"),
            at: t2(),
        },
        InstanceEvent::InstanceUnbindFailed {
            request_id: rid(3),
            app: app("shop"),
            status,
            message: message.clone(),
            at: t2(),
        },
        removal_requested(4),
        InstanceEvent::InstanceRemoved {
            request_id: rid(4),
            at: t2(),
        },
        InstanceEvent::InstanceRemovalFailed {
            request_id: rid(4),
            status,
            message,
            at: t2(),
        },
        InstanceEvent::ServiceCallFailed {
            request_id: rid(4),
            attempt: 1,
            reason: "timed out".into(),
            retry_at: t2(),
        },
    ] {
        let (event_type, data) = encode(&event).unwrap();
        assert_eq!(event_type, event.event_type());
        assert_eq!(decode::<InstanceEvent>(&event_type, &data).unwrap(), event);
    }
    let (event_type, data) = encode(&bound(2, "shop")).unwrap();
    assert_eq!(event_type, "InstanceBound");
    assert_eq!(
        data,
        json!({"request_id": "00000000-0000-0000-0000-000000000002", "app": "shop",
               "envs": [{"name": "DATABASE_URL", "kind": "private", "sealed": "v1.value"}],
               "at": "2024-05-01T11:00:00Z"})
    );
    assert_eq!(
        serde_json::to_value(Operation::Bind { app: app("shop") }).unwrap(),
        json!({"kind": "bind", "app": "shop"})
    );
    assert_eq!(
        serde_json::to_value(Operation::Create).unwrap(),
        json!({"kind": "create"})
    );
}

#[test]
fn requests_an_instance_pending_its_creation() {
    given::<Instance>(&[])
        .when(create())
        .then(vec![requested()]);
    let given_state = given::<Instance>(&[requested()]);
    let state = given_state.state();
    assert!(state.exists());
    assert_eq!(state.state(), Some(InstanceState::Creating));
    assert_eq!(state.service(), Some(&service("mysql")));
    assert_eq!(state.name(), Some(&instance("db")));
    assert_eq!(state.plan(), "small");
    assert_eq!(state.team_owner(), Some(&team("ops")));
    assert_eq!(state.teams(), &[team("ops")].into());
    assert_eq!(state.description(), "orders");
    assert!(state.apps().is_empty());
    assert_eq!(state.created_at(), Some(t0()));
    assert_eq!(
        state.pending(),
        Some(&PendingCall {
            request_id: rid(1),
            operation: Operation::Create,
            requested_at: t0(),
            attempts: 0,
            restart: false,
            app_host: String::new(),
            last_error: None,
            retry_at: None,
        })
    );
}

#[test]
fn refuses_a_bad_plan_or_description() {
    let with = |plan: String, description: String| InstanceCommand::Create {
        request_id: rid(1),
        service: service("mysql"),
        name: instance("db"),
        plan,
        team_owner: team("ops"),
        description,
        at: t0(),
    };
    given::<Instance>(&[])
        .when(with("p".repeat(101), String::new()))
        .refused(invalid("plan", "must be at most 100 characters"));
    given::<Instance>(&[])
        .when(with(String::new(), "d".repeat(1025)))
        .refused(invalid("description", "must be at most 1024 characters"));
}

#[test]
fn refuses_an_instance_that_exists_in_any_state() {
    let refusal = || conflict("instance_exists", "instance db already exists");
    given::<Instance>(&[requested()])
        .when(create())
        .refused(refusal());
    given::<Instance>(&ready())
        .when(create())
        .refused(refusal());
    let mut removing = ready();
    removing.push(removal_requested(4));
    given::<Instance>(&removing)
        .when(create())
        .refused(refusal());
}

#[test]
fn a_created_instance_is_ready() {
    given::<Instance>(&[requested()])
        .when(record(1, done()))
        .then(vec![InstanceEvent::InstanceCreated {
            request_id: rid(1),
            at: t2(),
        }]);
    let state = given::<Instance>(&ready());
    assert_eq!(state.state().state(), Some(InstanceState::Ready));
    assert_eq!(state.state().pending(), None);
}

#[test]
fn a_failed_creation_leaves_no_instance_and_its_name_free() {
    let failed = InstanceEvent::InstanceCreationFailed {
        request_id: rid(1),
        status: Some(500),
        message: "out of disks".into(),
        at: t2(),
    };
    given::<Instance>(&[requested()])
        .when(record(1, refused_500()))
        .then(vec![failed.clone()]);
    let past = [requested(), failed];
    let state = given::<Instance>(&past);
    assert!(!state.state().exists());
    assert_eq!(state.state().state(), None);
    assert_eq!(state.state(), &Instance::default());
    given::<Instance>(&past)
        .when(create())
        .then(vec![requested()]);
    given::<Instance>(&past)
        .when(bind(2, "shop"))
        .refused(no_such_instance());
}

#[test]
fn an_outcome_is_recorded_once_and_only_for_the_pending_call() {
    given::<Instance>(&ready())
        .when(record(1, done()))
        .then_nothing();
    given::<Instance>(&[requested()])
        .when(record(9, done()))
        .then_nothing();
    given::<Instance>(&[])
        .when(record(1, done()))
        .then_nothing();
    let mut past = ready();
    past.push(bind_requested(2, "shop"));
    given::<Instance>(&past)
        .when(record(1, refused_500()))
        .then_nothing();
}

#[test]
fn no_answer_counts_an_attempt_and_retries_later() {
    let retry = |n: u128, reason: &str| {
        record(
            n,
            CallOutcome::NoAnswer {
                reason: reason.into(),
                retry_at: Some(t2()),
            },
        )
    };
    given::<Instance>(&[requested()])
        .when(retry(1, "connection refused"))
        .then(vec![InstanceEvent::ServiceCallFailed {
            request_id: rid(1),
            attempt: 1,
            reason: "connection refused".into(),
            retry_at: t2(),
        }]);
    let past = [
        requested(),
        InstanceEvent::ServiceCallFailed {
            request_id: rid(1),
            attempt: 1,
            reason: "connection refused".into(),
            retry_at: t1(),
        },
        InstanceEvent::ServiceCallFailed {
            request_id: rid(1),
            attempt: 2,
            reason: "timed out".into(),
            retry_at: t2(),
        },
    ];
    let given_state = given::<Instance>(&past);
    let call = given_state.state().pending().unwrap();
    assert_eq!(call.attempts, 2);
    assert_eq!(call.last_error.as_deref(), Some("timed out"));
    assert_eq!(call.retry_at, Some(t2()));
    assert_eq!(call.operation, Operation::Create);
    given::<Instance>(&past)
        .when(retry(1, "timed out"))
        .then(vec![InstanceEvent::ServiceCallFailed {
            request_id: rid(1),
            attempt: 3,
            reason: "timed out".into(),
            retry_at: t2(),
        }]);
    given::<Instance>(&past)
        .when(record(
            1,
            CallOutcome::NoAnswer {
                reason: "timed out".into(),
                retry_at: None,
            },
        ))
        .then(vec![InstanceEvent::InstanceCreationFailed {
            request_id: rid(1),
            status: None,
            message: "the service did not answer: timed out (after 3 attempts)".into(),
            at: t2(),
        }]);
    // Done after retries: recorded as for a first answer.
    given::<Instance>(&past)
        .when(record(1, done()))
        .then(vec![InstanceEvent::InstanceCreated {
            request_id: rid(1),
            at: t2(),
        }]);
}

#[test]
fn a_no_answer_of_another_call_changes_nothing() {
    let mut past = vec![requested()];
    past.push(InstanceEvent::ServiceCallFailed {
        request_id: rid(9),
        attempt: 1,
        reason: "timed out".into(),
        retry_at: t2(),
    });
    let state = given::<Instance>(&past);
    assert_eq!(state.state().pending().unwrap().attempts, 0);
    assert_eq!(state.state().pending().unwrap().last_error, None);
}

#[test]
fn binds_an_app_to_a_ready_instance() {
    given::<Instance>(&ready())
        .when(bind(2, "shop"))
        .then(vec![bind_requested(2, "shop")]);
    let mut past = ready();
    past.push(bind_requested(2, "shop"));
    let pending = given::<Instance>(&past);
    assert_eq!(
        pending.state().pending(),
        Some(&PendingCall {
            request_id: rid(2),
            operation: Operation::Bind { app: app("shop") },
            requested_at: t1(),
            attempts: 0,
            restart: true,
            app_host: "shop.example.com".into(),
            last_error: None,
            retry_at: None,
        })
    );
    assert!(pending.state().apps().is_empty());
    given::<Instance>(&past)
        .when(InstanceCommand::Record {
            request_id: rid(2),
            outcome: CallOutcome::Done {
                envs: vec![var("DATABASE_URL")],
            },
            at: t1(),
        })
        .then(vec![bound(2, "shop")]);
    let state = given::<Instance>(&bound_to_shop());
    assert_eq!(state.state().apps(), &[app("shop")].into());
    assert_eq!(state.state().pending(), None);
    assert_eq!(state.state().state(), Some(InstanceState::Ready));
}

#[test]
fn a_refused_bind_binds_nothing() {
    let mut past = ready();
    past.push(bind_requested(2, "shop"));
    let failed = InstanceEvent::InstanceBindFailed {
        request_id: rid(2),
        app: app("shop"),
        status: Some(500),
        message: "out of disks".into(),
        at: t2(),
    };
    given::<Instance>(&past)
        .when(record(2, refused_500()))
        .then(vec![failed.clone()]);
    past.push(failed);
    let state = given::<Instance>(&past);
    assert!(state.state().apps().is_empty());
    assert_eq!(state.state().pending(), None);
    given::<Instance>(&past)
        .when(bind(3, "shop"))
        .then(vec![bind_requested(3, "shop")]);
}

#[test]
fn refuses_a_bind_while_created_busy_or_bound() {
    given::<Instance>(&[])
        .when(bind(2, "shop"))
        .refused(no_such_instance());
    given::<Instance>(&[requested()])
        .when(bind(2, "shop"))
        .refused(being_created());
    let mut binding = ready();
    binding.push(bind_requested(2, "shop"));
    given::<Instance>(&binding)
        .when(bind(3, "blog"))
        .refused(busy("bind"));
    given::<Instance>(&bound_to_shop())
        .when(bind(3, "shop"))
        .refused(conflict(
            "already_bound",
            "app shop is already bound to this instance",
        ));
    given::<Instance>(&bound_to_shop())
        .when(bind(3, "blog"))
        .then(vec![bind_requested(3, "blog")]);
}

#[test]
fn unbinds_a_bound_app() {
    given::<Instance>(&bound_to_shop())
        .when(unbind(3, "shop"))
        .then(vec![unbind_requested(3, "shop")]);
    let mut past = bound_to_shop();
    past.push(unbind_requested(3, "shop"));
    let pending = given::<Instance>(&past);
    let call = pending.state().pending().unwrap();
    assert_eq!(call.operation, Operation::Unbind { app: app("shop") });
    assert!(!call.restart);
    assert_eq!(pending.state().apps(), &[app("shop")].into());
    let unbound = InstanceEvent::InstanceUnbound {
        request_id: rid(3),
        app: app("shop"),
        at: t2(),
    };
    given::<Instance>(&past)
        .when(record(3, done()))
        .then(vec![unbound.clone()]);
    past.push(unbound);
    assert!(given::<Instance>(&past).state().apps().is_empty());
}

#[test]
fn a_refused_unbind_leaves_the_app_bound() {
    let mut past = bound_to_shop();
    past.push(unbind_requested(3, "shop"));
    let failed = InstanceEvent::InstanceUnbindFailed {
        request_id: rid(3),
        app: app("shop"),
        status: Some(500),
        message: "out of disks".into(),
        at: t2(),
    };
    given::<Instance>(&past)
        .when(record(3, refused_500()))
        .then(vec![failed.clone()]);
    past.push(failed);
    let state = given::<Instance>(&past);
    assert_eq!(state.state().apps(), &[app("shop")].into());
    assert_eq!(state.state().pending(), None);
}

#[test]
fn refuses_an_unbind_while_busy_or_not_bound() {
    given::<Instance>(&[])
        .when(unbind(3, "shop"))
        .refused(no_such_instance());
    given::<Instance>(&ready())
        .when(unbind(3, "shop"))
        .refused(conflict(
            "not_bound",
            "app shop is not bound to this instance",
        ));
    let mut past = bound_to_shop();
    past.push(bind_requested(3, "blog"));
    given::<Instance>(&past)
        .when(unbind(4, "shop"))
        .refused(busy("bind"));
    given::<Instance>(&[requested()])
        .when(unbind(4, "shop"))
        .refused(being_created());
}

#[test]
fn removes_an_instance_bound_to_no_app() {
    given::<Instance>(&ready())
        .when(removal(4))
        .then(vec![removal_requested(4)]);
    let mut past = ready();
    past.push(removal_requested(4));
    let removing = given::<Instance>(&past);
    assert_eq!(removing.state().state(), Some(InstanceState::Removing));
    assert_eq!(
        removing.state().pending().unwrap().operation,
        Operation::Remove
    );
    let removed = InstanceEvent::InstanceRemoved {
        request_id: rid(4),
        at: t2(),
    };
    given::<Instance>(&past)
        .when(record(4, done()))
        .then(vec![removed.clone()]);
    past.push(removed);
    let state = given::<Instance>(&past);
    assert!(!state.state().exists());
    given::<Instance>(&past)
        .when(removal(5))
        .refused(no_such_instance());
    given::<Instance>(&past)
        .when(create())
        .then(vec![requested()]);
}

#[test]
fn a_refused_removal_leaves_the_instance_ready() {
    let mut past = ready();
    past.push(removal_requested(4));
    let failed = InstanceEvent::InstanceRemovalFailed {
        request_id: rid(4),
        status: None,
        message: "the service did not answer: timed out (after 1 attempts)".into(),
        at: t2(),
    };
    given::<Instance>(&past)
        .when(record(
            4,
            CallOutcome::NoAnswer {
                reason: "timed out".into(),
                retry_at: None,
            },
        ))
        .then(vec![failed.clone()]);
    past.push(failed);
    let state = given::<Instance>(&past);
    assert_eq!(state.state().state(), Some(InstanceState::Ready));
    assert_eq!(state.state().pending(), None);
    given::<Instance>(&past)
        .when(bind(5, "shop"))
        .then(vec![bind_requested(5, "shop")]);
}

#[test]
fn refuses_a_removal_while_bound_busy_or_removing() {
    given::<Instance>(&bound_to_shop())
        .when(removal(4))
        .refused(conflict(
            "instance_bound",
            "the instance is bound to 1 app: unbind it first",
        ));
    let mut bound_to_two = bound_to_shop();
    bound_to_two.extend([bind_requested(3, "blog"), bound(3, "blog")]);
    // Counted, not named: the instance's teams may not see the apps.
    given::<Instance>(&bound_to_two)
        .when(removal(4))
        .refused(conflict(
            "instance_bound",
            "the instance is bound to 2 apps: unbind them first",
        ));
    let mut removing = ready();
    removing.push(removal_requested(4));
    given::<Instance>(&removing)
        .when(removal(5))
        .refused(busy("remove"));
    given::<Instance>(&removing)
        .when(bind(5, "shop"))
        .refused(busy("remove"));
    given::<Instance>(&[requested()])
        .when(removal(5))
        .refused(being_created());
    given::<Instance>(&[])
        .when(removal(5))
        .refused(no_such_instance());
}

#[test]
fn operations_and_states_read_as_words() {
    assert_eq!(Operation::Create.as_str(), "create");
    assert_eq!(Operation::Bind { app: app("shop") }.as_str(), "bind");
    assert_eq!(Operation::Unbind { app: app("shop") }.as_str(), "unbind");
    assert_eq!(Operation::Remove.as_str(), "remove");
    assert_eq!(
        Operation::Unbind { app: app("shop") }.app(),
        Some(&app("shop"))
    );
    assert_eq!(Operation::Remove.app(), None);
    assert_eq!(InstanceState::Creating.as_str(), "creating");
    assert_eq!(InstanceState::Ready.as_str(), "ready");
    assert_eq!(InstanceState::Removing.as_str(), "removing");
}
