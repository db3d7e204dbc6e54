//! `bosun bench catchup`: many live subscribers opening `/v1/events/live?from=1` at once on a
//! long log while HTTP clients keep writing through the API. The real server runs in this process
//! on `127.0.0.1:0` over the benchmark's scratch database.
//!
//! The log is first filled with `events` events, appended straight through the store in big
//! batches. Phase 1, the baseline: `writers` clients each doing `POST /v1/tokens` one after the
//! other for `seconds` seconds, nobody watching. Phase 2: the same writers while `subscribers`
//! WebSocket clients open the feed from position 1 at once and read until they reach the head
//! (then the writers' last events, live).
//!
//! Lines: `catchup_writer_p99` (ms, with the subscribers against without them);
//! `catchup_closed` (subscribers the server closed before they finished, by close code);
//! `catchup_complete` (subscribers that got every event once and in order, against all of them);
//! `catchup_reads` (catch-up reads of the log, against one read per page per subscriber, what
//! subscribers reading the log each on its own would make); `catchup_peak_memory` (VmHWM in MB
//! after phase 2, against before it; the process holds the server and all the clients).

use super::live::{raise_open_file_limit, stopped, wait_until, Watermark};
use super::server::BenchServer;
use super::{percentile, progress, report};
use crate::config::Settings;
use crate::live::pages::{reads_total, PAGE};
use anyhow::Context;
use bosun_eventstore::{EventStore, ExpectedVersion, NewEvent, PgEventStore, StreamId};
use futures::{StreamExt, TryStreamExt};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{header::AUTHORIZATION, HeaderValue};
use tokio_tungstenite::tungstenite::Message;

/// Events per append while filling the log, and appends in flight at once.
const FILL_BATCH: u64 = 1000;
const FILL_AT_ONCE: usize = 4;
/// About the size of a real event's data (a token issued, a job's output line).
const PADDING: usize = 160;
/// How long the read models may take to apply the filled log.
const FRESH_WAIT: Duration = Duration::from_secs(600);
/// How long the subscribers may take to reach the head, and then the writers' last events.
const CATCH_UP_WAIT: Duration = Duration::from_secs(900);
const DRAIN_WAIT: Duration = Duration::from_secs(60);
/// Each writer stops after this many requests whatever the time.
const MAX_WRITES: u64 = 200_000;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Options {
    pub subscribers: usize,
    pub events: u64,
    pub writers: usize,
    pub seconds: u64,
}

pub async fn run(
    config: &tokio_postgres::Config,
    mut settings: Settings,
    options: Options,
) -> anyhow::Result<()> {
    raise_open_file_limit(options.subscribers);
    // Every subscriber holds the one admin token: each gets its socket.
    settings.live.max_sockets_per_token = settings
        .live
        .max_sockets_per_token
        .max(u32::try_from(options.subscribers).unwrap_or(u32::MAX));
    let store = PgEventStore::open(config)
        .await
        .context("opening the event store")?;
    let server = BenchServer::start(&store, config, settings, "catchup").await?;
    let result = measure(&store, server.address, &server.token, &options).await;
    server.stop().await;
    result?.report(&options);
    Ok(())
}

struct Results {
    alone: Writes,
    with_subscribers: Writes,
    subscribers: Vec<Received>,
    /// The head when the subscribers opened the feed, and after the writers' last write.
    head_at_open: u64,
    head_at_end: u64,
    reads: u64,
    before: Memory,
    after: Memory,
}

async fn measure(
    store: &PgEventStore,
    address: SocketAddr,
    token: &str,
    options: &Options,
) -> anyhow::Result<Results> {
    let base = format!("http://{address}");
    let filled = fill(store, options.events).await?;
    wait_for_read_models(&base, token, filled).await?;
    progress(format!(
        "phase 1: {} writers alone for {}s",
        options.writers, options.seconds
    ));
    let (stop, stopping) = watch::channel(false);
    let writers = start_writers(&base, token, options.writers, &stopping);
    tokio::time::sleep(Duration::from_secs(options.seconds)).await;
    let _ = stop.send(true);
    let alone = collect_writes(writers).await?;
    let before = Memory::now();
    let reads_before = reads_total();
    let phase = with_subscribers(store, address, token, options).await?;
    Ok(Results {
        alone,
        with_subscribers: phase.writes,
        subscribers: phase.subscribers,
        head_at_open: phase.head_at_open,
        head_at_end: phase.head_at_end,
        reads: reads_total() - reads_before,
        before,
        after: phase.memory,
    })
}

/// What phase 2 measured.
struct Phase {
    writes: Writes,
    subscribers: Vec<Received>,
    head_at_open: u64,
    head_at_end: u64,
    /// Taken once every subscriber had everything, before they closed.
    memory: Memory,
}

/// Phase 2: the writers again while the subscribers open the feed from position 1 and catch up;
/// the writers stop once the subscribers reached the head they opened at (and not before
/// `seconds`), the subscribers once they have the writers' last event too.
async fn with_subscribers(
    store: &PgEventStore,
    address: SocketAddr,
    token: &str,
    options: &Options,
) -> anyhow::Result<Phase> {
    let head_at_open = store.head().await?;
    progress(format!(
        "phase 2: the writers again, and {} subscribers from position 1 of {head_at_open}",
        options.subscribers
    ));
    let started = Instant::now();
    let (stop_writing, writing) = watch::channel(false);
    let writers = start_writers(
        &format!("http://{address}"),
        token,
        options.writers,
        &writing,
    );
    let (stop_reading, reading) = watch::channel(false);
    let opening = Opening {
        address,
        token,
        count: options.subscribers,
        head: head_at_open,
        started,
    };
    let (marks, subscribers) = opening.open(&reading).await?;
    let reached = |position: u64| marks.iter().all(|m| m.reached(position));
    if !wait_until(CATCH_UP_WAIT, || reached(head_at_open)).await {
        progress(format!(
            "not every subscriber reached {head_at_open} within {}s",
            CATCH_UP_WAIT.as_secs()
        ));
    }
    progress(format!(
        "the subscribers reached the head in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    let seconds = Duration::from_secs(options.seconds);
    tokio::time::sleep(seconds.saturating_sub(started.elapsed())).await;
    let _ = stop_writing.send(true);
    let writes = collect_writes(writers).await?;
    let head_at_end = store.head().await?;
    wait_until(DRAIN_WAIT, || reached(head_at_end)).await;
    let memory = Memory::now();
    let _ = stop_reading.send(true);
    let mut received = Vec::with_capacity(subscribers.len());
    for subscriber in subscribers {
        received.push(subscriber.await.context("a subscriber task failed")?);
    }
    Ok(Phase {
        writes,
        subscribers: received,
        head_at_open,
        head_at_end,
        memory,
    })
}

/// Appends `events` events in batches of [`FILL_BATCH`], a few batches at once; returns the head.
async fn fill(store: &PgEventStore, events: u64) -> anyhow::Result<u64> {
    progress(format!("filling the log with {events} events"));
    let started = Instant::now();
    let padding = "x".repeat(PADDING);
    let batches = (0..events.div_ceil(FILL_BATCH)).map(|batch| {
        let (store, padding) = (store.clone(), padding.clone());
        async move {
            let first = batch * FILL_BATCH;
            let batch_events = (first..events.min(first + FILL_BATCH))
                .map(|n| NewEvent::new("BenchFilled", json!({"n": n, "padding": padding})))
                .collect();
            store
                .append(
                    &StreamId::new("fill", batch)?,
                    ExpectedVersion::Any,
                    batch_events,
                )
                .await?;
            anyhow::Ok(())
        }
    });
    futures::stream::iter(batches)
        .buffer_unordered(FILL_AT_ONCE)
        .try_collect::<Vec<()>>()
        .await?;
    let head = store.head().await?;
    progress(format!(
        "filled to {head} in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    Ok(head)
}

/// Waits until the read models have applied `position`: the live feed sends nothing past them.
async fn wait_for_read_models(base: &str, token: &str, position: u64) -> anyhow::Result<()> {
    progress(format!("waiting for the read models to reach {position}"));
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()?;
    let deadline = Instant::now() + FRESH_WAIT;
    // Each GET waits up to 5 s for the position on the server.
    while Instant::now() < deadline {
        let answer = http
            .get(format!("{base}/v1/jobs?limit=1"))
            .bearer_auth(token)
            .header("bosun-min-position", position.to_string())
            .send()
            .await;
        if answer.is_ok_and(|a| a.status().is_success()) {
            return Ok(());
        }
    }
    anyhow::bail!(
        "the read models did not reach {position} within {}s",
        FRESH_WAIT.as_secs()
    )
}

/// One writer's or all writers' requests.
#[derive(Default)]
struct Writes {
    /// Of the answered requests, in microseconds.
    latencies_us: Vec<u32>,
    failures: u64,
    first_failure: Option<String>,
}

fn start_writers(
    base: &str,
    token: &str,
    writers: usize,
    stop: &watch::Receiver<bool>,
) -> Vec<JoinHandle<anyhow::Result<Writes>>> {
    (0..writers)
        .map(|w| {
            let (url, token, stop) = (format!("{base}/v1/tokens"), token.to_string(), stop.clone());
            tokio::spawn(async move { writer(w, url, token, stop).await })
        })
        .collect()
}

/// `POST /v1/tokens` one after the other until told to stop (at most [`MAX_WRITES`]).
async fn writer(
    w: usize,
    url: String,
    token: String,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Writes> {
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()?;
    let mut writes = Writes::default();
    for n in 0..MAX_WRITES {
        if *stop.borrow() {
            break;
        }
        let started = Instant::now();
        let body = json!({"description": format!("bench writer {w} #{n}"), "expires_in": 3600});
        let answer = http.post(&url).bearer_auth(&token).json(&body).send().await;
        let failure = match answer {
            Ok(answer) if answer.status().is_success() => match answer.bytes().await {
                Ok(_) => None,
                Err(e) => Some(format!("reading the answer: {e}")),
            },
            Ok(answer) => Some(format!(
                "{}: {}",
                answer.status(),
                answer.text().await.unwrap_or_default()
            )),
            Err(e) => Some(e.to_string()),
        };
        match failure {
            None => writes
                .latencies_us
                .push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX)),
            Some(failure) => {
                writes.failures += 1;
                writes.first_failure.get_or_insert(failure);
            }
        }
    }
    Ok(writes)
}

async fn collect_writes(
    writers: Vec<JoinHandle<anyhow::Result<Writes>>>,
) -> anyhow::Result<Writes> {
    let mut all = Writes::default();
    for writer in writers {
        let mut writes = writer.await.context("a writer task failed")??;
        all.latencies_us.append(&mut writes.latencies_us);
        all.failures += writes.failures;
        if all.first_failure.is_none() {
            all.first_failure = writes.first_failure;
        }
    }
    all.latencies_us.sort_unstable();
    Ok(all)
}

/// What one subscriber got.
#[derive(Default)]
struct Received {
    events: u64,
    last: u64,
    /// Every event was the one after the previous one, from position 1.
    in_order: bool,
    caught_up_after: Option<Duration>,
    /// Why the server or the connection ended it before the benchmark did, if it did.
    closed: Option<Closed>,
}

enum Closed {
    Code(u16, String),
    Failed(String),
}

/// The subscribers of phase 2.
struct Opening<'a> {
    address: SocketAddr,
    token: &'a str,
    count: usize,
    /// The head they are to catch up with.
    head: u64,
    started: Instant,
}

impl Opening<'_> {
    /// Opens the feeds from position 1 all at once and starts reading them.
    async fn open(
        &self,
        stop: &watch::Receiver<bool>,
    ) -> anyhow::Result<(Vec<Arc<Watermark>>, Vec<JoinHandle<Received>>)> {
        let sockets = futures::future::join_all((0..self.count).map(|i| self.connect(i))).await;
        let mut marks = Vec::with_capacity(self.count);
        let mut subscribers = Vec::with_capacity(self.count);
        for socket in sockets {
            let mark = Arc::new(Watermark::default());
            marks.push(mark.clone());
            let catching_up = CatchingUp {
                head: self.head,
                started: self.started,
                mark,
            };
            subscribers.push(tokio::spawn(subscriber(socket?, catching_up, stop.clone())));
        }
        Ok((marks, subscribers))
    }

    async fn connect(&self, i: usize) -> anyhow::Result<Socket> {
        let url = format!("ws://{}/v1/events/live?from=1", self.address);
        let authorization = HeaderValue::from_str(&format!("Bearer {}", self.token))
            .context("the admin token does not fit in a header")?;
        let mut request = url
            .as_str()
            .into_client_request()
            .with_context(|| format!("subscriber {i}: bad URL"))?;
        request.headers_mut().insert(AUTHORIZATION, authorization);
        let (socket, _) = tokio_tungstenite::connect_async_with_config(request, None, true)
            .await
            .with_context(|| format!("subscriber {i}: connecting to {url}"))?;
        Ok(socket)
    }
}

/// What a subscriber reports its progress against.
struct CatchingUp {
    head: u64,
    started: Instant,
    mark: Arc<Watermark>,
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Reads one feed until told to stop or ended by the server.
async fn subscriber(
    mut socket: Socket,
    at: CatchingUp,
    mut stop: watch::Receiver<bool>,
) -> Received {
    let mut got = Received {
        in_order: true,
        ..Received::default()
    };
    let ended = loop {
        let message = tokio::select! {
            () = stopped(&mut stop) => {
                let _ = socket.close(None).await;
                break None;
            }
            message = socket.next() => message,
        };
        match message {
            Some(Ok(Message::Text(text))) => {
                let Some(position) = position_of(&text) else {
                    break Some(Closed::Failed(format!("not an event envelope: {text}")));
                };
                got.in_order &= position == got.last + 1;
                got.last = got.last.max(position);
                got.events += 1;
                if got.caught_up_after.is_none() && got.last >= at.head {
                    got.caught_up_after = Some(at.started.elapsed());
                }
                at.mark.last.store(got.last, Ordering::Release);
            }
            Some(Ok(Message::Close(frame))) => {
                break Some(match frame {
                    Some(frame) => Closed::Code(frame.code.into(), frame.reason.to_string()),
                    None => Closed::Failed("closed without a code".into()),
                })
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => break Some(Closed::Failed(format!("connection failed: {e}"))),
            None => break Some(Closed::Failed("connection ended".into())),
        }
    };
    got.closed = ended;
    at.mark.ended.store(true, Ordering::Release);
    got
}

/// The envelope's position. It is the envelope's first field, so it is read without parsing the
/// rest: 500 clients parsing 100,000 envelopes each would be most of the benchmark's work.
fn position_of(text: &str) -> Option<u64> {
    if let Some(rest) = text.strip_prefix("{\"position\":") {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        return rest[..digits].parse().ok();
    }
    serde_json::from_str::<Value>(text)
        .ok()?
        .get("position")?
        .as_u64()
}

/// Resident memory of this process, from `/proc/self/status`.
#[derive(Clone, Copy, Default)]
pub(super) struct Memory {
    /// The peak so far (VmHWM) and now (VmRSS), in kB.
    pub peak_kb: u64,
    pub now_kb: u64,
}

impl Memory {
    pub(super) fn now() -> Memory {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        Memory {
            peak_kb: field("VmHWM:"),
            now_kb: field("VmRSS:"),
        }
    }
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

fn ms(us: f64) -> f64 {
    us / 1000.0
}

impl Results {
    fn report(self, options: &Options) {
        let common = json!({
            "subscribers": options.subscribers,
            "events": self.head_at_open,
            "writers": options.writers,
            "seconds": options.seconds,
        });
        self.report_writers(&common);
        self.report_subscribers(&common);
        let pages = self.head_at_open.div_ceil(PAGE);
        report(
            "catchup_reads",
            self.reads as f64,
            "reads",
            (pages * options.subscribers as u64) as f64,
            with(&common, json!({"page": PAGE})),
        );
        report(
            "catchup_peak_memory",
            mb(self.after.peak_kb),
            "MB",
            mb(self.before.peak_kb),
            with(
                &common,
                json!({
                    "growth_mb": (mb(self.after.peak_kb) - mb(self.before.peak_kb)).round(),
                    "rss_before_mb": mb(self.before.now_kb).round(),
                    "rss_after_mb": mb(self.after.now_kb).round(),
                    "note": "VmHWM of the whole process: the server and every in-process client",
                }),
            ),
        );
    }

    fn report_writers(&self, common: &Value) {
        let (with_subs, alone) = (&self.with_subscribers, &self.alone);
        if let Some(failure) = with_subs
            .first_failure
            .as_ref()
            .or(alone.first_failure.as_ref())
        {
            progress(format!("a write failed: {failure}"));
        }
        report(
            "catchup_writer_p99",
            ms(percentile(&with_subs.latencies_us, 0.99)),
            "ms",
            ms(percentile(&alone.latencies_us, 0.99)),
            with(
                common,
                json!({
                    "p50_ms": ms(percentile(&with_subs.latencies_us, 0.5)),
                    "baseline_p50_ms": ms(percentile(&alone.latencies_us, 0.5)),
                    "max_ms": ms(percentile(&with_subs.latencies_us, 1.0)),
                    "baseline_max_ms": ms(percentile(&alone.latencies_us, 1.0)),
                    "writes": with_subs.latencies_us.len(),
                    "baseline_writes": alone.latencies_us.len(),
                    "failed_writes": with_subs.failures,
                    "baseline_failed_writes": alone.failures,
                }),
            ),
        );
    }

    fn report_subscribers(&self, common: &Value) {
        let mut by_code: BTreeMap<String, u64> = BTreeMap::new();
        let mut no_connection = 0;
        for closed in self.subscribers.iter().filter_map(|s| s.closed.as_ref()) {
            let (key, reason) = match closed {
                Closed::Code(code, reason) => (code.to_string(), reason.as_str()),
                Closed::Failed(reason) => ("no close frame".to_string(), reason.as_str()),
            };
            if matches!(closed, Closed::Code(1011, _)) || reason.contains("connection") {
                no_connection += 1;
            }
            *by_code.entry(key).or_default() += 1;
            if by_code.values().sum::<u64>() <= 5 {
                progress(format!("a subscriber was closed: {reason}"));
            }
        }
        let closed: u64 = by_code.values().sum();
        report(
            "catchup_closed",
            closed as f64,
            "subscribers",
            0.0,
            with(
                common,
                json!({"by_code": by_code, "internal_or_connection": no_connection}),
            ),
        );
        let complete = self
            .subscribers
            .iter()
            .filter(|s| s.in_order && s.last == self.head_at_end && s.events == self.head_at_end)
            .count();
        let mut caught_up: Vec<f64> = self
            .subscribers
            .iter()
            .filter_map(|s| s.caught_up_after.map(|d| d.as_secs_f64()))
            .collect();
        caught_up.sort_by(f64::total_cmp);
        report(
            "catchup_complete",
            complete as f64,
            "subscribers",
            self.subscribers.len() as f64,
            with(
                common,
                json!({
                    "head": self.head_at_end,
                    "misordered": self.subscribers.iter().filter(|s| !s.in_order).count(),
                    "caught_up_p50_s": percentile(&caught_up, 0.5),
                    "caught_up_max_s": percentile(&caught_up, 1.0),
                }),
            ),
        );
    }
}

/// `common` with `extra`'s fields added.
fn with(common: &Value, extra: Value) -> Value {
    let mut all = common.clone();
    if let (Some(all), Value::Object(extra)) = (all.as_object_mut(), extra) {
        all.extend(extra);
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_position_is_read_from_the_front_or_parsed() {
        assert_eq!(
            position_of(r#"{"position":42,"stream_id":"a-1"}"#),
            Some(42)
        );
        assert_eq!(position_of(r#"{"stream_id":"a-1","position":7}"#), Some(7));
        assert_eq!(position_of("not json"), None);
    }
}
