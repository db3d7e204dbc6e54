//! `user_keys`: the SSH public keys of each user, by name. Keys are public: the table holds them
//! whole. A removed user's keys go with them, so a later user of the same name starts with none.

use crate::projection::{Projection, Tables, Writes};
use bosun_domain::identity::UserEvent;
use bosun_eventstore::{Filter, RecordedEvent};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::GenericClient;

pub struct Keys;

const TABLE: &str = "user_keys";

impl Projection for Keys {
    fn name(&self) -> &'static str {
        "keys"
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &[TABLE]
    }

    fn filter(&self) -> Filter {
        Filter {
            categories: vec!["user".into()],
            event_types: vec![
                "UserKeyAdded".into(),
                "UserKeyRemoved".into(),
                "UserRemoved".into(),
            ],
            ..Filter::default()
        }
    }

    fn create(&self, tables: &Tables) -> String {
        format!(
            "CREATE TABLE {t} (
                username   TEXT NOT NULL,
                name       TEXT NOT NULL,
                key        TEXT NOT NULL,
                added_at   TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (username, name));",
            t = tables.name(TABLE),
        )
    }

    fn apply(&self, event: &RecordedEvent, tables: &Tables, writes: &mut Writes) {
        let t = tables.name(TABLE);
        let at = event.recorded_at;
        let event: UserEvent = match bosun_domain::decode(&event.event_type, &event.data) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(position = event.position, event_type = %event.event_type, error = %e, "keys projection cannot read this event; skipped");
                return;
            }
        };
        match event {
            UserEvent::UserKeyAdded {
                username,
                name,
                key,
            } => writes.push(
                format!(
                    "INSERT INTO {t} (username, name, key, added_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (username, name) DO UPDATE SET key = EXCLUDED.key, added_at = EXCLUDED.added_at"
                ),
                vec![
                    Box::new(username.as_str().to_string()),
                    Box::new(name.as_str().to_string()),
                    Box::new(key.as_str().to_string()),
                    Box::new(at),
                ],
            ),
            UserEvent::UserKeyRemoved { username, name } => writes.push(
                format!("DELETE FROM {t} WHERE username = $1 AND name = $2"),
                vec![
                    Box::new(username.as_str().to_string()),
                    Box::new(name.as_str().to_string()),
                ],
            ),
            UserEvent::UserRemoved { username } => writes.push(
                format!("DELETE FROM {t} WHERE username = $1"),
                vec![Box::new(username.as_str().to_string())],
            ),
            _ => {}
        }
    }
}

/// A key as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct KeyView {
    pub name: String,
    /// The public key, `<type> <base64> [comment]`.
    pub key: String,
    pub added_at: DateTime<Utc>,
}

fn key_view(row: &tokio_postgres::Row) -> KeyView {
    KeyView {
        name: row.get(0),
        key: row.get(1),
        added_at: row.get(2),
    }
}

/// A page of `username`'s keys by name, and how many there are in all.
pub async fn list(
    client: &impl GenericClient,
    username: &str,
    limit: i64,
    offset: i64,
) -> Result<(Vec<KeyView>, i64), tokio_postgres::Error> {
    let keys = client
        .query(
            "SELECT name, key, added_at FROM user_keys WHERE username = $1
             ORDER BY name LIMIT $2 OFFSET $3",
            &[&username, &limit, &offset],
        )
        .await?
        .iter()
        .map(key_view)
        .collect();
    let total = client
        .query_one(
            "SELECT count(*) FROM user_keys WHERE username = $1",
            &[&username],
        )
        .await?
        .get(0);
    Ok((keys, total))
}

pub async fn get(
    client: &impl GenericClient,
    username: &str,
    name: &str,
) -> Result<Option<KeyView>, tokio_postgres::Error> {
    Ok(client
        .query_opt(
            "SELECT name, key, added_at FROM user_keys WHERE username = $1 AND name = $2",
            &[&username, &name],
        )
        .await?
        .map(|r| key_view(&r)))
}
