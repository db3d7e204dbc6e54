//! One suite, every implementation: each test here runs against the in-memory store and against
//! PostgreSQL (a fresh database on the test binary's managed server).

use bosun_eventstore::{
    AppendError, CurrentVersion, EventStore, ExpectedVersion, Filter, InMemoryEventStore, NewEvent,
    PgEventStore, StreamId,
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
