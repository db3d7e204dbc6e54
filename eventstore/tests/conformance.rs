//! One suite, every implementation: each test here runs against the in-memory store and against
//! PostgreSQL (a fresh database on the test binary's managed server).

use bosun_eventstore::{
    AppendError, AppendResult, CurrentVersion, EventStore, ExpectedVersion, Filter,
    InMemoryEventStore, NewEvent, PgEventStore, StreamAppend, StreamId,
};
use futures::StreamExt;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

fn stream(s: &str) -> StreamId {
    StreamId::parse(s).unwrap()
}

fn event(n: u64) -> NewEvent {
    NewEvent::new("Counted", json!({ "n": n }))
}

async fn pg() -> PgEventStore {
    let config = bosun_eventstore::testing::fresh_database().await;
    PgEventStore::open(&config)
        .await
        .expect("open the PostgreSQL store")
}

macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(bosun_eventstore::InMemoryEventStore::new()).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::pg().await).await
                }
            )*
        }
    };
}

conformance!(
    appends_with_expected_versions,
    refuses_a_wrong_expected_version_with_the_actual_one,
    stream_exists_and_no_stream_expectations,
    retried_append_returns_the_first_result_and_writes_nothing,
    partly_retried_append_is_a_conflict,
    refuses_an_empty_append,
    refuses_a_nul_with_a_typed_error_and_writes_nothing,
    reads_a_stream_from_a_version,
    reads_all_with_category_type_and_actor_filters,
    subscription_catches_up_then_goes_live,
    filtered_subscription_skips_other_events,
    ordering_holds_under_concurrent_appends_and_subscribers,
    multi_append_writes_every_part_at_consecutive_positions,
    multi_append_with_a_conflict_in_any_part_writes_nothing,
    multi_append_refuses_what_it_cannot_write_as_asked,
    retried_multi_append_returns_the_first_results_and_writes_nothing,
    partly_retried_multi_append_is_a_conflict,
    concurrent_multi_appends_on_the_same_streams_one_wins_each_round,
    multi_appends_and_single_appends_decided_together_are_decided_apart,
);

async fn appends_with_expected_versions(store: impl EventStore) {
    let s = stream("job-1");
    assert_eq!(store.head().await.unwrap(), 0);
    let first = store
        .append(&s, ExpectedVersion::NoStream, vec![event(1), event(2)])
        .await
        .unwrap();
    assert_eq!((first.first_version, first.last_version), (0, 1));
    assert_eq!((first.first_position, first.last_position), (1, 2));
    let second = store
        .append(&s, ExpectedVersion::Exact(1), vec![event(3)])
        .await
        .unwrap();
    assert_eq!(
        (
            second.first_version,
            second.last_version,
            second.last_position
        ),
        (2, 2, 3)
    );
    let other = store
        .append(&stream("job-2"), ExpectedVersion::Any, vec![event(4)])
        .await
        .unwrap();
    assert_eq!((other.first_version, other.last_position), (0, 4));
    assert_eq!(store.head().await.unwrap(), 4);
}

async fn refuses_a_wrong_expected_version_with_the_actual_one(store: impl EventStore) {
    let s = stream("job-1");
    store
        .append(&s, ExpectedVersion::Any, vec![event(1), event(2)])
        .await
        .unwrap();
    let err = store
        .append(&s, ExpectedVersion::Exact(0), vec![event(3)])
        .await
        .unwrap_err();
    match err {
        AppendError::WrongExpectedVersion {
            stream,
            expected,
            actual,
        } => {
            assert_eq!(stream, s);
            assert_eq!(expected, ExpectedVersion::Exact(0));
            assert_eq!(actual, CurrentVersion::Current(1));
        }
        other => panic!("expected a version conflict, got {other:?}"),
    }
    assert_eq!(
        store.head().await.unwrap(),
        2,
        "a refused append writes nothing"
    );
}

async fn stream_exists_and_no_stream_expectations(store: impl EventStore) {
    let s = stream("app-web");
    let err = store
        .append(&s, ExpectedVersion::StreamExists, vec![event(1)])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AppendError::WrongExpectedVersion {
                actual: CurrentVersion::NoStream,
                ..
            }
        ),
        "{err:?}"
    );
    let err = store
        .append(&s, ExpectedVersion::Exact(0), vec![event(1)])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AppendError::WrongExpectedVersion {
                actual: CurrentVersion::NoStream,
                ..
            }
        ),
        "{err:?}"
    );
    store
        .append(&s, ExpectedVersion::NoStream, vec![event(1)])
        .await
        .unwrap();
    let err = store
        .append(&s, ExpectedVersion::NoStream, vec![event(2)])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AppendError::WrongExpectedVersion {
                actual: CurrentVersion::Current(0),
                ..
            }
        ),
        "{err:?}"
    );
    store
        .append(&s, ExpectedVersion::StreamExists, vec![event(2)])
        .await
        .unwrap();
    assert_eq!(store.head().await.unwrap(), 2);
}

async fn retried_append_returns_the_first_result_and_writes_nothing(store: impl EventStore) {
    let s = stream("job-1");
    let events = vec![event(1), event(2)];
    let first = store
        .append(&s, ExpectedVersion::NoStream, events.clone())
        .await
        .unwrap();
    store
        .append(&stream("job-2"), ExpectedVersion::Any, vec![event(3)])
        .await
        .unwrap();
    // The retry's expectation no longer holds; it is a retry all the same.
    let retry = store
        .append(&s, ExpectedVersion::NoStream, events)
        .await
        .unwrap();
    assert_eq!(retry, first);
    assert_eq!(store.head().await.unwrap(), 3);
    assert_eq!(store.read_stream(&s, 0, 100).await.unwrap().len(), 2);
}

async fn partly_retried_append_is_a_conflict(store: impl EventStore) {
    let s = stream("job-1");
    let (a, b) = (event(1), event(2));
    store
        .append(&s, ExpectedVersion::Any, vec![a.clone()])
        .await
        .unwrap();
    let err = store
        .append(&s, ExpectedVersion::Any, vec![a.clone(), b])
        .await
        .unwrap_err();
    assert!(
        matches!(err, AppendError::EventIdConflict { .. }),
        "{err:?}"
    );
    let err = store
        .append(&stream("job-2"), ExpectedVersion::Any, vec![a])
        .await
        .unwrap_err();
    assert!(
        matches!(err, AppendError::EventIdConflict { .. }),
        "same id on another stream: {err:?}"
    );
    assert_eq!(store.head().await.unwrap(), 1);
}

async fn refuses_an_empty_append(store: impl EventStore) {
    let err = store
        .append(&stream("job-1"), ExpectedVersion::Any, vec![])
        .await
        .unwrap_err();
    assert!(matches!(err, AppendError::NoEvents), "{err:?}");
    assert_eq!(store.head().await.unwrap(), 0);
}

async fn refuses_a_nul_with_a_typed_error_and_writes_nothing(store: impl EventStore) {
    let bad = [
        NewEvent::new("Named", json!({"name": "x\u{0}"})),
        NewEvent::new("Named", json!({"parameters": {"k\u{0}": "v"}})),
        NewEvent::new("Named\u{0}", json!({})),
        NewEvent::new("Named", json!({})).with_metadata(json!({"actor": ["\u{0}"]})),
    ];
    let fields = [
        "events[1].data.name",
        "events[1].data.parameters.k\\u0000",
        "events[1].event_type",
        "events[1].metadata.actor[0]",
    ];
    for (bad, field) in bad.into_iter().zip(fields) {
        let err = store
            .append(&stream("job-1"), ExpectedVersion::Any, vec![event(1), bad])
            .await
            .unwrap_err();
        match err {
            AppendError::Unstorable { field: f, .. } => assert_eq!(f, field),
            other => panic!("expected Unstorable, got {other:?}"),
        }
    }
    assert_eq!(store.head().await.unwrap(), 0);
}

/// Only PostgreSQL gathers appends into shared transactions. A value the database refuses (here
/// by a CHECK constraint added for the test: NULs never get this far) must fail its own append
/// only, however many good appends share its transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_refused_append_fails_alone_in_its_batch() {
    let config = bosun_eventstore::testing::fresh_database().await;
    let store = PgEventStore::open(&config).await.expect("open the store");
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(
            "ALTER TABLE events ADD CONSTRAINT test_poison CHECK (data->>'poison' IS NULL)",
        )
        .await
        .unwrap();
    for round in 0..5u64 {
        let mut appends = Vec::new();
        for i in 0..21u64 {
            let store = store.clone();
            let data = if i == 10 {
                json!({"poison": true})
            } else {
                json!({"n": i})
            };
            appends.push(tokio::spawn(async move {
                store
                    .append(
                        &stream(&format!("job-{round}-{i}")),
                        ExpectedVersion::NoStream,
                        vec![NewEvent::new("Counted", data)],
                    )
                    .await
            }));
        }
        let results: Vec<_> = futures::future::join_all(appends)
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        for (i, result) in results.iter().enumerate() {
            if i == 10 {
                assert!(
                    matches!(result, Err(AppendError::Refused(reason)) if reason.starts_with("23514")),
                    "the poisoned append is refused, as a check violation: {result:?}"
                );
            } else {
                assert!(result.is_ok(), "round {round}, append {i}: {result:?}");
            }
        }
    }
    assert_eq!(
        store.head().await.unwrap(),
        100,
        "5 rounds of 20 good appends"
    );
}

async fn reads_a_stream_from_a_version(store: impl EventStore) {
    let s = stream("job-1");
    store
        .append(&s, ExpectedVersion::Any, (0..5).map(event).collect())
        .await
        .unwrap();
    store
        .append(&stream("job-2"), ExpectedVersion::Any, vec![event(9)])
        .await
        .unwrap();
    let read = store.read_stream(&s, 2, 2).await.unwrap();
    assert_eq!(
        read.iter().map(|e| e.version).collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert_eq!(read[0].data, json!({ "n": 2 }));
    assert_eq!(read[0].stream_id, s);
    assert_eq!(read[0].event_type, "Counted");
    assert!(store
        .read_stream(&stream("job-404"), 0, 10)
        .await
        .unwrap()
        .is_empty());
}

async fn reads_all_with_category_type_and_actor_filters(store: impl EventStore) {
    store
        .append(&stream("job-1"), ExpectedVersion::Any, vec![event(1)])
        .await
        .unwrap();
    store
        .append(
            &stream("app-web"),
            ExpectedVersion::Any,
            vec![NewEvent::new("AppCreated", json!({})).with_metadata(json!({"actor": "ann"}))],
        )
        .await
        .unwrap();
    store
        .append(
            &stream("job-2"),
            ExpectedVersion::Any,
            vec![NewEvent::new("JobStarted", json!({}))],
        )
        .await
        .unwrap();
    let all = store.read_all(1, 100, &Filter::all()).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let jobs = store
        .read_all(1, 100, &Filter::category("job"))
        .await
        .unwrap();
    assert_eq!(
        jobs.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![1, 3]
    );
    let started = Filter {
        event_types: vec!["JobStarted".into()],
        ..Filter::default()
    };
    assert_eq!(store.read_all(1, 100, &started).await.unwrap().len(), 1);
    let by_ann = Filter {
        actors: vec!["ann".into()],
        ..Filter::default()
    };
    let by_ann = store.read_all(1, 100, &by_ann).await.unwrap();
    assert_eq!(
        by_ann.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![2]
    );
    let page = store.read_page(2, 1, &Filter::all()).await.unwrap();
    assert_eq!(
        (page.events.len(), page.events[0].position, page.head),
        (1, 2, 3)
    );
    let empty = store.read_page(4, 10, &Filter::all()).await.unwrap();
    assert!(empty.events.is_empty());
    assert_eq!(empty.head, 3);
}

async fn subscription_catches_up_then_goes_live(store: impl EventStore) {
    let s = stream("job-1");
    store
        .append(&s, ExpectedVersion::Any, (0..3).map(event).collect())
        .await
        .unwrap();
    let mut sub = store.subscribe(2, Filter::all());
    for expected in [2, 3] {
        assert_eq!(next(&mut sub).await, expected);
    }
    store
        .append(&s, ExpectedVersion::Any, vec![event(4)])
        .await
        .unwrap();
    assert_eq!(next(&mut sub).await, 4);
}

async fn filtered_subscription_skips_other_events(store: impl EventStore) {
    let mut sub = store.subscribe(1, Filter::category("app"));
    for i in 0..2500 {
        store
            .append(&stream("job-1"), ExpectedVersion::Any, vec![event(i)])
            .await
            .unwrap();
    }
    store
        .append(&stream("app-web"), ExpectedVersion::Any, vec![event(0)])
        .await
        .unwrap();
    assert_eq!(next(&mut sub).await, 2501);
}

async fn next(sub: &mut bosun_eventstore::Subscription) -> u64 {
    let event = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("an event within 10 s")
        .expect("the subscription does not end")
        .expect("no store error");
    event.position
}

/// The ordering guarantee: 16 appenders write 20,000 events while 4 subscribers, started at
/// different positions during the writes, each receive every event from their start on exactly
/// once, in position order, with no gap.
async fn ordering_holds_under_concurrent_appends_and_subscribers<S: EventStore + Clone>(store: S) {
    const APPENDERS: u64 = 16;
    const PER_APPENDER: u64 = 1250;
    const TOTAL: u64 = APPENDERS * PER_APPENDER;
    let store = Arc::new(store);

    let collect = |from: u64| {
        let mut sub = store.subscribe(from, Filter::all());
        tokio::spawn(async move {
            let mut positions = Vec::new();
            while positions.last().copied().unwrap_or(from.saturating_sub(1)) < TOTAL {
                let event = tokio::time::timeout(Duration::from_secs(60), sub.next())
                    .await
                    .expect("events keep arriving")
                    .expect("the subscription does not end")
                    .expect("no store error");
                positions.push(event.position);
            }
            (from, positions)
        })
    };

    let mut subscribers = vec![collect(1)];
    let writers: Vec<_> = (0..APPENDERS)
        .map(|a| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut written = 0;
                let mut k = 0u64;
                while written < PER_APPENDER {
                    let n = (1 + (a + k) % 4).min(PER_APPENDER - written);
                    let s = stream(&format!("order-{a}_{}", k % 7));
                    store
                        .append(&s, ExpectedVersion::Any, (0..n).map(event).collect())
                        .await
                        .unwrap();
                    written += n;
                    k += 1;
                }
            })
        })
        .collect();

    // Start the others at different points of the run, some behind the head, some at it.
    for (threshold, behind) in [(3000, 2000), (9000, 0), (15000, 500)] {
        loop {
            let head = store.head().await.unwrap();
            if head >= threshold {
                subscribers.push(collect(head + 1 - behind));
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(store.head().await.unwrap(), TOTAL);
    assert_eq!(subscribers.len(), 4);
    for s in subscribers {
        let (from, positions) = s.await.unwrap();
        let expected: Vec<u64> = (from..=TOTAL).collect();
        assert!(
            positions == expected,
            "subscriber from {from} got {} events, not {}..={TOTAL} in order",
            positions.len(),
            from
        );
    }
}

// PostgreSQL only: what the in-memory store has no notion of.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_subscriber_on_another_connection_sees_live_appends() {
    let config = bosun_eventstore::testing::fresh_database().await;
    let writer = PgEventStore::open(&config).await.unwrap();
    let reader = PgEventStore::open(&config).await.unwrap();
    let mut sub = reader.subscribe(1, Filter::all());
    for i in 0..3 {
        writer
            .append(&stream("job-1"), ExpectedVersion::Any, vec![event(i)])
            .await
            .unwrap();
        assert_eq!(next(&mut sub).await, i + 1);
    }
}

#[tokio::test]
async fn postgres_refuses_to_rewrite_history() {
    let config = bosun_eventstore::testing::fresh_database().await;
    let store = PgEventStore::open(&config).await.unwrap();
    store
        .append(&stream("job-1"), ExpectedVersion::Any, vec![event(1)])
        .await
        .unwrap();
    let client = store.pool().get().await.unwrap();
    for sql in [
        "UPDATE events SET event_type = 'X'",
        "DELETE FROM events",
        "TRUNCATE events",
    ] {
        let err = client.batch_execute(sql).await.expect_err(sql);
        assert!(
            err.to_string().contains("append-only") || format!("{err:?}").contains("append-only"),
            "{sql}: {err:?}"
        );
    }
    assert_eq!(
        store.read_all(1, 10, &Filter::all()).await.unwrap()[0].event_type,
        "Counted"
    );
}

#[tokio::test]
async fn postgres_refuses_a_schema_newer_than_it_knows() {
    let config = bosun_eventstore::testing::fresh_database().await;
    let store = PgEventStore::open(&config).await.unwrap();
    let client = store.pool().get().await.unwrap();
    client
        .execute("INSERT INTO schema_migrations (component, version, name) VALUES ('eventstore', 99, 'from the future')", &[])
        .await
        .unwrap();
    let err = PgEventStore::open(&config)
        .await
        .err()
        .expect("a newer schema is refused");
    let message = err.to_string();
    assert!(
        message.contains("version 99") && message.contains("newer"),
        "{message}"
    );
}

#[tokio::test]
async fn in_memory_store_is_usable_as_a_trait_object() {
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    store
        .append(&stream("job-1"), ExpectedVersion::Any, vec![event(1)])
        .await
        .unwrap();
    assert_eq!(store.head().await.unwrap(), 1);
}

// Atomic appends to several streams.

fn part(s: &str, expected: ExpectedVersion, events: Vec<NewEvent>) -> StreamAppend {
    StreamAppend::new(stream(s), expected, events)
}

fn tagged(tag: &str, n: u64) -> NewEvent {
    NewEvent::new("Counted", json!({ "tag": tag, "n": n }))
}

/// Stream, version and position of every event of the log, in position order.
async fn log_of(store: &impl EventStore) -> Vec<(String, u64, u64)> {
    store
        .read_all(1, 10_000, &Filter::all())
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.stream_id.to_string(), e.version, e.position))
        .collect()
}

async fn multi_append_writes_every_part_at_consecutive_positions(store: impl EventStore) {
    store
        .append(&stream("app-a"), ExpectedVersion::NoStream, vec![event(0)])
        .await
        .unwrap();
    let results = store
        .append_many(vec![
            part(
                "quota-ann",
                ExpectedVersion::NoStream,
                vec![event(1), event(2)],
            ),
            part("app-a", ExpectedVersion::Exact(0), vec![event(3)]),
            part(
                "cname-x",
                ExpectedVersion::Any,
                vec![event(4), event(5), event(6)],
            ),
        ])
        .await
        .unwrap();
    let summary: Vec<_> = results
        .iter()
        .map(|r| {
            (
                r.stream_id.to_string(),
                r.first_version,
                r.last_version,
                r.first_position,
                r.last_position,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("quota-ann".to_string(), 0, 1, 2, 3),
            ("app-a".to_string(), 1, 1, 4, 4),
            ("cname-x".to_string(), 0, 2, 5, 7),
        ],
        "one result per part, in order, at consecutive positions"
    );
    assert_eq!(store.head().await.unwrap(), 7);
    let app = store.read_stream(&stream("app-a"), 0, 10).await.unwrap();
    assert_eq!(
        app.iter()
            .map(|e| (e.version, e.data["n"].as_u64()))
            .collect::<Vec<_>>(),
        vec![(0, Some(0)), (1, Some(3))]
    );
    let all = store.read_all(1, 100, &Filter::all()).await.unwrap();
    assert_eq!(
        all.iter()
            .map(|e| e.data["n"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        (0..=6).collect::<Vec<_>>(),
        "the log holds the parts in their order"
    );
    // A one-part multi-append is an append.
    let one = store
        .append_many(vec![part(
            "app-a",
            ExpectedVersion::Exact(1),
            vec![event(7)],
        )])
        .await
        .unwrap();
    assert_eq!(
        (one.len(), one[0].first_version, one[0].last_position),
        (1, 2, 8)
    );
}

async fn multi_append_with_a_conflict_in_any_part_writes_nothing(store: impl EventStore) {
    store
        .append(&stream("app-a"), ExpectedVersion::NoStream, vec![event(0)])
        .await
        .unwrap();
    store
        .append(
            &stream("app-b"),
            ExpectedVersion::NoStream,
            vec![event(0), event(1)],
        )
        .await
        .unwrap();
    let before = log_of(&store).await;
    // The conflict in the last part, the first, or the middle one; every kind of expectation.
    let attempts: Vec<(Vec<StreamAppend>, &str, ExpectedVersion, CurrentVersion)> = vec![
        (
            vec![
                part("app-a", ExpectedVersion::Exact(0), vec![event(1)]),
                part("app-b", ExpectedVersion::Exact(0), vec![event(2)]),
            ],
            "app-b",
            ExpectedVersion::Exact(0),
            CurrentVersion::Current(1),
        ),
        (
            vec![
                part("app-a", ExpectedVersion::NoStream, vec![event(1)]),
                part("app-b", ExpectedVersion::Exact(1), vec![event(2)]),
            ],
            "app-a",
            ExpectedVersion::NoStream,
            CurrentVersion::Current(0),
        ),
        (
            vec![
                part("app-a", ExpectedVersion::Exact(0), vec![event(1)]),
                part("app-c", ExpectedVersion::StreamExists, vec![event(2)]),
                part("app-b", ExpectedVersion::Any, vec![event(3)]),
            ],
            "app-c",
            ExpectedVersion::StreamExists,
            CurrentVersion::NoStream,
        ),
    ];
    for (parts, conflicting, want_expected, want_actual) in attempts {
        match store.append_many(parts).await {
            Err(AppendError::WrongExpectedVersion {
                stream: s,
                expected,
                actual,
            }) => {
                assert_eq!(s, stream(conflicting), "the error names the stream");
                assert_eq!((expected, actual), (want_expected, want_actual));
            }
            other => panic!("expected a version conflict on {conflicting}, got {other:?}"),
        }
        assert_eq!(log_of(&store).await, before, "nothing of any part written");
    }
    assert!(store
        .read_stream(&stream("app-c"), 0, 10)
        .await
        .unwrap()
        .is_empty());
    // The first part that fails is named.
    let err = store
        .append_many(vec![
            part("app-a", ExpectedVersion::Exact(0), vec![event(1)]),
            part("app-b", ExpectedVersion::NoStream, vec![event(2)]),
            part("app-c", ExpectedVersion::Exact(3), vec![event(3)]),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AppendError::WrongExpectedVersion { stream: s, .. } if s == &stream("app-b")),
        "{err:?}"
    );
    assert_eq!(store.head().await.unwrap(), 3);
}

async fn multi_append_refuses_what_it_cannot_write_as_asked(store: impl EventStore) {
    let err = store.append_many(vec![]).await.unwrap_err();
    assert!(matches!(err, AppendError::NoEvents), "no parts: {err:?}");
    let err = store
        .append_many(vec![
            part("app-a", ExpectedVersion::Any, vec![event(1)]),
            part("app-b", ExpectedVersion::Any, vec![]),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(err, AppendError::NoEvents),
        "an empty part: {err:?}"
    );
    let err = store
        .append_many(vec![
            part("app-a", ExpectedVersion::Any, vec![event(1)]),
            part("app-b", ExpectedVersion::Any, vec![event(2)]),
            part("app-a", ExpectedVersion::Any, vec![event(3)]),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AppendError::DuplicateStream { stream: s } if s == &stream("app-a")),
        "one stream twice: {err:?}"
    );
    let twice = event(1);
    let err = store
        .append_many(vec![
            part("app-a", ExpectedVersion::Any, vec![twice.clone()]),
            part("app-b", ExpectedVersion::Any, vec![twice.clone()]),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AppendError::DuplicateEventId { event_id } if *event_id == twice.event_id),
        "one event id in two parts: {err:?}"
    );
    let err = store
        .append(
            &stream("app-a"),
            ExpectedVersion::Any,
            vec![twice.clone(), twice],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, AppendError::DuplicateEventId { .. }),
        "one event id twice in an append: {err:?}"
    );
    let err = store
        .append_many(vec![
            part("app-a", ExpectedVersion::Any, vec![event(1)]),
            part(
                "app-b",
                ExpectedVersion::Any,
                vec![event(2), NewEvent::new("Named", json!({"name": "x\u{0}"}))],
            ),
        ])
        .await
        .unwrap_err();
    match err {
        AppendError::Unstorable { field, .. } => {
            assert_eq!(field, "appends[1].events[1].data.name")
        }
        other => panic!("expected Unstorable, got {other:?}"),
    }
    assert_eq!(store.head().await.unwrap(), 0, "nothing written");
}

async fn retried_multi_append_returns_the_first_results_and_writes_nothing(store: impl EventStore) {
    let parts = vec![
        part("app-a", ExpectedVersion::NoStream, vec![event(1), event(2)]),
        part("quota-ann", ExpectedVersion::NoStream, vec![event(3)]),
    ];
    let first = store.append_many(parts.clone()).await.unwrap();
    store
        .append(&stream("app-a"), ExpectedVersion::Exact(1), vec![event(4)])
        .await
        .unwrap();
    // The retry's expectations no longer hold; it is a retry all the same.
    let retry = store.append_many(parts).await.unwrap();
    assert_eq!(retry, first);
    assert_eq!(store.head().await.unwrap(), 4);
    assert_eq!(
        store
            .read_stream(&stream("quota-ann"), 0, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn partly_retried_multi_append_is_a_conflict(store: impl EventStore) {
    let (a, b, c) = (event(1), event(2), event(3));
    store
        .append_many(vec![
            part("app-a", ExpectedVersion::Any, vec![a.clone()]),
            part("app-b", ExpectedVersion::Any, vec![b.clone()]),
        ])
        .await
        .unwrap();
    let conflicts: Vec<(&str, Vec<StreamAppend>)> = vec![
        (
            "a new event besides the old ones",
            vec![
                part("app-a", ExpectedVersion::Any, vec![a.clone()]),
                part("app-b", ExpectedVersion::Any, vec![b.clone(), c.clone()]),
            ],
        ),
        (
            "a new part besides the old ones",
            vec![
                part("app-a", ExpectedVersion::Any, vec![a.clone()]),
                part("app-b", ExpectedVersion::Any, vec![b.clone()]),
                part("app-c", ExpectedVersion::Any, vec![c.clone()]),
            ],
        ),
        (
            "the parts' events on each other's streams",
            vec![
                part("app-a", ExpectedVersion::Any, vec![b.clone()]),
                part("app-b", ExpectedVersion::Any, vec![a.clone()]),
            ],
        ),
        (
            "the parts in another order",
            vec![
                part("app-b", ExpectedVersion::Any, vec![b.clone()]),
                part("app-a", ExpectedVersion::Any, vec![a.clone()]),
            ],
        ),
    ];
    for (what, parts) in conflicts {
        let err = store.append_many(parts).await.unwrap_err();
        assert!(
            matches!(err, AppendError::EventIdConflict { .. }),
            "{what}: {err:?}"
        );
    }
    // Ids of two separate appends are not one multi-append.
    let (d, e) = (event(4), event(5));
    store
        .append(&stream("app-d"), ExpectedVersion::Any, vec![d.clone()])
        .await
        .unwrap();
    store
        .append(&stream("app-a"), ExpectedVersion::Any, vec![event(6)])
        .await
        .unwrap();
    store
        .append(&stream("app-e"), ExpectedVersion::Any, vec![e.clone()])
        .await
        .unwrap();
    let err = store
        .append_many(vec![
            part("app-d", ExpectedVersion::Any, vec![d]),
            part("app-e", ExpectedVersion::Any, vec![e]),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(err, AppendError::EventIdConflict { .. }),
        "{err:?}"
    );
    assert_eq!(store.head().await.unwrap(), 5);
}

/// 8 writers race each round on the same two streams, each expecting both at the round's
/// version (half of them naming the streams in the other order): exactly one wins each round,
/// and both streams hold its events, and only its, at that round's versions.
async fn concurrent_multi_appends_on_the_same_streams_one_wins_each_round<S: EventStore + Clone>(
    store: S,
) {
    const ROUNDS: u64 = 20;
    const WRITERS: u64 = 8;
    let mut winners = Vec::new();
    for round in 0..ROUNDS {
        // left gets one event a round, right two.
        let (left, right) = if round == 0 {
            (ExpectedVersion::NoStream, ExpectedVersion::NoStream)
        } else {
            (
                ExpectedVersion::Exact(round - 1),
                ExpectedVersion::Exact(2 * round - 1),
            )
        };
        let tries: Vec<_> = (0..WRITERS)
            .map(|w| {
                let store = store.clone();
                tokio::spawn(async move {
                    let tag = format!("{round}-{w}");
                    let mut parts = vec![
                        part("app-left", left, vec![tagged(&tag, 0)]),
                        part("app-right", right, vec![tagged(&tag, 1), tagged(&tag, 2)]),
                    ];
                    if w % 2 == 1 {
                        parts.reverse();
                    }
                    (tag, store.append_many(parts).await)
                })
            })
            .collect();
        let mut won = Vec::new();
        for t in futures::future::join_all(tries).await {
            let (tag, result) = t.unwrap();
            match result {
                Ok(results) => won.push((tag, results)),
                Err(AppendError::WrongExpectedVersion { stream: s, .. }) => {
                    assert!(s == stream("app-left") || s == stream("app-right"), "{s}")
                }
                Err(other) => panic!("round {round}: {other:?}"),
            }
        }
        assert_eq!(won.len(), 1, "round {round}: exactly one wins: {won:?}");
        let (tag, results) = won.pop().unwrap();
        let span = results.iter().map(|r| r.first_position).min().unwrap()
            ..=results.iter().map(|r| r.last_position).max().unwrap();
        assert_eq!(span.end() - span.start(), 2, "three consecutive positions");
        winners.push(tag);
    }
    for (s, per_round) in [("app-left", 1), ("app-right", 2)] {
        let events = store.read_stream(&stream(s), 0, 1000).await.unwrap();
        let tags: Vec<&str> = events
            .iter()
            .map(|e| e.data["tag"].as_str().unwrap())
            .collect();
        let want: Vec<&str> = winners
            .iter()
            .flat_map(|w| std::iter::repeat_n(w.as_str(), per_round))
            .collect();
        assert_eq!(tags, want, "{s} holds each round's winner, and only it");
    }
    assert_eq!(store.head().await.unwrap(), ROUNDS * 3);
}

/// Appends sent at once (PostgreSQL decides them in one transaction): a multi-append whose part
/// conflicts fails alone, a single append that conflicts does not fail the multi-append beside
/// it, and each good one is written whole.
async fn multi_appends_and_single_appends_decided_together_are_decided_apart<
    S: EventStore + Clone,
>(
    store: S,
) {
    for s in ["app-a", "app-b", "app-c", "app-d"] {
        store
            .append(&stream(s), ExpectedVersion::NoStream, vec![event(0)])
            .await
            .unwrap();
    }
    for round in 0..10u64 {
        let v = round;
        let store2 = store.clone();
        let good_many = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append_many(vec![
                        part("app-a", ExpectedVersion::Exact(v), vec![event(1)]),
                        part(
                            "app-b",
                            ExpectedVersion::Exact(2 * v),
                            vec![event(2), event(3)],
                        ),
                    ])
                    .await
            })
        };
        // Conflicts on app-a, the good multi-append's stream, whichever is decided first.
        let bad_single = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append(
                        &stream("app-a"),
                        ExpectedVersion::Exact(v + 7),
                        vec![event(4)],
                    )
                    .await
            })
        };
        let bad_many = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append_many(vec![
                        // Satisfied whether or not the good single append came first.
                        part("app-c", ExpectedVersion::StreamExists, vec![event(5)]),
                        part("app-d", ExpectedVersion::Exact(v + 9), vec![event(6)]),
                    ])
                    .await
            })
        };
        let good_single = tokio::spawn(async move {
            store2
                .append(&stream("app-c"), ExpectedVersion::Exact(v), vec![event(7)])
                .await
        });
        let good_many: Vec<AppendResult> = good_many.await.unwrap().expect("the good multi-append");
        assert_eq!(
            good_many
                .iter()
                .map(|r| r.first_version)
                .collect::<Vec<_>>(),
            vec![v + 1, 2 * v + 1]
        );
        assert_eq!(
            good_many[0].last_position + 1,
            good_many[1].first_position,
            "its parts are consecutive"
        );
        let err = bad_single.await.unwrap().unwrap_err();
        assert!(
            matches!(&err, AppendError::WrongExpectedVersion { stream: s, .. } if s == &stream("app-a")),
            "{err:?}"
        );
        let err = bad_many.await.unwrap().unwrap_err();
        assert!(
            matches!(&err, AppendError::WrongExpectedVersion { stream: s, .. } if s == &stream("app-d")),
            "{err:?}"
        );
        let good_single = good_single.await.unwrap().expect("the good single append");
        assert_eq!(good_single.first_version, v + 1);
        // app-d never moves, so the bad multi-append's app-c part was never written.
        let c = store.read_stream(&stream("app-c"), 0, 1000).await.unwrap();
        assert_eq!(c.len() as u64, v + 2);
        assert!(
            c.iter().all(|e| e.data["n"] != 5),
            "no part of a refused multi-append"
        );
    }
    assert_eq!(store.head().await.unwrap(), 4 + 10 * 4);
}

/// PostgreSQL only: a multi-append one of whose parts the database refuses (a CHECK constraint
/// added for the test) fails whole, nothing of its good part written, and alone: its batch-mates,
/// multi-appends among them, are written, each whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_refused_multi_append_fails_whole_and_alone_in_its_batch() {
    let config = bosun_eventstore::testing::fresh_database().await;
    let store = PgEventStore::open(&config).await.expect("open the store");
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(
            "ALTER TABLE events ADD CONSTRAINT test_poison CHECK (data->>'poison' IS NULL)",
        )
        .await
        .unwrap();
    for round in 0..5u64 {
        let mut appends = Vec::new();
        for i in 0..21u64 {
            let store = store.clone();
            let second = if i == 10 {
                json!({"poison": true})
            } else {
                json!({"n": i})
            };
            appends.push(tokio::spawn(async move {
                store
                    .append_many(vec![
                        part(
                            &format!("left-{round}_{i}"),
                            ExpectedVersion::NoStream,
                            vec![event(i)],
                        ),
                        part(
                            &format!("right-{round}_{i}"),
                            ExpectedVersion::NoStream,
                            vec![event(i), NewEvent::new("Counted", second)],
                        ),
                    ])
                    .await
            }));
        }
        let results: Vec<_> = futures::future::join_all(appends)
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        for (i, result) in results.iter().enumerate() {
            if i == 10 {
                assert!(
                    matches!(result, Err(AppendError::Refused(reason)) if reason.starts_with("23514")),
                    "the poisoned multi-append is refused, as a check violation: {result:?}"
                );
                assert!(
                    store
                        .read_stream(&stream(&format!("left-{round}_{i}")), 0, 10)
                        .await
                        .unwrap()
                        .is_empty(),
                    "nothing of its good part"
                );
            } else {
                let results = result
                    .as_ref()
                    .unwrap_or_else(|e| panic!("round {round}, {i}: {e:?}"));
                assert_eq!(results[0].last_position + 1, results[1].first_position);
            }
        }
    }
    assert_eq!(
        store.head().await.unwrap(),
        5 * 20 * 3,
        "5 rounds of 20 good multi-appends of 3 events"
    );
}
