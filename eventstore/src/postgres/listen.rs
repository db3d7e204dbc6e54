//! A LISTEN connection that survives: it reconnects with backoff, pings while idle (an idle
//! LISTEN connection can be dropped silently by the network), and fans notifications out to any
//! number of receivers in the process. Consumers poll as well, so a notification lost while
//! reconnecting delays them by one poll interval and loses nothing.

use futures::StreamExt;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, NoTls};

const KEEPALIVE: Duration = Duration::from_secs(15);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub struct Notification {
    pub channel: String,
    pub payload: String,
}

/// Starts listening on `channels`; the task runs until aborted.
pub fn listen(
    config: tokio_postgres::Config,
    channels: Vec<String>,
) -> (broadcast::Sender<Notification>, JoinHandle<()>) {
    let (sender, _) = broadcast::channel(1024);
    let task = tokio::spawn(run(config, channels, sender.clone()));
    (sender, task)
}

async fn run(
    config: tokio_postgres::Config,
    channels: Vec<String>,
    sender: broadcast::Sender<Notification>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match listen_once(&config, &channels, &sender).await {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(e) => tracing::warn!(error = %e, "LISTEN connection lost; reconnecting"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn listen_once(
    config: &tokio_postgres::Config,
    channels: &[String],
    sender: &broadcast::Sender<Notification>,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (forward, mut received) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    let n = Notification {
                        channel: n.channel().to_string(),
                        payload: n.payload().to_string(),
                    };
                    if forward.send(n).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "LISTEN connection failed");
                    return;
                }
            }
        }
    });
    let result = async {
        let statements: String = channels
            .iter()
            .map(|c| format!("LISTEN \"{}\";", c.replace('"', "")))
            .collect();
        client.batch_execute(&statements).await?;
        let mut keepalive = tokio::time::interval(KEEPALIVE);
        loop {
            tokio::select! {
                n = received.recv() => match n {
                    Some(n) => { let _ = sender.send(n); }
                    None => return Ok(()),
                },
                _ = keepalive.tick() => { client.simple_query("SELECT 1").await?; }
            }
        }
    }
    .await;
    driver.abort();
    result
}
