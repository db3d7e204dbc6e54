//! The HTTP server loop: the router over hyper's HTTP/1 (with upgrades, for WebSockets), with
//! the bound `axum::serve` leaves out: a connection that has not sent a whole request head within
//! the header read timeout is closed, so half-sent requests cannot hold connections forever.
//! On shutdown it stops accepting, lets each connection finish its request (for at most
//! [`DRAIN_LIMIT`]), and returns.
//!
//! With `tls` each connection first does the TLS handshake (within the same header read timeout:
//! a client that never finishes it is dropped; one that speaks plain HTTP fails it and is
//! closed), then the very same HTTP serving over the encrypted stream: HTTPS, and WSS for the
//! WebSockets, on the one port.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// Serves `router` on `listener` (over TLS with `tls`) until `shutdown` resolves and every
/// connection has finished.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    // Dropping `stop` asks every connection to finish; each holds a clone of `open` until done.
    let (stop, stopping) = watch::channel(());
    let (open, all_closed) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            // Shutdown first: its first poll installs the signal handler, which must happen
            // before any request is answered (a SIGTERM after that is then always handled).
            biased;
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    pause_after_accept_error(e).await;
                    continue;
                }
            },
        };
        let connection = Connection {
            router: router.clone(),
            remote,
            header_read_timeout,
            tls: tls.clone(),
        };
        let (stopping, open) = (stopping.clone(), all_closed.clone());
        tokio::spawn(async move {
            connection.serve(tcp, stopping).await;
            drop(open);
        });
    }
    drop(listener);
    drop(stop);
    drop(all_closed);
    if tokio::time::timeout(DRAIN_LIMIT, open.closed())
        .await
        .is_err()
    {
        tracing::warn!(
            seconds = DRAIN_LIMIT.as_secs(),
            "requests still running after the drain limit are cut off"
        );
    }
}

/// How long shutdown waits for running requests (a `wait: true` may hold one for minutes).
const DRAIN_LIMIT: Duration = Duration::from_secs(20);

struct Connection {
    router: Router,
    remote: SocketAddr,
    header_read_timeout: Duration,
    tls: Option<TlsAcceptor>,
}

impl Connection {
    async fn serve(self, tcp: TcpStream, mut stopping: watch::Receiver<()>) {
        // Small writes (a live event, a short answer) go out at once rather than waiting for
        // Nagle's algorithm to fill a segment.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let Some(acceptor) = self.tls.clone() else {
            return self.serve_http(tcp, stopping).await;
        };
        let remote = self.remote;
        let handshake = tokio::time::timeout(self.header_read_timeout, acceptor.accept(tcp));
        let tls = tokio::select! {
            handshaken = handshake => match handshaken {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%remote, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%remote, "TLS handshake not finished within the header read timeout");
                    return;
                }
            },
            // Shutting down: a connection still in its handshake has no request to finish.
            _ = stopping.changed() => return,
        };
        self.serve_http(tls, stopping).await;
    }

    /// HTTP/1 (with upgrades) over `io`, a TCP stream or a TLS stream over one.
    async fn serve_http<IO>(self, io: IO, mut stopping: watch::Receiver<()>)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let remote = self.remote;
        let service = self.router.map_request(move |request: Request<Incoming>| {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(remote));
            request
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout);
        let connection = builder
            .serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
            .with_upgrades();
        tokio::pin!(connection);
        tokio::select! {
            result = connection.as_mut() => log_end(result),
            _ = stopping.changed() => {
                connection.as_mut().graceful_shutdown();
                log_end(connection.await);
            }
        }
    }
}

fn log_end(result: Result<(), hyper::Error>) {
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// A failed accept: a connection that went away before it was accepted costs nothing; anything
/// else (out of file descriptors) is logged and waited out, not spun on.
async fn pause_after_accept_error(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::warn!(error = %e, "accepting a connection failed; pausing");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
