//! Real receivers for what bosun sends out: an SMTP server (mailin-embedded, speaking SMTP on a
//! loopback port) and an HTTP server (axum) that record what they get.

use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use mailin_embedded::{response, Handler, Response, Server, SslConfig};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A mail as the SMTP server received it.
#[derive(Clone, Debug)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

/// An SMTP server on 127.0.0.1, running until the test process ends.
#[derive(Clone)]
pub struct SmtpSink {
    pub port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
}

#[derive(Clone)]
struct Collect {
    mails: Arc<Mutex<Vec<Mail>>>,
    current: Option<Mail>,
}

impl Handler for Collect {
    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.current = Some(Mail {
            from: from.to_string(),
            to: to.to_vec(),
            data: String::new(),
        });
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if let Some(mail) = &mut self.current {
            mail.data.push_str(&String::from_utf8_lossy(buf));
        }
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        if let Some(mail) = self.current.take() {
            if let Ok(mut mails) = self.mails.lock() {
                mails.push(mail);
            }
        }
        response::OK
    }
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        let mails = Arc::new(Mutex::new(Vec::new()));
        let mut server = Server::new(Collect {
            mails: mails.clone(),
            current: None,
        });
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the SMTP port");
        let port = listener.local_addr().expect("SMTP address").port();
        server
            .with_name("localhost")
            .with_ssl(SslConfig::None)
            .expect("plain SMTP")
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        SmtpSink { port, mails }
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Waits (at most `limit`) for a mail `wanted` accepts.
    pub fn wait_for(&self, limit: Duration, wanted: impl Fn(&Mail) -> bool) -> Mail {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(mail) = self.mails().into_iter().find(|m| wanted(m)) {
                return mail;
            }
            assert!(
                Instant::now() < deadline,
                "no such mail within {limit:?}; got {:#?}",
                self.mails()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A request as the HTTP receiver got it.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// An HTTP server on 127.0.0.1 answering every POST with `status` and recording it.
#[derive(Clone)]
pub struct HttpReceiver {
    pub base: String,
    received: Arc<Mutex<Vec<Received>>>,
    status: Arc<Mutex<u16>>,
}

impl HttpReceiver {
    pub async fn start() -> HttpReceiver {
        let received = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(Mutex::new(200u16));
        let (keep, answer) = (received.clone(), status.clone());
        let app = Router::new().route(
            "/{*path}",
            post(
                move |uri: axum::http::Uri, headers: HeaderMap, body: axum::body::Bytes| {
                    let (keep, answer) = (keep.clone(), answer.clone());
                    async move {
                        if let Ok(mut all) = keep.lock() {
                            all.push(Received {
                                path: uri.path().to_string(),
                                headers,
                                body: body.to_vec(),
                            });
                        }
                        let code = answer.lock().map(|s| *s).unwrap_or(200);
                        (
                            axum::http::StatusCode::from_u16(code)
                                .unwrap_or(axum::http::StatusCode::OK),
                            "{\"received\": true}",
                        )
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the HTTP receiver");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        HttpReceiver {
            base,
            received,
            status,
        }
    }

    /// Answer every later request with `status`.
    pub fn answer_with(&self, status: u16) {
        if let Ok(mut s) = self.status.lock() {
            *s = status;
        }
    }

    pub fn received(&self, path: &str) -> Vec<Received> {
        self.received
            .lock()
            .map(|r| r.iter().filter(|x| x.path == path).cloned().collect())
            .unwrap_or_default()
    }

    /// Waits (at most `limit`) for a request to `path` that `wanted` accepts.
    pub async fn wait_for(
        &self,
        path: &str,
        limit: Duration,
        wanted: impl Fn(&Received) -> bool,
    ) -> Received {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(r) = self.received(path).into_iter().find(|r| wanted(r)) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "nothing to {path} within {limit:?}; got {:?}",
                self.received(path)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// `sha256=<hex HMAC-SHA256>` of `body` under `secret`, as a receiver checks a signature.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    format!(
        "sha256={}",
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}
