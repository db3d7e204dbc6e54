//! Given these past events, when this command, then these events or this error.

use super::*;
use crate::jobs::Catalog;
use crate::{Aggregate, DomainError};
use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn catalog() -> Catalog {
    serde_json::from_value(json!({"shop": {"production": {
        "deploy": {"command": ["true"]},
        "migrate": {"command": ["false"]}
    }}}))
    .unwrap()
}

fn parse_tasks(tasks: serde_json::Value) -> Result<Vec<Task>, DomainError> {
    let catalog = catalog();
    let hosts = vec!["127.0.0.1".to_string()];
    let rules = TaskRules {
        catalog: &catalog,
        allow_insecure_hosts: &hosts,
    };
    Task::parse_all(serde_json::from_value(tasks).unwrap(), &rules)
}

fn parse_notifications(n: serde_json::Value) -> Result<Vec<Notification>, DomainError> {
    let catalog = catalog();
    let rules = TaskRules {
        catalog: &catalog,
        allow_insecure_hosts: &[],
    };
    Notification::parse_all(serde_json::from_value(n).unwrap(), &rules)
}

fn invalid(result: Result<impl std::fmt::Debug, DomainError>) -> (&'static str, String) {
    match result {
        Err(DomainError::Invalid { field, message }) => (field, message),
        other => panic!("expected a 400, got {other:?}"),
    }
}

fn conflict<T: std::fmt::Debug>(result: Result<T, DomainError>) -> &'static str {
    match result {
        Err(DomainError::Conflict { code, .. }) => code,
        other => panic!("expected a 409, got {other:?}"),
    }
}

fn created(crontab: Option<&str>, active: bool) -> OrchestrationEvent {
    OrchestrationEvent::OrchestrationCreated(Box::new(Definition {
        id: "o1".into(),
        name: "nightly".into(),
        crontab: crontab.map(|c| Crontab::parse(c).unwrap()),
        active,
        tasks: parse_tasks(json!([
            {"component": "shop/production/deploy"},
            {"component": "shop/production/migrate", "continue_on_failure": true},
        ]))
        .unwrap(),
        notifications: vec![],
        token_id: Uuid::nil(),
        created_by: "ann".into(),
        at: at("2026-11-23T10:00:30Z"),
        next_scheduled_at: None,
    }))
}

fn given(
    events: &[OrchestrationEvent],
    command: OrchestrationCommand,
) -> Result<Vec<OrchestrationEvent>, DomainError> {
    state(events).handle(command)
}

fn state(events: &[OrchestrationEvent]) -> Orchestration {
    let mut o = Orchestration::default();
    events.iter().for_each(|e| o.apply(e));
    o
}

fn schedule(now: &str) -> OrchestrationCommand {
    OrchestrationCommand::ScheduleRun { now: at(now) }
}

#[test]
fn a_task_names_exactly_one_of_component_and_component_url() {
    let (field, message) = invalid(parse_tasks(
        json!([{"component": "shop/production/deploy", "component_url": "https://x.io/run"}]),
    ));
    assert_eq!(field, "tasks");
    assert!(message.contains("exactly one"), "{message}");
    invalid(parse_tasks(json!([{"action": "run"}])));
    assert!(parse_tasks(json!([{"component_url": "https://x.io/run"}])).is_ok());
}

#[test]
fn a_component_is_a_catalog_task_written_app_env_task() {
    let (_, message) = invalid(parse_tasks(json!([{"component": "shop/production/nope"}])));
    assert!(message.contains("nope"), "{message}");
    let (_, message) = invalid(parse_tasks(json!([{"component": "deploy"}])));
    assert!(message.contains("app/env/task"), "{message}");
}

#[test]
fn component_urls_are_https_unless_the_host_is_allowed() {
    let (_, message) = invalid(parse_tasks(
        json!([{"component_url": "http://example.com/run"}]),
    ));
    assert!(message.contains("https"), "{message}");
    invalid(parse_tasks(
        json!([{"component_url": "ftp://example.com/run"}]),
    ));
    invalid(parse_tasks(json!([{"component_url": "not a url"}])));
    assert!(parse_tasks(json!([{"component_url": "http://127.0.0.1:9000/run"}])).is_ok());
}

#[test]
fn bad_task_fields_are_refused() {
    invalid(parse_tasks(
        json!([{"component": "shop/production/deploy", "timeout_minutes": 0}]),
    ));
    invalid(parse_tasks(
        json!([{"component": "shop/production/deploy", "parameters": [1]}]),
    ));
}

#[test]
fn notifications_need_one_target_a_channel_and_their_parameters() {
    invalid(parse_notifications(json!([{"channel": "error"}])));
    invalid(parse_notifications(
        json!([{"email": "a@x.io", "webhook_url": "https://x.io", "channel": "error"}]),
    ));
    invalid(parse_notifications(
        json!([{"email": "a@x.io", "channel": "sometimes"}]),
    ));
    invalid(parse_notifications(
        json!([{"email": "not-an-address", "channel": "error"}]),
    ));
    invalid(parse_notifications(
        json!([{"email": "a@x.io", "channel": "waiting"}]),
    ));
    invalid(parse_notifications(
        json!([{"email": "a@x.io", "channel": "processing", "parameters": {"tolerance": -5}}]),
    ));
    invalid(parse_notifications(
        json!([{"webhook_url": "http://x.io/h", "channel": "error"}]),
    ));
    let ok = parse_notifications(json!([
        {"email": "a@x.io", "channel": "waiting", "parameters": {"timeout": 5}},
        {"webhook_url": "https://x.io/h", "channel": "processing"},
    ]))
    .unwrap();
    assert_eq!(ok[0].waiting_minutes(), Some(5.0));
    assert_eq!(ok[1].tolerance_percent(), Some(DEFAULT_TOLERANCE_PERCENT));
}

#[test]
fn a_name_is_required() {
    let mut past = [created(None, true)];
    let OrchestrationEvent::OrchestrationCreated(d) = &mut past[0] else {
        unreachable!()
    };
    d.name = "  ".into();
    let command = OrchestrationCommand::Create(d.clone());
    invalid(given(&[], command));
}

#[test]
fn an_update_records_only_what_changed() {
    let changes = Changes {
        name: Some("nightly".into()),
        crontab: Some(Some(Crontab::parse("0 * * * *").unwrap())),
        active: Some(true),
        ..Changes::default()
    };
    let events = given(
        &[created(None, true)],
        OrchestrationCommand::Update {
            changes: Box::new(changes),
            at: at("2026-11-23T11:00:00Z"),
        },
    )
    .unwrap();
    assert!(
        matches!(
            events[..],
            [OrchestrationEvent::OrchestrationScheduleChanged { .. }]
        ),
        "{events:?}"
    );
}

#[test]
fn a_deleted_orchestration_accepts_no_command_but_reads() {
    let past = [
        created(Some("* * * * *"), true),
        OrchestrationEvent::OrchestrationDeleted {},
    ];
    for command in [
        OrchestrationCommand::Delete,
        OrchestrationCommand::RefreshToken {
            token_id: Uuid::new_v4(),
        },
        OrchestrationCommand::Update {
            changes: Box::default(),
            at: at("2026-11-23T11:00:00Z"),
        },
        schedule("2026-11-23T12:00:00Z"),
    ] {
        assert_eq!(conflict(given(&past, command)), "orchestration_deleted");
    }
    let o = state(&past);
    assert_eq!(o.name, "nightly");
    assert_eq!(o.next_scheduled_at(), None);
    assert_eq!(conflict(o.tasks_for_run(None)), "orchestration_deleted");
    assert!(matches!(
        given(&[], OrchestrationCommand::Delete),
        Err(DomainError::NotFound(_))
    ));
}

#[test]
fn a_manual_run_may_change_only_which_tasks_are_active() {
    let o = state(&[created(None, true)]);
    let mut tasks = o.tasks.clone();
    tasks[1].active = false;
    assert!(!o.tasks_for_run(Some(tasks.clone())).unwrap()[1].active);
    assert_eq!(o.tasks_for_run(None).unwrap(), o.tasks);
    let mut reordered = o.tasks.clone();
    reordered.reverse();
    let mut changed = o.tasks.clone();
    changed[0].continue_on_failure = true;
    for bad in [reordered, changed, o.tasks[..1].to_vec()] {
        let (field, _) = invalid(o.tasks_for_run(Some(bad)));
        assert_eq!(field, "tasks");
    }
}

#[test]
fn the_scheduler_fires_each_slot_once() {
    let past = [created(Some("* * * * *"), true)];
    assert_eq!(
        given(&past, schedule("2026-11-23T10:00:59Z")).unwrap(),
        vec![],
        "nothing due yet"
    );
    let events = given(&past, schedule("2026-11-23T10:01:00.300Z")).unwrap();
    let [OrchestrationEvent::OrchestrationRunScheduled {
        scheduled_for,
        job_id,
        catch_up: false,
        missed: 0,
        next_scheduled_at,
    }] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert_eq!(*scheduled_for, at("2026-11-23T10:01:00Z"));
    assert_eq!(*job_id, scheduled_job_id("o1", *scheduled_for));
    assert_eq!(
        *next_scheduled_at,
        Some(at("2026-11-23T10:02:00Z")),
        "the event says what comes next"
    );
    let fired = [past[0].clone(), events[0].clone()];
    assert_eq!(
        given(&fired, schedule("2026-11-23T10:01:40Z")).unwrap(),
        vec![],
        "the same slot never again"
    );
    assert_eq!(
        state(&fired).next_scheduled_at(),
        Some(at("2026-11-23T10:02:00Z"))
    );
}

#[test]
fn after_downtime_missed_slots_fire_once_as_a_catch_up() {
    let past = [created(Some("* * * * *"), true)];
    let events = given(&past, schedule("2026-11-23T10:10:20Z")).unwrap();
    let [OrchestrationEvent::OrchestrationRunScheduled {
        scheduled_for,
        catch_up: true,
        missed: 9,
        ..
    }] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert_eq!(*scheduled_for, at("2026-11-23T10:10:00Z"));
    let caught_up = [past[0].clone(), events[0].clone()];
    assert_eq!(
        given(&caught_up, schedule("2026-11-23T10:10:50Z")).unwrap(),
        vec![]
    );
    // One slot, but very late (a long pause), is a catch-up too.
    let hourly = [created(Some("0 * * * *"), true)];
    let events = given(&hourly, schedule("2026-11-23T11:05:00Z")).unwrap();
    assert!(matches!(
        events[..],
        [OrchestrationEvent::OrchestrationRunScheduled {
            catch_up: true,
            missed: 0,
            ..
        }]
    ));
}

#[test]
fn an_inactive_or_unscheduled_orchestration_never_fires_and_missed_slots_stay_missed() {
    assert_eq!(
        given(
            &[created(Some("* * * * *"), false)],
            schedule("2026-11-23T12:00:00Z")
        )
        .unwrap(),
        vec![]
    );
    assert_eq!(
        given(&[created(None, true)], schedule("2026-11-23T12:00:00Z")).unwrap(),
        vec![]
    );
    let reactivated = [
        created(Some("* * * * *"), false),
        OrchestrationEvent::OrchestrationActivated {
            at: at("2026-11-23T11:59:30Z"),
            next_scheduled_at: None,
        },
    ];
    let events = given(&reactivated, schedule("2026-11-23T12:00:01Z")).unwrap();
    assert!(
        matches!(
            events[..],
            [OrchestrationEvent::OrchestrationRunScheduled {
                catch_up: false,
                missed: 0,
                ..
            }]
        ),
        "{events:?}"
    );
}

#[test]
fn refreshing_the_token_revokes_the_old_one() {
    let new = Uuid::new_v4();
    let events = given(
        &[created(None, true)],
        OrchestrationCommand::RefreshToken { token_id: new },
    )
    .unwrap();
    assert_eq!(
        events,
        vec![OrchestrationEvent::OrchestrationTokenRefreshed {
            token_id: new,
            revoked_token_id: Uuid::nil()
        }]
    );
}
