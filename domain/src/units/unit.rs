//! The unit aggregate, stream `unit-<app>.<env>.<process>.<index>`.
//!
//! Lifecycle: `starting` (its process runs) → `started` (ready: it accepts connections on its
//! port, or has stayed up a while); from either, `exited` (it ended on its own: its node starts it
//! again after a backoff); `failed` (its process could not be started: retried likewise); and
//! `stopped` on purpose (its app removed, its process gone from the catalog, a rolling restart,
//! its node stopping or lost). A unit that starts again after `stopped` (or on another node)
//! starts afresh: its restart count is zero again.
//!
//! Only the node a unit runs on may say it is ready, exited or stopped: once another node has
//! taken it over (the first node's lease ran out), what the old node says is refused
//! (`unit_moved`), so a node that lost a unit cannot rewrite where it runs. Nor may a node start
//! (or fail to start) a unit the stream shows held by another: a node taking a unit over records
//! the one it found lost (`Lost`) first. Which node holds a unit is the runner's lease; the
//! stream records what that node did.

use crate::aggregate::{Aggregate, DomainEvent};
use crate::error::DomainError;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Up this long, a unit that exits counts as a first failure again: its backoff starts over.
pub const STEADY_AFTER: Duration = Duration::from_secs(60);
/// The longest wait before a unit that keeps failing is started again.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// From this many failures in a row (exits before [`STEADY_AFTER`], or starts that failed), a
/// unit shows as `error` while it waits to start again.
pub const ERROR_AFTER: u32 = 3;

/// The wait before starting again a unit that failed `failures` times in a row: 1 s, doubling, at
/// most [`MAX_BACKOFF`]; none before any failure.
pub fn backoff(failures: u32) -> Duration {
    match failures {
        0 => Duration::ZERO,
        n => Duration::from_secs(1u64 << (n - 1).min(5)).min(MAX_BACKOFF),
    }
}

/// A unit's id: `<app>.<env>.<process>.<index>`, the catalog's names (which hold no dot) and
/// the unit's number among its process's units, from 0.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UnitId {
    pub app: String,
    pub env: String,
    pub process: String,
    pub index: u32,
}

impl UnitId {
    pub fn new(app: &str, env: &str, process: &str, index: u32) -> Self {
        UnitId {
            app: app.to_string(),
            env: env.to_string(),
            process: process.to_string(),
            index,
        }
    }

    /// The id written `<app>.<env>.<process>.<index>`.
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        let invalid = || {
            DomainError::invalid(
                "unit",
                format!("{text:?} is not a unit id (<app>.<env>.<process>.<index>)"),
            )
        };
        let parts: Vec<&str> = text.split('.').collect();
        let [app, env, process, index] = parts[..] else {
            return Err(invalid());
        };
        if [app, env, process].iter().any(|p| p.is_empty()) {
            return Err(invalid());
        }
        let index = index.parse().map_err(|_| invalid())?;
        Ok(UnitId::new(app, env, process, index))
    }
}

impl fmt::Display for UnitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}.{}",
            self.app, self.env, self.process, self.index
        )
    }
}

/// Why a unit was stopped on purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Stopped to start again with its app's new restart generation (a rolling restart).
    Restart,
    /// Its app was removed (or is no longer registered).
    AppRemoved,
    /// Its process, or this unit's index, is no longer in the catalog.
    NotInCatalog,
    /// Its node no longer holds its lease.
    LeaseLost,
    /// Its node shut down.
    NodeStopped,
    /// Its node stopped renewing its lease, which ran out: recorded by the node that found it.
    NodeLost,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Restart => "restart",
            StopReason::AppRemoved => "app_removed",
            StopReason::NotInCatalog => "not_in_catalog",
            StopReason::LeaseLost => "lease_lost",
            StopReason::NodeStopped => "node_stopped",
            StopReason::NodeLost => "node_lost",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event_type", content = "data")]
pub enum UnitEvent {
    /// Its process was started by `node`, listening (if it does) on `address`.
    UnitStarted {
        app: String,
        env: String,
        process: String,
        index: u32,
        node: String,
        pid: u32,
        port: u16,
        address: String,
        /// Its app's restart generation when it started.
        generation: u64,
        at: DateTime<Utc>,
    },
    /// Its process accepts connections on its port, or has stayed up a while.
    UnitReady {
        node: String,
        pid: u32,
        at: DateTime<Utc>,
    },
    /// Its process ended on its own; its node starts it again after [`backoff`]`(failures)`.
    UnitExited {
        node: String,
        pid: u32,
        code: Option<i32>,
        signal: Option<i32>,
        /// Times it was (or is about to be) started again since it started afresh.
        restarts: u32,
        /// Failures in a row: exits before [`STEADY_AFTER`] up, and starts that failed.
        failures: u32,
        at: DateTime<Utc>,
    },
    /// Its process could not be started (its program is missing…); tried again after
    /// [`backoff`]`(failures)`.
    UnitStartFailed {
        app: String,
        env: String,
        process: String,
        index: u32,
        node: String,
        generation: u64,
        diagnostics: String,
        restarts: u32,
        failures: u32,
        at: DateTime<Utc>,
    },
    /// Stopped on purpose, on `node` (where it ran).
    UnitStopped {
        node: String,
        reason: StopReason,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for UnitEvent {
    fn event_type(&self) -> &'static str {
        match self {
            UnitEvent::UnitStarted { .. } => "UnitStarted",
            UnitEvent::UnitReady { .. } => "UnitReady",
            UnitEvent::UnitExited { .. } => "UnitExited",
            UnitEvent::UnitStartFailed { .. } => "UnitStartFailed",
            UnitEvent::UnitStopped { .. } => "UnitStopped",
        }
    }
}

/// A process just started for a unit.
#[derive(Clone, Debug, PartialEq)]
pub struct UnitStart {
    pub id: UnitId,
    pub node: String,
    pub pid: u32,
    pub port: u16,
    pub address: String,
    pub generation: u64,
}

#[derive(Clone, Debug)]
pub enum UnitCommand {
    /// `node` started its process (the node holds the unit's lease).
    Start { start: UnitStart, at: DateTime<Utc> },
    /// `node`'s process `pid` of the unit is ready.
    Ready {
        node: String,
        pid: u32,
        at: DateTime<Utc>,
    },
    /// `node`'s process `pid` of the unit ended on its own.
    Exit {
        node: String,
        pid: u32,
        code: Option<i32>,
        signal: Option<i32>,
        at: DateTime<Utc>,
    },
    /// `node` could not start the unit's process.
    FailStart {
        id: UnitId,
        node: String,
        generation: u64,
        diagnostics: String,
        at: DateTime<Utc>,
    },
    /// `node` stopped the unit (or is stopping it) on purpose.
    Stop {
        node: String,
        reason: StopReason,
        at: DateTime<Utc>,
    },
    /// The unit's node `node` was lost (its lease ran out): whoever found it records the unit
    /// stopped there, unless it has moved on already.
    Lost { node: String, at: DateTime<Utc> },
}

/// Where a unit is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnitPhase {
    Starting,
    Started,
    Exited,
    Failed,
    Stopped,
}

impl UnitPhase {
    /// Whether a node holds the unit in this phase: its process runs, or is to be started again.
    pub fn is_held(self) -> bool {
        !matches!(self, UnitPhase::Stopped)
    }

    /// Whether its process runs.
    pub fn is_running(self) -> bool {
        matches!(self, UnitPhase::Starting | UnitPhase::Started)
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Unit {
    pub id: Option<UnitId>,
    pub phase: Option<UnitPhase>,
    /// The node it runs on (or ran on, once stopped).
    pub node: Option<String>,
    /// Its process, while one runs (the last one, once it ended).
    pub pid: Option<u32>,
    pub port: Option<u16>,
    pub address: Option<String>,
    /// Its app's restart generation when it was last started.
    pub generation: u64,
    pub restarts: u32,
    pub failures: u32,
    /// When its current (or last) process started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it entered its phase.
    pub since: Option<DateTime<Utc>>,
}

impl Unit {
    /// Whether `node` holds it: it runs there, or is to be started again there.
    pub fn held_by(&self, node: &str) -> bool {
        self.phase.is_some_and(UnitPhase::is_held) && self.node.as_deref() == Some(node)
    }

    /// Whether `node`'s process `pid` is the unit's running process.
    fn runs(&self, node: &str, pid: u32) -> bool {
        self.phase.is_some_and(UnitPhase::is_running)
            && self.node.as_deref() == Some(node)
            && self.pid == Some(pid)
    }

    /// The wait before it is started again after its last failure.
    pub fn backoff(&self) -> Duration {
        backoff(self.failures)
    }

    /// Whether its next start starts afresh on `node` (restarts from zero): it never ran, was
    /// stopped, or ran on another node.
    fn fresh_on(&self, node: &str) -> bool {
        !self.held_by(node)
    }

    fn moved(&self, node: &str) -> DomainError {
        let id = self
            .id
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        let now = match (&self.phase, &self.node) {
            (Some(phase), Some(other)) if phase.is_held() => format!("runs on {other}"),
            _ => "does not run".to_string(),
        };
        DomainError::conflict(
            "unit_moved",
            format!("unit {id} no longer runs on {node}: it {now}"),
        )
    }

    /// Refuses a start by `node` while another node holds the unit (its stream says so): a
    /// node that takes a unit over records the one it found lost first. `node`'s own state,
    /// however stale (a process of its whose end it could not record), is no obstacle.
    fn not_held_elsewhere(&self, node: &str) -> Result<(), DomainError> {
        match &self.node {
            Some(other) if other != node && self.held_by(other) => {
                let id = self
                    .id
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                Err(DomainError::conflict(
                    "unit_moved",
                    format!("unit {id} runs on {other}: {node} may not start it"),
                ))
            }
            _ => Ok(()),
        }
    }

    fn check_id(&self, id: &UnitId) -> Result<(), DomainError> {
        match &self.id {
            Some(own) if own != id => Err(DomainError::invalid(
                "unit",
                format!("this is unit {own}, not {id}"),
            )),
            _ => Ok(()),
        }
    }
}

impl Aggregate for Unit {
    type Command = UnitCommand;
    type Event = UnitEvent;
    const CATEGORY: &'static str = "unit";

    fn handle(&self, command: UnitCommand) -> Result<Vec<UnitEvent>, DomainError> {
        match command {
            UnitCommand::Start { start, at } => {
                self.check_id(&start.id)?;
                if self.runs(&start.node, start.pid) {
                    return Ok(vec![]);
                }
                self.not_held_elsewhere(&start.node)?;
                let UnitStart {
                    id,
                    node,
                    pid,
                    port,
                    address,
                    generation,
                } = start;
                Ok(vec![UnitEvent::UnitStarted {
                    app: id.app,
                    env: id.env,
                    process: id.process,
                    index: id.index,
                    node,
                    pid,
                    port,
                    address,
                    generation,
                    at,
                }])
            }
            UnitCommand::Ready { node, pid, at } => match self.phase {
                Some(UnitPhase::Started) if self.runs(&node, pid) => Ok(vec![]),
                Some(UnitPhase::Starting) if self.runs(&node, pid) => {
                    Ok(vec![UnitEvent::UnitReady { node, pid, at }])
                }
                _ => Err(self.moved(&node)),
            },
            UnitCommand::Exit {
                node,
                pid,
                code,
                signal,
                at,
            } => {
                if self.phase == Some(UnitPhase::Exited)
                    && self.node.as_deref() == Some(&node)
                    && self.pid == Some(pid)
                {
                    return Ok(vec![]);
                }
                if !self.runs(&node, pid) {
                    return Err(self.moved(&node));
                }
                let steady = self.started_at.is_some_and(|started| {
                    at - started >= TimeDelta::from_std(STEADY_AFTER).unwrap_or(TimeDelta::MAX)
                });
                let failures = if steady { 1 } else { self.failures + 1 };
                Ok(vec![UnitEvent::UnitExited {
                    node,
                    pid,
                    code,
                    signal,
                    restarts: self.restarts + 1,
                    failures,
                    at,
                }])
            }
            UnitCommand::FailStart {
                id,
                node,
                generation,
                diagnostics,
                at,
            } => {
                self.check_id(&id)?;
                self.not_held_elsewhere(&node)?;
                let (restarts, failures) = if self.fresh_on(&node) {
                    (1, 1)
                } else {
                    (self.restarts + 1, self.failures + 1)
                };
                Ok(vec![UnitEvent::UnitStartFailed {
                    app: id.app,
                    env: id.env,
                    process: id.process,
                    index: id.index,
                    node,
                    generation,
                    diagnostics,
                    restarts,
                    failures,
                    at,
                }])
            }
            UnitCommand::Stop { node, reason, at } => match self.phase {
                None | Some(UnitPhase::Stopped) => Ok(vec![]),
                Some(_) if self.held_by(&node) => {
                    Ok(vec![UnitEvent::UnitStopped { node, reason, at }])
                }
                Some(_) => Err(self.moved(&node)),
            },
            UnitCommand::Lost { node, at } => {
                if !self.held_by(&node) {
                    return Ok(vec![]);
                }
                Ok(vec![UnitEvent::UnitStopped {
                    node,
                    reason: StopReason::NodeLost,
                    at,
                }])
            }
        }
    }

    fn apply(&mut self, event: &UnitEvent) {
        match event {
            UnitEvent::UnitStarted {
                app,
                env,
                process,
                index,
                node,
                pid,
                port,
                address,
                generation,
                at,
            } => {
                if self.fresh_on(node) {
                    self.restarts = 0;
                    self.failures = 0;
                }
                self.id = Some(UnitId::new(app, env, process, *index));
                self.phase = Some(UnitPhase::Starting);
                self.node = Some(node.clone());
                self.pid = Some(*pid);
                self.port = Some(*port);
                self.address = Some(address.clone());
                self.generation = *generation;
                self.started_at = Some(*at);
                self.since = Some(*at);
            }
            UnitEvent::UnitReady { at, .. } => {
                self.phase = Some(UnitPhase::Started);
                self.since = Some(*at);
            }
            UnitEvent::UnitExited {
                restarts,
                failures,
                at,
                ..
            } => {
                self.phase = Some(UnitPhase::Exited);
                self.restarts = *restarts;
                self.failures = *failures;
                self.since = Some(*at);
            }
            UnitEvent::UnitStartFailed {
                app,
                env,
                process,
                index,
                node,
                generation,
                restarts,
                failures,
                at,
                ..
            } => {
                self.id = Some(UnitId::new(app, env, process, *index));
                self.phase = Some(UnitPhase::Failed);
                self.node = Some(node.clone());
                self.pid = None;
                self.port = None;
                self.address = None;
                self.generation = *generation;
                self.restarts = *restarts;
                self.failures = *failures;
                self.since = Some(*at);
            }
            UnitEvent::UnitStopped { at, .. } => {
                self.phase = Some(UnitPhase::Stopped);
                self.failures = 0;
                self.since = Some(*at);
            }
        }
    }

    fn exists(&self) -> bool {
        self.phase.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }
    fn id() -> UnitId {
        UnitId::new("web", "production", "http", 1)
    }
    fn start(node: &str, pid: u32, generation: u64) -> UnitStart {
        UnitStart {
            id: id(),
            node: node.into(),
            pid,
            port: 20001,
            address: "127.0.0.1:20001".into(),
            generation,
        }
    }
    fn started(node: &str, pid: u32, when: i64) -> UnitEvent {
        UnitEvent::UnitStarted {
            app: "web".into(),
            env: "production".into(),
            process: "http".into(),
            index: 1,
            node: node.into(),
            pid,
            port: 20001,
            address: "127.0.0.1:20001".into(),
            generation: 0,
            at: at(when),
        }
    }
    fn ready(node: &str, pid: u32, when: i64) -> UnitEvent {
        UnitEvent::UnitReady {
            node: node.into(),
            pid,
            at: at(when),
        }
    }
    fn exit(node: &str, pid: u32, when: i64) -> UnitCommand {
        UnitCommand::Exit {
            node: node.into(),
            pid,
            code: None,
            signal: Some(9),
            at: at(when),
        }
    }
    fn exited(node: &str, pid: u32, when: i64, restarts: u32, failures: u32) -> UnitEvent {
        UnitEvent::UnitExited {
            node: node.into(),
            pid,
            code: None,
            signal: Some(9),
            restarts,
            failures,
            at: at(when),
        }
    }
    fn moved(node: &str, now: &str) -> DomainError {
        DomainError::conflict(
            "unit_moved",
            format!("unit web.production.http.1 no longer runs on {node}: it {now}"),
        )
    }

    fn held_by(holder: &str, node: &str) -> DomainError {
        DomainError::conflict(
            "unit_moved",
            format!("unit web.production.http.1 runs on {holder}: {node} may not start it"),
        )
    }

    #[test]
    fn ids_read_as_they_are_written() {
        let text = "web.production.http.1";
        assert_eq!(UnitId::parse(text).unwrap(), id());
        assert_eq!(id().to_string(), text);
        for bad in [
            "web.production.http",
            "web.production.http.x",
            "a..b.1",
            "a.b.c.d.1",
        ] {
            assert!(UnitId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_started_unit_is_ready_once() {
        given::<Unit>(&[])
            .when(UnitCommand::Start {
                start: start("n1", 10, 0),
                at: at(0),
            })
            .then(vec![started("n1", 10, 0)]);
        given::<Unit>(&[started("n1", 10, 0)])
            .when(UnitCommand::Ready {
                node: "n1".into(),
                pid: 10,
                at: at(1),
            })
            .then(vec![ready("n1", 10, 1)]);
        given::<Unit>(&[started("n1", 10, 0), ready("n1", 10, 1)])
            .when(UnitCommand::Ready {
                node: "n1".into(),
                pid: 10,
                at: at(2),
            })
            .then_nothing();
        // The same start said again (a retried append) changes nothing.
        given::<Unit>(&[started("n1", 10, 0)])
            .when(UnitCommand::Start {
                start: start("n1", 10, 0),
                at: at(3),
            })
            .then_nothing();
        let state = given::<Unit>(&[started("n1", 10, 0), ready("n1", 10, 1)])
            .state()
            .clone();
        assert_eq!(state.phase, Some(UnitPhase::Started));
        assert_eq!(state.address.as_deref(), Some("127.0.0.1:20001"));
        assert!(state.held_by("n1") && !state.held_by("n2"));
    }

    #[test]
    fn exits_count_restarts_and_failures_in_a_row_and_back_off() {
        given::<Unit>(&[started("n1", 10, 0), ready("n1", 10, 1)])
            .when(exit("n1", 10, 5))
            .then(vec![exited("n1", 10, 5, 1, 1)]);
        // Quick exits in a row: failures grow, so does the wait.
        let past = [
            started("n1", 10, 0),
            exited("n1", 10, 5, 1, 1),
            started("n1", 11, 6),
        ];
        given::<Unit>(&past)
            .when(exit("n1", 11, 7))
            .then(vec![exited("n1", 11, 7, 2, 2)]);
        // A minute up, and the next exit is a first failure again.
        given::<Unit>(&past)
            .when(exit("n1", 11, 6 + 60))
            .then(vec![exited("n1", 11, 66, 2, 1)]);
        let mut state = given::<Unit>(&past).state().clone();
        assert_eq!((state.restarts, state.failures), (1, 1));
        state.apply(&exited("n1", 11, 7, 2, 2));
        assert_eq!(state.backoff(), Duration::from_secs(2));
        // The same exit said again changes nothing; an exit of another process is refused.
        given::<Unit>(&[started("n1", 10, 0), exited("n1", 10, 5, 1, 1)])
            .when(exit("n1", 10, 6))
            .then_nothing();
        given::<Unit>(&[started("n1", 10, 0), exited("n1", 10, 5, 1, 1)])
            .when(exit("n1", 9, 6))
            .refused(moved("n1", "runs on n1"));
    }

    #[test]
    fn the_backoff_doubles_from_a_second_to_thirty() {
        let waits: Vec<u64> = (0..9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, vec![0, 1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn a_start_that_fails_is_recorded_and_retried() {
        let fail = |when| UnitCommand::FailStart {
            id: id(),
            node: "n1".into(),
            generation: 0,
            diagnostics: "cannot start \"nope\": not found".into(),
            at: at(when),
        };
        let failed = |when, restarts, failures| UnitEvent::UnitStartFailed {
            app: "web".into(),
            env: "production".into(),
            process: "http".into(),
            index: 1,
            node: "n1".into(),
            generation: 0,
            diagnostics: "cannot start \"nope\": not found".into(),
            restarts,
            failures,
            at: at(when),
        };
        given::<Unit>(&[]).when(fail(0)).then(vec![failed(0, 1, 1)]);
        given::<Unit>(&[failed(0, 1, 1)])
            .when(fail(1))
            .then(vec![failed(1, 2, 2)]);
        given::<Unit>(&[started("n1", 10, 0), exited("n1", 10, 1, 1, 1)])
            .when(fail(2))
            .then(vec![failed(2, 2, 2)]);
        // Not while another node holds it.
        given::<Unit>(&[started("n2", 10, 0)])
            .when(fail(1))
            .refused(held_by("n2", "n1"));
        // Counted from nothing once it ran elsewhere or was stopped.
        let state = given::<Unit>(&[failed(0, 1, 1), failed(1, 2, 2), started("n1", 7, 3)])
            .state()
            .clone();
        assert_eq!((state.restarts, state.failures), (2, 2));
        let state = given::<Unit>(&[failed(0, 1, 1), started("n2", 7, 3)])
            .state()
            .clone();
        assert_eq!((state.restarts, state.failures), (0, 0));
    }

    #[test]
    fn only_its_node_stops_it_and_a_stopped_unit_starts_afresh() {
        let stop = |node: &str| UnitCommand::Stop {
            node: node.into(),
            reason: StopReason::AppRemoved,
            at: at(9),
        };
        let stopped = UnitEvent::UnitStopped {
            node: "n1".into(),
            reason: StopReason::AppRemoved,
            at: at(9),
        };
        given::<Unit>(&[started("n1", 10, 0)])
            .when(stop("n1"))
            .then(vec![stopped.clone()]);
        given::<Unit>(&[started("n1", 10, 0)])
            .when(stop("n2"))
            .refused(moved("n2", "runs on n1"));
        given::<Unit>(&[started("n1", 10, 0), stopped.clone()])
            .when(stop("n1"))
            .then_nothing();
        given::<Unit>(&[]).when(stop("n1")).then_nothing();
        let state = given::<Unit>(&[
            started("n1", 10, 0),
            exited("n1", 10, 1, 1, 1),
            started("n1", 11, 2),
            stopped.clone(),
            started("n1", 12, 20),
        ])
        .state()
        .clone();
        assert_eq!(state.restarts, 0);
        assert_eq!(state.pid, Some(12));
    }

    #[test]
    fn a_lost_node_leaves_its_units_to_the_next() {
        let lost = |node: &str| UnitCommand::Lost {
            node: node.into(),
            at: at(40),
        };
        given::<Unit>(&[started("n1", 10, 0), ready("n1", 10, 1)])
            .when(lost("n1"))
            .then(vec![UnitEvent::UnitStopped {
                node: "n1".into(),
                reason: StopReason::NodeLost,
                at: at(40),
            }]);
        // Already elsewhere: nothing to say about n1.
        given::<Unit>(&[started("n1", 10, 0), started("n2", 20, 30)])
            .when(lost("n1"))
            .then_nothing();
        // What the lost node says once another took over is refused.
        let taken = [started("n1", 10, 0), started("n2", 20, 30)];
        given::<Unit>(&taken)
            .when(exit("n1", 10, 41))
            .refused(moved("n1", "runs on n2"));
        given::<Unit>(&taken)
            .when(UnitCommand::Ready {
                node: "n1".into(),
                pid: 10,
                at: at(41),
            })
            .refused(moved("n1", "runs on n2"));
        given::<Unit>(&taken)
            .when(UnitCommand::Stop {
                node: "n1".into(),
                reason: StopReason::LeaseLost,
                at: at(41),
            })
            .refused(moved("n1", "runs on n2"));
    }

    #[test]
    fn another_node_may_not_start_a_unit_held_elsewhere_until_that_node_is_recorded_lost() {
        let start_on = |node: &str, pid| UnitCommand::Start {
            start: start(node, pid, 0),
            at: at(50),
        };
        let fail_on = |node: &str| UnitCommand::FailStart {
            id: id(),
            node: node.into(),
            generation: 0,
            diagnostics: "no free port".into(),
            at: at(50),
        };
        // Running on n1, or waiting there to start again: n2 is refused.
        for held in [
            vec![started("n1", 10, 0), ready("n1", 10, 1)],
            vec![started("n1", 10, 0), exited("n1", 10, 5, 1, 1)],
        ] {
            given::<Unit>(&held)
                .when(start_on("n2", 20))
                .refused(held_by("n1", "n2"));
            given::<Unit>(&held)
                .when(fail_on("n2"))
                .refused(held_by("n1", "n2"));
        }
        // A takeover records n1 lost first; then n2 starts it.
        let lost = UnitEvent::UnitStopped {
            node: "n1".into(),
            reason: StopReason::NodeLost,
            at: at(49),
        };
        given::<Unit>(&[started("n1", 10, 0), lost])
            .when(start_on("n2", 20))
            .then(vec![started("n2", 20, 50)]);
        // The same node's stale state is no obstacle: a process of it whose end went unrecorded.
        given::<Unit>(&[started("n1", 10, 0)])
            .when(start_on("n1", 11))
            .then(vec![started("n1", 11, 50)]);
        given::<Unit>(&[started("n1", 10, 0), ready("n1", 10, 1)])
            .when(fail_on("n1"))
            .then(vec![UnitEvent::UnitStartFailed {
                app: "web".into(),
                env: "production".into(),
                process: "http".into(),
                index: 1,
                node: "n1".into(),
                generation: 0,
                diagnostics: "no free port".into(),
                restarts: 1,
                failures: 1,
                at: at(50),
            }]);
    }

    #[test]
    fn a_failed_start_records_the_generation_it_was_for() {
        let state = given::<Unit>(&[
            started("n1", 10, 0),
            exited("n1", 10, 1, 1, 1),
            UnitEvent::UnitStartFailed {
                app: "web".into(),
                env: "production".into(),
                process: "http".into(),
                index: 1,
                node: "n1".into(),
                generation: 3,
                diagnostics: "no free port".into(),
                restarts: 2,
                failures: 2,
                at: at(2),
            },
        ])
        .state()
        .clone();
        assert_eq!(state.generation, 3);
        assert_eq!(state.phase, Some(UnitPhase::Failed));
    }

    #[test]
    fn a_start_names_its_own_unit() {
        let mut other = start("n1", 10, 0);
        other.id.index = 2;
        given::<Unit>(&[started("n1", 10, 0)])
            .when(UnitCommand::Start {
                start: other,
                at: at(1),
            })
            .refused(DomainError::invalid(
                "unit",
                "this is unit web.production.http.1, not web.production.http.2",
            ));
    }

    #[test]
    fn events_read_back_as_written() {
        let events = [
            started("n1", 10, 0),
            ready("n1", 10, 1),
            exited("n1", 10, 2, 1, 1),
            UnitEvent::UnitStopped {
                node: "n1".into(),
                reason: StopReason::NodeLost,
                at: at(3),
            },
        ];
        for event in events {
            let (event_type, data) = crate::encode(&event).unwrap();
            assert_eq!(event_type, event.event_type());
            assert_eq!(
                crate::decode::<UnitEvent>(&event_type, &data).unwrap(),
                event
            );
        }
        let (_, data) = crate::encode(&UnitEvent::UnitStopped {
            node: "n1".into(),
            reason: StopReason::NotInCatalog,
            at: at(3),
        })
        .unwrap();
        assert_eq!(data["reason"], "not_in_catalog");
    }
}
