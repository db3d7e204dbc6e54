//! `bosun bench compat --jobs N --workers W [--clients C] [--rounds R]`: jobs of the task `true`
//! submitted through pulsar's `POST /compat/pulsar/{app}/{env}` (Basic `<token>:x-oauth-basic`),
//! against the same jobs through `POST /v1/jobs`, on the same server, workers and PostgreSQL in
//! the same run.
//!
//! Line: `compat_jobs_per_second`: jobs through pulsar per second, N submitted at once from C
//! clients until the last `JobFinished` (the `bench jobs` throughput run), against the same
//! through /v1. Each of the R rounds runs both paths once, in turn AB then BA, so that drift (a
//! growing log, a warming cache, a busy neighbour) does not favour either; a path's figure is
//! all its jobs over all its time. Before each burst the read models catch up with the log, so
//! none inherits the previous one's work; a short warm-up through both paths comes first.

use super::jobs::{burst, job_id, submit_v1, Burst, SUBMITTERS};
use super::server::BenchServer;
use super::{progress, report};
use crate::config::Settings;
use anyhow::Context;
use bosun_eventstore::{EventStore, PgEventStore};
use serde_json::json;

pub struct Options {
    pub jobs: usize,
    pub workers: usize,
    pub clients: usize,
    pub rounds: usize,
}

/// Default for `--clients`: what `bench jobs` submits with.
pub const CLIENTS: usize = SUBMITTERS;
/// Jobs through each path before measuring (connections, caches, the first spawns).
const WARM_UP: usize = 50;

#[derive(Clone, Copy, PartialEq)]
enum Path {
    Native,
    Pulsar,
}

pub async fn run(
    config: &tokio_postgres::Config,
    settings: Settings,
    options: Options,
) -> anyhow::Result<()> {
    let store = PgEventStore::open(config)
        .await
        .context("opening the event store")?;
    let server =
        BenchServer::with_true_task(&store, config, settings, options.workers, "compat").await?;
    let result = measure(&store, &server, &options).await;
    server.stop().await;
    let (native, pulsar) = result?;
    let rates = |bursts: &[Burst]| bursts.iter().map(Burst::rate).collect::<Vec<_>>();
    report(
        "compat_jobs_per_second",
        overall(&pulsar),
        "jobs/s",
        overall(&native),
        json!({
            "surface": "pulsar",
            "jobs": options.jobs,
            "workers": options.workers,
            "clients": options.clients,
            "rounds": options.rounds,
            "finished": pulsar.iter().map(|b| b.finished).sum::<usize>(),
            "native_finished": native.iter().map(|b| b.finished).sum::<usize>(),
            "rounds_jobs_per_second": rates(&pulsar),
            "native_rounds_jobs_per_second": rates(&native),
        }),
    );
    Ok(())
}

/// All the bursts' finished jobs over all their time.
fn overall(bursts: &[Burst]) -> f64 {
    let seconds: f64 = bursts.iter().map(|b| b.seconds).sum();
    let finished: usize = bursts.iter().map(|b| b.finished).sum();
    if seconds > 0.0 {
        finished as f64 / seconds
    } else {
        0.0
    }
}

/// The bursts through /v1 and through pulsar.
async fn measure(
    store: &PgEventStore,
    server: &BenchServer,
    options: &Options,
) -> anyhow::Result<(Vec<Burst>, Vec<Burst>)> {
    let http = reqwest::Client::new();
    let submit = |path: Path| {
        let http = &http;
        async move {
            match path {
                Path::Native => submit_v1(http, server, false).await,
                Path::Pulsar => submit_pulsar(http, server).await,
            }
        }
    };

    progress(format!("warm-up: {WARM_UP} jobs through each path"));
    for path in [Path::Native, Path::Pulsar] {
        burst(store, WARM_UP, options.clients, || submit(path)).await?;
    }
    // A job submitted through pulsar is the same job /v1 shows: it ran, and succeeded.
    let mut last = submit_pulsar(&http, server).await?;
    check_succeeded(&http, server, &last).await?;

    let (mut native, mut pulsar) = (Vec::new(), Vec::new());
    for round in 0..options.rounds {
        let order = if round % 2 == 0 {
            [Path::Native, Path::Pulsar]
        } else {
            [Path::Pulsar, Path::Native]
        };
        for path in order {
            progress(format!(
                "round {} of {}: {} jobs through {} from {} clients, {} workers",
                round + 1,
                options.rounds,
                options.jobs,
                if path == Path::Native {
                    "/v1"
                } else {
                    "/compat/pulsar"
                },
                options.clients,
                options.workers
            ));
            settle(&http, server, store, &last).await?;
            let measured = burst(store, options.jobs, options.clients, || submit(path)).await?;
            progress(format!("{:.1} jobs/s", measured.rate()));
            last = measured.ids.last().cloned().unwrap_or(last);
            match path {
                Path::Native => native.push(measured),
                Path::Pulsar => pulsar.push(measured),
            }
        }
    }
    Ok((native, pulsar))
}

/// Waits until the server's read models have applied the whole log (a GET of job `id` with
/// `Bosun-Min-Position` at the head), so that a burst does not start with the previous one's
/// leftover work: without it, the first burst, which follows none, ran faster than the others.
async fn settle(
    http: &reqwest::Client,
    server: &BenchServer,
    store: &PgEventStore,
    id: &str,
) -> anyhow::Result<()> {
    let head = store.head().await?;
    let response = http
        .get(format!("http://{}/v1/jobs/{id}", server.address))
        .bearer_auth(&server.token)
        .header("bosun-min-position", head.to_string())
        .send()
        .await
        .context("waiting for the read models")?;
    anyhow::ensure!(
        response.status().is_success(),
        "waiting for the read models: {}",
        response.status()
    );
    Ok(())
}

/// Submits `bench/bench/true` the way pulsar clients do; the job's id.
async fn submit_pulsar(http: &reqwest::Client, server: &BenchServer) -> anyhow::Result<String> {
    let response = http
        .post(format!(
            "http://{}/compat/pulsar/bench/bench",
            server.address
        ))
        .basic_auth(&server.token, Some("x-oauth-basic"))
        .json(&json!({"task": "true"}))
        .send()
        .await
        .context("submitting a job through /compat/pulsar")?;
    job_id(response).await
}

/// Waits (a few seconds at most) for job `id` to show `success` in `GET /v1/jobs/{id}`.
async fn check_succeeded(
    http: &reqwest::Client,
    server: &BenchServer,
    id: &str,
) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let job: serde_json::Value = http
            .get(format!("http://{}/v1/jobs/{id}", server.address))
            .bearer_auth(&server.token)
            .send()
            .await
            .context("reading a job")?
            .json()
            .await
            .context("reading a job")?;
        match job["status"].as_str() {
            Some("success") => return Ok(()),
            Some("waiting" | "processing") if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await
            }
            _ => anyhow::bail!("a job submitted through /compat/pulsar: {job}"),
        }
    }
}
