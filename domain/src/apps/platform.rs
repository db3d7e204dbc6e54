//! The platform aggregate, stream `platform-<name>`: what an app runs on. Admins add, disable
//! and remove platforms; an app may be created on (or moved to) an enabled one only. Whether a
//! platform is still used by an app is the command handler's check, from the read model: the
//! domain refuses removing an unknown platform only.

use super::values::PlatformName;
use crate::aggregate::{Aggregate, DomainEvent};
use crate::error::DomainError;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event_type", content = "data")]
pub enum PlatformEvent {
    PlatformAdded { name: PlatformName },
    PlatformUpdated { disabled: bool },
    PlatformRemoved {},
}

impl DomainEvent for PlatformEvent {
    fn event_type(&self) -> &'static str {
        match self {
            PlatformEvent::PlatformAdded { .. } => "PlatformAdded",
            PlatformEvent::PlatformUpdated { .. } => "PlatformUpdated",
            PlatformEvent::PlatformRemoved {} => "PlatformRemoved",
        }
    }
}

#[derive(Clone, Debug)]
pub enum PlatformCommand {
    /// Added enabled; a removed platform's name may be added again.
    Add {
        name: PlatformName,
    },
    Update {
        disabled: bool,
    },
    Remove,
}

/// What an app's command needs to know of its platform, read from the platform's stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlatformStatus {
    /// Never added, or removed.
    Unknown,
    Enabled,
    Disabled,
}

impl PlatformStatus {
    /// Whether an app may use the platform `name`: 400 with the field `platform` if not.
    pub fn check(self, name: &PlatformName) -> Result<(), DomainError> {
        match self {
            PlatformStatus::Enabled => Ok(()),
            PlatformStatus::Unknown => Err(DomainError::invalid(
                "platform",
                format!("unknown platform {name}"),
            )),
            PlatformStatus::Disabled => Err(DomainError::invalid(
                "platform",
                format!("platform {name} is disabled"),
            )),
        }
    }
}

/// A platform an app's command names, with its status as the command handler read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformChoice {
    pub name: PlatformName,
    pub status: PlatformStatus,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Platform {
    name: Option<PlatformName>,
    disabled: bool,
    removed: bool,
}

impl Platform {
    /// Its name once added (also after its removal).
    pub fn name(&self) -> Option<&PlatformName> {
        self.name.as_ref()
    }

    pub fn disabled(&self) -> bool {
        self.disabled
    }

    pub fn removed(&self) -> bool {
        self.removed
    }

    /// Added and not removed.
    pub fn is_active(&self) -> bool {
        self.name.is_some() && !self.removed
    }

    pub fn status(&self) -> PlatformStatus {
        match (self.is_active(), self.disabled) {
            (false, _) => PlatformStatus::Unknown,
            (true, true) => PlatformStatus::Disabled,
            (true, false) => PlatformStatus::Enabled,
        }
    }

    fn active(&self) -> Result<(), DomainError> {
        if self.is_active() {
            Ok(())
        } else {
            Err(DomainError::NotFound("no such platform".into()))
        }
    }
}

impl Aggregate for Platform {
    type Command = PlatformCommand;
    type Event = PlatformEvent;
    const CATEGORY: &'static str = "platform";

    fn handle(&self, command: PlatformCommand) -> Result<Vec<PlatformEvent>, DomainError> {
        match command {
            PlatformCommand::Add { name } => {
                if self.is_active() {
                    return Err(DomainError::conflict(
                        "platform_exists",
                        format!("platform {name} already exists"),
                    ));
                }
                Ok(vec![PlatformEvent::PlatformAdded { name }])
            }
            PlatformCommand::Update { disabled } => {
                self.active()?;
                if self.disabled == disabled {
                    return Ok(vec![]);
                }
                Ok(vec![PlatformEvent::PlatformUpdated { disabled }])
            }
            PlatformCommand::Remove => {
                self.active()?;
                Ok(vec![PlatformEvent::PlatformRemoved {}])
            }
        }
    }

    fn apply(&mut self, event: &PlatformEvent) {
        match event {
            PlatformEvent::PlatformAdded { name } => {
                *self = Platform {
                    name: Some(name.clone()),
                    disabled: false,
                    removed: false,
                };
            }
            PlatformEvent::PlatformUpdated { disabled } => self.disabled = *disabled,
            PlatformEvent::PlatformRemoved {} => self.removed = true,
        }
    }

    fn exists(&self) -> bool {
        self.name.is_some()
    }
}
