//! Service commands on the in-memory log: what they decide and write. Creating an instance is
//! one append of its request and the service's count; an outcome is recorded once, with its
//! pair on the other stream; a bind's variables and the service password never enter the log
//! in clear; a refused bind leaves the app without the binding; who may not see a service or an
//! instance gets a 404 and writes nothing. (The reads, from the read models, are the HTTP
//! tests'.)

use super::*;
use crate::apps::{AppRules, CreateApp};
use crate::services::{CallResult, CreateInstance, Intent, RegisterService, UpdateService};
use crate::{CommandError, Sealer, Written};
use bosun_domain::apps::{App, EnvName, EnvValue};
use bosun_domain::identity::{Team, TeamCommand, TeamName, Username};
use bosun_domain::services::{
    Instance, InstanceName, InstanceRef, InstanceState, Operation, Service, ServiceName,
};
use bosun_domain::{Aggregate, DomainError};
use secrecy::{ExposeSecret, SecretSlice, SecretString};

const PASSWORD: &str = "hunter2-service-password";
const INSECURE: &[&str] = &["127.0.0.1"];

fn insecure() -> Vec<String> {
    INSECURE.iter().map(|h| h.to_string()).collect()
}

/// A user of `teams`, with a token of every scope.
fn member(name: &str, teams: &[&str]) -> Actor {
    match user(name) {
        Actor::User {
            username,
            admin,
            token_id,
            scopes,
            ..
        } => Actor::User {
            username,
            admin,
            teams: teams.iter().map(|t| t.to_string()).collect(),
            token_id,
            scopes,
        },
        _ => unreachable!(),
    }
}

fn ann() -> Actor {
    member("ann", &["ops"])
}

fn bob() -> Actor {
    member("bob", &["dev"])
}

/// Commands that seal with a test key, over a log with platform `python`, teams `ops` (ann) and
/// `dev` (bob), ann's app `shop` (team ops), and service `db` of team ops.
async fn setup() -> (Commands<Racing>, Racing) {
    let log = Racing::default();
    let commands = Commands::over(log.clone(), Freshness::none(), None)
        .with_sealer(Sealer::new(&SecretSlice::from(vec![7u8; 32])));
    commands
        .add_platform(&admin("root"), &origin(), "python")
        .await
        .unwrap();
    for (team, creator) in [("ops", "ann"), ("dev", "bob")] {
        commands
            .execute::<Team>(team, &SYSTEM, &origin(), |state| {
                state.handle(TeamCommand::Create {
                    name: TeamName::parse(team).unwrap(),
                    creator: Username::parse(creator).unwrap(),
                })
            })
            .await
            .unwrap();
    }
    commands
        .create_app(
            &ann(),
            &origin(),
            &AppRules { default_quota: -1 },
            CreateApp {
                name: "shop".into(),
                platform: "python".into(),
                ..CreateApp::default()
            },
        )
        .await
        .unwrap();
    commands
        .register_service(&ann(), &origin(), register("db", &["ops"]), &insecure())
        .await
        .unwrap();
    (commands, log)
}

fn register(name: &str, teams: &[&str]) -> RegisterService {
    RegisterService {
        name: name.into(),
        endpoint: "http://127.0.0.1:9999/api/".into(),
        password: SecretString::from(PASSWORD),
        teams: teams.iter().map(|t| t.to_string()).collect(),
        doc: Some("a database".into()),
    }
}

fn create(name: &str, team_owner: &str) -> CreateInstance {
    CreateInstance {
        name: name.into(),
        plan: Some("small".into()),
        team_owner: team_owner.into(),
        description: None,
    }
}

/// Instance `name` of `db`, created by ann and recorded as created by the service.
async fn ready_instance<S: EventStore>(commands: &Commands<S>, name: &str) {
    let (intent, _) = commands
        .request_instance(&ann(), &origin(), "db", create(name, "ops"))
        .await
        .unwrap();
    record(commands, &intent, done()).await.unwrap();
}

fn done() -> CallResult {
    CallResult::Done { vars: vec![] }
}

fn vars(vars: &[(&str, &str)]) -> CallResult {
    CallResult::Done {
        vars: vars
            .iter()
            .map(|(n, v)| (n.to_string(), SecretString::from(v.to_string())))
            .collect(),
    }
}

/// Records `result` for `intent`'s pending call, as the runner does.
async fn record<S: EventStore>(
    commands: &Commands<S>,
    intent: &Intent,
    result: CallResult,
) -> Result<Option<Written>, CommandError> {
    let call = commands
        .service_call(intent)
        .await?
        .expect("the call is pending");
    commands.record_service_call(&call, result).await
}

async fn instance(commands: &Commands<Racing>, name: &str) -> Instance {
    commands
        .load::<Instance>(&format!("db.{name}"))
        .await
        .unwrap()
        .0
}

async fn service(commands: &Commands<Racing>, name: &str) -> Service {
    commands.load::<Service>(name).await.unwrap().0
}

async fn app(commands: &Commands<Racing>, name: &str) -> App {
    commands.load::<App>(name).await.unwrap().0
}

fn db_ref(instance: &str) -> InstanceRef {
    InstanceRef {
        service: ServiceName::parse("db").unwrap(),
        instance: InstanceName::parse(instance).unwrap(),
    }
}

async fn whole_log(log: &Racing) -> String {
    serde_json::to_string(&log.read_all(1, 10_000, &Filter::all()).await.unwrap()).unwrap()
}

fn not_found(error: &CommandError) -> bool {
    matches!(error, CommandError::Domain(DomainError::NotFound(_)))
}

fn conflict_code(error: &CommandError) -> Option<&'static str> {
    match error {
        CommandError::Domain(DomainError::Conflict { code, .. }) => Some(code),
        _ => None,
    }
}

fn invalid_field(error: &CommandError) -> Option<&'static str> {
    match error {
        CommandError::Domain(DomainError::Invalid { field, .. }) => Some(field),
        _ => None,
    }
}

#[tokio::test]
async fn registering_seals_the_password_and_the_call_opens_it() {
    let (commands, log) = setup().await;
    let (view, _) = commands
        .register_service(
            &ann(),
            &origin(),
            register("cache", &["ops", "ops"]),
            &insecure(),
        )
        .await
        .unwrap();
    assert_eq!(view.name, "cache");
    assert_eq!(view.endpoint, "http://127.0.0.1:9999/api", "no trailing /");
    assert_eq!(
        (view.teams.clone(), view.owner_teams.clone()),
        (vec!["ops".to_string()], vec!["ops".to_string()])
    );
    assert!(view.instances.is_empty());
    assert!(
        !format!("{:?}", register("x", &[])).contains(PASSWORD),
        "Debug hides it"
    );
    assert!(
        !whole_log(&log).await.contains(PASSWORD),
        "never in clear in the log"
    );

    // The runner gets it opened for a call.
    let (intent, _) = commands
        .request_instance(&ann(), &origin(), "cache", create("one", "ops"))
        .await
        .unwrap();
    let call = commands.service_call(&intent).await.unwrap().unwrap();
    assert_eq!(call.password.expose_secret(), PASSWORD);
    assert_eq!(
        (call.plan.as_str(), call.team_owner.as_str()),
        ("small", "ops")
    );
    assert_eq!(call.operation, Operation::Create);
    assert!(!format!("{call:?}").contains(PASSWORD), "Debug hides it");

    // A new password is sealed too, and the next call uses it.
    commands
        .update_service(
            &ann(),
            &origin(),
            "cache",
            UpdateService {
                endpoint: None,
                password: Some(SecretString::from("another-password")),
            },
            &insecure(),
        )
        .await
        .unwrap();
    let call = commands.service_call(&intent).await.unwrap().unwrap();
    assert_eq!(call.password.expose_secret(), "another-password");
    assert!(!whole_log(&log).await.contains("another-password"));
}

#[tokio::test]
async fn registering_asks_every_team_of_a_non_admin_and_that_each_exists() {
    let (commands, log) = setup().await;
    let head = head(&log).await;
    let refused = commands
        .register_service(
            &ann(),
            &origin(),
            register("cache", &["ops", "dev"]),
            &insecure(),
        )
        .await
        .unwrap_err();
    assert!(matches!(refused, CommandError::Forbidden(_)), "{refused:?}");
    let refused = commands
        .register_service(
            &admin("root"),
            &origin(),
            register("cache", &["nobody"]),
            &insecure(),
        )
        .await
        .unwrap_err();
    assert_eq!(invalid_field(&refused), Some("teams"), "{refused:?}");
    assert!(refused.to_string().contains("nobody"));
    let refused = commands
        .register_service(
            &admin("root"),
            &origin(),
            register("cache", &[]),
            &insecure(),
        )
        .await
        .unwrap_err();
    assert_eq!(invalid_field(&refused), Some("teams"), "{refused:?}");
    let refused = commands
        .register_service(&ann(), &origin(), register("cache", &["ops"]), &[])
        .await
        .unwrap_err();
    assert_eq!(
        invalid_field(&refused),
        Some("endpoint"),
        "plain http to a host not allowed"
    );
    let refused = commands
        .register_service(&ann(), &origin(), register("db", &["ops"]), &insecure())
        .await
        .unwrap_err();
    assert_eq!(conflict_code(&refused), Some("service_exists"));
    let refused = commands
        .register_service(
            &ann(),
            &origin(),
            RegisterService {
                password: SecretString::from(""),
                ..register("cache", &["ops"])
            },
            &insecure(),
        )
        .await
        .unwrap_err();
    assert!(invalid_field(&refused).is_some(), "{refused:?}");
    assert_eq!(super::head(&log).await, head, "nothing written");
    // An admin names any team.
    commands
        .register_service(
            &admin("root"),
            &origin(),
            register("cache", &["ops", "dev"]),
            &insecure(),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn creating_an_instance_is_one_append_of_its_request_and_the_services_count() {
    let (commands, log) = setup().await;
    let head = head(&log).await;
    let (intent, written) = commands
        .request_instance(&ann(), &origin(), "db", create("main", "ops"))
        .await
        .unwrap();
    assert_eq!(
        (intent.service.as_str(), intent.instance.as_str()),
        ("db", "main")
    );
    assert_eq!(written.position, Some(head + 2));
    let events = log.read_all(head + 1, 10, &Filter::all()).await.unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| (e.stream_id.to_string(), e.event_type.clone()))
            .collect::<Vec<_>>(),
        vec![
            (
                "instance-db.main".to_string(),
                "InstanceCreationRequested".to_string()
            ),
            ("service-db".to_string(), "ServiceInstanceAdded".to_string()),
        ],
        "both streams, contiguous positions"
    );
    for e in &events {
        assert_eq!(e.metadata["actor"], "ann");
        assert_eq!(e.metadata["request_id"], "req-1");
    }
    assert_eq!(
        instance(&commands, "main").await.state(),
        Some(InstanceState::Creating)
    );
    // The service counts it: it cannot be removed meanwhile.
    let refused = commands
        .remove_service(&ann(), &origin(), "db")
        .await
        .unwrap_err();
    assert_eq!(conflict_code(&refused), Some("service_has_instances"));
    // The same name again is refused, on both streams' rules.
    let refused = commands
        .request_instance(&ann(), &origin(), "db", create("main", "ops"))
        .await
        .unwrap_err();
    assert_eq!(conflict_code(&refused), Some("instance_exists"));
    assert_eq!(super::head(&log).await, head + 2);
}

#[tokio::test]
async fn only_a_granted_team_of_the_caller_gets_an_instance() {
    let (commands, log) = setup().await;
    let head = head(&log).await;
    // bob sees no team of db: the service is none of his.
    let refused = commands
        .request_instance(&bob(), &origin(), "db", create("main", "dev"))
        .await
        .unwrap_err();
    assert!(not_found(&refused), "{refused:?}");
    // ann names a team not hers.
    let refused = commands
        .request_instance(
            &member("ann", &["ops"]),
            &origin(),
            "db",
            create("main", "dev"),
        )
        .await
        .unwrap_err();
    assert!(matches!(refused, CommandError::Forbidden(_)), "{refused:?}");
    // A member of ops and dev: dev is not granted db.
    let both = member("cat", &["ops", "dev"]);
    let refused = commands
        .request_instance(&both, &origin(), "db", create("main", "dev"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &refused,
            CommandError::Domain(DomainError::Forbidden {
                code: "team_not_granted",
                ..
            })
        ),
        "{refused:?}"
    );
    let refused = commands
        .request_instance(&admin("root"), &origin(), "db", create("main", "nobody"))
        .await
        .unwrap_err();
    assert_eq!(invalid_field(&refused), Some("team_owner"), "{refused:?}");
    assert_eq!(super::head(&log).await, head, "nothing written");
    // Granted, it may.
    commands
        .grant_service_team(&ann(), &origin(), "db", "dev")
        .await
        .unwrap();
    commands
        .request_instance(&both, &origin(), "db", create("main", "dev"))
        .await
        .unwrap();
    // A write's answer shows the instances the caller sees: not dev's to ann, all to an admin.
    let no_change = || UpdateService::default();
    let (view, _) = commands
        .update_service(&ann(), &origin(), "db", no_change(), &insecure())
        .await
        .unwrap();
    assert!(view.instances.is_empty(), "{view:?}");
    let (view, _) = commands
        .update_service(&admin("root"), &origin(), "db", no_change(), &insecure())
        .await
        .unwrap();
    assert_eq!(view.instances, ["main"]);
    assert_eq!(view.teams, ["dev", "ops"]);
    // bob now sees db, but does not manage it.
    let refused = commands
        .set_service_doc(&bob(), &origin(), "db", "mine".into())
        .await
        .unwrap_err();
    assert!(matches!(refused, CommandError::Forbidden(_)), "{refused:?}");
    let refused = commands
        .revoke_service_team(&ann(), &origin(), "db", "ops")
        .await
        .unwrap_err();
    assert_eq!(conflict_code(&refused), Some("owner_team"));
}

#[tokio::test]
async fn an_outcome_is_recorded_once() {
    let (commands, log) = setup().await;
    let (intent, _) = commands
        .request_instance(&ann(), &origin(), "db", create("main", "ops"))
        .await
        .unwrap();
    let call = commands.service_call(&intent).await.unwrap().unwrap();
    let written = commands.record_service_call(&call, done()).await.unwrap();
    assert!(written.is_some());
    let head = head(&log).await;
    // The reactor finishing it too, or the same outcome again: nothing more.
    assert_eq!(
        commands.record_service_call(&call, done()).await.unwrap(),
        None
    );
    let refused = CallResult::Refused {
        status: Some(500),
        message: "late".into(),
    };
    assert_eq!(
        commands.record_service_call(&call, refused).await.unwrap(),
        None
    );
    assert_eq!(super::head(&log).await, head);
    assert!(
        commands.service_call(&intent).await.unwrap().is_none(),
        "no longer pending"
    );
    assert_eq!(
        instance(&commands, "main").await.state(),
        Some(InstanceState::Ready)
    );
    let recorded = log.read_all(head, 1, &Filter::all()).await.unwrap();
    assert_eq!(recorded[0].event_type, "InstanceCreated");
    assert_eq!(recorded[0].metadata["actor"], "services");
}

#[tokio::test]
async fn a_failed_creation_drops_the_instance_from_the_service_in_the_same_append() {
    let (commands, log) = setup().await;
    let (intent, _) = commands
        .request_instance(&ann(), &origin(), "db", create("main", "ops"))
        .await
        .unwrap();
    // No answer, tried again later: still pending.
    let retry_at = chrono::Utc::now() + chrono::Duration::seconds(2);
    record(
        &commands,
        &intent,
        CallResult::NoAnswer {
            reason: "connection refused".into(),
            retry_at: Some(retry_at),
        },
    )
    .await
    .unwrap()
    .unwrap();
    let call = commands.service_call(&intent).await.unwrap().unwrap();
    assert_eq!(call.attempts, 1);
    assert_eq!(call.retry_at, Some(retry_at), "as the stream has it");
    let head = head(&log).await;
    commands
        .record_service_call(
            &call,
            CallResult::Refused {
                status: Some(500),
                message: "no room".into(),
            },
        )
        .await
        .unwrap()
        .unwrap();
    let events = log.read_all(head + 1, 10, &Filter::all()).await.unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| (e.stream_id.to_string(), e.event_type.clone()))
            .collect::<Vec<_>>(),
        vec![
            (
                "instance-db.main".to_string(),
                "InstanceCreationFailed".to_string()
            ),
            (
                "service-db".to_string(),
                "ServiceInstanceDropped".to_string()
            ),
        ]
    );
    assert!(!instance(&commands, "main").await.exists());
    assert!(service(&commands, "db").await.instances().is_empty());
    // Created again, then removed: the removal drops it too, and the service goes.
    ready_instance(&commands, "main").await;
    let (intent, _) = commands
        .request_instance_removal(&ann(), &origin(), "db", "main")
        .await
        .unwrap();
    assert_eq!(
        instance(&commands, "main").await.state(),
        Some(InstanceState::Removing)
    );
    record(&commands, &intent, done()).await.unwrap().unwrap();
    assert!(service(&commands, "db").await.instances().is_empty());
    commands
        .remove_service(&ann(), &origin(), "db")
        .await
        .unwrap();
    assert!(!service(&commands, "db").await.is_active());
}

#[tokio::test]
async fn a_bind_seals_its_variables_into_the_apps_env_and_an_unbind_takes_them_away() {
    let (commands, log) = setup().await;
    ready_instance(&commands, "main").await;
    let (intent, written) = commands
        .request_bind(&ann(), &origin(), "db", "main", "shop", true)
        .await
        .unwrap();
    let head = head(&log).await;
    assert_eq!(written.position, Some(head));
    let requested = log.read_all(head - 1, 10, &Filter::all()).await.unwrap();
    assert_eq!(
        requested
            .iter()
            .map(|e| (e.stream_id.to_string(), e.event_type.clone()))
            .collect::<Vec<_>>(),
        vec![
            (
                "instance-db.main".to_string(),
                "InstanceBindRequested".to_string()
            ),
            (
                "app-shop".to_string(),
                "AppInstanceBindRequested".to_string()
            ),
        ]
    );
    let call = commands.service_call(&intent).await.unwrap().unwrap();
    assert_eq!(call.app_host, "shop", "no cname: its name");
    let generation = app(&commands, "shop").await.restart_generation();
    commands
        .record_service_call(&call, vars(&[("DATABASE_URL", "postgres://u:s3cret@db/x")]))
        .await
        .unwrap()
        .unwrap();
    assert!(
        !whole_log(&log).await.contains("s3cret"),
        "never in clear in the log"
    );
    let shop = app(&commands, "shop").await;
    let name = EnvName::parse("DATABASE_URL").unwrap();
    assert!(matches!(
        shop.env().get(&name),
        Some(EnvValue::Private { .. })
    ));
    assert_eq!(shop.bound().get(&name), Some(&db_ref("main")));
    assert_eq!(shop.restart_generation(), generation + 1, "restart: true");
    assert!(instance(&commands, "main")
        .await
        .apps()
        .iter()
        .any(|a| a.as_str() == "shop"));
    let environment = commands.app_environment("shop").await.unwrap().unwrap();
    let opened: Vec<_> = environment
        .iter()
        .map(|(n, v)| (n.as_str(), v.expose_secret()))
        .collect();
    assert_eq!(opened, [("DATABASE_URL", "postgres://u:s3cret@db/x")]);
    // Bound: the instance is not removed, the app neither.
    let refused = commands
        .request_instance_removal(&ann(), &origin(), "db", "main")
        .await
        .unwrap_err();
    assert_eq!(conflict_code(&refused), Some("instance_bound"));
    let refused = commands
        .remove_app(&ann(), &origin(), "shop")
        .await
        .unwrap_err();
    assert_eq!(conflict_code(&refused), Some("app_has_bindings"));

    let (intent, _) = commands
        .request_unbind(&ann(), &origin(), "db", "main", "shop", false)
        .await
        .unwrap();
    record(&commands, &intent, done()).await.unwrap().unwrap();
    let shop = app(&commands, "shop").await;
    assert!(shop.env().is_empty() && shop.bound().is_empty() && shop.bindings().is_empty());
    assert_eq!(shop.restart_generation(), generation + 1, "restart: false");
    assert!(instance(&commands, "main").await.apps().is_empty());
}

#[tokio::test]
async fn a_refused_bind_leaves_the_app_without_the_binding() {
    let (commands, log) = setup().await;
    ready_instance(&commands, "main").await;
    let (intent, _) = commands
        .request_bind(&ann(), &origin(), "db", "main", "shop", true)
        .await
        .unwrap();
    assert!(
        !app(&commands, "shop").await.bindings().is_empty(),
        "pending"
    );
    let head = head(&log).await;
    record(
        &commands,
        &intent,
        CallResult::Refused {
            status: Some(500),
            message: "the database is full".into(),
        },
    )
    .await
    .unwrap()
    .unwrap();
    let events = log.read_all(head + 1, 10, &Filter::all()).await.unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| (e.stream_id.to_string(), e.event_type.clone()))
            .collect::<Vec<_>>(),
        vec![
            (
                "instance-db.main".to_string(),
                "InstanceBindFailed".to_string()
            ),
            ("app-shop".to_string(), "AppInstanceBindFailed".to_string()),
        ]
    );
    assert!(events[0].data.to_string().contains("the database is full"));
    let shop = app(&commands, "shop").await;
    assert!(shop.bindings().is_empty() && shop.env().is_empty() && shop.bound().is_empty());
    assert!(instance(&commands, "main").await.apps().is_empty());
    // Nothing holds the app: it may be removed.
    commands
        .remove_app(&ann(), &origin(), "shop")
        .await
        .unwrap();
}

#[tokio::test]
async fn variables_bosun_cannot_use_make_the_bind_a_refusal_that_says_why() {
    let (commands, log) = setup().await;
    ready_instance(&commands, "main").await;
    let (intent, _) = commands
        .request_bind(&ann(), &origin(), "db", "main", "shop", true)
        .await
        .unwrap();
    record(
        &commands,
        &intent,
        vars(&[
            ("GOOD", "s3cret-good"),
            ("BAD NAME", "s3cret-bad"),
            ("PATH", "/x"),
        ]),
    )
    .await
    .unwrap()
    .unwrap();
    let log_text = whole_log(&log).await;
    assert!(
        !log_text.contains("s3cret"),
        "no value, in clear or in the message"
    );
    assert!(log_text.contains("the service answered variables Bosun cannot use"));
    assert!(log_text.contains("BAD NAME") && log_text.contains("PATH"));
    let shop = app(&commands, "shop").await;
    assert!(shop.bindings().is_empty() && shop.env().is_empty());
}

#[tokio::test]
async fn who_does_not_see_an_instance_gets_404_and_writes_nothing() {
    let (commands, log) = setup().await;
    ready_instance(&commands, "main").await;
    let head = head(&log).await;
    let eve = member("eve", &["dev"]);
    let bound = commands
        .request_bind(&eve, &origin(), "db", "main", "shop", true)
        .await
        .unwrap_err();
    assert!(not_found(&bound), "{bound:?}");
    let removed = commands
        .request_instance_removal(&eve, &origin(), "db", "main")
        .await
        .unwrap_err();
    assert!(not_found(&removed), "{removed:?}");
    assert!(not_found(
        &commands
            .instance_status_target(&eve, "db", "main")
            .await
            .unwrap_err()
    ));
    assert!(not_found(
        &commands
            .update_service(&eve, &origin(), "db", UpdateService::default(), &insecure())
            .await
            .unwrap_err()
    ));
    assert!(not_found(
        &commands
            .request_instance_removal(&ann(), &origin(), "db", "NOT A NAME")
            .await
            .unwrap_err()
    ));
    // A member of the instance's team who may not manage the app: 404 for no app, 403 for
    // another team's app.
    let refused = commands
        .request_bind(&ann(), &origin(), "db", "main", "nope", true)
        .await
        .unwrap_err();
    assert!(not_found(&refused), "{refused:?}");
    assert_eq!(super::head(&log).await, head);
    // Its members see it, with the password opened for the status call.
    let target = commands
        .instance_status_target(&ann(), "db", "main")
        .await
        .unwrap();
    assert_eq!(target.password.expose_secret(), PASSWORD);
    assert!(!format!("{target:?}").contains(PASSWORD));
}

#[tokio::test]
async fn a_second_bind_while_one_is_pending_is_refused_on_both_streams() {
    let (commands, log) = setup().await;
    ready_instance(&commands, "main").await;
    commands
        .request_bind(&ann(), &origin(), "db", "main", "shop", true)
        .await
        .unwrap();
    let head = head(&log).await;
    let refused = commands
        .request_bind(&ann(), &origin(), "db", "main", "shop", true)
        .await
        .unwrap_err();
    assert_eq!(
        conflict_code(&refused),
        Some("instance_busy"),
        "{refused:?}"
    );
    assert_eq!(super::head(&log).await, head);
    assert_eq!(
        app(&commands, "shop").await.bindings().len(),
        1,
        "one pending binding"
    );
}

#[tokio::test]
async fn a_new_endpoint_needs_the_password_again() {
    let (commands, log) = setup().await;
    let head = head(&log).await;
    let refused = commands
        .update_service(
            &ann(),
            &origin(),
            "db",
            UpdateService {
                endpoint: Some("http://127.0.0.1:9998/api".into()),
                password: None,
            },
            &insecure(),
        )
        .await
        .unwrap_err();
    assert_eq!(invalid_field(&refused), Some("password"), "{refused:?}");
    assert_eq!(super::head(&log).await, head, "nothing written");
    // The same endpoint again is no new one.
    commands
        .update_service(
            &ann(),
            &origin(),
            "db",
            UpdateService {
                endpoint: Some("http://127.0.0.1:9999/api/".into()),
                password: None,
            },
            &insecure(),
        )
        .await
        .unwrap();
    assert_eq!(super::head(&log).await, head, "no change");
    let (view, _) = commands
        .update_service(
            &ann(),
            &origin(),
            "db",
            UpdateService {
                endpoint: Some("http://127.0.0.1:9998/api".into()),
                password: Some(SecretString::from("for-the-new-host")),
            },
            &insecure(),
        )
        .await
        .unwrap();
    assert_eq!(view.endpoint, "http://127.0.0.1:9998/api");
}

/// cat, of ops and dev, binds ops' instance `main` to bob's app `blog` (team dev).
async fn main_bound_to_blog(commands: &Commands<Racing>) {
    commands
        .create_app(
            &bob(),
            &origin(),
            &AppRules { default_quota: -1 },
            CreateApp {
                name: "blog".into(),
                platform: "python".into(),
                ..CreateApp::default()
            },
        )
        .await
        .unwrap();
    ready_instance(commands, "main").await;
    let cat = member("cat", &["ops", "dev"]);
    let (intent, _) = commands
        .request_bind(&cat, &origin(), "db", "main", "blog", false)
        .await
        .unwrap();
    record(commands, &intent, vars(&[("DATABASE_URL", "postgres://x")]))
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn whoever_manages_an_app_unbinds_what_is_bound_to_it() {
    let (commands, log) = setup().await;
    main_bound_to_blog(&commands).await;
    let head = head(&log).await;
    // ann sees the instance but does not manage blog.
    let refused = commands
        .request_unbind(&ann(), &origin(), "db", "main", "blog", false)
        .await
        .unwrap_err();
    assert!(matches!(refused, CommandError::Forbidden(_)), "{refused:?}");
    // bob does not see the instance: not bound to his app, it is none of his (404)...
    ready_instance(&commands, "other").await;
    let head = head.max(super::head(&log).await);
    let refused = commands
        .request_unbind(&bob(), &origin(), "db", "other", "blog", false)
        .await
        .unwrap_err();
    assert!(not_found(&refused), "{refused:?}");
    assert_eq!(super::head(&log).await, head, "nothing written");
    // ...but bound to it, he lists it and unbinds it.
    assert_eq!(
        commands.app_bound_instances(&bob(), "blog").await.unwrap(),
        [("db".to_string(), "main".to_string())]
    );
    let (intent, _) = commands
        .request_unbind(&bob(), &origin(), "db", "main", "blog", false)
        .await
        .unwrap();
    record(&commands, &intent, done()).await.unwrap().unwrap();
    let blog = app(&commands, "blog").await;
    assert!(blog.bindings().is_empty() && blog.env().is_empty());
    assert!(commands
        .app_bound_instances(&bob(), "blog")
        .await
        .unwrap()
        .is_empty());
    // Who may not remove the app does not list them: 404 for no app, 403 for another's.
    assert!(matches!(
        commands
            .app_bound_instances(&ann(), "blog")
            .await
            .unwrap_err(),
        CommandError::Forbidden(_)
    ));
    assert!(not_found(
        &commands
            .app_bound_instances(&bob(), "nope")
            .await
            .unwrap_err()
    ));
}

#[tokio::test]
async fn a_pending_bind_refuses_the_removal_before_anything_is_unbound() {
    let (commands, _log) = setup().await;
    ready_instance(&commands, "main").await;
    commands
        .request_bind(&ann(), &origin(), "db", "main", "shop", false)
        .await
        .unwrap();
    let refused = commands
        .app_bound_instances(&ann(), "shop")
        .await
        .unwrap_err();
    assert_eq!(conflict_code(&refused), Some("app_has_bindings"));
    let refused = commands
        .remove_app(&ann(), &origin(), "shop")
        .await
        .unwrap_err();
    assert_eq!(conflict_code(&refused), Some("app_has_bindings"));
    assert!(
        !refused.to_string().contains("main"),
        "counted, not named: {refused}"
    );
}

#[tokio::test]
async fn an_unbind_gives_the_app_own_value_back() {
    let (commands, _log) = setup().await;
    ready_instance(&commands, "main").await;
    commands
        .set_app_env(
            &ann(),
            &origin(),
            "shop",
            vec![crate::apps::EnvInput {
                name: "DATABASE_URL".into(),
                value: "sqlite://".into(),
                public: true,
            }],
            false,
        )
        .await
        .unwrap();
    let (intent, _) = commands
        .request_bind(&ann(), &origin(), "db", "main", "shop", false)
        .await
        .unwrap();
    record(
        &commands,
        &intent,
        vars(&[("DATABASE_URL", "postgres://x")]),
    )
    .await
    .unwrap()
    .unwrap();
    let name = EnvName::parse("DATABASE_URL").unwrap();
    assert!(matches!(
        app(&commands, "shop").await.env().get(&name),
        Some(EnvValue::Private { .. })
    ));
    let (intent, _) = commands
        .request_unbind(&ann(), &origin(), "db", "main", "shop", true)
        .await
        .unwrap();
    record(&commands, &intent, done()).await.unwrap().unwrap();
    let shop = app(&commands, "shop").await;
    assert_eq!(
        shop.env().get(&name).and_then(EnvValue::public_value),
        Some("sqlite://")
    );
    assert!(shop.bound().is_empty());
}

#[tokio::test]
async fn a_refusal_quotes_a_long_variable_name_shortened() {
    let (commands, log) = setup().await;
    ready_instance(&commands, "main").await;
    let (intent, _) = commands
        .request_bind(&ann(), &origin(), "db", "main", "shop", true)
        .await
        .unwrap();
    let long = "A".repeat(200);
    let bad = format!("{} BAD", "B".repeat(100));
    record(
        &commands,
        &intent,
        vars(&[(long.as_str(), "s3cret\0"), (bad.as_str(), "s3cret")]),
    )
    .await
    .unwrap()
    .unwrap();
    let log_text = whole_log(&log).await;
    assert!(log_text.contains("the service answered variables Bosun cannot use"));
    assert!(log_text.contains(&format!("{}…", "A".repeat(64))));
    assert!(!log_text.contains(&"A".repeat(65)));
    assert!(log_text.contains(&format!("{}…", "B".repeat(64))));
    assert!(!log_text.contains(&"B".repeat(65)));
    assert!(!log_text.contains("s3cret"));
}

/// Commands over a fresh PostgreSQL log with every read model projected, sealing with a test
/// key, and the same world as [`setup`]. The projections run as long as the returned handle.
async fn setup_on_postgres() -> (
    Commands<bosun_eventstore::PgEventStore>,
    bosun_projections::Running,
) {
    let config = bosun_eventstore::testing::fresh_database().await;
    let store = bosun_eventstore::PgEventStore::open(&config).await.unwrap();
    let projections = bosun_projections::Projections::new(bosun_projections::all());
    projections.prepare(&config).await.unwrap();
    let running = projections.start(store.clone(), &config).await.unwrap();
    let commands = Commands::new(store, running.freshness())
        .with_sealer(Sealer::new(&SecretSlice::from(vec![7u8; 32])));
    for (team, creator) in [("ops", "ann"), ("dev", "bob")] {
        commands
            .execute::<Team>(team, &SYSTEM, &origin(), |state| {
                state.handle(TeamCommand::Create {
                    name: TeamName::parse(team).unwrap(),
                    creator: Username::parse(creator).unwrap(),
                })
            })
            .await
            .unwrap();
    }
    commands
        .register_service(&ann(), &origin(), register("db", &["ops"]), &insecure())
        .await
        .unwrap();
    (commands, running)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_with_a_service_or_an_instance_is_not_removed() {
    let (commands, _running) = setup_on_postgres().await;
    commands
        .grant_service_team(&ann(), &origin(), "db", "dev")
        .await
        .unwrap();
    let (intent, _) = commands
        .request_instance(&bob(), &origin(), "db", create("main", "dev"))
        .await
        .unwrap();
    record(&commands, &intent, done()).await.unwrap().unwrap();
    let refused = commands
        .remove_team(&bob(), &origin(), "dev")
        .await
        .unwrap_err();
    assert_eq!(conflict_code(&refused), Some("team_has_instances"));
    assert!(refused.to_string().contains("db/main"), "{refused}");
    // The instance gone, the service it is granted holds it still.
    let (intent, _) = commands
        .request_instance_removal(&bob(), &origin(), "db", "main")
        .await
        .unwrap();
    record(&commands, &intent, done()).await.unwrap().unwrap();
    let refused = commands
        .remove_team(&bob(), &origin(), "dev")
        .await
        .unwrap_err();
    assert_eq!(conflict_code(&refused), Some("team_has_services"));
    commands
        .revoke_service_team(&ann(), &origin(), "db", "dev")
        .await
        .unwrap();
    commands
        .remove_team(&bob(), &origin(), "dev")
        .await
        .unwrap();
    // An owner team goes with its service only.
    let refused = commands
        .remove_team(&ann(), &origin(), "ops")
        .await
        .unwrap_err();
    assert_eq!(conflict_code(&refused), Some("team_has_services"));
    commands
        .remove_service(&ann(), &origin(), "db")
        .await
        .unwrap();
    commands
        .remove_team(&ann(), &origin(), "ops")
        .await
        .unwrap();
}
