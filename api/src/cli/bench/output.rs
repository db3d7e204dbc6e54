//! `bosun bench output --bytes N [--runs R]`: a job whose process prints N bytes, through the
//! real server and its worker, against running the same command directly and reading its output
//! to the end, in the same run.
//!
//! Line: `output_job_seconds`, from the submission over HTTP until a GET of the job shows it
//! finished (polled every 10 ms), the median of R runs, against the median direct run. The output cap is raised above N so
//! that all of it is kept, and each run checks the job's byte count.

use super::server::BenchServer;
use super::{progress, report};
use crate::config::Settings;
use anyhow::Context;
use bosun_eventstore::PgEventStore;
use serde_json::json;
use std::time::Instant;
use tokio::io::AsyncReadExt;

pub struct Options {
    pub bytes: u64,
    pub runs: usize,
}

/// `N` bytes of text, as fast as `sh`, `yes` and `head` make them.
fn command(bytes: u64) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        format!("yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c {bytes}"),
    ]
}

pub async fn run(
    config: &tokio_postgres::Config,
    settings: Settings,
    options: Options,
) -> anyhow::Result<()> {
    let command = command(options.bytes);
    progress(format!(
        "baseline: {} bytes from the command directly, {} runs",
        options.bytes, options.runs
    ));
    let mut direct = Vec::with_capacity(options.runs);
    for _ in 0..options.runs {
        direct.push(run_directly(&command, options.bytes).await?);
    }

    let store = PgEventStore::open(config)
        .await
        .context("opening the event store")?;
    let mut settings = settings;
    settings.catalog =
        serde_json::from_value(json!({"bench": {"bench": {"output": {"command": command}}}}))
            .context("the benchmark's catalog")?;
    settings.runner.workers = 1;
    settings.runner.output_limit_bytes = options.bytes + 1024 * 1024;
    let server = BenchServer::start(&store, config, settings, "output").await?;
    let result = through_the_server(&server, &options).await;
    server.stop().await;
    let mut jobs = result?;
    direct.sort_by(f64::total_cmp);
    jobs.sort_by(f64::total_cmp);
    report(
        "output_job_seconds",
        median(&jobs),
        "s",
        median(&direct),
        json!({"bytes": options.bytes, "runs": options.runs, "jobs_s": jobs, "direct_s": direct}),
    );
    Ok(())
}

fn median(sorted: &[f64]) -> f64 {
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

/// Seconds from spawning `command` to the end of its output and its exit.
async fn run_directly(command: &[String], bytes: u64) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut child = tokio::process::Command::new(&command[0])
        .args(&command[1..])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("running the command directly")?;
    let mut stdout = child.stdout.take().context("the command's stdout")?;
    let mut buffer = vec![0u8; 64 * 1024];
    let mut read = 0u64;
    loop {
        let n = stdout.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        read += n as u64;
    }
    child.wait().await?;
    anyhow::ensure!(
        read == bytes,
        "the command printed {read} bytes, not {bytes}"
    );
    Ok(started.elapsed().as_secs_f64())
}

/// Seconds of each run through the server.
async fn through_the_server(server: &BenchServer, options: &Options) -> anyhow::Result<Vec<f64>> {
    let http = reqwest::Client::new();
    let url = format!("http://{}/v1/jobs", server.address);
    let mut seconds = Vec::with_capacity(options.runs);
    for run in 0..options.runs {
        progress(format!("job {} of {}", run + 1, options.runs));
        let started = Instant::now();
        let response = http
            .post(&url)
            .bearer_auth(&server.token)
            .json(&json!({"app": "bench", "env": "bench", "task": "output"}))
            .send()
            .await
            .context("submitting the job")?;
        anyhow::ensure!(
            response.status().is_success(),
            "submitting the job: {}",
            response.status()
        );
        let job: serde_json::Value = response.json().await.context("reading the answer")?;
        let id = job["id"].as_str().context("the job has no id")?.to_string();
        let job = loop {
            let job: serde_json::Value = http
                .get(format!("{url}/{id}"))
                .bearer_auth(&server.token)
                .send()
                .await
                .context("reading the job")?
                .json()
                .await
                .context("reading the job")?;
            if !matches!(job["status"].as_str(), Some("waiting" | "processing")) {
                break job;
            }
            anyhow::ensure!(
                started.elapsed() < std::time::Duration::from_secs(600),
                "the job did not finish within 10 minutes"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        };
        seconds.push(started.elapsed().as_secs_f64());
        anyhow::ensure!(
            job["status"] == "success",
            "the job ended {}",
            job["status"]
        );
        anyhow::ensure!(
            job["stdout_bytes"].as_u64() == Some(options.bytes),
            "the job kept {} bytes of output, not {}",
            job["stdout_bytes"],
            options.bytes
        );
    }
    Ok(seconds)
}
