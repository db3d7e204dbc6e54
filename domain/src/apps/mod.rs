//! Apps (tsuru's PaaS): apps owned by teams with their cnames, environment and restarts;
//! the platforms they run on; users' app quotas; and the claims that keep a cname to one app.
//!
//! Streams: `app-<name>`, `platform-<name>`, `quota-<username>`, `cname-<host>`. Decisions
//! that span streams are appended together in one atomic append by the command handler:
//! - create: `AppCreated` (app, no stream yet or a removed app's) + `QuotaAppTaken` (owner's
//!   quota, exact version);
//! - add / remove a cname: `AppCnameAdded` + `CnameClaimed` / `AppCnameRemoved` +
//!   `CnameReleased`;
//! - swap ([`Swap::decide`]): the same `AppsSwapped` on both apps + one `CnameTransferred` per
//!   exchanged cname;
//! - remove: `AppRemoved` + `QuotaAppReleased` (owner's quota) + `CnameReleased` per cname.

mod app;
mod cname;
mod platform;
mod quota;
mod values;

pub use app::{App, AppCommand, AppEvent, Binding, RestoredEnv, Swap};
pub use cname::{CnameClaim, CnameClaimCommand, CnameClaimEvent};
pub use platform::{Platform, PlatformChoice, PlatformCommand, PlatformEvent, PlatformStatus};
pub use quota::{Quota, QuotaCommand, QuotaEvent, UNLIMITED};
pub use values::{
    check_description, check_env_value, AppName, Cname, EnvName, EnvValue, EnvVar, PlatformName,
    MAX_DESCRIPTION_CHARS, MAX_ENV_BYTES,
};
pub(crate) use values::{check_resource_name, resource_name};

#[cfg(test)]
mod tests;
