//! `GET /v1/events/live`: a WebSocket of event envelopes, catch-up from `from` then live, in
//! position order, each once.
//!
//! Auth: the `Authorization` header, or (for browsers) a first message `{"token": "…"}` within
//! 5 s; otherwise the socket is closed with code 4401 (4403 if the token may not read the log).
//! A ping every 15 s keeps it open. A subscriber more than the live buffer behind is closed with
//! code 4408 and a reason `{"code":"slow_consumer","last_position":N}`: reconnect with
//! `from=N+1`.

use crate::auth::{authenticate, token_from_headers, Caller};
use crate::extract::Query;
use crate::live::LiveEvent;
use crate::problem::Problem;
use crate::routes::events::list_param;
use crate::startup::AppState;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use bosun_domain::identity::Scope;
use bosun_eventstore::{EventStore, Filter};
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

pub const AUTH_TIMEOUT: Duration = Duration::from_secs(5);
pub const PING_EVERY: Duration = Duration::from_secs(15);
/// How often a connected subscriber's token is checked again (and at its expiry).
pub const RECHECK_EVERY: Duration = Duration::from_secs(5);
/// A socket write that takes longer means the client stopped reading: it is closed as slow.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const PAGE: usize = 500;
/// Most live events written to a socket with one flush: one write per batch instead of per
/// event is what lets hundreds of subscribers keep up (see `bosun bench live`).
const BATCH: usize = 256;

pub const CLOSE_UNAUTHORIZED: u16 = 4401;
pub const CLOSE_FORBIDDEN: u16 = 4403;
pub const CLOSE_SLOW: u16 = 4408;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveQuery {
    from: Option<u64>,
    category: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
}

pub async fn live(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LiveQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, Problem> {
    let upgrade = upgrade.map_err(|e| {
        Problem::new(
            e.status(),
            "websocket_required",
            format!("this is a WebSocket endpoint: {}", e.body_text()),
        )
    })?;
    // A token in the header is checked before the upgrade, so a bad one is a plain 401.
    let token = token_from_headers(&headers)?;
    if let Some(token) = &token {
        let caller = authenticate(&state, token).await?;
        may_watch(&caller).map_err(|(_, message)| Problem::forbidden(message))?;
    }
    let filter = Filter {
        categories: list_param(&query.category),
        event_types: list_param(&query.event_type),
        actors: vec![],
    };
    let from = query.from.unwrap_or(1).max(1);
    Ok(upgrade.on_upgrade(move |socket| async move {
        state.metrics.live_subscribers.inc();
        serve(state.clone(), socket, token, filter, from).await;
        state.metrics.live_subscribers.dec();
    }))
}

fn may_watch(caller: &Caller) -> Result<(), (u16, String)> {
    if caller.actor.is_admin() && caller.actor.require(Scope::Read).is_ok() {
        Ok(())
    } else {
        Err((
            CLOSE_FORBIDDEN,
            "the live feed needs an admin token with the read and admin scopes".into(),
        ))
    }
}

#[derive(Deserialize)]
struct TokenMessage {
    token: String,
}

type Sink = SplitSink<WebSocket, Message>;

async fn close(sink: &mut Sink, code: u16, reason: String) {
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from(reason),
    }));
    // A client that reads nothing would block these forever.
    let _ = tokio::time::timeout(WRITE_TIMEOUT, async {
        let _ = sink.send(frame).await;
        let _ = sink.close().await;
    })
    .await;
}

/// Checks the token again every few seconds and at its expiry; answers with the close code and
/// reason once it no longer may watch (expired, revoked, its user removed or no longer admin).
async fn lose_access(state: &AppState, token: &str, first_check: Duration) -> (u16, String) {
    let mut wait = first_check;
    loop {
        tokio::time::sleep(wait).await;
        wait = match authenticate(state, token).await {
            Ok(caller) => {
                if let Err(refusal) = may_watch(&caller) {
                    return refusal;
                }
                next_check(&caller)
            }
            Err(_) => {
                return (
                    CLOSE_UNAUTHORIZED,
                    "the token is unknown, expired or revoked".into(),
                )
            }
        };
    }
}

/// The next check: in `RECHECK_EVERY`, or just after the token expires if that is sooner.
fn next_check(caller: &Caller) -> Duration {
    let until_expiry = caller
        .holder
        .expires_at
        .map(|at| (at - chrono::Utc::now()).to_std().unwrap_or_default());
    until_expiry.map_or(RECHECK_EVERY, |d| {
        d.min(RECHECK_EVERY) + Duration::from_millis(5)
    })
}

async fn serve(
    state: AppState,
    socket: WebSocket,
    token: Option<String>,
    filter: Filter,
    from: u64,
) {
    let (mut sink, mut incoming) = socket.split();
    let token = match token {
        Some(token) => token,
        None => {
            let first = tokio::time::timeout(AUTH_TIMEOUT, incoming.next()).await;
            let token = match first {
                Ok(Some(Ok(Message::Text(text)))) => {
                    serde_json::from_str::<TokenMessage>(&text).ok()
                }
                _ => None,
            };
            let Some(TokenMessage { token }) = token else {
                return close(
                    &mut sink,
                    CLOSE_UNAUTHORIZED,
                    "send {\"token\": \"…\"} first, within 5 s".into(),
                )
                .await;
            };
            token
        }
    };
    // Checked before the first event goes out, whichever way the token came.
    let first_check = match authenticate(&state, &token).await {
        Ok(caller) => {
            if let Err((code, message)) = may_watch(&caller) {
                return close(&mut sink, code, message).await;
            }
            next_check(&caller)
        }
        Err(_) => {
            return close(
                &mut sink,
                CLOSE_UNAUTHORIZED,
                "the token is unknown, expired or revoked".into(),
            )
            .await
        }
    };
    // The reader answers pings and notices the client leaving.
    let (gone_tx, mut gone) = tokio::sync::oneshot::channel::<()>();
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = incoming.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
        let _ = gone_tx.send(());
    });
    let (refused, access) = tokio::sync::oneshot::channel();
    let watch_access = {
        let state = state.clone();
        async move {
            let _ = refused.send(lose_access(&state, &token, first_check).await);
        }
    };
    let watcher = tokio::spawn(watch_access);
    let mut access = access;
    let result = tokio::select! {
        r = stream_events(&state, &mut sink, &filter, from) => r,
        _ = &mut gone => Ok(()),
        lost = &mut access => match lost {
            Ok((code, reason)) => Err(Ending::Refused(code, reason)),
            Err(_) => Err(Ending::Gone),
        },
    };
    watcher.abort();
    reader.abort();
    if let Err(ending) = result {
        match ending {
            Ending::Slow { last_position } => {
                tracing::info!(last_position, "live subscriber too slow; closing it");
                let reason =
                    serde_json::json!({"code": "slow_consumer", "last_position": last_position});
                close(&mut sink, CLOSE_SLOW, reason.to_string()).await;
            }
            Ending::Gone => {}
            Ending::Refused(code, reason) => close(&mut sink, code, reason).await,
            Ending::Store(e) => {
                tracing::error!(error = %e, "live subscriber: reading the log failed");
                close(&mut sink, 1011, "internal error; reconnect".into()).await;
            }
        }
    }
}

enum Ending {
    Slow {
        last_position: u64,
    },
    Gone,
    /// The token stopped being good for this feed.
    Refused(u16, String),
    Store(bosun_eventstore::StoreError),
}

/// Sends events from `from` on: pages from the log until caught up, then the hub's feed, filling
/// from the log any gap between the two. Live events already waiting in the feed are written
/// together and flushed once.
async fn stream_events(
    state: &AppState,
    sink: &mut Sink,
    filter: &Filter,
    from: u64,
) -> Result<(), Ending> {
    // `cursor`: every position up to it has been sent or skipped by the filter.
    let mut cursor = from - 1;
    let mut last_sent = cursor;
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    catch_up(state, sink, filter, &mut cursor, &mut last_sent, u64::MAX).await?;
    let mut feed = state.live.subscribe();
    // Anything committed between the last page and subscribing comes from the log.
    catch_up(state, sink, filter, &mut cursor, &mut last_sent, u64::MAX).await?;
    loop {
        tokio::select! {
            received = feed.recv() => match received {
                Ok(event) => {
                    // What the hub already holds goes out with it, in one write.
                    let mut next = Some(event);
                    let mut queued = 0;
                    while let Some(event) = next.take() {
                        if event.position > cursor {
                            if event.position > cursor + 1 {
                                catch_up(state, sink, filter, &mut cursor, &mut last_sent, event.position - 1).await?;
                            }
                            queue(sink, &event, filter, &mut cursor, &mut last_sent).await?;
                        }
                        queued += 1;
                        if queued < BATCH {
                            next = match feed.try_recv() {
                                Ok(event) => Some(event),
                                Err(TryRecvError::Empty) => None,
                                Err(TryRecvError::Lagged(_)) => return Err(Ending::Slow { last_position: last_sent }),
                                Err(TryRecvError::Closed) => return Err(Ending::Gone),
                            };
                        }
                    }
                    flush(sink, last_sent).await?;
                }
                Err(RecvError::Lagged(_)) => return Err(Ending::Slow { last_position: last_sent }),
                Err(RecvError::Closed) => return Err(Ending::Gone),
            },
            _ = ping.tick() => {
                write(sink, Message::Ping(Default::default()), last_sent).await?;
                flush(sink, last_sent).await?;
            }
        }
    }
}

/// Queues `event` on the socket if the filter wants it; the caller flushes.
async fn queue(
    sink: &mut Sink,
    event: &Arc<LiveEvent>,
    filter: &Filter,
    cursor: &mut u64,
    last_sent: &mut u64,
) -> Result<(), Ending> {
    if event.matches(filter) {
        write(sink, Message::Text(event.json.clone()), *last_sent).await?;
        *last_sent = event.position;
    }
    *cursor = event.position;
    Ok(())
}

/// Queues `message` on the socket; a client that has stopped reading is slow.
async fn write(sink: &mut Sink, message: Message, last_sent: u64) -> Result<(), Ending> {
    match tokio::time::timeout(WRITE_TIMEOUT, sink.feed(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(Ending::Gone),
        Err(_) => Err(Ending::Slow {
            last_position: last_sent,
        }),
    }
}

async fn flush(sink: &mut Sink, last_sent: u64) -> Result<(), Ending> {
    match tokio::time::timeout(WRITE_TIMEOUT, sink.flush()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(Ending::Gone),
        Err(_) => Err(Ending::Slow {
            last_position: last_sent,
        }),
    }
}

/// Sends what the log holds after `cursor`, up to `until`, its head, or what the read models
/// have applied, whichever is lowest: events go out after projection, so a client reacting to
/// one reads state that includes it.
async fn catch_up(
    state: &AppState,
    sink: &mut Sink,
    filter: &Filter,
    cursor: &mut u64,
    last_sent: &mut u64,
    until: u64,
) -> Result<(), Ending> {
    let until = until.min(state.freshness.position());
    while *cursor < until {
        let page = state
            .store
            .read_page(*cursor + 1, PAGE, filter)
            .await
            .map_err(Ending::Store)?;
        let full = page.events.len() == PAGE;
        for event in page.events.iter().filter(|e| e.position <= until) {
            let live = LiveEvent::new(event);
            write(sink, Message::Text(live.json), *last_sent).await?;
            *last_sent = event.position;
            *cursor = event.position;
        }
        flush(sink, *last_sent).await?;
        if page.events.last().is_some_and(|e| e.position > until) {
            *cursor = until;
            break;
        }
        if !full {
            // Nothing else matching up to the page's head.
            *cursor = (*cursor).max(page.head.min(until));
            break;
        }
    }
    Ok(())
}
