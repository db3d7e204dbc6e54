//! The projection engine against a real PostgreSQL.

use bosun_eventstore::{EventStore, ExpectedVersion, Filter, NewEvent, PgEventStore, StreamId};
use bosun_projections::{rebuild, Projections};
use serde_json::json;
use std::time::Duration;

async fn setup() -> (tokio_postgres::Config, PgEventStore, Projections) {
    let config = bosun_eventstore::testing::fresh_database().await;
    let store = PgEventStore::open(&config).await.unwrap();
    let projections = Projections::new(bosun_projections::all());
    projections.prepare(&config).await.unwrap();
    (config, store, projections)
}

async fn write(store: &PgEventStore, streams: u64, events_per_stream: u64) {
    for round in 0..events_per_stream {
        for s in 0..streams {
            let stream = StreamId::parse(format!("job-{s}")).unwrap();
            store
                .append(
                    &stream,
                    ExpectedVersion::Any,
                    vec![NewEvent::new(format!("Step{round}"), json!({}))],
                )
                .await
                .unwrap();
        }
    }
}

/// The live model as JSON rows, ordered: the thing compared row for row.
async fn rows(store: &PgEventStore) -> Vec<serde_json::Value> {
    let client = store.pool().get().await.unwrap();
    client
        .query(
            "SELECT to_jsonb(s) FROM stream_index s ORDER BY stream_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Every stream's row agrees with the log: applied exactly once per event.
async fn assert_model_matches_log(store: &PgEventStore) {
    let events = store.read_all(1, 1_000_000, &Filter::all()).await.unwrap();
    let mut expected = std::collections::BTreeMap::new();
    for e in &events {
        let entry = expected
            .entry(e.stream_id.to_string())
            .or_insert((0u64, 0u64, e.position));
        entry.0 += 1;
        entry.1 = e.version;
    }
    let rows = rows(store).await;
    assert_eq!(rows.len(), expected.len());
    for row in rows {
        let (count, version, first) = expected[row["stream_id"].as_str().unwrap()];
        assert_eq!(row["event_count"].as_u64(), Some(count), "{row}");
        assert_eq!(row["version"].as_u64(), Some(version), "{row}");
        assert_eq!(row["first_position"].as_u64(), Some(first), "{row}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_live_and_reports_freshness() {
    let (config, store, projections) = setup().await;
    let running = projections.start(store.clone(), &config).await.unwrap();
    write(&store, 5, 20).await;
    let head = store.head().await.unwrap();
    running
        .freshness()
        .wait_for(head, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(running.freshness().position() >= head);
    assert_model_matches_log(&store).await;
    let summary =
        bosun_projections::read_models::streams::get(&**store.pool().get().await.unwrap(), "job-3")
            .await
            .unwrap()
            .unwrap();
    assert_eq!(
        (
            summary.version,
            summary.event_count,
            summary.last_event_type.as_str()
        ),
        (19, 20, "Step19")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freshness_wait_is_bounded() {
    let (config, store, projections) = setup().await;
    let running = projections.start(store.clone(), &config).await.unwrap();
    let err = running
        .freshness()
        .wait_for(1_000, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert_eq!(err.wanted, 1_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuilt_model_equals_the_live_one_row_for_row() {
    let (config, store, projections) = setup().await;
    let running = projections.start(store.clone(), &config).await.unwrap();
    write(&store, 30, 40).await;
    let head = store.head().await.unwrap();
    running
        .freshness()
        .wait_for(head, Duration::from_secs(20))
        .await
        .unwrap();
    let live = rows(&store).await;
    let client = store.pool().get().await.unwrap();
    let oid = |c: deadpool_postgres::Object| async move {
        c.query_one("SELECT 'stream_index'::regclass::oid", &[])
            .await
            .unwrap()
            .get::<_, u32>(0)
    };
    let before = oid(client).await;

    let projection = projections.get("streams").unwrap();
    let report = rebuild(&store, &config, &*projection, |_, _| {})
        .await
        .unwrap();
    assert_eq!(report.position, head);
    assert_eq!(report.events, head);
    assert_ne!(
        oid(store.pool().get().await.unwrap()).await,
        before,
        "the rebuilt table was swapped in"
    );
    assert_eq!(rows(&store).await, live);

    // The live projector carries on into the swapped-in table.
    write(&store, 2, 1).await;
    running
        .freshness()
        .wait_for(head + 2, Duration::from_secs(10))
        .await
        .unwrap();
    assert_model_matches_log(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_during_writes_loses_and_doubles_nothing() {
    let (config, store, projections) = setup().await;
    let running = projections.start(store.clone(), &config).await.unwrap();
    write(&store, 20, 50).await;
    let writer = {
        let store = store.clone();
        tokio::spawn(async move { write(&store, 20, 50).await })
    };
    let projection = projections.get("streams").unwrap();
    rebuild(&store, &config, &*projection, |_, _| {})
        .await
        .unwrap();
    writer.await.unwrap();
    let head = store.head().await.unwrap();
    running
        .freshness()
        .wait_for(head, Duration::from_secs(20))
        .await
        .unwrap();
    assert_model_matches_log(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn competing_projectors_apply_each_event_once() {
    let (config, store, projections) = setup().await;
    // Two engines on one database, as two server processes would be.
    let first = projections.start(store.clone(), &config).await.unwrap();
    let second = projections
        .start(PgEventStore::open(&config).await.unwrap(), &config)
        .await
        .unwrap();
    write(&store, 10, 30).await;
    let head = store.head().await.unwrap();
    first
        .freshness()
        .wait_for(head, Duration::from_secs(20))
        .await
        .unwrap();
    second
        .freshness()
        .wait_for(head, Duration::from_secs(20))
        .await
        .unwrap();
    assert_model_matches_log(&store).await;
    // Kill the leader (whichever it is): the other takes over.
    drop(first);
    write(&store, 10, 1).await;
    second
        .freshness()
        .wait_for(head + 10, Duration::from_secs(20))
        .await
        .unwrap();
    assert_model_matches_log(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_projection_version_is_rebuilt_at_prepare() {
    let (config, store, projections) = setup().await;
    write(&store, 3, 3).await;
    let running = projections.start(store.clone(), &config).await.unwrap();
    running
        .freshness()
        .wait_for(9, Duration::from_secs(10))
        .await
        .unwrap();
    drop(running);
    let client = store.pool().get().await.unwrap();
    client
        .execute(
            "UPDATE projection_checkpoints SET version = 0 WHERE name = 'streams'",
            &[],
        )
        .await
        .unwrap();
    projections.prepare(&config).await.unwrap();
    assert!(rows(&store).await.is_empty(), "prepare recreated the model");
    let running = projections.start(store.clone(), &config).await.unwrap();
    running
        .freshness()
        .wait_for(9, Duration::from_secs(10))
        .await
        .unwrap();
    assert_model_matches_log(&store).await;
}
