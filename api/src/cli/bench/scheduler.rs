//! `bosun bench scheduler --orchestrations N [--minutes M]`: N orchestrations with the cron
//! `* * * * *` on the real server (its workers running the jobs), for M cron slots.
//!
//! Lines: `scheduled_to_submitted_p50`/`_p99`: from each slot's instant to its job's
//! `JobSubmitted` commit, against the same for N jobs submitted at once over HTTP in the same
//! run (from the burst's start to each commit: the cost of making N jobs at once); and
//! `scheduled_runs_lost` / `scheduled_runs_doubled`: slots with no job, and jobs beyond one per
//! slot.

use super::server::BenchServer;
use super::{percentile, progress, report};
use crate::config::Settings;
use anyhow::Context;
use bosun_eventstore::{EventStore, Filter, PgEventStore};
use chrono::{DateTime, Duration as Span, DurationRound, Utc};
use futures::StreamExt;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub struct Options {
    pub orchestrations: usize,
    pub minutes: u32,
    pub workers: usize,
}

/// Clients creating orchestrations and submitting the baseline's jobs at once (the scheduler
/// fires 32 at once too).
const CLIENTS: usize = 32;
/// After the last slot, how long its jobs may take to appear before they count as lost.
const GRACE: Duration = Duration::from_secs(15);

pub async fn run(
    config: &tokio_postgres::Config,
    settings: Settings,
    options: Options,
) -> anyhow::Result<()> {
    let store = PgEventStore::open(config)
        .await
        .context("opening the event store")?;
    let server =
        BenchServer::with_true_task(&store, config, settings, options.workers, "scheduler").await?;
    let result = measure(&store, &server, &options).await;
    server.stop().await;
    let mut measured = result?;
    measured.latencies.sort_by(f64::total_cmp);
    measured.baseline.sort_by(f64::total_cmp);
    for (name, p) in [
        ("scheduled_to_submitted_p50", 0.5),
        ("scheduled_to_submitted_p99", 0.99),
    ] {
        report(
            name,
            percentile(&measured.latencies, p),
            "ms",
            percentile(&measured.baseline, p),
            json!({"orchestrations": options.orchestrations, "slots": measured.slots, "jobs": measured.latencies.len(), "baseline_is": "N jobs submitted at once over HTTP"}),
        );
    }
    report(
        "scheduled_runs_lost",
        measured.lost as f64,
        "runs",
        0.0,
        json!({"slots": measured.slots}),
    );
    report(
        "scheduled_runs_doubled",
        measured.doubled as f64,
        "runs",
        0.0,
        json!({"slots": measured.slots}),
    );
    Ok(())
}

struct Measured {
    latencies: Vec<f64>,
    baseline: Vec<f64>,
    slots: usize,
    lost: usize,
    doubled: usize,
}

async fn measure(
    store: &PgEventStore,
    server: &BenchServer,
    options: &Options,
) -> anyhow::Result<Measured> {
    let http = reqwest::Client::new();
    let base = format!("http://{}", server.address);
    let post = |path: &str, body: Value| {
        let request = http
            .post(format!("{base}{path}"))
            .bearer_auth(&server.token)
            .json(&body);
        async move {
            let response = request.send().await.context("calling the server")?;
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            anyhow::ensure!(status.is_success(), "{status}: {body}");
            Ok(body)
        }
    };

    progress(format!(
        "baseline: {} jobs submitted at once from {CLIENTS} clients",
        options.orchestrations
    ));
    let burst = Utc::now();
    let submitted: Vec<anyhow::Result<Value>> = futures::stream::iter(0..options.orchestrations)
        .map(|_| {
            post(
                "/v1/jobs",
                json!({"app": "bench", "env": "bench", "task": "true"}),
            )
        })
        .buffer_unordered(CLIENTS)
        .collect()
        .await;
    let baseline_ids: Vec<String> = submitted
        .into_iter()
        .map(|job| Ok(job?["id"].as_str().unwrap_or_default().to_string()))
        .collect::<anyhow::Result<_>>()?;

    progress(format!(
        "creating {} orchestrations with the cron * * * * *",
        options.orchestrations
    ));
    let created: Vec<anyhow::Result<Value>> = futures::stream::iter(0..options.orchestrations)
        .map(|i| {
            post(
                "/v1/orchestrations",
                json!({"name": format!("bench {i}"), "crontab": "* * * * *",
                       "tasks": [{"component": "bench/bench/true"}]}),
            )
        })
        .buffer_unordered(CLIENTS)
        .collect()
        .await;
    // Each orchestration's first slot: the first whole minute after it was created.
    let mut first_slot: HashMap<String, DateTime<Utc>> = HashMap::new();
    for orchestration in created {
        let orchestration = orchestration?;
        let id = orchestration["id"].as_str().unwrap_or_default().to_string();
        let next = orchestration["next_scheduled_at"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .context("an orchestration without next_scheduled_at")?;
        first_slot.insert(id, next.to_utc());
    }
    let earliest = first_slot.values().min().copied().unwrap_or_else(Utc::now);
    let last = earliest + Span::minutes(i64::from(options.minutes.max(1)) - 1);
    let until = last + Span::from_std(GRACE)?;
    progress(format!(
        "waiting for {} slot(s), {} to {} UTC (until {})",
        options.minutes,
        earliest.format("%H:%M"),
        last.format("%H:%M"),
        until.format("%H:%M:%S")
    ));
    let started = Instant::now();
    while Utc::now() < until {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if started.elapsed().as_secs().is_multiple_of(30) {
            progress(format!(
                "{} s to go",
                (until - Utc::now()).num_seconds().max(0)
            ));
        }
    }

    progress("reading the log");
    let (scheduled, baseline_times) = read_jobs(store).await?;
    let baseline: Vec<f64> = baseline_ids
        .iter()
        .filter_map(|id| baseline_times.get(id))
        .map(|at| (*at - burst).num_microseconds().unwrap_or(0) as f64 / 1000.0)
        .collect();
    let mut latencies = Vec::new();
    let (mut slots, mut lost, mut doubled) = (0, 0, 0);
    for (id, first) in &first_slot {
        let mut slot = *first;
        while slot <= last {
            slots += 1;
            match scheduled.get(&(id.clone(), slot)) {
                None => lost += 1,
                Some(times) => {
                    doubled += times.len() - 1;
                    latencies.extend(
                        times
                            .iter()
                            .map(|at| (*at - slot).num_microseconds().unwrap_or(0) as f64 / 1000.0),
                    );
                }
            }
            slot += Span::minutes(1);
        }
    }
    Ok(Measured {
        latencies,
        baseline,
        slots,
        lost,
        doubled,
    })
}

type Scheduled = HashMap<(String, DateTime<Utc>), Vec<DateTime<Utc>>>;

/// Scheduled jobs' `JobSubmitted` commit times by orchestration and slot, and every other job's
/// by job id.
async fn read_jobs(
    store: &PgEventStore,
) -> anyhow::Result<(Scheduled, HashMap<String, DateTime<Utc>>)> {
    let filter = Filter {
        categories: vec!["job".into()],
        event_types: vec!["JobSubmitted".into()],
        ..Filter::default()
    };
    let mut scheduled: Scheduled = HashMap::new();
    let mut others = HashMap::new();
    let mut position = 1;
    loop {
        let page = store.read_page(position, 5000, &filter).await?;
        let Some(last) = page.events.last() else {
            break;
        };
        position = last.position + 1;
        for e in &page.events {
            let slot = e.data["scheduled_for"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .and_then(|t| t.to_utc().duration_trunc(Span::seconds(1)).ok());
            match (e.data["orchestration_id"].as_str(), slot) {
                (Some(id), Some(slot)) => scheduled
                    .entry((id.to_string(), slot))
                    .or_default()
                    .push(e.recorded_at),
                _ => {
                    others.insert(e.stream_id.id().to_string(), e.recorded_at);
                }
            }
        }
    }
    Ok((scheduled, others))
}
