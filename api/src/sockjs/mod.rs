//! A SockJS server (protocol 0.3, the subset sockjs-client 1.x uses outside a browser and in
//! modern ones): `/info`, the welcome page, the `websocket`, `xhr_streaming` and `xhr`
//! (polling, with `xhr_send`) transports, and raw WebSocket at `/websocket`. No iframe, JSONP,
//! EventSource or htmlfile transports, no `JSESSIONID` cookie.
//!
//! Generic: it knows nothing of Bosun. [`router`] is nested at any prefix; `handler` runs once
//! per session with the router's state and a [`Session`] to talk to the client, whatever the
//! transport.
//!
//! Limits: at most [`MAX_SESSIONS`] live sessions per router, and [`MAX_SESSIONS_PER_ADDRESS`]
//! of one client address (an IPv4 address or an IPv6 /64, as the server's `ConnectInfo<SocketAddr>`
//! tells it; without it, only the first limit applies): a request that would make one more is
//! answered 503 and makes none. A client message (WebSocket frame or `xhr_send` body) of at most
//! [`MAX_MESSAGE_BYTES`] (a larger WebSocket message closes the socket with 1009, a larger body
//! is 413), an `xhr_send` body read within [`MAX_SEND_BODY_WAIT`] (else 408); session and server
//! ids of at most [`MAX_ID_BYTES`].
//!
//! Messages for the client wait in a queue of at most [`Options::queue_limit`] messages and
//! [`MAX_QUEUED_BYTES`] bytes while no request is open (or the connection is slow); past either
//! the session is closed with `c[1013,"Client too slow"]` and the queue dropped (one send into an
//! empty queue is always taken, so a message larger than the byte budget still goes out). If a
//! receiving request is open then, it is not taking what it is given: the session ends at once
//! (that request still writes the close frame if it can). A write the client does not take
//! within twice [`Options::heartbeat`] (at least [`Options::disconnect_delay`]) means the client
//! is gone: a WebSocket is dropped, an xhr response stops holding the session, and the session
//! ends.
//!
//! Client messages wait in a queue of `queue_limit` for the handler's [`Session::recv`]; while it
//! is full the client is slowed down (its WebSocket is not read, its `xhr_send` waits), nothing is
//! dropped. One `xhr_send` per session may wait so; another one meanwhile is answered 503.
//!
//! On the raw WebSocket a handler's close code is the socket's close code when a WebSocket may
//! send it (1000–1003, 1007–1013, 3000–4999); a code below 1000 (pulsar's 403) is sent as
//! 4000 + code (4403), any other as 1000.

mod frame;
mod session;
#[cfg(test)]
mod tests;
mod websocket;
mod xhr;

use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::future::BoxFuture;
use session::{Limits, Refusal, Registry};
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Live sessions one router keeps at most (each holds its handler's task and up to
/// `queue_limit` messages each way).
pub const MAX_SESSIONS: usize = 10_000;
/// Live sessions of one client address (an IPv4 address, or an IPv6 /64) one router keeps at
/// most.
pub const MAX_SESSIONS_PER_ADDRESS: usize = 100;
/// The bytes of messages one session queues for its client at most (beside
/// [`Options::queue_limit`] messages) before it is closed as too slow.
pub const MAX_QUEUED_BYTES: usize = 8 * 1024 * 1024;
/// The largest client message accepted: a WebSocket message (or frame), or an `xhr_send` body.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// How long reading one `xhr_send` body may take.
pub const MAX_SEND_BODY_WAIT: Duration = Duration::from_secs(30);
/// The longest server or session id in a transport URL (sockjs-client uses 3 and 8 characters).
pub const MAX_ID_BYTES: usize = 128;

/// The limits that are constants outside tests.
#[derive(Clone, Copy, Debug)]
struct Caps {
    sessions: usize,
    sessions_per_address: usize,
    queued_bytes: usize,
    send_body_wait: Duration,
}

impl Default for Caps {
    fn default() -> Self {
        Self {
            sessions: MAX_SESSIONS,
            sessions_per_address: MAX_SESSIONS_PER_ADDRESS,
            queued_bytes: MAX_QUEUED_BYTES,
            send_body_wait: MAX_SEND_BODY_WAIT,
        }
    }
}

/// How sessions behave; the defaults are sockjs-node's.
#[derive(Clone, Debug)]
pub struct Options {
    /// How long a receiving connection may say nothing before an `h` frame is sent (a
    /// WebSocket ping on the raw WebSocket). Twice this (at least `disconnect_delay`) is how
    /// long one write may wait for the client before it counts as gone.
    pub heartbeat: Duration,
    /// How long a session lives without a receiving request open; a closed session answers its
    /// close frame for this long after its last request.
    pub disconnect_delay: Duration,
    /// Bytes one `xhr_streaming` response carries before it ends (the client then opens the
    /// next one for the same session), so the client does not keep a huge response in memory.
    pub response_limit: usize,
    /// Messages queued for a client before it is closed as slow (`c[1013,"Client too slow"]`;
    /// [`MAX_QUEUED_BYTES`] bounds their bytes); also the length of the queue of client messages
    /// not yet received by the handler.
    pub queue_limit: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(25),
            disconnect_delay: Duration::from_secs(5),
            response_limit: 128 * 1024,
            queue_limit: 1024,
        }
    }
}

/// One client session, whatever its transport (websocket, xhr-streaming, xhr-polling, raw
/// websocket). Dropping it closes the session with `c[1000,"Normal closure"]`
/// (`c[1011,"Internal error"]` if the handler panicked).
pub struct Session {
    shared: Arc<session::Shared>,
    inbound: mpsc::Receiver<String>,
}

impl Session {
    /// The next message from the client; None once the session ended (client closed, or no
    /// receiving request for `disconnect_delay`).
    pub async fn recv(&mut self) -> Option<String> {
        self.inbound.recv().await
    }

    /// Sends messages to the client (one `a[...]` frame); Err(Closed) if the session ended or its
    /// queue is over `queue_limit` or [`MAX_QUEUED_BYTES`] (then the session is closed with
    /// `c[1013,"Client too slow"]`).
    pub async fn send(&self, messages: Vec<String>) -> Result<(), Closed> {
        self.shared.push(messages)
    }

    /// Sends `c[code,"reason"]` and ends the session.
    pub async fn close(self, code: u16, reason: &str) {
        self.shared.close(code, reason);
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let (code, reason) = if std::thread::panicking() {
            session::HANDLER_PANICKED
        } else {
            session::HANDLER_DONE
        };
        self.shared.close(code, reason);
    }
}

/// The session has ended (or was just closed as too slow); nothing more reaches the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Closed;

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the SockJS session is closed")
    }
}

impl std::error::Error for Closed {}

type Upgrade = Result<
    axum::extract::WebSocketUpgrade,
    axum::extract::ws::rejection::WebSocketUpgradeRejection,
>;

type Handler<S> = fn(S, Session) -> BoxFuture<'static, ()>;

/// What every route of one router shares.
struct Ctx<S> {
    registry: Arc<Registry>,
    handler: Handler<S>,
    response_limit: usize,
    send_body_wait: Duration,
}

impl<S: Send + 'static> Ctx<S> {
    fn start(&self, state: S, session: Session) {
        tokio::spawn((self.handler)(state, session));
    }
}

/// The client's IP address, if the server put its `ConnectInfo<SocketAddr>` in the request.
struct Peer(Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let address = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| address.ip());
        Ok(Self(address))
    }
}

/// The SockJS endpoints, to be nested at the prefix: GET/OPTIONS /info, GET / (welcome),
/// /{server}/{session}/websocket, /websocket (raw), POST /{server}/{session}/xhr_streaming,
/// POST …/xhr, POST …/xhr_send; `handler` runs once per new session.
pub fn router<S: Clone + Send + Sync + 'static>(
    options: Options,
    handler: fn(S, Session) -> BoxFuture<'static, ()>,
) -> Router<S> {
    router_with_caps(options, handler, Caps::default())
}

fn router_with_caps<S: Clone + Send + Sync + 'static>(
    options: Options,
    handler: Handler<S>,
    caps: Caps,
) -> Router<S> {
    let ctx = Arc::new(Ctx {
        registry: Registry::new(Limits {
            heartbeat: options.heartbeat,
            disconnect_delay: options.disconnect_delay,
            write_timeout: options.disconnect_delay.max(options.heartbeat * 2),
            queue_limit: options.queue_limit,
            max_queued_bytes: caps.queued_bytes,
            max_sessions: caps.sessions,
            max_sessions_per_address: caps.sessions_per_address,
        }),
        handler,
        response_limit: options.response_limit,
        send_body_wait: caps.send_body_wait,
    });
    let raw = Arc::clone(&ctx);
    let sockjs = Arc::clone(&ctx);
    let streaming = Arc::clone(&ctx);
    let polling = Arc::clone(&ctx);
    let send = ctx;
    Router::new()
        // Nested at a prefix, this is the prefix itself; axum 0.8 leaves the prefix with a
        // trailing slash to the outer router (its fallback answers it).
        .route("/", get(welcome))
        .route("/info", get(info).options(info_options))
        .route(
            "/websocket",
            get(
                move |State(state): State<S>, Peer(peer): Peer, upgrade: Upgrade| {
                    let ctx = Arc::clone(&raw);
                    async move { websocket::raw(ctx, state, peer, upgrade) }
                },
            ),
        )
        .route(
            "/{server}/{session}/websocket",
            get(
                move |State(state): State<S>,
                      Path(ids): Path<(String, String)>,
                      Peer(peer): Peer,
                      upgrade: Upgrade| {
                    let ctx = Arc::clone(&sockjs);
                    async move { websocket::sockjs(ctx, state, ids, peer, upgrade) }
                },
            ),
        )
        .route(
            "/{server}/{session}/xhr_streaming",
            post(
                move |State(state): State<S>,
                      Path(ids): Path<(String, String)>,
                      Peer(peer): Peer,
                      headers: HeaderMap| {
                    let ctx = Arc::clone(&streaming);
                    async move {
                        xhr::receive(&ctx, state, ids, peer, &headers, xhr::Mode::Streaming)
                    }
                },
            )
            .options(xhr::options),
        )
        .route(
            "/{server}/{session}/xhr",
            post(
                move |State(state): State<S>,
                      Path(ids): Path<(String, String)>,
                      Peer(peer): Peer,
                      headers: HeaderMap| {
                    let ctx = Arc::clone(&polling);
                    async move {
                        xhr::receive(&ctx, state, ids, peer, &headers, xhr::Mode::Polling)
                    }
                },
            )
            .options(xhr::options),
        )
        .route(
            "/{server}/{session}/xhr_send",
            post(move |Path(ids): Path<(String, String)>, request: Request| {
                let ctx = Arc::clone(&send);
                async move { xhr::send(&ctx.registry, ctx.send_body_wait, ids, request).await }
            })
            .options(xhr::options)
            .layer(DefaultBodyLimit::max(MAX_MESSAGE_BYTES)),
        )
}

/// A server or session id as sockjs-node accepts it: not empty, no dot (and not huge).
fn valid_ids((server, session): &(String, String)) -> bool {
    [server, session]
        .iter()
        .all(|id| !id.is_empty() && id.len() <= MAX_ID_BYTES && !id.contains('.'))
}

async fn welcome() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=UTF-8"),
        )],
        "Welcome to SockJS!\n",
    )
        .into_response()
}

async fn info(headers: HeaderMap) -> Response {
    // The client only uses it to seed its own choices; a failing OS source is not worth a 500.
    let entropy = getrandom::u32().unwrap_or_else(|_| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default()
    });
    let body = serde_json::json!({
        "websocket": true,
        "origins": ["*:*"],
        "cookie_needed": false,
        "entropy": entropy,
    });
    let mut response = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=UTF-8"),
        )],
        body.to_string(),
    )
        .into_response();
    no_cache(response.headers_mut());
    cors(&headers, response.headers_mut());
    response
}

async fn info_options(headers: HeaderMap) -> Response {
    preflight(&headers, "OPTIONS, GET")
}

/// A 204 answer to a CORS preflight, cached by the browser for a year.
fn preflight(request: &HeaderMap, methods: &'static str) -> Response {
    const YEAR_SECONDS: i64 = 365 * 24 * 60 * 60;
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from(YEAR_SECONDS),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000"),
    );
    let expires = chrono::Utc::now() + chrono::Duration::seconds(YEAR_SECONDS);
    if let Ok(value) =
        HeaderValue::from_str(&expires.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
    {
        headers.insert(header::EXPIRES, value);
    }
    cors(request, headers);
    response
}

fn no_cache(headers: &mut HeaderMap) {
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache, must-revalidate, max-age=0"),
    );
}

/// sockjs-node's CORS: any origin, with credentials (the request's Origin is echoed, `*` when
/// there is none or it is `null`); the requested headers are allowed.
fn cors(request: &HeaderMap, response: &mut HeaderMap) {
    let origin = request
        .get(header::ORIGIN)
        .filter(|origin| origin.as_bytes() != b"null")
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("*"));
    response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    response.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    response.append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(requested) = request.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        response.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested.clone());
    }
}

fn text(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=UTF-8"),
        )],
        body,
    )
        .into_response()
}

fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "404 Error: Page not found\n")
}

/// The 503 of a session that cannot be made.
fn too_many_sessions(refusal: &Refusal) -> Response {
    let body = match refusal {
        Refusal::TooManyFromAddress => {
            "Too many SockJS sessions from this address; try again later.\n"
        }
        _ => "Too many SockJS sessions; try again later.\n",
    };
    text(StatusCode::SERVICE_UNAVAILABLE, body)
}
