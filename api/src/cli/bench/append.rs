//! `bosun bench append`: `clients` tasks each append single events to a stream of their own with
//! exact expected versions; the baseline is the same number of clients doing single-row
//! autocommit INSERTs of the same payload into a plain table.

use super::{progress, report};
use bosun_eventstore::{EventStore, ExpectedVersion, NewEvent, PgEventStore, StreamId};
use serde_json::json;
use std::time::Instant;
use tokio_postgres::NoTls;

pub async fn run(
    config: &tokio_postgres::Config,
    clients: usize,
    events: u64,
) -> anyhow::Result<()> {
    let payload = json!({ "app": "example", "env": "production", "task": "deploy", "variables": { "VERSION": "1.2.3" } });
    let per_client = split(events, clients);

    progress(format!(
        "baseline: {events} single-row INSERTs from {clients} clients"
    ));
    let baseline = {
        let (client, connection) = config.connect(NoTls).await?;
        let driver = tokio::spawn(connection);
        client.batch_execute("CREATE TABLE bench_inserts (id BIGSERIAL PRIMARY KEY, stream_id TEXT NOT NULL, data JSONB NOT NULL)").await?;
        drop(client);
        let _ = driver.await;
        let started = Instant::now();
        let tasks: Vec<_> = per_client
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let (config, payload) = (config.clone(), payload.clone());
                tokio::spawn(async move {
                    let (client, connection) = config.connect(NoTls).await?;
                    let driver = tokio::spawn(connection);
                    let insert = client
                        .prepare("INSERT INTO bench_inserts (stream_id, data) VALUES ($1, $2)")
                        .await?;
                    let stream = format!("bench-{i}");
                    for _ in 0..n {
                        client.execute(&insert, &[&stream, &payload]).await?;
                    }
                    drop(client);
                    let _ = driver.await;
                    anyhow::Ok(())
                })
            })
            .collect();
        for task in tasks {
            task.await??;
        }
        events as f64 / started.elapsed().as_secs_f64()
    };

    progress(format!(
        "event store: {events} single-event appends from {clients} clients"
    ));
    let store = PgEventStore::open(config).await?;
    let started = Instant::now();
    let tasks: Vec<_> = per_client
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let (store, payload) = (store.clone(), payload.clone());
            tokio::spawn(async move {
                let stream = StreamId::new("bench", i)?;
                let mut expected = ExpectedVersion::NoStream;
                for _ in 0..n {
                    let written = store
                        .append(
                            &stream,
                            expected,
                            vec![NewEvent::new("Benchmarked", payload.clone())],
                        )
                        .await?;
                    expected = ExpectedVersion::Exact(written.last_version);
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let rate = events as f64 / started.elapsed().as_secs_f64();
    let head = store.head().await?;
    anyhow::ensure!(
        head == events,
        "the log holds {head} events after appending {events}"
    );
    report(
        "append",
        rate,
        "events/s",
        baseline,
        json!({ "clients": clients, "events": events }),
    );
    Ok(())
}

/// `total` split over `parts` as evenly as possible.
pub fn split(total: u64, parts: usize) -> Vec<u64> {
    let parts_u = parts as u64;
    (0..parts_u)
        .map(|i| total / parts_u + u64::from(i < total % parts_u))
        .collect()
}
