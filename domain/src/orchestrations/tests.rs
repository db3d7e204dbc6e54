//! Given these past events, when this command, then these events or this error.

use super::*;
use crate::jobs::Catalog;
use crate::testing::given;
use crate::DomainError;
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

fn state(events: &[OrchestrationEvent]) -> Orchestration {
    given::<Orchestration>(events).state().clone()
}

fn deleted() -> DomainError {
    DomainError::conflict(
        "orchestration_deleted",
        "the orchestration was deleted; it can be read but not changed or run",
    )
}

/// The run the scheduler fires for `slot` of `o1`.
fn run(slot: &str, catch_up: bool, missed: u32, next: Option<&str>) -> OrchestrationEvent {
    OrchestrationEvent::OrchestrationRunScheduled {
        scheduled_for: at(slot),
        job_id: scheduled_job_id("o1", at(slot)),
        catch_up,
        missed,
        next_scheduled_at: next.map(at),
    }
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
    given::<Orchestration>(&[])
        .when(command)
        .refused(DomainError::invalid(
            "name",
            "must be 1 to 256 characters, not blank",
        ));
}

#[test]
fn a_creation_records_the_definition_with_its_first_slot() {
    let OrchestrationEvent::OrchestrationCreated(mut d) = created(Some("0 * * * *"), true) else {
        unreachable!()
    };
    let command = OrchestrationCommand::Create(d.clone());
    d.next_scheduled_at = Some(at("2026-11-23T11:00:00Z"));
    given::<Orchestration>(&[])
        .when(command.clone())
        .then(vec![OrchestrationEvent::OrchestrationCreated(d)]);
    given::<Orchestration>(&[created(None, true)])
        .when(command)
        .refused(DomainError::conflict(
            "orchestration_exists",
            "the orchestration exists",
        ));
    // Inactive, it has no next run.
    let OrchestrationEvent::OrchestrationCreated(d) = created(Some("0 * * * *"), false) else {
        unreachable!()
    };
    given::<Orchestration>(&[])
        .when(OrchestrationCommand::Create(d.clone()))
        .then(vec![OrchestrationEvent::OrchestrationCreated(d)]);
}

#[test]
fn an_update_records_only_what_changed() {
    let changes = Changes {
        name: Some("nightly".into()),
        crontab: Some(Some(Crontab::parse("0 * * * *").unwrap())),
        active: Some(true),
        ..Changes::default()
    };
    given::<Orchestration>(&[created(None, true)])
        .when(OrchestrationCommand::Update {
            changes: Box::new(changes),
            at: at("2026-11-23T11:00:00Z"),
        })
        .then(vec![OrchestrationEvent::OrchestrationScheduleChanged {
            crontab: Some(Crontab::parse("0 * * * *").unwrap()),
            at: at("2026-11-23T11:00:00Z"),
            next_scheduled_at: Some(at("2026-11-23T12:00:00Z")),
        }]);
}

#[test]
fn an_update_of_everything_records_each_change_in_order() {
    let o = state(&[created(Some("0 * * * *"), true)]);
    let mut tasks = o.tasks.clone();
    tasks.pop();
    let notifications =
        parse_notifications(json!([{"email": "ops@x.io", "channel": "error"}])).unwrap();
    let changes = Changes {
        name: Some("hourly".into()),
        crontab: Some(None),
        active: Some(false),
        tasks: Some(tasks.clone()),
        notifications: Some(notifications.clone()),
    };
    given::<Orchestration>(&[created(Some("0 * * * *"), true)])
        .when(OrchestrationCommand::Update {
            changes: Box::new(changes),
            at: at("2026-11-23T11:00:00Z"),
        })
        .then(vec![
            OrchestrationEvent::OrchestrationRenamed {
                name: "hourly".into(),
            },
            OrchestrationEvent::OrchestrationScheduleChanged {
                crontab: None,
                at: at("2026-11-23T11:00:00Z"),
                next_scheduled_at: None,
            },
            OrchestrationEvent::OrchestrationDeactivated {},
            OrchestrationEvent::OrchestrationTasksReplaced { tasks },
            OrchestrationEvent::OrchestrationNotificationsReplaced { notifications },
        ]);
    given::<Orchestration>(&[created(None, true)])
        .when(OrchestrationCommand::Update {
            changes: Box::new(Changes {
                name: Some(" ".into()),
                ..Changes::default()
            }),
            at: at("2026-11-23T11:00:00Z"),
        })
        .refused(DomainError::invalid(
            "name",
            "must be 1 to 256 characters, not blank",
        ));
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
        given::<Orchestration>(&past)
            .when(command)
            .refused(deleted());
    }
    let o = state(&past);
    assert_eq!(o.name, "nightly");
    assert_eq!(o.next_scheduled_at(), None);
    assert_eq!(o.tasks_for_run(None), Err(deleted()));
    given::<Orchestration>(&[])
        .when(OrchestrationCommand::Delete)
        .refused(DomainError::NotFound("no such orchestration".into()));
    given::<Orchestration>(&past[..1])
        .when(OrchestrationCommand::Delete)
        .then(vec![OrchestrationEvent::OrchestrationDeleted {}]);
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
    // Nothing due yet.
    given::<Orchestration>(&past)
        .when(schedule("2026-11-23T10:00:59Z"))
        .then_nothing();
    // The event says what comes next.
    let fired = run(
        "2026-11-23T10:01:00Z",
        false,
        0,
        Some("2026-11-23T10:02:00Z"),
    );
    given::<Orchestration>(&past)
        .when(schedule("2026-11-23T10:01:00.300Z"))
        .then(vec![fired.clone()]);
    // The same slot never again.
    let after = [past[0].clone(), fired];
    given::<Orchestration>(&after)
        .when(schedule("2026-11-23T10:01:40Z"))
        .then_nothing();
    assert_eq!(
        state(&after).next_scheduled_at(),
        Some(at("2026-11-23T10:02:00Z"))
    );
}

#[test]
fn after_downtime_missed_slots_fire_once_as_a_catch_up() {
    let past = [created(Some("* * * * *"), true)];
    let caught_up = run(
        "2026-11-23T10:10:00Z",
        true,
        9,
        Some("2026-11-23T10:11:00Z"),
    );
    given::<Orchestration>(&past)
        .when(schedule("2026-11-23T10:10:20Z"))
        .then(vec![caught_up.clone()]);
    given::<Orchestration>(&[past[0].clone(), caught_up])
        .when(schedule("2026-11-23T10:10:50Z"))
        .then_nothing();
    // One slot, but very late (a long pause), is a catch-up too.
    given::<Orchestration>(&[created(Some("0 * * * *"), true)])
        .when(schedule("2026-11-23T11:05:00Z"))
        .then(vec![run(
            "2026-11-23T11:00:00Z",
            true,
            0,
            Some("2026-11-23T12:00:00Z"),
        )]);
}

#[test]
fn an_inactive_or_unscheduled_orchestration_never_fires_and_missed_slots_stay_missed() {
    given::<Orchestration>(&[created(Some("* * * * *"), false)])
        .when(schedule("2026-11-23T12:00:00Z"))
        .then_nothing();
    given::<Orchestration>(&[created(None, true)])
        .when(schedule("2026-11-23T12:00:00Z"))
        .then_nothing();
    let reactivated = [
        created(Some("* * * * *"), false),
        OrchestrationEvent::OrchestrationActivated {
            at: at("2026-11-23T11:59:30Z"),
            next_scheduled_at: None,
        },
    ];
    given::<Orchestration>(&reactivated)
        .when(schedule("2026-11-23T12:00:01Z"))
        .then(vec![run(
            "2026-11-23T12:00:00Z",
            false,
            0,
            Some("2026-11-23T12:01:00Z"),
        )]);
}

#[test]
fn refreshing_the_token_revokes_the_old_one() {
    let new = Uuid::new_v4();
    given::<Orchestration>(&[created(None, true)])
        .when(OrchestrationCommand::RefreshToken { token_id: new })
        .then(vec![OrchestrationEvent::OrchestrationTokenRefreshed {
            token_id: new,
            revoked_token_id: Uuid::nil(),
        }]);
}

// ---- Secret URLs ----

fn sealed(shown: &str) -> StoredUrl {
    StoredUrl::Sealed {
        sealed: crate::sealed::Sealed::from_stored(
            "v1.AAECAwQFBgcICQoL.qrvM3e7_ABEiM0RVZneImaq7zN3u_w".into(),
        ),
        shown: shown.into(),
    }
}

#[test]
fn an_orchestration_stored_with_its_urls_in_clear_still_loads() {
    // As OrchestrationCreated was stored before sealing: every URL a plain string.
    let data = json!({
        "id": "o1", "name": "nightly", "crontab": null, "active": true,
        "tasks": [{"component": null, "component_url": "https://bot:pa55@api.example.com/run",
                   "action": null, "parameters": {}, "continue_on_failure": false,
                   "timeout_minutes": null, "active": true}],
        "notifications": [{"email": null, "webhook_url": "https://hooks.example.com/T0/s3cret",
                           "channel": "error", "parameters": {}}],
        "token_id": Uuid::nil(), "created_by": "ann", "at": "2026-11-23T10:00:30Z",
        "next_scheduled_at": null
    });
    let created: OrchestrationEvent = crate::decode("OrchestrationCreated", &data).unwrap();
    let replaced: OrchestrationEvent = crate::decode(
        "OrchestrationNotificationsReplaced",
        &json!({"notifications": data["notifications"]}),
    )
    .unwrap();
    let o = state(&[created.clone(), replaced]);
    assert_eq!(
        o.tasks[0].url(),
        Some(&StoredUrl::Clear(
            "https://bot:pa55@api.example.com/run".into()
        ))
    );
    assert_eq!(
        o.notifications[0].webhook_url,
        Some(StoredUrl::Clear(
            "https://hooks.example.com/T0/s3cret".into()
        ))
    );
    // Written back exactly as stored.
    assert_eq!(
        crate::encode(&created).unwrap(),
        ("OrchestrationCreated".to_string(), data)
    );
    // And shown redacted.
    assert_eq!(o.tasks[0].name(), "https://api.example.com/…");
    assert_eq!(o.notifications[0].target(), "https://hooks.example.com/…");
}

#[test]
fn a_secret_url_in_clear_is_refused_before_it_reaches_an_event() {
    let tasks = parse_tasks(json!([{"component_url": "https://bot:pa55@x.io/run"}])).unwrap();
    let notifications =
        parse_notifications(json!([{"webhook_url": "https://x.io/h", "channel": "error"}]))
            .unwrap();
    let update = |changes: Changes| OrchestrationCommand::Update {
        changes: Box::new(changes),
        at: at("2026-11-23T11:00:00Z"),
    };
    given::<Orchestration>(&[created(None, true)])
        .when(update(Changes {
            tasks: Some(tasks.clone()),
            ..Changes::default()
        }))
        .refused(DomainError::invalid(
            "tasks",
            "component_url \"https://x.io/…\" holds a secret and must be sealed before it is stored",
        ));
    given::<Orchestration>(&[created(None, true)])
        .when(update(Changes {
            notifications: Some(notifications.clone()),
            ..Changes::default()
        }))
        .refused(DomainError::invalid(
            "notifications",
            "webhook_url \"https://x.io/…\" holds a secret and must be sealed before it is stored",
        ));
    let OrchestrationEvent::OrchestrationCreated(mut d) = created(None, true) else {
        unreachable!()
    };
    d.notifications = notifications.clone();
    given::<Orchestration>(&[])
        .when(OrchestrationCommand::Create(d.clone()))
        .refused(DomainError::invalid(
            "notifications",
            "webhook_url \"https://x.io/…\" holds a secret and must be sealed before it is stored",
        ));
    // Sealed, they are stored; a component_url with nothing secret stays in clear.
    let mut tasks = tasks;
    *tasks[0].url_mut().unwrap() = sealed("https://x.io/…");
    tasks.extend(parse_tasks(json!([{"component_url": "https://x.io/plain"}])).unwrap());
    let mut notifications = notifications;
    notifications[0].webhook_url = Some(sealed("https://x.io/…"));
    given::<Orchestration>(&[created(None, true)])
        .when(update(Changes {
            tasks: Some(tasks.clone()),
            notifications: Some(notifications.clone()),
            ..Changes::default()
        }))
        .then(vec![
            OrchestrationEvent::OrchestrationTasksReplaced {
                tasks: tasks.clone(),
            },
            OrchestrationEvent::OrchestrationNotificationsReplaced {
                notifications: notifications.clone(),
            },
        ]);
    // The same sealed values given again are no change.
    let past = [
        created(None, true),
        OrchestrationEvent::OrchestrationTasksReplaced {
            tasks: tasks.clone(),
        },
        OrchestrationEvent::OrchestrationNotificationsReplaced {
            notifications: notifications.clone(),
        },
    ];
    given::<Orchestration>(&past)
        .when(update(Changes {
            tasks: Some(tasks.clone()),
            notifications: Some(notifications),
            ..Changes::default()
        }))
        .then_nothing();
    // A manual run of its tasks with one made inactive is the orchestration's tasks.
    let o = state(&past);
    let mut requested = tasks.clone();
    requested[1].active = false;
    assert_eq!(o.tasks_for_run(Some(requested.clone())), Ok(requested));
}
