//! `bosun bench jobs --jobs N --workers W`: jobs of the task `true` through the real server and
//! its workers, against spawning `true` directly the same number of times, in the same run.
//!
//! Lines: `jobs_per_second` (N jobs submitted at once over HTTP until the last finished, against
//! direct spawns per second with W at a time); `submit_to_start_p50`/`_p99` with the queue empty
//! (jobs submitted one at a time; from the `JobSubmitted` to the `JobStarted` event's commit
//! time), against a direct spawn's spawn-to-exit time; `submit_to_finish_p50`/`_p99` under the
//! full load, against the same.

use super::server::BenchServer;
use super::{percentile, progress, report};
use crate::config::Settings;
use anyhow::Context;
use bosun_eventstore::{EventStore, Filter, PgEventStore};
use futures::StreamExt;
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub struct Options {
    pub jobs: usize,
    pub workers: usize,
}

/// Jobs submitted one at a time for the empty-queue latencies.
const ONE_AT_A_TIME: usize = 100;
/// HTTP clients submitting at once in the throughput run.
pub(super) const SUBMITTERS: usize = 16;
const FINISH_WAIT: Duration = Duration::from_secs(600);

pub async fn run(
    config: &tokio_postgres::Config,
    settings: Settings,
    options: Options,
) -> anyhow::Result<()> {
    progress(format!(
        "baseline: spawning `true` {} times, {} at a time",
        options.jobs, options.workers
    ));
    let (direct_rate, direct_latencies) = spawn_directly(options.jobs, options.workers).await?;

    let store = PgEventStore::open(config)
        .await
        .context("opening the event store")?;
    let server =
        BenchServer::with_true_task(&store, config, settings, options.workers, "jobs").await?;
    let result = measure(&store, &server, &options).await;
    server.stop().await;
    let mut measured = result?;
    let mut direct_latencies = direct_latencies;
    for samples in [
        &mut measured.empty_start,
        &mut measured.loaded_finish,
        &mut direct_latencies,
    ] {
        samples.sort_by(f64::total_cmp);
    }
    report(
        "jobs_per_second",
        measured.rate,
        "jobs/s",
        direct_rate,
        json!({"jobs": options.jobs, "workers": options.workers, "finished": measured.finished}),
    );
    for (name, values, p) in [
        ("submit_to_start_p50", &measured.empty_start, 0.5),
        ("submit_to_start_p99", &measured.empty_start, 0.99),
        ("submit_to_finish_p50", &measured.loaded_finish, 0.5),
        ("submit_to_finish_p99", &measured.loaded_finish, 0.99),
    ] {
        report(
            name,
            percentile(values, p),
            "ms",
            percentile(&direct_latencies, p),
            json!({"samples": values.len(), "queue": if name.contains("start") { "empty" } else { "full" }}),
        );
    }
    Ok(())
}

/// Direct spawns per second, `parallel` at a time, and each one's spawn-to-exit time in ms.
async fn spawn_directly(count: usize, parallel: usize) -> anyhow::Result<(f64, Vec<f64>)> {
    let started = Instant::now();
    let latencies: Vec<anyhow::Result<f64>> = futures::stream::iter(0..count)
        .map(|_| async {
            let began = Instant::now();
            let status = tokio::process::Command::new("true")
                .status()
                .await
                .context("spawning `true`")?;
            anyhow::ensure!(status.success(), "`true` failed: {status}");
            Ok(began.elapsed().as_secs_f64() * 1000.0)
        })
        .buffer_unordered(parallel.max(1))
        .collect()
        .await;
    let rate = count as f64 / started.elapsed().as_secs_f64();
    Ok((rate, latencies.into_iter().collect::<Result<_, _>>()?))
}

struct Measured {
    rate: f64,
    finished: usize,
    empty_start: Vec<f64>,
    loaded_finish: Vec<f64>,
}

async fn measure(
    store: &PgEventStore,
    server: &BenchServer,
    options: &Options,
) -> anyhow::Result<Measured> {
    let http = reqwest::Client::new();

    progress(format!("{ONE_AT_A_TIME} jobs one at a time (empty queue)"));
    let mut empty = Vec::with_capacity(ONE_AT_A_TIME);
    for _ in 0..ONE_AT_A_TIME {
        empty.push(submit_v1(&http, server, true).await?);
    }

    progress(format!(
        "{} jobs at once from {SUBMITTERS} clients, {} workers",
        options.jobs, options.workers
    ));
    let loaded = burst(store, options.jobs, SUBMITTERS, || {
        submit_v1(&http, server, false)
    })
    .await?;

    let times = event_times(store).await?;
    let between = |ids: &[String], to: &str| -> Vec<f64> {
        ids.iter()
            .filter_map(|id| {
                let t = times.get(id)?;
                let (from, to) = (t.get("JobSubmitted")?, t.get(to)?);
                Some((*to - *from).num_microseconds()? as f64 / 1000.0)
            })
            .collect()
    };
    Ok(Measured {
        rate: loaded.rate(),
        finished: loaded.finished,
        empty_start: between(&empty, "JobStarted"),
        loaded_finish: between(&loaded.ids, "JobFinished"),
    })
}

/// Submits `bench/bench/true` through `POST /v1/jobs`; the job's id.
pub(super) async fn submit_v1(
    http: &reqwest::Client,
    server: &BenchServer,
    wait: bool,
) -> anyhow::Result<String> {
    let response = http
        .post(format!("http://{}/v1/jobs", server.address))
        .bearer_auth(&server.token)
        .json(&json!({"app": "bench", "env": "bench", "task": "true", "wait": wait}))
        .send()
        .await
        .context("submitting a job")?;
    job_id(response).await
}

/// The `id` of a successful submission's answer.
pub(super) async fn job_id(response: reqwest::Response) -> anyhow::Result<String> {
    anyhow::ensure!(
        response.status().is_success(),
        "submitting a job: {}",
        response.status()
    );
    let job: serde_json::Value = response.json().await.context("reading the answer")?;
    job["id"]
        .as_str()
        .map(str::to_string)
        .context("the job has no id")
}

/// `count` jobs submitted `clients` at a time, from the first submission to the last of their
/// `JobFinished` events.
pub(super) struct Burst {
    pub ids: Vec<String>,
    pub finished: usize,
    pub seconds: f64,
}

impl Burst {
    pub fn rate(&self) -> f64 {
        self.finished as f64 / self.seconds
    }
}

/// Submits `count` jobs through `submit` (each answering the job's id), `clients` at a time,
/// and waits until as many jobs have finished; nothing else may be running on the server.
pub(super) async fn burst<F, Fut>(
    store: &PgEventStore,
    count: usize,
    clients: usize,
    submit: F,
) -> anyhow::Result<Burst>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<String>>,
{
    let head_before = store.head().await?;
    let started = Instant::now();
    let ids: Vec<anyhow::Result<String>> = futures::stream::iter(0..count)
        .map(|_| submit())
        .buffer_unordered(clients.max(1))
        .collect()
        .await;
    let ids: Vec<String> = ids.into_iter().collect::<Result<_, _>>()?;
    let finished = wait_finished(store, head_before, ids.len()).await?;
    Ok(Burst {
        ids,
        finished,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Waits until `count` jobs have finished after `from`; returns how many did.
async fn wait_finished(store: &PgEventStore, from: u64, count: usize) -> anyhow::Result<usize> {
    let deadline = Instant::now() + FINISH_WAIT;
    let filter = Filter {
        categories: vec!["job".into()],
        event_types: vec!["JobFinished".into()],
        ..Filter::default()
    };
    let mut position = from + 1;
    let mut finished = 0;
    while finished < count && Instant::now() < deadline {
        let page = store.read_page(position, 1000, &filter).await?;
        finished += page.events.len();
        position = page.events.last().map_or(position, |e| e.position + 1);
        if page.events.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    if finished < count {
        progress(format!("only {finished} of {count} jobs finished in time"));
    }
    Ok(finished)
}

type Times = HashMap<String, HashMap<String, chrono::DateTime<chrono::Utc>>>;

/// Commit times of each job's submission, start and finish, by job id.
async fn event_times(store: &PgEventStore) -> anyhow::Result<Times> {
    let filter = Filter {
        categories: vec!["job".into()],
        event_types: vec![
            "JobSubmitted".into(),
            "JobStarted".into(),
            "JobFinished".into(),
        ],
        ..Filter::default()
    };
    let mut times: Times = HashMap::new();
    let mut position = 1;
    loop {
        let page = store.read_page(position, 5000, &filter).await?;
        let Some(last) = page.events.last() else {
            break;
        };
        position = last.position + 1;
        for e in &page.events {
            times
                .entry(e.stream_id.id().to_string())
                .or_default()
                .insert(e.event_type.clone(), e.recorded_at);
        }
    }
    Ok(times)
}
