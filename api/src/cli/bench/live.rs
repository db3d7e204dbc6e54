//! `bosun bench live`: delivery latency of the live WebSocket feed under load. The real server
//! runs in this process on `127.0.0.1:0` over the benchmark's scratch database; `subscribers`
//! WebSocket clients follow `/v1/events/live?category=bench` while events are appended at `rate`
//! per second for `seconds` seconds straight through the event store, each carrying the time it
//! was sent. The baseline is one in-process `EventStore::subscribe` on the same events: the log's
//! own delivery latency, without the hub, the WebSocket or the client.
//!
//! Lines: `live_p50` and `live_p99` (ms, against the direct subscriber's), and `live_delivered`
//! (messages over all clients, against appended events × subscribers; 1.0 is nothing lost).
//!
//! Readers (`--readers`): `admin`, every client on the one admin token, which sees every event
//! unfiltered; or `members`, each client a user of its own, none an admin, in the team of an
//! app `bench` whose jobs they follow (`?category=job`): the events are output lines of the
//! app's 100 waiting jobs (`JobOutputAppended`, the time sent as the text), which the jobs
//! projection writes as it would a real job's, and which each subscriber's filter passes only
//! after asking the read models whether its user may read that job (once per job: it
//! remembers). The warm-up writes a line to every job, so those first checks are made before
//! the measured events.

use super::catchup::Memory;
use super::server::BenchServer;
use super::{percentile, progress, report};
use crate::config::Settings;
use anyhow::Context;
use bosun_eventstore::{EventStore, ExpectedVersion, Filter, NewEvent, PgEventStore, StreamId};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{header::AUTHORIZATION, HeaderValue};
use tokio_tungstenite::tungstenite::Message;

const CATEGORY: &str = "bench";
const TICK_TYPE: &str = "BenchTick";
/// The members' ticks: a line of a job's output.
const OUTPUT_TYPE: &str = "JobOutputAppended";
/// A member tick's text: the time sent, in nanoseconds, at a fixed width (a line's offset in
/// its job's output is then its index times this).
const OUTPUT_WIDTH: u64 = 21;
const WARMUP_TYPE: &str = "BenchWarmup";
/// Appends are paced in ticks of 10 ms: `rate / 100` per tick.
const TICKS_PER_SECOND: u64 = 100;
/// Events are spread over this many streams.
const STREAMS: u64 = 100;
const CONNECTING_AT_ONCE: usize = 50;
const WARMUP_WAIT: Duration = Duration::from_secs(60);
/// After the last append, how long clients may take to get everything.
const DRAIN_WAIT: Duration = Duration::from_secs(15);

pub struct Options {
    pub subscribers: usize,
    pub rate: u64,
    pub seconds: u64,
    pub readers: Readers,
}

/// Who the subscribers are (see the module's doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Readers {
    Admin,
    Members,
}

/// Where the ticks go and what they are: the admin's `bench` streams, or the members' jobs.
enum Ticks {
    Bench,
    /// The jobs' ids, one stream each.
    Jobs(Vec<uuid::Uuid>),
}

impl Ticks {
    fn category(&self) -> &'static str {
        match self {
            Ticks::Bench => CATEGORY,
            Ticks::Jobs(_) => "job",
        }
    }

    fn event_type(&self) -> &'static str {
        match self {
            Ticks::Bench => TICK_TYPE,
            Ticks::Jobs(_) => OUTPUT_TYPE,
        }
    }

    fn streams(&self) -> u64 {
        match self {
            Ticks::Bench => STREAMS,
            Ticks::Jobs(jobs) => jobs.len() as u64,
        }
    }

    /// Tick `i`, sent at `sent_ns`, and its stream: stream `i % streams`, whose
    /// `i / streams`-th tick it is.
    fn tick(&self, i: u64, sent_ns: u64) -> anyhow::Result<(StreamId, NewEvent)> {
        let stream = i % self.streams();
        Ok(match self {
            Ticks::Bench => (
                StreamId::new(CATEGORY, stream)?,
                NewEvent::new(TICK_TYPE, json!({ "sent_ns": sent_ns })),
            ),
            Ticks::Jobs(jobs) => {
                let job_id = jobs[stream as usize];
                let event = NewEvent::new(
                    OUTPUT_TYPE,
                    json!({
                        "job_id": job_id,
                        "stream": "stdout",
                        "offset": (i / self.streams()) * OUTPUT_WIDTH,
                        "text": format!("{sent_ns:0width$}\n", width = OUTPUT_WIDTH as usize - 1),
                    }),
                );
                (StreamId::new("job", job_id)?, event)
            }
        })
    }

    /// The time a tick was sent, from its data.
    fn sent_ns(&self, data: &serde_json::Value) -> Option<u64> {
        match self {
            Ticks::Bench => data.get("sent_ns")?.as_u64(),
            Ticks::Jobs(_) => data.get("text")?.as_str()?.trim().parse().ok(),
        }
    }
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
    if options.readers == Readers::Members {
        // The app's jobs wait: no worker takes them.
        settings.catalog = serde_json::from_value::<bosun_domain::jobs::Catalog>(
            json!({"bench": {"production": {"hold": {"command": ["sleep", "3600"]}}}}),
        )
        .context("the benchmark's catalog")?;
        settings.runner.workers = 0;
    }
    let store = PgEventStore::open(config)
        .await
        .context("opening the event store")?;
    let server = BenchServer::start(&store, config, settings, "live").await?;
    let result = match options.readers {
        Readers::Admin => {
            let tokens = vec![server.token.clone(); options.subscribers];
            measure(&store, server.address, tokens, Ticks::Bench, &options).await
        }
        Readers::Members => match members(&server, options.subscribers).await {
            Ok((tokens, jobs)) => {
                measure(&store, server.address, tokens, Ticks::Jobs(jobs), &options).await
            }
            Err(e) => Err(e),
        },
    };

    server.stop().await;
    let results = result?;
    results.report(&options);
    Ok(())
}

/// 500 clients and their 500 server-side sockets need more than the usual 1024 descriptors.
pub(super) fn raise_open_file_limit(subscribers: usize) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                progress(format!(
                    "cannot raise the open-file limit from {soft} to {hard}: {e}"
                ));
            }
        }
        Ok(_) => {}
        Err(e) => progress(format!("cannot read the open-file limit: {e}")),
    }
    if let Ok((soft, _)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let needed = 2 * subscribers as u64 + 256;
        if soft < needed {
            progress(format!(
                "the open-file limit is {soft}; {} subscribers need about {needed}",
                subscribers
            ));
        }
    }
}

/// What one WebSocket client saw.
#[derive(Default)]
struct ClientStats {
    /// Send-to-receive latency of each `BenchTick`, in microseconds.
    latencies_us: Vec<u32>,
    delivered: u64,
    /// Messages at or below a position already received.
    misordered: u64,
    /// Why the client ended before it was told to, if it did.
    closed: Option<String>,
}

/// Where a client is, for the waits: the last position it got, and whether it ended.
#[derive(Default)]
pub(super) struct Watermark {
    pub(super) last: AtomicU64,
    pub(super) ended: AtomicBool,
}

impl Watermark {
    pub(super) fn reached(&self, position: u64) -> bool {
        self.ended.load(Ordering::Acquire) || self.last.load(Ordering::Acquire) >= position
    }
}

#[derive(Deserialize)]
struct Envelope {
    position: u64,
    event_type: String,
    data: serde_json::Value,
}

/// The members' password (each is a user of the scratch database only).
const MEMBER_PASSWORD: &str = "bench-reader-password";
/// Jobs whose output the members follow.
const MEMBER_JOBS: usize = 100;
/// Setup calls in flight at once.
const SETUP_AT_ONCE: usize = 8;
/// How often a setup call is tried while its stream is contended.
const SETUP_TRIES: usize = 50;

/// The members' world, made over HTTP as the admin: a platform, a team `bench` and its app
/// `bench` with [`MEMBER_JOBS`] waiting jobs, and `subscribers` users `reader_<i>` in the team,
/// each signed in. Returns each user's token and the jobs' ids.
async fn members(
    server: &BenchServer,
    subscribers: usize,
) -> anyhow::Result<(Vec<String>, Vec<uuid::Uuid>)> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .context("an HTTP client")?;
    let base = format!("http://{}", server.address);
    // One call, tried again while it finds its stream contended (the members join one team
    // at once), as a client is told to.
    let call = |method: reqwest::Method,
                path: String,
                body: Option<serde_json::Value>,
                token: Option<String>| {
        let (http, url) = (http.clone(), format!("{base}{path}"));
        async move {
            let mut tries = 0;
            loop {
                let request = http.request(method.clone(), &url);
                let request = match &token {
                    Some(token) => request.bearer_auth(token),
                    None => request,
                };
                let request = match &body {
                    Some(body) => request.json(body),
                    None => request,
                };
                let response = request
                    .send()
                    .await
                    .with_context(|| format!("{method} {path}"))?;
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                tries += 1;
                if status == reqwest::StatusCode::CONFLICT
                    && text.contains("\"contended\"")
                    && tries < SETUP_TRIES
                {
                    continue;
                }
                anyhow::ensure!(status.is_success(), "{method} {path}: {status} {text}");
                return anyhow::Ok(
                    serde_json::from_str::<serde_json::Value>(&text).unwrap_or_default(),
                );
            }
        }
    };
    let admin = Some(server.token.clone());
    progress("making the app bench, its team and its jobs");
    call(
        reqwest::Method::POST,
        "/v1/platforms".into(),
        Some(json!({"name": "bench"})),
        admin.clone(),
    )
    .await?;
    call(
        reqwest::Method::POST,
        "/v1/teams".into(),
        Some(json!({"name": "bench"})),
        admin.clone(),
    )
    .await?;
    call(
        reqwest::Method::POST,
        "/v1/apps".into(),
        Some(json!({"name": "bench", "platform": "bench", "team_owner": "bench"})),
        admin.clone(),
    )
    .await?;
    let mut jobs = Vec::with_capacity(MEMBER_JOBS);
    for _ in 0..MEMBER_JOBS {
        let job = call(
            reqwest::Method::POST,
            "/v1/jobs".into(),
            Some(json!({"app": "bench", "env": "production", "task": "hold"})),
            admin.clone(),
        )
        .await?;
        let id = job["id"]
            .as_str()
            .and_then(|id| uuid::Uuid::parse_str(id).ok())
            .with_context(|| format!("a job without an id: {job}"))?;
        jobs.push(id);
    }
    progress(format!(
        "making {subscribers} users in the team, each signed in"
    ));
    let tokens: Vec<anyhow::Result<String>> = futures::stream::iter(0..subscribers)
        .map(|i| {
            let (call, admin) = (&call, admin.clone());
            async move {
                let username = format!("reader_{i}");
                call(
                    reqwest::Method::POST,
                    "/v1/users".into(),
                    Some(json!({"username": username, "password": MEMBER_PASSWORD})),
                    admin.clone(),
                )
                .await?;
                call(
                    reqwest::Method::PUT,
                    format!("/v1/teams/bench/members/{username}"),
                    None,
                    admin,
                )
                .await?;
                let signed_in = call(
                    reqwest::Method::POST,
                    "/v1/auth/tokens".into(),
                    Some(json!({"username": username, "password": MEMBER_PASSWORD})),
                    None,
                )
                .await?;
                signed_in["token"]
                    .as_str()
                    .map(str::to_string)
                    .with_context(|| format!("a sign-in without a token for {username}"))
            }
        })
        .buffered(SETUP_AT_ONCE)
        .collect()
        .await;
    let tokens = tokens
        .into_iter()
        .collect::<anyhow::Result<Vec<String>>>()?;
    Ok((tokens, jobs))
}

struct Results {
    appended: u64,
    append_seconds: f64,
    clients: Vec<ClientStats>,
    direct: Vec<u32>,
    direct_delivered: u64,
    /// Resident memory of the process (the server and the clients) before the clients
    /// connected, and with them all connected after the run.
    memory_before: Memory,
    memory_with_subscribers: Memory,
}

async fn measure(
    store: &PgEventStore,
    address: SocketAddr,
    tokens: Vec<String>,
    ticks: Ticks,
    options: &Options,
) -> anyhow::Result<Results> {
    let ticks = Arc::new(ticks);
    let origin = Instant::now();
    let (stop, stopped) = watch::channel(false);

    // The baseline: the log's own subscription, from the next event on.
    let head = store.head().await?;
    let direct_mark = Arc::new(Watermark::default());
    let direct = tokio::spawn(direct_subscriber(
        store.clone(),
        head + 1,
        ticks.clone(),
        origin,
        direct_mark.clone(),
        stopped.clone(),
    ));

    let memory_before = Memory::now();
    progress(format!(
        "connecting {} WebSocket clients to {address}",
        options.subscribers
    ));
    let url = format!(
        "ws://{address}/v1/events/live?category={}",
        ticks.category()
    );
    let connected: Vec<_> = futures::stream::iter(tokens.into_iter().enumerate())
        .map(|(i, token)| {
            let url = url.clone();
            async move {
                let authorization = HeaderValue::from_str(&format!("Bearer {token}"))
                    .context("a token does not fit in a header")?;
                let mut request = url
                    .as_str()
                    .into_client_request()
                    .with_context(|| format!("client {i}: bad URL"))?;
                request.headers_mut().insert(AUTHORIZATION, authorization);
                let (socket, _) = tokio_tungstenite::connect_async_with_config(request, None, true)
                    .await
                    .with_context(|| format!("client {i}: connecting to {url}"))?;
                anyhow::Ok(socket)
            }
        })
        .buffer_unordered(CONNECTING_AT_ONCE)
        .collect()
        .await;
    let mut marks = Vec::with_capacity(options.subscribers);
    let mut clients: Vec<JoinHandle<ClientStats>> = Vec::with_capacity(options.subscribers);
    for socket in connected {
        let mark = Arc::new(Watermark::default());
        marks.push(mark.clone());
        clients.push(tokio::spawn(client(
            socket?,
            ticks.clone(),
            origin,
            mark,
            stopped.clone(),
        )));
    }

    progress("warm-up: waiting for every client to get one event");
    let warmup = warm_up(store, &ticks).await?;
    let all = |position: u64| marks.iter().all(|m| m.reached(position));
    if !wait_until(WARMUP_WAIT, || all(warmup) && direct_mark.reached(warmup)).await {
        let missing = marks.iter().filter(|m| !m.reached(warmup)).count();
        anyhow::bail!(
            "{missing} of {} clients did not get the warm-up event within {}s",
            options.subscribers,
            WARMUP_WAIT.as_secs()
        );
    }
    let early = marks
        .iter()
        .filter(|m| m.ended.load(Ordering::Acquire))
        .count();
    if early > 0 {
        progress(format!("{early} clients were closed during the warm-up"));
    }

    let total = options.rate * options.seconds;
    progress(format!(
        "appending {total} events at {}/s for {}s",
        options.rate, options.seconds
    ));
    let started = Instant::now();
    let last = append_paced(store, &ticks, origin, options.rate, total).await?;
    let append_seconds = started.elapsed().as_secs_f64();

    progress("waiting for every client to get the last event");
    let drained = wait_until(DRAIN_WAIT, || all(last) && direct_mark.reached(last)).await;
    if !drained {
        let behind = marks.iter().filter(|m| !m.reached(last)).count();
        progress(format!(
            "{behind} clients had not got the last event after {}s",
            DRAIN_WAIT.as_secs()
        ));
    }
    // Measured while every client is still connected.
    let memory_with_subscribers = Memory::now();
    let _ = stop.send(true);
    let mut stats = Vec::with_capacity(clients.len());
    for client in clients {
        stats.push(client.await.context("a client task failed")?);
    }
    let (direct, direct_delivered) = direct.await.context("the direct subscriber failed")??;
    Ok(Results {
        appended: total,
        append_seconds,
        clients: stats,
        direct,
        direct_delivered,
        memory_before,
        memory_with_subscribers,
    })
}

/// The warm-up, which every client must get before the measure: one event on a stream of its
/// own for the admin; for the members, a line on each job (so that each subscriber has checked
/// each job), with no time in it. Returns the last position written.
async fn warm_up(store: &PgEventStore, ticks: &Ticks) -> anyhow::Result<u64> {
    let mut last = 0;
    match ticks {
        Ticks::Bench => {
            last = store
                .append(
                    &StreamId::new(CATEGORY, "warmup")?,
                    ExpectedVersion::Any,
                    vec![NewEvent::new(WARMUP_TYPE, json!({}))],
                )
                .await?
                .last_position;
        }
        Ticks::Jobs(_) => {
            for i in 0..ticks.streams() {
                let (stream, mut event) = ticks.tick(i, 0)?;
                let width = OUTPUT_WIDTH as usize - 1;
                event.data["text"] = json!(format!("{:width$}\n", "warm-up"));
                let written = store
                    .append(&stream, ExpectedVersion::Any, vec![event])
                    .await?;
                last = last.max(written.last_position);
            }
        }
    }
    Ok(last)
}

/// Appends `total` single-event appends at `rate` per second in 10 ms ticks, each tick's appends
/// at once and without waiting for the previous tick's; returns the last position written.
/// For the members, the ticks come after the warm-up's lines.
async fn append_paced(
    store: &PgEventStore,
    ticks: &Arc<Ticks>,
    origin: Instant,
    rate: u64,
    total: u64,
) -> anyhow::Result<u64> {
    let first = match **ticks {
        Ticks::Bench => 0,
        Ticks::Jobs(_) => ticks.streams(),
    };
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / TICKS_PER_SECOND as u32);
    let (mut sent, mut tick) = (0u64, 0u64);
    let mut batches = Vec::new();
    while sent < total {
        ticker.tick().await;
        tick += 1;
        let due = (rate * tick / TICKS_PER_SECOND).min(total);
        let batch = sent..due;
        sent = due;
        if batch.is_empty() {
            continue;
        }
        let (store, ticks) = (store.clone(), ticks.clone());
        batches.push(tokio::spawn(async move {
            let appends = batch.map(|i| {
                let (store, ticks) = (&store, &ticks);
                async move {
                    let sent_ns = origin.elapsed().as_nanos() as u64;
                    let (stream, event) = ticks.tick(first + i, sent_ns)?;
                    let written = store
                        .append(&stream, ExpectedVersion::Any, vec![event])
                        .await?;
                    anyhow::Ok(written.last_position)
                }
            });
            let positions = futures::future::try_join_all(appends).await?;
            anyhow::Ok(positions.into_iter().max().unwrap_or(0))
        }));
    }
    let mut last = 0;
    for batch in batches {
        last = last.max(batch.await.context("an append task failed")??);
    }
    Ok(last)
}

/// One WebSocket client: reads envelopes until told to stop or closed by the server.
async fn client(
    mut socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    ticks: Arc<Ticks>,
    origin: Instant,
    mark: Arc<Watermark>,
    mut stop: watch::Receiver<bool>,
) -> ClientStats {
    let mut stats = ClientStats::default();
    let mut last = 0;
    loop {
        tokio::select! {
            () = stopped(&mut stop) => {
                let _ = socket.close(None).await;
                break;
            }
            message = socket.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    let envelope: Envelope = match serde_json::from_str(&text) {
                        Ok(envelope) => envelope,
                        Err(e) => {
                            stats.closed = Some(format!("not an event envelope ({e}): {text}"));
                            break;
                        }
                    };
                    if envelope.position <= last {
                        stats.misordered += 1;
                    }
                    last = last.max(envelope.position);
                    if envelope.event_type == ticks.event_type() {
                        // A warm-up line has no time: it is not a tick.
                        if let Some(sent) = ticks.sent_ns(&envelope.data) {
                            stats.delivered += 1;
                            stats.latencies_us.push(micros_since(origin, sent));
                        }
                    }
                    mark.last.store(last, Ordering::Release);
                }
                Some(Ok(Message::Close(frame))) => {
                    stats.closed = Some(match frame {
                        Some(frame) => format!("closed by the server: {} {}", frame.code, frame.reason),
                        None => "closed by the server".into(),
                    });
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    stats.closed = Some(format!("connection failed: {e}"));
                    break;
                }
                None => {
                    stats.closed = Some("connection ended".into());
                    break;
                }
            }
        }
    }
    mark.ended.store(true, Ordering::Release);
    stats
}

/// The baseline: the same events through `EventStore::subscribe`, in this process.
async fn direct_subscriber(
    store: PgEventStore,
    from: u64,
    ticks: Arc<Ticks>,
    origin: Instant,
    mark: Arc<Watermark>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<(Vec<u32>, u64)> {
    let mut events = store.subscribe(from, Filter::category(ticks.category()));
    let (mut latencies, mut delivered) = (Vec::new(), 0u64);
    loop {
        tokio::select! {
            () = stopped(&mut stop) => break,
            event = events.next() => {
                let Some(event) = event else { break };
                let event = event.context("the direct subscription failed")?;
                if event.event_type == ticks.event_type() {
                    if let Some(sent) = ticks.sent_ns(&event.data) {
                        delivered += 1;
                        latencies.push(micros_since(origin, sent));
                    }
                }
                mark.last.store(event.position, Ordering::Release);
            }
        }
    }
    Ok((latencies, delivered))
}

fn micros_since(origin: Instant, sent_ns: u64) -> u32 {
    let now = origin.elapsed().as_nanos() as u64;
    u32::try_from(now.saturating_sub(sent_ns) / 1000).unwrap_or(u32::MAX)
}

/// Resolves once told to stop (or once nobody can tell any more).
pub(super) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Polls `done` every 10 ms until it holds (true) or `limit` passes (false).
pub(super) async fn wait_until(limit: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl Results {
    fn report(mut self, options: &Options) {
        let closed: Vec<String> = self
            .clients
            .iter_mut()
            .filter_map(|c| c.closed.take())
            .collect();
        for reason in closed.iter().take(5) {
            progress(format!("a client ended early: {reason}"));
        }
        let delivered: u64 = self.clients.iter().map(|c| c.delivered).sum();
        let misordered: u64 = self.clients.iter().map(|c| c.misordered).sum();
        let mut all: Vec<u32> = Vec::with_capacity(delivered as usize);
        for client in &mut self.clients {
            all.append(&mut client.latencies_us);
        }
        all.sort_unstable();
        self.direct.sort_unstable();
        let extra = json!({
            "appended": self.appended,
            "subscribers": options.subscribers,
            "readers": format!("{:?}", options.readers).to_lowercase(),
            "closed_clients": closed.len(),
            "rate": options.rate,
            "seconds": options.seconds,
            "append_rate": if self.append_seconds > 0.0 { (self.appended as f64 / self.append_seconds).round() } else { 0.0 },
        });
        for (name, p) in [("live_p50", 0.50), ("live_p99", 0.99)] {
            report(
                name,
                percentile(&all, p) / 1000.0,
                "ms",
                percentile(&self.direct, p) / 1000.0,
                extra.clone(),
            );
        }
        let mut extra = extra;
        if let Some(fields) = extra.as_object_mut() {
            fields.insert("misordered".into(), json!(misordered));
            fields.insert("direct_delivered".into(), json!(self.direct_delivered));
        }
        report(
            "live_delivered",
            delivered as f64,
            "events",
            (self.appended * options.subscribers as u64) as f64,
            extra.clone(),
        );
        if let Some(fields) = extra.as_object_mut() {
            fields.insert(
                "peak_mb".into(),
                json!(self.memory_with_subscribers.peak_kb / 1024),
            );
            fields.insert(
                "process".into(),
                json!("the server and its WebSocket clients, in one process"),
            );
        }
        report(
            "live_memory_mb",
            self.memory_with_subscribers.now_kb as f64 / 1024.0,
            "MB resident",
            self.memory_before.now_kb as f64 / 1024.0,
            extra,
        );
    }
}
