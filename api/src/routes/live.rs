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
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use bosun_eventstore::{EventStore, Filter};
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

pub const AUTH_TIMEOUT: Duration = Duration::from_secs(5);
pub const PING_EVERY: Duration = Duration::from_secs(15);
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
    upgrade: WebSocketUpgrade,
) -> Result<Response, Problem> {
    // A token in the header is checked before the upgrade, so a bad one is a plain 401.
    let caller = match token_from_headers(&headers)? {
        Some(token) => {
            let caller = authenticate(&state, &token).await?;
            may_watch(&caller).map_err(|(_, message)| Problem::forbidden(message))?;
            Some(caller)
        }
        None => None,
    };
    let filter = Filter {
        categories: list_param(&query.category),
        event_types: list_param(&query.event_type),
        actors: vec![],
    };
    let from = query.from.unwrap_or(1).max(1);
    Ok(upgrade.on_upgrade(move |socket| async move {
        state.metrics.live_subscribers.inc();
        serve(state.clone(), socket, caller, filter, from).await;
        state.metrics.live_subscribers.dec();
    }))
}

fn may_watch(caller: &Caller) -> Result<(), (u16, String)> {
    if caller.actor.is_admin() {
        Ok(())
    } else {
        Err((
            CLOSE_FORBIDDEN,
            "the live feed needs an admin token with the admin scope".into(),
        ))
    }
}

#[derive(Deserialize)]
struct TokenMessage {
    token: String,
}

type Sink = SplitSink<WebSocket, Message>;

async fn close(sink: &mut Sink, code: u16, reason: String) {
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from(reason),
        })))
        .await;
    let _ = sink.close().await;
}

async fn serve(
    state: AppState,
    socket: WebSocket,
    caller: Option<Caller>,
    filter: Filter,
    from: u64,
) {
    let (mut sink, mut incoming) = socket.split();
    if caller.is_none() {
        let first = tokio::time::timeout(AUTH_TIMEOUT, incoming.next()).await;
        let token = match first {
            Ok(Some(Ok(Message::Text(text)))) => serde_json::from_str::<TokenMessage>(&text).ok(),
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
        match authenticate(&state, &token).await {
            Ok(caller) => {
                if let Err((code, message)) = may_watch(&caller) {
                    return close(&mut sink, code, message).await;
                }
            }
            Err(_) => {
                return close(
                    &mut sink,
                    CLOSE_UNAUTHORIZED,
                    "the token is unknown, expired or revoked".into(),
                )
                .await
            }
        }
    }
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
    let result = tokio::select! {
        r = stream_events(&state, &mut sink, &filter, from) => r,
        _ = &mut gone => Ok(()),
    };
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
            Ending::Store(e) => {
                tracing::error!(error = %e, "live subscriber: reading the log failed");
                close(&mut sink, 1011, "internal error; reconnect".into()).await;
            }
        }
    }
}

enum Ending {
    Slow { last_position: u64 },
    Gone,
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
                    sink.flush().await.map_err(|_| Ending::Gone)?;
                }
                Err(RecvError::Lagged(_)) => return Err(Ending::Slow { last_position: last_sent }),
                Err(RecvError::Closed) => return Err(Ending::Gone),
            },
            _ = ping.tick() => {
                sink.send(Message::Ping(Default::default())).await.map_err(|_| Ending::Gone)?;
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
        sink.feed(Message::Text(event.json.clone()))
            .await
            .map_err(|_| Ending::Gone)?;
        *last_sent = event.position;
    }
    *cursor = event.position;
    Ok(())
}

/// Sends what the log holds after `cursor`, up to `until` or its head.
async fn catch_up(
    state: &AppState,
    sink: &mut Sink,
    filter: &Filter,
    cursor: &mut u64,
    last_sent: &mut u64,
    until: u64,
) -> Result<(), Ending> {
    while *cursor < until {
        let page = state
            .store
            .read_page(*cursor + 1, PAGE, filter)
            .await
            .map_err(Ending::Store)?;
        let full = page.events.len() == PAGE;
        for event in page.events.iter().filter(|e| e.position <= until) {
            let live = LiveEvent::new(event);
            sink.feed(Message::Text(live.json))
                .await
                .map_err(|_| Ending::Gone)?;
            *last_sent = event.position;
            *cursor = event.position;
        }
        sink.flush().await.map_err(|_| Ending::Gone)?;
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
