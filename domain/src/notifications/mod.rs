//! A notification's delivery, stream `notification-<uuid>`: one stream per job, channel and
//! recipient, so a reactor that restarts sees what it already delivered. Delivery is at least
//! once: each attempt's failure is recorded, and after the last one the delivery gives up.

use crate::aggregate::{Aggregate, DomainEvent};
use crate::error::DomainError;
use crate::orchestrations::Channel;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The delivery stream of `job_id`'s `channel` notification to `target`: the email address, or
/// for a webhook a keyed digest of its URL (`webhook <hex HMAC>`, made by the runner with the
/// data key), never the URL nor a plain hash of it, since the stream's id is shown to readers.
pub fn delivery_id(job_id: Uuid, channel: Channel, target: &str) -> Uuid {
    let name = format!(
        "bosun notification\n{job_id}\n{}\n{target}",
        channel.as_str()
    );
    Uuid::new_v5(&Uuid::NAMESPACE_OID, name.as_bytes())
}

/// A webhook URL as events show it: scheme, host and port only, since the path or query of a
/// webhook (Slack's, say) is often its secret (`orchestrations::redacted`); an address as it is.
pub fn shown_target(target: &str) -> String {
    match url::Url::parse(target) {
        Ok(url) if url.scheme() != "mailto" && url.has_host() => {
            crate::orchestrations::redacted(target)
        }
        _ => target.to_string(),
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recipient {
    pub job_id: Uuid,
    pub orchestration_id: Option<String>,
    pub channel: Channel,
    /// `email` or `webhook`.
    pub via: String,
    /// The address, or the webhook's URL cut to its host (`scheme://host[:port]/…`).
    pub target: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event_type", content = "data")]
pub enum DeliveryEvent {
    NotificationSent {
        #[serde(flatten)]
        recipient: Recipient,
        attempt: u32,
    },
    NotificationFailed {
        #[serde(flatten)]
        recipient: Recipient,
        attempt: u32,
        error: String,
        /// The last attempt: no more will be made.
        gave_up: bool,
    },
}

impl DomainEvent for DeliveryEvent {
    fn event_type(&self) -> &'static str {
        match self {
            DeliveryEvent::NotificationSent { .. } => "NotificationSent",
            DeliveryEvent::NotificationFailed { .. } => "NotificationFailed",
        }
    }
}

#[derive(Clone, Debug)]
pub enum DeliveryCommand {
    RecordSent {
        recipient: Recipient,
    },
    RecordFailed {
        recipient: Recipient,
        error: String,
        gave_up: bool,
    },
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Delivery {
    pub attempts: u32,
    pub sent: bool,
    pub gave_up: bool,
}

impl Delivery {
    /// Sent, or given up on: nothing more to do.
    pub fn done(&self) -> bool {
        self.sent || self.gave_up
    }
}

impl Aggregate for Delivery {
    type Command = DeliveryCommand;
    type Event = DeliveryEvent;
    const CATEGORY: &'static str = "notification";

    fn handle(&self, command: DeliveryCommand) -> Result<Vec<DeliveryEvent>, DomainError> {
        if self.done() {
            return Err(DomainError::conflict(
                "notification_done",
                "this notification was already delivered or given up on",
            ));
        }
        let attempt = self.attempts + 1;
        Ok(vec![match command {
            DeliveryCommand::RecordSent { recipient } => {
                DeliveryEvent::NotificationSent { recipient, attempt }
            }
            DeliveryCommand::RecordFailed {
                recipient,
                error,
                gave_up,
            } => DeliveryEvent::NotificationFailed {
                recipient,
                attempt,
                error,
                gave_up,
            },
        }])
    }

    fn apply(&mut self, event: &DeliveryEvent) {
        self.attempts += 1;
        match event {
            DeliveryEvent::NotificationSent { .. } => self.sent = true,
            DeliveryEvent::NotificationFailed { gave_up, .. } => self.gave_up |= gave_up,
        }
    }

    fn exists(&self) -> bool {
        self.attempts > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;

    fn recipient() -> Recipient {
        Recipient {
            job_id: Uuid::nil(),
            orchestration_id: Some("o1".into()),
            channel: Channel::Error,
            via: "email".into(),
            target: "ops@example.com".into(),
        }
    }

    fn failed(gave_up: bool) -> DeliveryEvent {
        DeliveryEvent::NotificationFailed {
            recipient: recipient(),
            attempt: 1,
            error: "connection refused".into(),
            gave_up,
        }
    }

    #[test]
    fn attempts_are_counted_until_sent_or_given_up() {
        let send = || DeliveryCommand::RecordSent {
            recipient: recipient(),
        };
        given::<Delivery>(&[])
            .when(DeliveryCommand::RecordFailed {
                recipient: recipient(),
                error: "connection refused".into(),
                gave_up: false,
            })
            .then(vec![failed(false)]);
        let sent = DeliveryEvent::NotificationSent {
            recipient: recipient(),
            attempt: 2,
        };
        given::<Delivery>(&[failed(false)])
            .when(send())
            .then(vec![sent.clone()]);
        for past in [vec![failed(true)], vec![failed(false), sent]] {
            given::<Delivery>(&past)
                .when(send())
                .refused(DomainError::conflict(
                    "notification_done",
                    "this notification was already delivered or given up on",
                ));
        }
    }

    #[test]
    fn webhook_urls_are_shown_without_their_path() {
        assert_eq!(
            shown_target("https://hooks.example.com/services/T000/B000/XXXX?token=s"),
            "https://hooks.example.com/…"
        );
        assert_eq!(
            shown_target("http://127.0.0.1:8080/hook"),
            "http://127.0.0.1:8080/…"
        );
        assert_eq!(shown_target("ops@example.com"), "ops@example.com");
    }

    #[test]
    fn one_delivery_per_job_channel_and_recipient() {
        let job = Uuid::new_v4();
        assert_eq!(
            delivery_id(job, Channel::Error, "a@x.io"),
            delivery_id(job, Channel::Error, "a@x.io")
        );
        assert_ne!(
            delivery_id(job, Channel::Error, "a@x.io"),
            delivery_id(job, Channel::Waiting, "a@x.io")
        );
        assert_ne!(
            delivery_id(job, Channel::Error, "a@x.io"),
            delivery_id(job, Channel::Error, "b@x.io")
        );
    }
}
