//! Services (tsuru's service API): service APIs registered with Bosun, the teams they are
//! granted to, and their instances, each bound to apps through calls to the service.
//!
//! Streams: `service-<name>`, `instance-<service>.<instance>` ([`instance_stream_id`]).
//! Decisions that span streams are appended together in one atomic append by the command
//! handler:
//! - create an instance: `InstanceCreationRequested` + `ServiceInstanceAdded`;
//! - its creation failed / it was removed: `InstanceCreationFailed` / `InstanceRemoved` +
//!   `ServiceInstanceDropped`;
//! - bind: `InstanceBindRequested` + `AppInstanceBindRequested` (the app's stream), then
//!   `InstanceBound` + `AppInstanceBound` or `InstanceBindFailed` + `AppInstanceBindFailed`;
//! - unbind: `InstanceUnbindRequested`, then `InstanceUnbound` + `AppInstanceUnbound`.
//!
//! Not here: calling the service (`runner`), sealing and opening secrets (`commands`).

mod instance;
mod service;
mod values;

pub use instance::{
    instance_stream_id, CallOutcome, Instance, InstanceCommand, InstanceEvent, InstanceState,
    Operation, PendingCall,
};
pub use service::{Service, ServiceCommand, ServiceEvent};
pub use values::{
    check_doc, check_plan, check_service_password, Endpoint, InstanceName, InstanceRef,
    ServiceName, MAX_DOC_BYTES, MAX_PLAN_CHARS, MAX_SERVICE_PASSWORD_CHARS,
};

#[cfg(test)]
mod tests;
