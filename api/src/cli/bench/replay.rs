//! `bosun bench replay`: rebuild a jobs-like read model from `events` events; the baseline is
//! reading the same events from the log without projecting them.

use super::jobs_model::BenchJobs;
use super::{append::split, progress, report};
use bosun_eventstore::{EventStore, ExpectedVersion, Filter, NewEvent, PgEventStore, StreamId};
use bosun_projections::{rebuild, Projections};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

/// A job's life in events: submitted, started, two output chunks, finished.
const EVENTS_PER_JOB: u64 = 5;

pub async fn run(config: &tokio_postgres::Config, events: u64) -> anyhow::Result<()> {
    let store = PgEventStore::open(config).await?;
    let jobs = events.div_ceil(EVENTS_PER_JOB);
    progress(format!(
        "writing {jobs} jobs ({} events)",
        jobs * EVENTS_PER_JOB
    ));
    let writers: Vec<_> = split(jobs, 8)
        .into_iter()
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..n {
                    let id = uuid::Uuid::new_v4();
                    let stream = StreamId::new("job", id)?;
                    store
                        .append(&stream, ExpectedVersion::NoStream, job_events())
                        .await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for w in writers {
        w.await??;
    }
    let total = store.head().await?;

    progress(format!("baseline: reading {total} events"));
    let started = Instant::now();
    let mut next = 1;
    while next <= total {
        let page = store.read_page(next, 1000, &Filter::all()).await?;
        next = page.events.last().map_or(total + 1, |e| e.position + 1);
    }
    let baseline = total as f64 / started.elapsed().as_secs_f64();

    progress(format!(
        "rebuilding the jobs-like model from {total} events"
    ));
    let projection = Arc::new(BenchJobs);
    Projections::new(vec![projection.clone()])
        .prepare(config)
        .await?;
    let rebuilt = rebuild(&store, config, &*projection, |_, _| {}).await?;
    anyhow::ensure!(
        rebuilt.events == total,
        "replayed {} of {total} events",
        rebuilt.events
    );
    report(
        "replay",
        rebuilt.events as f64 / rebuilt.seconds,
        "events/s",
        baseline,
        json!({ "events": total }),
    );
    Ok(())
}

fn job_events() -> Vec<NewEvent> {
    vec![
        NewEvent::new(
            "JobSubmitted",
            json!({ "app": "example", "env": "production", "task": "deploy", "variables": { "VERSION": "1.2.3" } }),
        ),
        NewEvent::new("JobStarted", json!({ "pid": 4242, "worker": "bench" })),
        NewEvent::new(
            "JobOutputAppended",
            json!({ "stream": "stdout", "text": "deploying 1.2.3\n" }),
        ),
        NewEvent::new(
            "JobOutputAppended",
            json!({ "stream": "stdout", "text": "done\n" }),
        ),
        NewEvent::new(
            "JobFinished",
            json!({ "status": "success", "exit_code": 0 }),
        ),
    ]
}
