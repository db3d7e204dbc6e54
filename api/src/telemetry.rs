//! Logging from the first line: text for people, JSON for machines; `RUST_LOG` filters.

use crate::config::LogFormat;
use tracing_subscriber::{fmt, EnvFilter};

pub fn init(format: LogFormat) {
    // rustls at errors only: what a client sends in its handshake (an SNI name rustls finds
    // illegal, which it quotes) must not make the server's warnings. rustls' `logging` is off in
    // this crate, but another dependency (lettre) turns it on.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,tokio_postgres=warn,rustls=error"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // A second init (tests that build several servers in one process) keeps the first.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}
