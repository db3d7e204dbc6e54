//! `bosun bench http [--rate R] [--seconds S] [--clients C] [--writes P]`: a mixed read/write
//! load at a sustained rate against the in-process server on loopback, against the same rate of
//! `GET /healthz` on the same server in the same run.
//!
//! Open loop: request `i` is due at `start + i / R`, whatever the answers before it did, and its
//! latency is counted from when it was due (a server that stalls is charged for every request
//! that waited, not only the one it held). At most C requests are in flight: one due while C
//! are is not sent and counts as shed, so the load stays bounded whatever the server does.
//!
//! The mix, chosen by the request's number: P % writes, `POST /v1/teams` (a new team: an event,
//! a projection, the answer once the read models have it), and reads in equal shares of
//! `GET /v1/auth/whoami`, `GET /v1/teams?limit=20` and `GET /v1/teams/{a team made before}`.
//!
//! Lines: `http_mixed_p99_ms` (baseline: the `/healthz` run's p99) and
//! `http_mixed_requests_per_second` (baseline: the `/healthz` run's), each with p50, p99, errors
//! (an answer that is no 2xx, or no answer) and shed requests of both runs.

use super::server::BenchServer;
use super::{percentile, progress, report};
use crate::config::Settings;
use anyhow::Context;
use bosun_eventstore::PgEventStore;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Options {
    pub rate: u64,
    pub seconds: u64,
    pub clients: usize,
    /// Percent of requests that write (0 to 100).
    pub writes: u64,
}

/// Teams made before the measured run, for the reads of one.
const SEED_TEAMS: usize = 20;

/// What one run measured.
struct Run {
    /// Latency of each answered 2xx request from when it was due, in ms, sorted.
    latencies: Vec<f64>,
    errors: usize,
    shed: usize,
    seconds: f64,
}

impl Run {
    fn throughput(&self) -> f64 {
        if self.seconds > 0.0 {
            self.latencies.len() as f64 / self.seconds
        } else {
            0.0
        }
    }

    fn p(&self, quantile: f64) -> f64 {
        percentile(&self.latencies, quantile)
    }
}

#[derive(Clone, Copy)]
enum Load {
    Healthz,
    Mixed { writes: u64 },
}

pub async fn run(
    config: &tokio_postgres::Config,
    settings: Settings,
    options: Options,
) -> anyhow::Result<()> {
    anyhow::ensure!(options.writes <= 100, "--writes is a percentage: 0 to 100");
    let store = PgEventStore::open(config)
        .await
        .context("opening the event store")?;
    let mut settings = settings;
    // No jobs in this mix: no workers competing for the two cores.
    settings.runner.workers = 0;
    let server = BenchServer::start(&store, config, settings, "http").await?;
    let result = measure(&server, &options).await;
    server.stop().await;
    let (healthz, mixed) = result?;
    let extra = |run: &Run, baseline: &Run| {
        json!({
            "rate": options.rate,
            "seconds": options.seconds,
            "clients": options.clients,
            "writes_percent": options.writes,
            "p50_ms": round(run.p(0.50)),
            "p99_ms": round(run.p(0.99)),
            "answered": run.latencies.len(),
            "errors": run.errors,
            "shed": run.shed,
            "baseline_p50_ms": round(baseline.p(0.50)),
            "baseline_p99_ms": round(baseline.p(0.99)),
            "baseline_answered": baseline.latencies.len(),
            "baseline_errors": baseline.errors,
            "baseline_shed": baseline.shed,
        })
    };
    report(
        "http_mixed_p99_ms",
        mixed.p(0.99),
        "ms",
        healthz.p(0.99),
        extra(&mixed, &healthz),
    );
    report(
        "http_mixed_requests_per_second",
        mixed.throughput(),
        "requests/s",
        healthz.throughput(),
        extra(&mixed, &healthz),
    );
    Ok(())
}

fn round(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The `/healthz` run, then the mixed one, after a short warm-up of each.
async fn measure(server: &BenchServer, options: &Options) -> anyhow::Result<(Run, Run)> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(options.clients)
        .timeout(Duration::from_secs(30))
        .build()
        .context("an HTTP client")?;
    let base = format!("http://{}", server.address);
    progress(format!("making {SEED_TEAMS} teams to read"));
    for i in 0..SEED_TEAMS {
        let response = http
            .post(format!("{base}/v1/teams"))
            .bearer_auth(&server.token)
            .json(&json!({"name": format!("seed_{i}")}))
            .send()
            .await
            .context("making a team to read")?;
        anyhow::ensure!(
            response.status().is_success(),
            "making a team to read: {}",
            response.status()
        );
    }
    let target = Target {
        http,
        base,
        token: server.token.clone(),
    };
    let writes = options.writes;
    let warm_up = Options {
        rate: options.rate,
        seconds: 1,
        clients: options.clients,
        writes,
    };
    progress("warm-up: a second of each");
    drive(&target, Load::Healthz, &warm_up, "warm_h").await;
    drive(&target, Load::Mixed { writes }, &warm_up, "warm_m").await;
    progress(format!(
        "GET /healthz at {}/s for {} s, at most {} in flight",
        options.rate, options.seconds, options.clients
    ));
    let healthz = drive(&target, Load::Healthz, options, "h").await;
    progress(format!(
        "the mix ({writes} % writes) at {}/s for {} s, at most {} in flight",
        options.rate, options.seconds, options.clients
    ));
    let mixed = drive(&target, Load::Mixed { writes }, options, "m").await;
    Ok((healthz, mixed))
}

struct Target {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// Sends `options.rate` requests a second of `load` for `options.seconds`, open loop and
/// bounded; `run_name` keeps the teams it makes apart from another run's.
async fn drive(target: &Target, load: Load, options: &Options, run_name: &str) -> Run {
    let total = options.rate.saturating_mul(options.seconds);
    let interval = Duration::from_secs_f64(1.0 / options.rate as f64);
    let in_flight = Arc::new(tokio::sync::Semaphore::new(options.clients));
    let results: Arc<Mutex<(Vec<f64>, usize)>> = Arc::default();
    let mut shed = 0;
    let mut tasks = tokio::task::JoinSet::new();
    let start = tokio::time::Instant::now();
    for i in 0..total {
        let due = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due).await;
        let Ok(permit) = Arc::clone(&in_flight).try_acquire_owned() else {
            shed += 1;
            continue;
        };
        let request = request(target, load, i, run_name);
        let results = Arc::clone(&results);
        let due = due.into_std();
        tasks.spawn(async move {
            let answered = request.send().await;
            let ok = match answered {
                Ok(response) => {
                    let ok = response.status().is_success();
                    // Read to the end: the connection goes back to the pool.
                    let _ = response.bytes().await;
                    ok
                }
                Err(_) => false,
            };
            let latency = due.elapsed().as_secs_f64() * 1000.0;
            drop(permit);
            let mut results = results.lock().unwrap_or_else(|e| e.into_inner());
            if ok {
                results.0.push(latency);
            } else {
                results.1 += 1;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let seconds = start.elapsed().as_secs_f64();
    let (mut latencies, errors) =
        std::mem::take(&mut *results.lock().unwrap_or_else(|e| e.into_inner()));
    latencies.sort_by(f64::total_cmp);
    Run {
        latencies,
        errors,
        shed,
        seconds,
    }
}

/// Request `i` of `load`.
fn request(target: &Target, load: Load, i: u64, run_name: &str) -> reqwest::RequestBuilder {
    let url = |path: &str| format!("{}{path}", target.base);
    match load {
        Load::Healthz => target.http.get(url("/healthz")),
        // Spread through every hundred requests so the writes are not bunched.
        Load::Mixed { writes } if (i * 37) % 100 < writes => target
            .http
            .post(url("/v1/teams"))
            .bearer_auth(&target.token)
            .json(&json!({"name": format!("{run_name}_{i}")})),
        Load::Mixed { .. } => {
            let path = match i % 3 {
                0 => "/v1/auth/whoami".to_string(),
                1 => "/v1/teams?limit=20".to_string(),
                _ => format!("/v1/teams/seed_{}", i as usize % SEED_TEAMS),
            };
            target.http.get(url(&path)).bearer_auth(&target.token)
        }
    }
}
