//! The quota aggregate, stream `quota-<username>`: how many apps a user may own, and which it
//! owns, counted from the log. Creating an app appends `AppCreated` (the app's stream) and
//! `QuotaAppTaken` (the owner's quota stream, at its exact version) in one atomic append, so
//! two concurrent creations cannot both take the last place; removing it releases the place.

use super::values::AppName;
use crate::aggregate::{Aggregate, DomainEvent};
use crate::error::DomainError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A limit that does not limit.
pub const UNLIMITED: i64 = -1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event_type", content = "data")]
pub enum QuotaEvent {
    /// `-1`: unlimited.
    QuotaLimitSet {
        limit: i64,
    },
    QuotaAppTaken {
        app: AppName,
    },
    QuotaAppReleased {
        app: AppName,
    },
}

impl DomainEvent for QuotaEvent {
    fn event_type(&self) -> &'static str {
        match self {
            QuotaEvent::QuotaLimitSet { .. } => "QuotaLimitSet",
            QuotaEvent::QuotaAppTaken { .. } => "QuotaAppTaken",
            QuotaEvent::QuotaAppReleased { .. } => "QuotaAppReleased",
        }
    }
}

#[derive(Clone, Debug)]
pub enum QuotaCommand {
    /// Count `app` against the quota: refused (403 `quota_exceeded`) when as many apps as the
    /// limit are counted already. The limit is the one set, else `default_limit` (the config's
    /// `quota.apps_per_user`); a negative one is unlimited. An app counted already changes
    /// nothing.
    Take { app: AppName, default_limit: i64 },
    /// An app not counted changes nothing.
    Release { app: AppName },
    /// `-1` (unlimited) or more, else 400 `limit`. A limit under what is in use is accepted:
    /// it keeps the user from creating more until enough are removed.
    SetLimit { limit: i64 },
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Quota {
    limit: Option<i64>,
    apps: BTreeSet<AppName>,
    exists: bool,
}

impl Quota {
    /// The limit set by an admin, if any (`-1`: unlimited).
    pub fn limit(&self) -> Option<i64> {
        self.limit
    }

    /// The limit that applies: the one set, else `default_limit`.
    pub fn effective_limit(&self, default_limit: i64) -> i64 {
        self.limit.unwrap_or(default_limit)
    }

    /// The apps counted.
    pub fn apps(&self) -> &BTreeSet<AppName> {
        &self.apps
    }

    pub fn in_use(&self) -> i64 {
        i64::try_from(self.apps.len()).unwrap_or(i64::MAX)
    }
}

impl Aggregate for Quota {
    type Command = QuotaCommand;
    type Event = QuotaEvent;
    const CATEGORY: &'static str = "quota";

    fn handle(&self, command: QuotaCommand) -> Result<Vec<QuotaEvent>, DomainError> {
        match command {
            QuotaCommand::Take { app, default_limit } => {
                if self.apps.contains(&app) {
                    return Ok(vec![]);
                }
                let limit = self.effective_limit(default_limit);
                if limit >= 0 && self.in_use() >= limit {
                    return Err(DomainError::forbidden(
                        "quota_exceeded",
                        format!("quota exceeded: {} of {limit} apps in use", self.in_use()),
                    ));
                }
                Ok(vec![QuotaEvent::QuotaAppTaken { app }])
            }
            QuotaCommand::Release { app } => {
                if !self.apps.contains(&app) {
                    return Ok(vec![]);
                }
                Ok(vec![QuotaEvent::QuotaAppReleased { app }])
            }
            QuotaCommand::SetLimit { limit } => {
                if limit < UNLIMITED {
                    return Err(DomainError::invalid(
                        "limit",
                        "must be -1 (unlimited) or more",
                    ));
                }
                if self.limit == Some(limit) {
                    return Ok(vec![]);
                }
                Ok(vec![QuotaEvent::QuotaLimitSet { limit }])
            }
        }
    }

    fn apply(&mut self, event: &QuotaEvent) {
        self.exists = true;
        match event {
            QuotaEvent::QuotaLimitSet { limit } => self.limit = Some(*limit),
            QuotaEvent::QuotaAppTaken { app } => {
                self.apps.insert(app.clone());
            }
            QuotaEvent::QuotaAppReleased { app } => {
                self.apps.remove(app);
            }
        }
    }

    fn exists(&self) -> bool {
        self.exists
    }
}
