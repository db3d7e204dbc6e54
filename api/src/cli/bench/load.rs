//! `bosun bench load`: loading an aggregate whose stream holds 10, 1,000 or 100,000 events, as a
//! command does before it decides. Each stream is a team (`TeamCreated`, then members added and
//! removed in turn). For each size: the first load by a fresh command handler (every event read
//! and applied), and then loads that find its state kept and read only the tail, one event
//! appended before each, as between two commands; the baseline is the same for the 10-event
//! stream in the same run.

use super::{percentile, progress, report};
use bosun_commands::Commands;
use bosun_domain::identity::Team;
use bosun_domain::Aggregate;
use bosun_eventstore::{EventStore, ExpectedVersion, NewEvent, PgEventStore, StreamId};
use bosun_projections::Freshness;
use serde_json::json;
use std::time::Instant;

/// Loads measured per size after the first.
const LOADS: usize = 200;
/// Events per append while filling a stream.
const CHUNK: u64 = 1000;

pub async fn run(config: &tokio_postgres::Config, sizes: &[u64]) -> anyhow::Result<()> {
    let store = PgEventStore::open(config).await?;
    let mut sizes: Vec<u64> = sizes.iter().map(|&n| n.max(1)).collect();
    let baseline_size = 10;
    if !sizes.contains(&baseline_size) {
        sizes.insert(0, baseline_size);
    }
    let mut measured = Vec::with_capacity(sizes.len());
    for &size in &sizes {
        progress(format!("writing a team stream of {size} events"));
        let name = format!("load-{size}");
        fill(&store, &name, size).await?;
        measured.push((size, measure(&store, &name, size).await?));
    }
    let baseline = measured
        .iter()
        .find(|(size, _)| *size == baseline_size)
        .map(|(_, m)| m.kept_p50)
        .unwrap_or_default();
    for (size, m) in measured {
        report(
            "load",
            m.kept_p50,
            "µs (p50, state kept)",
            baseline,
            json!({
                "events": size,
                "kept_p99_us": (m.kept_p99 * 100.0).round() / 100.0,
                "first_load_ms": (m.first_ms * 100.0).round() / 100.0,
                "loads": LOADS,
            }),
        );
    }
    Ok(())
}

fn member_event(name: &str, i: u64) -> NewEvent {
    let (event_type, user) = if i % 2 == 1 {
        ("TeamMemberAdded", format!("user-{}", i / 2))
    } else {
        ("TeamMemberRemoved", format!("user-{}", i / 2 - 1))
    };
    NewEvent::new(event_type, json!({ "name": name, "username": user }))
}

/// `TeamCreated`, then members added and removed in turn, to `size` events.
async fn fill(store: &PgEventStore, name: &str, size: u64) -> anyhow::Result<()> {
    let stream = StreamId::new("team", name)?;
    let created = NewEvent::new("TeamCreated", json!({ "name": name, "creator": "bench" }));
    let mut expected = ExpectedVersion::NoStream;
    let mut next = 0;
    while next < size {
        let end = (next + CHUNK).min(size);
        let events = (next..end)
            .map(|i| {
                if i == 0 {
                    created.clone()
                } else {
                    member_event(name, i)
                }
            })
            .collect();
        let written = store.append(&stream, expected, events).await?;
        expected = ExpectedVersion::Exact(written.last_version);
        next = end;
    }
    Ok(())
}

struct Measured {
    first_ms: f64,
    kept_p50: f64,
    kept_p99: f64,
}

async fn measure(store: &PgEventStore, name: &str, size: u64) -> anyhow::Result<Measured> {
    let commands = Commands::over(store.clone(), Freshness::none(), None);
    let started = Instant::now();
    let (team, version) = commands.load::<Team>(name).await?;
    let first_ms = started.elapsed().as_secs_f64() * 1000.0;
    anyhow::ensure!(
        team.exists() && version == ExpectedVersion::Exact(size - 1),
        "the team stream of {size} events loaded at {version}"
    );
    let stream = StreamId::new("team", name)?;
    let mut expected = version;
    let mut samples = Vec::with_capacity(LOADS);
    for i in 0..LOADS as u64 {
        let written = store
            .append(&stream, expected, vec![member_event(name, size + i)])
            .await?;
        expected = ExpectedVersion::Exact(written.last_version);
        let started = Instant::now();
        let (_, loaded) = commands.load::<Team>(name).await?;
        samples.push(started.elapsed().as_secs_f64() * 1e6);
        anyhow::ensure!(
            loaded == expected,
            "loaded at {loaded}, the stream is at {expected}"
        );
    }
    samples.sort_by(f64::total_cmp);
    Ok(Measured {
        first_ms,
        kept_p50: percentile(&samples, 0.50),
        kept_p99: percentile(&samples, 0.99),
    })
}
