//! A runnable's run as its stream has it: whether its owner wants it running, the generation
//! wanted (each start or restart is a new one), and the run on record (which node runs it, its
//! process, how it ended).
//!
//! Owns the values of the run events (why a run stopped, a file a sync could not keep, and how
//! many of those a sync names) and the phase a runnable is in. Does not own the rules (the
//! aggregate, `runnable.rs`) nor running anything (`runner`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Why a runner stopped a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStopReason {
    /// Its owner asked for it to stop.
    Stop,
    /// Its owner asked for it to run again from scratch (a newer generation is wanted).
    Restart,
    /// The runnable was removed or reaped.
    Removed,
    /// The node running it is stopping.
    NodeStopped,
    /// The node lost the lease of the run (another node may run it).
    LeaseLost,
    /// The node that ran it is gone without a word (found by another).
    Lost,
}

impl RunStopReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            RunStopReason::Stop => "stop",
            RunStopReason::Restart => "restart",
            RunStopReason::Removed => "removed",
            RunStopReason::NodeStopped => "node_stopped",
            RunStopReason::LeaseLost => "lease_lost",
            RunStopReason::Lost => "lost",
        }
    }
}

/// A file a run wrote that its sync could not keep: over a limit, a symlink, not a valid path.
/// `path` as the runner found it (it may not be a valid [`FilePath`](super::FilePath)).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SkippedFile {
    pub path: String,
    pub reason: String,
}

/// A sync names at most this many files it skipped; then one more entry says how many more.
pub const MAX_SKIPPED: usize = 100;

/// The path of the entry that says how many more were skipped.
const MORE: &str = "…";

impl SkippedFile {
    /// The entry saying `count` more were skipped.
    pub fn more(count: u64) -> SkippedFile {
        SkippedFile {
            path: MORE.into(),
            reason: format!("and {count} more"),
        }
    }

    /// Whether this is the entry saying how many more were skipped.
    pub fn is_more(&self) -> bool {
        self.more_count().is_some()
    }

    /// How many more were skipped, if this is the entry that says so.
    fn more_count(&self) -> Option<u64> {
        if self.path != MORE {
            return None;
        }
        self.reason
            .strip_prefix("and ")?
            .strip_suffix(" more")?
            .parse()
            .ok()
    }
}

/// `skipped` with at most [`MAX_SKIPPED`] entries (the first ones), then one saying how many
/// more (those beyond, and those the entries saying so in `skipped` counted).
pub fn cap_skipped(skipped: Vec<SkippedFile>) -> Vec<SkippedFile> {
    let mut kept = Vec::new();
    let mut more: u64 = 0;
    for entry in skipped {
        if let Some(count) = entry.more_count() {
            more = more.saturating_add(count);
        } else if kept.len() < MAX_SKIPPED {
            kept.push(entry);
        } else {
            more = more.saturating_add(1);
        }
    }
    if more > 0 {
        kept.push(SkippedFile::more(more));
    }
    kept
}

/// Where a runnable's run is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunPhase {
    /// Not running, and not wanted running (or it ended with code 0).
    #[default]
    Stopped,
    /// Wanted running, no process of the wanted generation yet.
    Starting,
    Running,
    /// It ended with a code other than 0, by a signal, or could not start.
    Error,
}

impl RunPhase {
    pub fn as_str(&self) -> &'static str {
        match self {
            RunPhase::Stopped => "stopped",
            RunPhase::Starting => "starting",
            RunPhase::Running => "running",
            RunPhase::Error => "error",
        }
    }

    /// The phase written as [`as_str`](Self::as_str) does; `None` for another word.
    pub fn parse(text: &str) -> Option<RunPhase> {
        match text {
            "stopped" => Some(RunPhase::Stopped),
            "starting" => Some(RunPhase::Starting),
            "running" => Some(RunPhase::Running),
            "error" => Some(RunPhase::Error),
            _ => None,
        }
    }
}

/// A runnable's run, folded from its stream ([`Runnable::run`](super::Runnable::run)).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Run {
    /// Its owner wants it running.
    pub wanted: bool,
    /// The generation wanted: each start or restart is the previous one plus 1 (0: never).
    pub generation: u64,
    pub phase: RunPhase,
    /// The node of the run on record (running, or the last one).
    pub node: Option<String>,
    /// The process of the run on record, while it runs.
    pub pid: Option<u32>,
    /// The generation of the run on record.
    pub run_generation: Option<u64>,
    /// How the last run ended on its own.
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// Why the last run could not start.
    pub diagnostics: Option<String>,
    /// When the phase began.
    pub since: Option<DateTime<Utc>>,
    /// The run on record has started and not ended: a process runs (also while a newer
    /// generation is `Starting`, until the runner stops this one).
    pub(crate) live: bool,
}

impl Run {
    /// Whether the run on record has a process running: started, neither ended nor stopped.
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// Whether the run on record is `node`'s.
    pub fn is_on(&self, node: &str) -> bool {
        self.node.as_deref() == Some(node)
    }

    /// Whether the run on record is `node`'s run of `generation`.
    pub(crate) fn is_run(&self, node: &str, generation: u64) -> bool {
        self.is_on(node) && self.run_generation == Some(generation)
    }

    pub(crate) fn enter(&mut self, phase: RunPhase, at: DateTime<Utc>) {
        if self.phase != phase || self.since.is_none() {
            self.since = Some(at);
        }
        self.phase = phase;
    }
}
