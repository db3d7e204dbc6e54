//! A jobs-like read model for the replay benchmark: one row per job, its status, pid, output size
//! and exit code, as the jobs model will keep them.

use bosun_eventstore::{Filter, RecordedEvent};
use bosun_projections::{Projection, Tables, Writes};

pub struct BenchJobs;

const TABLE: &str = "bench_jobs";

impl Projection for BenchJobs {
    fn name(&self) -> &'static str {
        "bench_jobs"
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &[TABLE]
    }

    fn filter(&self) -> Filter {
        Filter::category("job")
    }

    fn create(&self, tables: &Tables) -> String {
        let t = tables.name(TABLE);
        format!(
            "CREATE TABLE {t} (
                job_id       TEXT PRIMARY KEY,
                app          TEXT NOT NULL,
                env          TEXT NOT NULL,
                task         TEXT NOT NULL,
                status       TEXT NOT NULL,
                pid          BIGINT,
                output_bytes BIGINT NOT NULL DEFAULT 0,
                exit_code    BIGINT,
                version      BIGINT NOT NULL,
                submitted_at TIMESTAMPTZ NOT NULL,
                started_at   TIMESTAMPTZ,
                finished_at  TIMESTAMPTZ)"
        )
    }

    fn indexes(&self, tables: &Tables) -> String {
        let t = tables.name(TABLE);
        format!("CREATE INDEX ON {t} (status); CREATE INDEX ON {t} (app, env, submitted_at);")
    }

    fn apply(&self, event: &RecordedEvent, tables: &Tables, writes: &mut Writes) {
        let t = tables.name(TABLE);
        let id = event.stream_id.id().to_string();
        let version = event.version as i64;
        let text = |key: &str| {
            event
                .data
                .get(key)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        let number = |key: &str| event.data.get(key).and_then(|v| v.as_i64());
        match event.event_type.as_str() {
            "JobSubmitted" => writes.push(
                format!("INSERT INTO {t} (job_id, app, env, task, status, version, submitted_at) VALUES ($1, $2, $3, $4, 'waiting', $5, $6)"),
                vec![Box::new(id), Box::new(text("app")), Box::new(text("env")), Box::new(text("task")), Box::new(version), Box::new(event.recorded_at)],
            ),
            "JobStarted" => writes.push(
                format!("UPDATE {t} SET status = 'processing', pid = $2, started_at = $3, version = $4 WHERE job_id = $1"),
                vec![Box::new(id), Box::new(number("pid")), Box::new(event.recorded_at), Box::new(version)],
            ),
            "JobOutputAppended" => writes.push(
                format!("UPDATE {t} SET output_bytes = output_bytes + $2, version = $3 WHERE job_id = $1"),
                vec![Box::new(id), Box::new(text("text").len() as i64), Box::new(version)],
            ),
            "JobFinished" => writes.push(
                format!("UPDATE {t} SET status = $2, exit_code = $3, finished_at = $4, version = $5 WHERE job_id = $1"),
                vec![Box::new(id), Box::new(text("status")), Box::new(number("exit_code")), Box::new(event.recorded_at), Box::new(version)],
            ),
            _ => {}
        }
    }
}
