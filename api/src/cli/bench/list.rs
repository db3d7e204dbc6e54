//! `bosun bench list`: `GET /v1/jobs` and `GET /v1/audit` pages on the in-process server as their
//! tables grow to each size (1,000, 100,000 and 1,000,000 rows by default): the first page, a
//! page from the middle reached by its cursor (`after`, what a `Link: rel="next"` gives), and
//! the first page of one status. The baseline of each line is the same request at the smallest
//! size in the same run: a ratio near 1 is a page that costs the same however long the list.
//!
//! The rows are written straight into the read models' tables with `generate_series` (a list
//! reads its table, never the log; a million jobs through the log would take most of an hour
//! here), then vacuumed and analyzed, as autovacuum would after such growth.

use super::server::BenchServer;
use super::{percentile, progress, report};
use crate::config::Settings;
use anyhow::Context;
use bosun_eventstore::PgEventStore;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio_postgres::NoTls;

/// Requests measured per kind and size, after a few unmeasured.
const SAMPLES: usize = 200;
const WARM_UP: usize = 10;
/// Audit rows start here, past any position the server's own events take.
const AUDIT_BASE: i64 = 1_000_000_000;

pub async fn run(
    config: &tokio_postgres::Config,
    settings: Settings,
    sizes: &[u64],
) -> anyhow::Result<()> {
    let mut sizes: Vec<u64> = sizes.iter().map(|&n| n.max(1)).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let store = PgEventStore::open(config)
        .await
        .context("opening the event store")?;
    let mut settings = settings;
    settings.runner.workers = 0;
    let server = BenchServer::start(&store, config, settings, "list").await?;
    let result = measure(&server, config, &sizes).await;
    server.stop().await;
    let measured = result?;
    let Some((smallest, _)) = measured.first() else {
        return Ok(());
    };
    let smallest = *smallest;
    for &(kind, _) in &KINDS {
        let baseline = measured[0]
            .1
            .iter()
            .find(|(k, _)| k == &kind)
            .map(|(_, p)| *p);
        for (size, results) in &measured {
            let Some((p50, p99)) = results.iter().find(|(k, _)| k == &kind).map(|(_, p)| *p) else {
                continue;
            };
            let (baseline_p50, baseline_p99) = baseline.unwrap_or_default();
            report(
                &format!("list_{kind}_p99_ms"),
                p99,
                "ms",
                baseline_p99,
                json!({
                    "rows": size,
                    "p50_ms": (p50 * 100.0).round() / 100.0,
                    "baseline_rows": smallest,
                    "baseline_p50_ms": (baseline_p50 * 100.0).round() / 100.0,
                    "samples": SAMPLES,
                }),
            );
        }
    }
    Ok(())
}

/// What is asked at each size: a name, and the path (`{after_job}`, `{after_audit}`: the
/// cursors of the middle rows).
const KINDS: [(&str, &str); 5] = [
    ("jobs_first_page", "/v1/jobs?limit=100"),
    ("jobs_middle_page", "/v1/jobs?limit=100&after={after_job}"),
    ("jobs_status_page", "/v1/jobs?limit=100&status=success"),
    ("audit_first_page", "/v1/audit?limit=100"),
    (
        "audit_middle_page",
        "/v1/audit?limit=100&after={after_audit}",
    ),
];

/// Per size, per kind: p50 and p99 in ms.
type Measured = Vec<(u64, Vec<(&'static str, (f64, f64))>)>;

async fn measure(
    server: &BenchServer,
    config: &tokio_postgres::Config,
    sizes: &[u64],
) -> anyhow::Result<Measured> {
    let (db, connection) = config.connect(NoTls).await?;
    let driver = tokio::spawn(connection);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .context("an HTTP client")?;
    let base = format!("http://{}", server.address);
    let mut measured = Vec::new();
    let mut rows = 0;
    for &size in sizes {
        progress(format!("growing the jobs and audit tables to {size} rows"));
        grow(&db, rows, size).await?;
        rows = size;
        // The cursor of the job in the middle: newest first, so the (size/2)th newest.
        let middle = db
            .query_one(
                "SELECT (extract(epoch FROM created_at) * 1000000)::bigint, job_id
                 FROM jobs ORDER BY created_at DESC, job_id OFFSET $1 LIMIT 1",
                &[&((size / 2) as i64)],
            )
            .await?;
        let after_job = format!(
            "{}.{}",
            middle.get::<_, i64>(0),
            middle.get::<_, uuid::Uuid>(1)
        );
        let after_audit = (AUDIT_BASE + (size / 2) as i64).to_string();
        let mut results = Vec::new();
        for (kind, path) in KINDS {
            let path = path
                .replace("{after_job}", &after_job)
                .replace("{after_audit}", &after_audit);
            let url = format!("{base}{path}");
            let mut samples = Vec::with_capacity(SAMPLES);
            for i in 0..WARM_UP + SAMPLES {
                let started = Instant::now();
                let response = http
                    .get(&url)
                    .bearer_auth(&server.token)
                    .send()
                    .await
                    .with_context(|| format!("GET {path}"))?;
                let status = response.status();
                let body = response.bytes().await?;
                anyhow::ensure!(
                    status.is_success(),
                    "GET {path} answered {status}: {}",
                    String::from_utf8_lossy(&body)
                );
                if i >= WARM_UP {
                    samples.push(started.elapsed().as_secs_f64() * 1000.0);
                }
            }
            samples.sort_by(f64::total_cmp);
            let (p50, p99) = (percentile(&samples, 0.5), percentile(&samples, 0.99));
            progress(format!(
                "{size} rows, {kind}: p50 {p50:.2} ms, p99 {p99:.2} ms"
            ));
            results.push((kind, (p50, p99)));
        }
        measured.push((size, results));
    }
    drop(db);
    let _ = driver.await;
    Ok(measured)
}

/// Rows `from + 1` to `to` of both tables: jobs of 20 apps, newest last, one second apart, in
/// turns of five statuses; audit entries at positions past [`AUDIT_BASE`].
async fn grow(db: &tokio_postgres::Client, from: u64, to: u64) -> anyhow::Result<()> {
    let (from, to) = (from as i64 + 1, to as i64);
    db.execute(
        "INSERT INTO jobs (job_id, app, env, task, variables, status, created_at, command,
                           initialized_by, created_by, version)
         SELECT gen_random_uuid(), 'app-' || (i % 20), 'production', 'deploy', '{}',
                (ARRAY['success', 'error', 'waiting', 'processing', 'killed'])[1 + i % 5],
                timestamptz '2026-01-01' + i * interval '1 second', '[\"true\"]',
                'manual', 'admin', 0
         FROM generate_series($1::bigint, $2::bigint) AS i",
        &[&from, &to],
    )
    .await
    .context("growing the jobs table")?;
    db.execute(
        "INSERT INTO audit (position, at, actor, action, target)
         SELECT $3::bigint + i, timestamptz '2026-01-01' + i * interval '1 second', 'admin',
                'JobSubmitted', 'job-' || i
         FROM generate_series($1::bigint, $2::bigint) AS i",
        &[&from, &to, &AUDIT_BASE],
    )
    .await
    .context("growing the audit table")?;
    // One statement each: VACUUM refuses to run inside the block a multi-statement query is.
    for table in ["jobs", "audit"] {
        db.batch_execute(&format!("VACUUM ANALYZE {table}"))
            .await
            .with_context(|| format!("vacuuming the {table} table"))?;
    }
    Ok(())
}
