//! The WebSocket transports: SockJS-framed (`/{server}/{session}/websocket`: `o`, `h`,
//! `a[...]`, `c[...]` as text frames; the client sends JSON arrays of strings) and raw
//! (`/websocket`: each message is one text frame both ways, heartbeats are pings). Either way
//! the session lives exactly as long as the socket. A write the client does not take within
//! the write timeout drops the socket (the client is gone).

use super::frame;
use super::session::{Attachment, Outgoing, Shared};
use super::{not_found, too_many_sessions, valid_ids, Ctx, MAX_MESSAGE_BYTES};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// How a socket's conversation ended.
struct End {
    /// The WebSocket close frame still to send.
    close: Option<(u16, String)>,
    /// The protocol ended it (rather than the client going away or breaking the framing).
    clean: bool,
}

impl End {
    fn gone() -> Self {
        Self {
            close: None,
            clean: false,
        }
    }
}

type Sink = SplitSink<WebSocket, Message>;
type Source = SplitStream<WebSocket>;

pub(super) fn sockjs<S: Send + 'static>(
    ctx: Arc<Ctx<S>>,
    state: S,
    ids: (String, String),
    peer: Option<IpAddr>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if !valid_ids(&ids) {
        return not_found();
    }
    start(ctx, state, peer, upgrade, |socket, attachment| {
        Box::pin(converse_framed(socket, attachment))
    })
}

pub(super) fn raw<S: Send + 'static>(
    ctx: Arc<Ctx<S>>,
    state: S,
    peer: Option<IpAddr>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    start(ctx, state, peer, upgrade, |socket, attachment| {
        Box::pin(converse_raw(socket, attachment))
    })
}

/// Upgrades (if a session can be made) and runs the handler and `converse` over the socket.
fn start<S: Send + 'static>(
    ctx: Arc<Ctx<S>>,
    state: S,
    peer: Option<IpAddr>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    converse: fn(WebSocket, Attachment) -> futures::future::BoxFuture<'static, ()>,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    // Counted before the upgrade, so a full server refuses with a status rather than a socket.
    let slot = match ctx.registry.reserve(peer) {
        Ok(slot) => slot,
        Err(refusal) => return too_many_sessions(&refusal),
    };
    upgrade
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| async move {
            let (attachment, session) = ctx.registry.anonymous(slot);
            ctx.start(state, session);
            converse(socket, attachment).await;
        })
}

async fn converse_framed(socket: WebSocket, mut attachment: Attachment) {
    let shared = Arc::clone(attachment.shared());
    let limit = attachment.write_timeout();
    let (mut sink, mut source) = socket.split();
    let end = {
        let writer = async {
            loop {
                let outgoing = attachment.next().await;
                let Some(frame) = frame::render(&outgoing) else {
                    return End {
                        close: Some(normal()),
                        clean: true,
                    };
                };
                if within(limit, sink.send(Message::Text(frame.into())))
                    .await
                    .is_err()
                {
                    return End::gone();
                }
                if matches!(outgoing, Outgoing::Close(..)) {
                    return End {
                        close: Some(normal()),
                        clean: true,
                    };
                }
            }
        };
        let reader = read(&mut source, &shared, |message| match message {
            Message::Text(text) if text.is_empty() => Ok(Vec::new()),
            Message::Text(text) => frame::parse_client_frame(&text).map_err(|_| ()),
            _ => Err(()),
        });
        tokio::select! {
            end = writer => end,
            end = reader => end,
        }
    };
    finish(sink, attachment, end).await;
}

async fn converse_raw(socket: WebSocket, mut attachment: Attachment) {
    let shared = Arc::clone(attachment.shared());
    let limit = attachment.write_timeout();
    let (mut sink, mut source) = socket.split();
    let end = {
        let writer = async {
            loop {
                let sent = match attachment.next().await {
                    Outgoing::Open => Ok(()),
                    Outgoing::Messages(messages) => {
                        let mut sent = Ok(());
                        for message in messages {
                            sent = within(limit, sink.feed(Message::Text(message.into()))).await;
                            if sent.is_err() {
                                break;
                            }
                        }
                        match sent {
                            Ok(()) => within(limit, sink.flush()).await,
                            Err(()) => Err(()),
                        }
                    }
                    Outgoing::Heartbeat => {
                        within(limit, sink.send(Message::Ping(Default::default()))).await
                    }
                    Outgoing::Close(code, reason) => {
                        return End {
                            close: Some((wire_code(code), reason)),
                            clean: true,
                        };
                    }
                    Outgoing::Ended => {
                        return End {
                            close: Some(normal()),
                            clean: true,
                        }
                    }
                };
                if sent.is_err() {
                    return End::gone();
                }
            }
        };
        let reader = read(&mut source, &shared, |message| match message {
            Message::Text(text) => Ok(vec![text.to_string()]),
            Message::Binary(bytes) => String::from_utf8(bytes.to_vec())
                .map(|text| vec![text])
                .map_err(|_| ()),
            _ => Err(()),
        });
        tokio::select! {
            end = writer => end,
            end = reader => end,
        }
    };
    finish(sink, attachment, end).await;
}

/// Reads the client's messages into the session until the client goes away (or sends what
/// `parse` refuses: the socket is then closed as broken).
async fn read(
    source: &mut Source,
    shared: &Shared,
    parse: impl Fn(Message) -> Result<Vec<String>, ()>,
) -> End {
    loop {
        let message = match source.next().await {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Err(e)) if too_big(&e) => {
                return End {
                    close: Some((1009, "Message too big.".into())),
                    clean: false,
                }
            }
            Some(Ok(Message::Close(_)) | Err(_)) | None => return End::gone(),
            Some(Ok(message)) => message,
        };
        let binary = matches!(message, Message::Binary(_));
        match parse(message) {
            Ok(messages) => shared.deliver(messages).await,
            Err(()) if binary => {
                return End {
                    close: Some((1003, "Text frames only.".into())),
                    clean: false,
                }
            }
            Err(()) => {
                return End {
                    close: Some((1002, "Broken framing.".into())),
                    clean: false,
                }
            }
        }
    }
}

async fn finish(mut sink: Sink, attachment: Attachment, end: End) {
    if end.clean {
        attachment.finish();
    } else {
        drop(attachment);
    }
    // Best effort, and bounded: the client may already be gone.
    let goodbye = async {
        if let Some((code, reason)) = end.close {
            let frame = CloseFrame {
                code,
                reason: close_reason(&reason).into(),
            };
            let _ = sink.send(Message::Close(Some(frame))).await;
        }
        let _ = sink.close().await;
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), goodbye).await;
}

fn normal() -> (u16, String) {
    (1000, "Normal closure".into())
}

/// The error of a message (or frame) over [`MAX_MESSAGE_BYTES`].
fn too_big(error: &axum::Error) -> bool {
    use tokio_tungstenite::tungstenite::Error;
    std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<Error>())
        .is_some_and(|error| matches!(error, Error::Capacity(_)))
}

/// One write to the client, which counts as gone if it does not take it within `limit`.
async fn within<E>(
    limit: Duration,
    write: impl std::future::Future<Output = Result<(), E>>,
) -> Result<(), ()> {
    match tokio::time::timeout(limit, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(()),
        Err(_) => {
            tracing::debug!("sockjs websocket dropped: the client does not read");
            Err(())
        }
    }
}

/// The raw WebSocket's close code for a handler's `code`: itself when a WebSocket may send it
/// (tungstenite refuses the others, 1014 too); below 1000 (pulsar's 403) 4000 + code, in the
/// range for applications; anything else (a SockJS-only code like 2010) 1000.
fn wire_code(code: u16) -> u16 {
    match code {
        1000..=1003 | 1007..=1013 | 3000..=4999 => code,
        0..=999 => 4000 + code,
        _ => 1000,
    }
}

/// A close reason fits a control frame: at most 123 bytes, cut at a character boundary.
fn close_reason(reason: &str) -> &str {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::wire_code;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    #[test]
    fn every_wire_code_is_one_a_websocket_may_send() {
        for code in 0..=u16::MAX {
            let wire = wire_code(code);
            assert!(CloseCode::from(wire).is_allowed(), "{code} → {wire}");
        }
        assert_eq!(wire_code(1013), 1013);
        assert_eq!(wire_code(3000), 3000);
        assert_eq!(wire_code(403), 4403);
        assert_eq!(wire_code(1014), 1000);
        assert_eq!(wire_code(2010), 1000);
    }
}
