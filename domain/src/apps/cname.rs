//! The cname claim aggregate, stream `cname-<host>`: a host name belongs to one app at most,
//! whatever nodes add it. Adding a cname appends `CnameClaimed` here and `AppCnameAdded` on the
//! app's stream in one atomic append; removing it, `CnameReleased` and `AppCnameRemoved`; a
//! swap moves each exchanged cname with `CnameTransferred`, beside the `AppsSwapped` of both
//! apps; removing an app releases all of its cnames.

use super::values::{AppName, Cname};
use crate::aggregate::{Aggregate, DomainEvent};
use crate::error::DomainError;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event_type", content = "data")]
pub enum CnameClaimEvent {
    CnameClaimed {
        cname: Cname,
        app: AppName,
    },
    CnameReleased {
        cname: Cname,
        app: AppName,
    },
    /// A swap gave the cname of `from` to `to`.
    CnameTransferred {
        cname: Cname,
        from: AppName,
        to: AppName,
    },
}

impl DomainEvent for CnameClaimEvent {
    fn event_type(&self) -> &'static str {
        match self {
            CnameClaimEvent::CnameClaimed { .. } => "CnameClaimed",
            CnameClaimEvent::CnameReleased { .. } => "CnameReleased",
            CnameClaimEvent::CnameTransferred { .. } => "CnameTransferred",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum CnameClaimCommand {
    /// Refused (409 `cname_taken`) if another app holds it; the holder again changes nothing.
    Claim { cname: Cname, app: AppName },
    /// Only its holder may release it (409 `cname_taken` for another app); a cname nobody
    /// holds changes nothing.
    Release { cname: Cname, app: AppName },
    /// For a swap: `from` must hold it (409 `cname_taken` otherwise); `from == to` changes
    /// nothing.
    Transfer {
        cname: Cname,
        from: AppName,
        to: AppName,
    },
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct CnameClaim {
    holder: Option<AppName>,
    exists: bool,
}

impl CnameClaim {
    /// The app that holds it, if any.
    pub fn holder(&self) -> Option<&AppName> {
        self.holder.as_ref()
    }
}

fn taken(cname: &Cname) -> DomainError {
    DomainError::conflict(
        "cname_taken",
        format!("{cname} is already a cname of another app"),
    )
}

impl Aggregate for CnameClaim {
    type Command = CnameClaimCommand;
    type Event = CnameClaimEvent;
    const CATEGORY: &'static str = "cname";

    fn handle(&self, command: CnameClaimCommand) -> Result<Vec<CnameClaimEvent>, DomainError> {
        match command {
            CnameClaimCommand::Claim { cname, app } => match &self.holder {
                None => Ok(vec![CnameClaimEvent::CnameClaimed { cname, app }]),
                Some(holder) if *holder == app => Ok(vec![]),
                Some(_) => Err(taken(&cname)),
            },
            CnameClaimCommand::Release { cname, app } => match &self.holder {
                None => Ok(vec![]),
                Some(holder) if *holder == app => {
                    Ok(vec![CnameClaimEvent::CnameReleased { cname, app }])
                }
                Some(_) => Err(taken(&cname)),
            },
            CnameClaimCommand::Transfer { cname, from, to } => {
                if self.holder.as_ref() != Some(&from) {
                    return Err(taken(&cname));
                }
                if from == to {
                    return Ok(vec![]);
                }
                Ok(vec![CnameClaimEvent::CnameTransferred { cname, from, to }])
            }
        }
    }

    fn apply(&mut self, event: &CnameClaimEvent) {
        self.exists = true;
        match event {
            CnameClaimEvent::CnameClaimed { app, .. } => self.holder = Some(app.clone()),
            CnameClaimEvent::CnameReleased { .. } => self.holder = None,
            CnameClaimEvent::CnameTransferred { to, .. } => self.holder = Some(to.clone()),
        }
    }

    fn exists(&self) -> bool {
        self.exists
    }
}
