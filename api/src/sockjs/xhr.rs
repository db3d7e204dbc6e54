//! The xhr transports: `xhr_streaming` (one long response of newline-ended frames, ended after
//! `response_limit` bytes), `xhr` (polling: one frame per response) and `xhr_send` (client
//! messages as a JSON array of strings).
//!
//! A response's body is written by the server as fast as its client reads it; a frame not
//! taken within the write timeout (the server has not asked for the next one) means the client
//! is not reading, and the session ends then rather than waiting for it.

use super::frame::{self, close_frame};
use super::session::{Attachment, Outgoing, Refusal, Registry};
use super::{cors, no_cache, not_found, preflight, text, too_many_sessions, valid_ids, Ctx};
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::convert::Infallible;
use std::net::IpAddr;
use std::time::Duration;
use tokio::sync::oneshot;

#[derive(Clone, Copy)]
pub(super) enum Mode {
    Streaming,
    Polling,
}

/// 2 KiB of `h` and a newline first: some browsers and proxies show nothing of a streamed
/// response until they have that much.
fn prelude() -> Bytes {
    let mut prelude = vec![b'h'; 2048];
    prelude.push(b'\n');
    Bytes::from(prelude)
}

/// A receiving request (`xhr_streaming` or `xhr`): attaches to the session (making it, and
/// starting its handler, if new) and streams what the session has for the client.
pub(super) fn receive<S: Send + 'static>(
    ctx: &Ctx<S>,
    state: S,
    ids: (String, String),
    peer: Option<IpAddr>,
    request: &HeaderMap,
    mode: Mode,
) -> Response {
    if !valid_ids(&ids) {
        return not_found();
    }
    let prelude = matches!(mode, Mode::Streaming).then(prelude);
    let body = match ctx.registry.open(&ids.1, peer) {
        Ok((attachment, new_session)) => {
            if let Some(session) = new_session {
                ctx.start(state, session);
            }
            let budget = match mode {
                Mode::Streaming => ctx.response_limit,
                // Any frame at all ends a poll.
                Mode::Polling => 1,
            };
            Body::from_stream(frames(attachment, prelude, budget))
        }
        Err(Refusal::Busy) => {
            let mut refused = prelude.map(|p| p.to_vec()).unwrap_or_default();
            refused
                .extend_from_slice(close_frame(2010, "Another connection still open").as_bytes());
            refused.push(b'\n');
            Body::from(refused)
        }
        Err(refusal @ (Refusal::Full | Refusal::TooManyFromAddress)) => {
            let mut response = too_many_sessions(&refusal);
            cors(request, response.headers_mut());
            return response;
        }
    };
    let mut response = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/javascript; charset=UTF-8"),
        )],
        body,
    )
        .into_response();
    no_cache(response.headers_mut());
    cors(request, response.headers_mut());
    response
}

struct Frames {
    attachment: Option<Attachment>,
    prelude: Option<Bytes>,
    /// Bytes this response may still carry; the frame that uses it up is the last.
    budget: usize,
    /// The watch over the last chunk given to the server while the attachment is held: dropped
    /// when the server asks for the next one (so it took that one).
    written: Option<oneshot::Sender<()>>,
}

fn frames(
    attachment: Attachment,
    prelude: Option<Bytes>,
    budget: usize,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> + Send {
    let start = Frames {
        attachment: Some(attachment),
        prelude,
        budget,
        written: None,
    };
    // Dropped before the end (the client went away), the attachment ends the session.
    futures::stream::unfold(start, |mut frames| async move {
        frames.written = None;
        let chunk = if let Some(prelude) = frames.prelude.take() {
            prelude
        } else {
            let attachment = frames.attachment.as_mut()?;
            let outgoing = attachment.next().await;
            let Some(mut frame) = frame::render(&outgoing) else {
                if let Some(attachment) = frames.attachment.take() {
                    attachment.finish();
                }
                return None;
            };
            frame.push('\n');
            frames.budget = frames.budget.saturating_sub(frame.len());
            if frames.budget == 0 || matches!(outgoing, Outgoing::Close(..)) {
                if let Some(attachment) = frames.attachment.take() {
                    attachment.finish();
                }
            }
            Bytes::from(frame)
        };
        if let Some(attachment) = &frames.attachment {
            frames.written = watch_write(attachment);
        }
        Some((Ok(chunk), frames))
    })
}

/// Ends the session unless the returned sender is dropped within the write timeout: the server
/// asks for a body's next chunk once it has taken the last one, so a client that does not read
/// leaves the stream unpolled, and nothing in it can notice by itself.
fn watch_write(attachment: &Attachment) -> Option<oneshot::Sender<()>> {
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    let (written, taken) = oneshot::channel::<()>();
    let limit = attachment.write_timeout();
    let abandon = attachment.abandon_later();
    runtime.spawn(async move {
        if tokio::time::timeout(limit, taken).await.is_err() {
            abandon();
        }
    });
    Some(written)
}

/// `xhr_send`: the body's messages go to the session's handler. 204 once they are queued for
/// it; 404 for an unknown session; 503 while another `xhr_send` of the session waits for its
/// handler; 408 for a body not read within `body_wait`, 413 for one over the body limit; 400
/// for a body that is not a JSON array of strings.
pub(super) async fn send(
    registry: &Registry,
    body_wait: Duration,
    ids: (String, String),
    request: Request,
) -> Response {
    let headers = request.headers().clone();
    let mut response = if !valid_ids(&ids) {
        not_found()
    } else {
        match registry.find(&ids.1) {
            None => not_found(),
            Some(session) => match session.try_sending() {
                None => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Another xhr_send of this session is still waiting.\n",
                ),
                // The body is read only now: a session holds at most one at a time.
                Some(_sending) => match read_body(request, body_wait).await {
                    Err(response) => response,
                    Ok(body) => match parse_send_body(&body) {
                        Err(message) => text(StatusCode::BAD_REQUEST, message),
                        Ok(messages) => {
                            session.deliver(messages).await;
                            let mut response = StatusCode::NO_CONTENT.into_response();
                            response.headers_mut().insert(
                                header::CONTENT_TYPE,
                                HeaderValue::from_static("text/plain; charset=UTF-8"),
                            );
                            response
                        }
                    },
                },
            },
        }
    };
    no_cache(response.headers_mut());
    cors(&headers, response.headers_mut());
    response
}

/// The request's body, within the body limit (413) and read within `wait` (408).
async fn read_body(request: Request, wait: Duration) -> Result<Bytes, Response> {
    match tokio::time::timeout(wait, Bytes::from_request(request, &())).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(rejection)) => Err(rejection.into_response()),
        Err(_) => Err(text(
            StatusCode::REQUEST_TIMEOUT,
            "The request body was not sent in time.\n",
        )),
    }
}

/// The messages of an `xhr_send` body, or why it is refused (sockjs-node's wording).
fn parse_send_body(body: &[u8]) -> Result<Vec<String>, &'static str> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("Payload expected.");
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| "Broken JSON encoding.")?;
    match value {
        serde_json::Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                serde_json::Value::String(message) => Ok(message),
                _ => Err("Payload expected."),
            })
            .collect(),
        _ => Err("Payload expected."),
    }
}

pub(super) async fn options(request: HeaderMap) -> Response {
    preflight(&request, "OPTIONS, POST")
}

#[cfg(test)]
mod tests {
    use super::parse_send_body;

    #[test]
    fn a_send_body_is_a_json_array_of_strings() {
        assert_eq!(
            parse_send_body(br#"["a","b"]"#),
            Ok(vec!["a".into(), "b".into()])
        );
        assert_eq!(parse_send_body(b"[]"), Ok(vec![]));
        assert_eq!(parse_send_body(b""), Err("Payload expected."));
        assert_eq!(parse_send_body(b"[\"a\""), Err("Broken JSON encoding."));
        assert_eq!(parse_send_body(b"\"a\""), Err("Payload expected."));
        assert_eq!(parse_send_body(b"[1]"), Err("Payload expected."));
    }
}

#[cfg(test)]
mod properties {
    use super::parse_send_body;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn a_send_body_is_its_messages(messages in prop::collection::vec(any::<String>(), 0..6)) {
            let body = serde_json::to_vec(&messages).expect("JSON");
            prop_assert_eq!(parse_send_body(&body), Ok(messages));
        }

        #[test]
        fn any_send_body_is_messages_or_a_refusal(body in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_send_body(&body);
        }
    }
}
