//! `GET /v1/events/live`: a WebSocket of event envelopes, catch-up from `from` then live, in
//! position order, each once, redacted as on `/v1/events` (hashes, sealed values, URL secrets).
//!
//! Auth: the `Authorization` header, or (for browsers) a first message `{"token": "…"}` within
//! 5 s; otherwise the socket is closed with code 4401 (4403 if the token lacks the read scope).
//! It shows the events of the streams the caller may read, an admin all of them (`feed::Reader`).
//! The token is checked again whenever an identity event about it passes, every few seconds and
//! at its expiry ([`access`]). A ping every 15 s keeps it open. A subscriber more than the live
//! buffer behind is closed with code 4408 and a reason `{"code":"slow_consumer","last_position":N}`:
//! reconnect with `from=N+1`. A token holds at most `live.max_sockets_per_token` live sockets at
//! once on a node (this feed and pulsar's together): one more is refused, 429
//! `too_many_sockets` before the upgrade for a token in the header, else closed with code 4429.
//! What goes out and in which order is [`feed`]'s.

pub(crate) mod access;
mod feed;

use crate::auth::token_from_headers;
use crate::extract::Query;
use crate::live::pages::ReadFailed;
use crate::problem::Problem;
use crate::routes::v1::events::list_param;
use crate::startup::AppState;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use bosun_eventstore::Filter;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use std::time::Duration;

pub use access::RECHECK_EVERY;

pub const AUTH_TIMEOUT: Duration = Duration::from_secs(5);
pub const PING_EVERY: Duration = Duration::from_secs(15);
/// A socket write that takes longer means the client stopped reading: it is closed as slow.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a socket's buffers hold before reading from or writing to the connection. Each socket
/// keeps its buffers for as long as it is open: with the defaults (128 KiB each), the peak
/// memory of `bosun bench catchup` (500 subscribers, server and clients in one process) was
/// 323 MB, and 215 MB with these. A subscriber sends almost nothing, and the feed flushes after
/// every page or batch anyway.
const READ_BUFFER: usize = 4 * 1024;
const WRITE_BUFFER: usize = 32 * 1024;

pub const CLOSE_UNAUTHORIZED: u16 = 4401;
pub const CLOSE_FORBIDDEN: u16 = 4403;
pub const CLOSE_SLOW: u16 = 4408;
/// The server could not go on (the log or the token could not be read): reconnect.
pub const CLOSE_INTERNAL: u16 = 1011;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LiveQuery {
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    from: Option<u64>,
    category: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
}

#[utoipa::path(get, path = "/v1/events/live", tag = "events", params(LiveQuery),
    responses(
        (status = 101, description = "a WebSocket of event envelopes: catch-up from `from`, then live, in position order, each once, of the streams the caller may read (read scope; the token in the header or a first message `{\"token\": \"…\"}`); closed 4401/4403 for a bad token, 4408 with the last position for a slow consumer, 4429 (or 429 `too_many_sockets` before the upgrade) when the token holds `live.max_sockets_per_token` sockets already"),
        crate::problem::Refusals),
    security(("bearer" = [])))]
pub async fn live(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LiveQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, Problem> {
    let upgrade = upgrade
        .map_err(|e| {
            Problem::new(
                e.status(),
                "websocket_required",
                format!("this is a WebSocket endpoint: {}", e.body_text()),
            )
        })?
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER);
    // A token in the header is checked before the upgrade, so a bad one is a plain 401.
    let header = match token_from_headers(&headers)? {
        Some(token) => {
            let checked_at = state.freshness.position();
            let caller = crate::auth::authenticate(&state, &token).await?;
            access::may_watch(&caller).map_err(|(_, message)| Problem::forbidden(message))?;
            Some(
                access::grant(&state, token, caller, checked_at)
                    .map_err(|_| access::too_many_problem(&state))?,
            )
        }
        None => None,
    };
    let filter = Filter {
        categories: list_param(&query.category),
        event_types: list_param(&query.event_type),
        actors: vec![],
    };
    let from = crate::routes::counted("from", query.from)?
        .unwrap_or(1)
        .max(1);
    Ok(upgrade.on_upgrade(move |socket| async move {
        state.metrics.live_subscribers.inc();
        serve(state.clone(), socket, header, filter, from).await;
        state.metrics.live_subscribers.dec();
    }))
}

#[derive(Deserialize)]
struct TokenMessage {
    token: String,
}

type Sink = SplitSink<WebSocket, Message>;

/// Why a subscriber's feed ended, when not because it left.
enum Ending {
    Slow {
        last_position: u64,
    },
    Gone,
    /// The token stopped being good for this feed.
    Refused(u16, String),
    Store(ReadFailed),
    /// Whether the caller may read a stream could not be found out (no database).
    Unchecked(bosun_commands::CommandError),
}

/// Serves one subscriber; `header` is the token of its `Authorization` header, already checked.
async fn serve(
    state: AppState,
    socket: WebSocket,
    header: Option<access::Granted>,
    filter: Filter,
    from: u64,
) {
    let (mut sink, mut incoming) = socket.split();
    // Checked before the first event goes out, whichever way the token came.
    let granted = match header {
        Some(granted) => granted,
        None => match first_message_token(&mut incoming).await {
            Some(token) => match access::check(&state, token).await {
                Ok(granted) => granted,
                Err((code, reason)) => return close(&mut sink, code, reason).await,
            },
            None => {
                let reason = "send {\"token\": \"…\"} first, within 5 s";
                return close(&mut sink, CLOSE_UNAUTHORIZED, reason.into()).await;
            }
        },
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
    let (refused, mut access) = tokio::sync::oneshot::channel();
    // Who the token speaks for, as each check finds it: the feed shows what that caller reads.
    let (caller_tx, caller_rx) = tokio::sync::watch::channel(feed::Checked {
        actor: granted.caller().actor.clone(),
        at: granted.checked_at(),
    });
    let watcher = {
        let state = state.clone();
        tokio::spawn(async move {
            let lost = access::lose_access_telling(&state, granted, |caller, at| {
                caller_tx.send_replace(feed::Checked {
                    actor: caller.actor.clone(),
                    at,
                });
            })
            .await;
            let _ = refused.send(lost);
        })
    };
    let mut sees = feed::Reader::new(caller_rx);
    let result = tokio::select! {
        r = feed::stream_events(&state, &mut sink, &filter, &mut sees, from) => r,
        _ = &mut gone => Ok(()),
        lost = &mut access => match lost {
            Ok((code, reason)) => Err(Ending::Refused(code, reason)),
            Err(_) => Err(Ending::Gone),
        },
    };
    watcher.abort();
    reader.abort();
    if let Err(ending) = result {
        end(&mut sink, ending).await;
    }
}

/// The token of a browser's first message, if it sends one in time.
async fn first_message_token(incoming: &mut SplitStream<WebSocket>) -> Option<String> {
    match tokio::time::timeout(AUTH_TIMEOUT, incoming.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => serde_json::from_str::<TokenMessage>(&text)
            .ok()
            .map(|m| m.token),
        _ => None,
    }
}

/// Closes the socket with the code and reason `ending` calls for.
async fn end(sink: &mut Sink, ending: Ending) {
    match ending {
        Ending::Slow { last_position } => {
            tracing::info!(last_position, "live subscriber too slow; closing it");
            let reason =
                serde_json::json!({"code": "slow_consumer", "last_position": last_position});
            close(sink, CLOSE_SLOW, reason.to_string()).await;
        }
        Ending::Gone => {}
        Ending::Refused(code, reason) => close(sink, code, reason).await,
        Ending::Store(e) => {
            tracing::error!(error = %e, "live subscriber: reading the log failed");
            close(sink, CLOSE_INTERNAL, "internal error; reconnect".into()).await;
        }
        Ending::Unchecked(e) => {
            tracing::error!(error = %e, "live subscriber: who may read a stream is unknown");
            close(sink, CLOSE_INTERNAL, "internal error; reconnect".into()).await;
        }
    }
}

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

/// The route of the live feed, with its OpenAPI path.
pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new().routes(utoipa_axum::routes!(live))
}
