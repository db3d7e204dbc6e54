//! The notifications reactor: one active instance across all nodes (the `notifier` advisory
//! lock). It tells people when a job fails (`error`), waits too long (`waiting`) or runs
//! abnormally long (`processing`), by email and by webhook.
//!
//! `error` follows the log from a checkpoint that moves only after each failed job's
//! notifications are delivered or given up, so a crash repeats rather than loses one (at least
//! once). `waiting` and `processing` come from a periodic look at the read models. Every attempt
//! is recorded on the delivery's own stream (`NotificationSent` / `NotificationFailed`), which
//! is also how a delivery already made is not made again.
//!
//! A webhook's URL is sealed in the orchestration's events: it is read sealed from the
//! orchestrations read model (`stored_notifications`), opened only to make the call, and named
//! everywhere else as reads show it (`https://host/…`); its delivery stream is named by a
//! keyed digest of it (HMAC-SHA256 under the data key), never by the URL or a plain hash of it.

mod checkpoint;
mod send;

use crate::http_task::hmac_sha256_hex;
use crate::leader::Leader;
use crate::settings::NotificationSettings;
use bosun_commands::{Actor, CommandError, Commands, Origin};
use bosun_domain::jobs::{FinalStatus, JobEvent};
use bosun_domain::notifications::{
    delivery_id, shown_target, Delivery, DeliveryCommand, Recipient,
};
use bosun_domain::orchestrations::{Channel, Notification, StoredUrl, UrlField};
use bosun_domain::{Aggregate, DomainError};
use bosun_eventstore::{EventStore, Filter};
use bosun_projections::read_models::jobs::JobView;
use chrono::Utc;
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

pub use checkpoint::prepare;

pub const LOCK_KEY: i64 = 0x626f_7375_6e5f_6e6f;
const LOOK_EVERY: Duration = Duration::from_secs(2);
const PAGE: usize = 200;
const ACTOR: Actor = Actor::System("notifier");

pub(crate) struct Notifier {
    pub commands: Commands,
    pub settings: NotificationSettings,
    pub http: reqwest::Client,
    /// Names webhook deliveries by a keyed digest of their URL.
    pub data_key: Arc<SecretSlice<u8>>,
}

fn origin() -> Origin {
    Origin {
        request_id: Some(Uuid::new_v4().to_string()),
        user_agent: Some(format!("bosun notifier {}", env!("CARGO_PKG_VERSION"))),
        source: Some("notifier".into()),
        ..Origin::default()
    }
}

/// One notification to deliver: where, through what, about which job.
#[derive(Clone, Debug)]
pub(crate) struct Due {
    pub channel: Channel,
    pub email: Option<String>,
    /// As the orchestration stores it: sealed (or in clear, from before sealing).
    pub webhook_url: Option<StoredUrl>,
    pub job: JobView,
}

/// Where a notification goes, ready to send.
pub(crate) enum Target {
    Email(String),
    /// The webhook's URL in clear, or why it does not open here.
    Webhook(Result<SecretString, String>),
    None,
}

impl Due {
    /// Its recipient, the webhook's URL opened.
    fn target(&self, notifier: &Notifier) -> Target {
        match (&self.email, &self.webhook_url) {
            (Some(email), _) => Target::Email(email.clone()),
            (None, Some(url)) => {
                let orchestration = self.job.orchestration_id.as_deref().unwrap_or_default();
                Target::Webhook(
                    notifier
                        .commands
                        .open_url(UrlField::WebhookUrl, orchestration, url)
                        .map_err(|e| {
                            format!("the webhook_url {} does not open: {e}", self.shown())
                        }),
                )
            }
            (None, None) => Target::None,
        }
    }

    /// Its delivery stream: one per job, channel and recipient.
    fn id(&self, notifier: &Notifier, target: &Target) -> Uuid {
        let key = match (target, &self.webhook_url) {
            (Target::Email(email), _) => email.clone(),
            (Target::Webhook(Ok(url)), _) => format!(
                "webhook {}",
                hmac_sha256_hex(
                    notifier.data_key.expose_secret(),
                    &[
                        b"bosun notification webhook\n",
                        url.expose_secret().as_bytes()
                    ]
                )
            ),
            // What cannot be opened is named by its sealed text, which is no secret.
            (_, Some(StoredUrl::Sealed { sealed, .. })) => {
                format!("webhook sealed {}", sealed.as_str())
            }
            _ => String::new(),
        };
        delivery_id(self.job.id, self.channel, &key)
    }

    /// The recipient as events and messages name it: the address, or the webhook's host.
    fn shown(&self) -> String {
        match (&self.email, &self.webhook_url) {
            (Some(email), _) => shown_target(email),
            (None, Some(url)) => url.shown(UrlField::WebhookUrl).into_owned(),
            (None, None) => String::new(),
        }
    }

    fn recipient(&self) -> Recipient {
        Recipient {
            job_id: self.job.id,
            orchestration_id: self.job.orchestration_id.clone(),
            channel: self.channel,
            via: if self.email.is_some() {
                "email"
            } else {
                "webhook"
            }
            .into(),
            target: self.shown(),
        }
    }
}

pub(crate) async fn run(notifier: Arc<Notifier>, config: tokio_postgres::Config) {
    loop {
        let leader = Leader::acquire(&config, LOCK_KEY, "notifier").await;
        lead(&notifier, &leader).await;
        tracing::warn!("lost the notifier lock; trying to take it again");
    }
}

async fn lead(notifier: &Notifier, leader: &Leader) {
    // Deliveries known to be done, so the periodic look does not reload their streams.
    let mut done: HashSet<Uuid> = HashSet::new();
    loop {
        if !leader.holds().await {
            return;
        }
        if let Err(e) = follow_failures(notifier, &mut done).await {
            tracing::warn!(error = %e, "notifying failed jobs failed; retrying");
        }
        match overdue(notifier).await {
            Ok(list) => {
                for due in list {
                    if let Err(e) = deliver(notifier, &due, &mut done).await {
                        tracing::warn!(job_id = %due.job.id, error = %e, "a notification could not be handled; it is tried again");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "looking for overdue jobs failed"),
        }
        tokio::time::sleep(LOOK_EVERY).await;
    }
}

/// Every `JobFinished` with status error since the checkpoint: its `error` notifications.
async fn follow_failures(
    notifier: &Notifier,
    done: &mut HashSet<Uuid>,
) -> Result<(), CommandError> {
    let pool = notifier.commands.store.pool();
    let filter = Filter {
        categories: vec!["job".into()],
        event_types: vec!["JobFinished".into()],
        ..Filter::default()
    };
    loop {
        let from = match checkpoint::load(pool).await? {
            Some(from) => from,
            // The first run on this database: failures from before notifications existed are
            // not announced now.
            None => {
                let from = notifier.commands.store.head().await? + 1;
                checkpoint::save(pool, from).await?;
                from
            }
        };
        let events = notifier
            .commands
            .store
            .read_all(from, PAGE, &filter)
            .await?;
        let Some(last) = events.last().map(|e| e.position) else {
            return Ok(());
        };
        // The jobs' read model must show these jobs as finished.
        notifier
            .commands
            .freshness
            .wait_for(last, Duration::from_secs(10))
            .await
            .map_err(|e| CommandError::Internal(e.to_string()))?;
        for event in &events {
            let Ok(JobEvent::JobFinished {
                job_id,
                status: FinalStatus::Error,
                ..
            }) = bosun_domain::decode::<JobEvent>(&event.event_type, &event.data)
            else {
                continue;
            };
            let job = match notifier.commands.job_view(job_id).await {
                Ok(job) => job,
                // Not in the read model (being rebuilt, or an event it could not read): one
                // job must not hold up every later notification.
                Err(CommandError::Domain(e)) => {
                    tracing::error!(%job_id, error = %e, "a failed job's notifications are skipped");
                    continue;
                }
                Err(e) => return Err(e),
            };
            // A delivery that cannot be handled now stops here, before the checkpoint moves, so
            // it is tried again.
            for due in error_recipients(notifier, job).await? {
                deliver(notifier, &due, done).await?;
            }
        }
        checkpoint::save(pool, last + 1).await?;
    }
}

/// Who hears of `job` failing: its orchestration's `error` notifications and the job's own
/// `notification_emails`.
async fn error_recipients(notifier: &Notifier, job: JobView) -> Result<Vec<Due>, CommandError> {
    let mut list: Vec<Due> = Vec::new();
    for notification in orchestration_notifications(notifier, &job).await? {
        if notification.channel == Channel::Error {
            list.push(Due {
                channel: Channel::Error,
                email: notification.email,
                webhook_url: notification.webhook_url,
                job: job.clone(),
            });
        }
    }
    let emails: Vec<String> =
        serde_json::from_value(job.notification_emails.clone()).unwrap_or_default();
    for email in emails {
        if !list.iter().any(|d| d.email.as_deref() == Some(&email)) {
            list.push(Due {
                channel: Channel::Error,
                email: Some(email),
                webhook_url: None,
                job: job.clone(),
            });
        }
    }
    Ok(list)
}

async fn orchestration_notifications(
    notifier: &Notifier,
    job: &JobView,
) -> Result<Vec<Notification>, CommandError> {
    let Some(id) = &job.orchestration_id else {
        return Ok(vec![]);
    };
    let client = notifier.commands.store.pool().get().await?;
    match bosun_projections::read_models::orchestrations::stored_notifications(&**client, id)
        .await?
    {
        Some(notifications) => Ok(notifications),
        None => Err(DomainError::NotFound(format!("no orchestration {id}")).into()),
    }
}

/// Orchestration jobs waiting longer than a `waiting` notification's timeout, or processing
/// longer than their orchestration's mean of its last 20 successful jobs plus a `processing`
/// notification's tolerance.
async fn overdue(notifier: &Notifier) -> Result<Vec<Due>, CommandError> {
    let client = notifier.commands.store.pool().get().await?;
    let rows = client
        .query(
            "SELECT j.job_id, j.status, j.created_at, j.started_at, o.stored_notifications,
                    (SELECT avg(extract(epoch FROM s.finished_at - s.started_at))::float8 FROM (
                        SELECT finished_at, started_at FROM jobs
                        WHERE orchestration_id = j.orchestration_id AND status = 'success'
                        ORDER BY finished_at DESC LIMIT 20) s) AS usual_seconds
             FROM jobs j JOIN orchestrations o ON o.id = j.orchestration_id
             WHERE j.status IN ('waiting', 'processing')
               AND jsonb_array_length(o.stored_notifications) > 0",
            &[],
        )
        .await?;
    let now = Utc::now();
    let mut list = Vec::new();
    for row in rows {
        let job_id: Uuid = row.get(0);
        let status: String = row.get(1);
        let created_at: chrono::DateTime<Utc> = row.get(2);
        let started_at: Option<chrono::DateTime<Utc>> = row.get(3);
        let notifications: Vec<Notification> =
            serde_json::from_value(row.get(4)).unwrap_or_default();
        let usual: Option<f64> = row.get(5);
        for n in notifications {
            let overdue = match (n.channel, status.as_str()) {
                (Channel::Waiting, "waiting") => n
                    .waiting_minutes()
                    .is_some_and(|m| (now - created_at).num_milliseconds() as f64 > m * 60_000.0),
                (Channel::Processing, "processing") => {
                    match (started_at, usual, n.tolerance_percent()) {
                        (Some(started), Some(usual), Some(tolerance)) => {
                            (now - started).num_milliseconds() as f64
                                > usual * 1000.0 * (1.0 + tolerance / 100.0)
                        }
                        _ => false,
                    }
                }
                _ => false,
            };
            if overdue {
                let job = notifier.commands.job_view(job_id).await?;
                list.push(Due {
                    channel: n.channel,
                    email: n.email,
                    webhook_url: n.webhook_url,
                    job,
                });
            }
        }
    }
    Ok(list)
}

/// Delivers `due` unless done before: each attempt recorded, backing off between attempts,
/// given up after the configured number.
async fn deliver(
    notifier: &Notifier,
    due: &Due,
    done: &mut HashSet<Uuid>,
) -> Result<(), CommandError> {
    let target = due.target(notifier);
    let id = due.id(notifier, &target);
    if done.contains(&id) {
        return Ok(());
    }
    let stream = id.to_string();
    let mut backoff = Duration::from_millis(notifier.settings.backoff_ms);
    loop {
        let (state, _) = notifier.commands.load::<Delivery>(&stream).await?;
        if state.done() {
            done.insert(id);
            return Ok(());
        }
        let result = send::send(notifier, due, &target).await;
        let last = state.attempts + 1 >= notifier.settings.attempts.max(1);
        let command = match &result {
            Ok(()) => DeliveryCommand::RecordSent {
                recipient: due.recipient(),
            },
            Err(error) => DeliveryCommand::RecordFailed {
                recipient: due.recipient(),
                error: error.clone(),
                gave_up: last,
            },
        };
        let recorded = notifier
            .commands
            .execute_unsettled::<Delivery>(&stream, &ACTOR, &origin(), |d| {
                d.handle(command.clone())
            })
            .await;
        match (&result, recorded) {
            // Sent but not recorded: it is sent again (at least once).
            (_, Err(e)) => return Err(e),
            (Ok(()), Ok(_)) => {
                tracing::info!(job_id = %due.job.id, channel = due.channel.as_str(), "notification sent");
                done.insert(id);
                return Ok(());
            }
            (Err(error), Ok(_)) if last => {
                tracing::warn!(job_id = %due.job.id, channel = due.channel.as_str(), error, "notification given up");
                done.insert(id);
                return Ok(());
            }
            (Err(error), Ok(_)) => {
                tracing::info!(job_id = %due.job.id, error, ?backoff, "notification failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
    }
}
