//! A runnable's output, stream `runnable_log-<uuid>` (the runnable's id): what its runs wrote
//! on stdout and stderr, in the order the runner read it, every run one after the other.
//!
//! Kept apart from the runnable's stream so that a chatty process neither makes the runnable's
//! commands conflict nor its state long to load. Text is kept as a job's output is: a NUL is
//! stored as U+FFFD (PostgreSQL's JSON cannot hold it).
//!
//! Not its: whether the runnable exists or who may read its output (`commands`), reading the
//! process (`runner`).

use crate::aggregate::{Aggregate, DomainEvent};
use crate::error::DomainError;
use crate::jobs::OutputStream;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event_type", content = "data")]
pub enum RunnableLogEvent {
    /// `text` written by the run of `generation` on `stream`; `offset`: the byte offset of
    /// `text` in the whole log (every stream, every run).
    RunnableOutputAppended {
        generation: u64,
        stream: OutputStream,
        offset: u64,
        text: String,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for RunnableLogEvent {
    fn event_type(&self) -> &'static str {
        match self {
            RunnableLogEvent::RunnableOutputAppended { .. } => "RunnableOutputAppended",
        }
    }
}

#[derive(Clone, Debug)]
pub enum RunnableLogCommand {
    /// Output of the run of `generation`; empty text is no event.
    Append {
        generation: u64,
        stream: OutputStream,
        text: String,
        at: DateTime<Utc>,
    },
}

/// A runnable's output log, folded from its stream: only how long it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunnableLog {
    next_offset: u64,
    appended: bool,
}

impl RunnableLog {
    /// The byte offset the next text gets: the bytes of every text so far.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }
}

impl Aggregate for RunnableLog {
    type Command = RunnableLogCommand;
    type Event = RunnableLogEvent;
    const CATEGORY: &'static str = "runnable_log";

    fn handle(&self, command: RunnableLogCommand) -> Result<Vec<RunnableLogEvent>, DomainError> {
        match command {
            RunnableLogCommand::Append {
                generation,
                stream,
                text,
                at,
            } => {
                if text.is_empty() {
                    return Ok(vec![]);
                }
                let text = if text.contains('\0') {
                    text.replace('\0', "\u{FFFD}")
                } else {
                    text
                };
                Ok(vec![RunnableLogEvent::RunnableOutputAppended {
                    generation,
                    stream,
                    offset: self.next_offset,
                    text,
                    at,
                }])
            }
        }
    }

    fn apply(&mut self, event: &RunnableLogEvent) {
        match event {
            RunnableLogEvent::RunnableOutputAppended { text, .. } => {
                self.next_offset += text.len() as u64;
                self.appended = true;
            }
        }
    }

    fn exists(&self) -> bool {
        self.appended
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default()
    }

    fn appended(
        generation: u64,
        stream: OutputStream,
        offset: u64,
        text: &str,
    ) -> RunnableLogEvent {
        RunnableLogEvent::RunnableOutputAppended {
            generation,
            stream,
            offset,
            text: text.into(),
            at: at(),
        }
    }

    fn append(generation: u64, stream: OutputStream, text: &str) -> RunnableLogCommand {
        RunnableLogCommand::Append {
            generation,
            stream,
            text: text.into(),
            at: at(),
        }
    }

    #[test]
    fn the_offset_counts_the_bytes_of_every_stream_and_run() {
        given::<RunnableLog>(&[])
            .when(append(1, OutputStream::Stdout, "héllo\n"))
            .then(vec![appended(1, OutputStream::Stdout, 0, "héllo\n")]);
        given::<RunnableLog>(&[appended(1, OutputStream::Stdout, 0, "héllo\n")])
            .when(append(1, OutputStream::Stderr, "x"))
            .then(vec![appended(1, OutputStream::Stderr, 7, "x")]);
        given::<RunnableLog>(&[
            appended(1, OutputStream::Stdout, 0, "héllo\n"),
            appended(1, OutputStream::Stderr, 7, "x"),
        ])
        .when(append(2, OutputStream::Stdout, "y"))
        .then(vec![appended(2, OutputStream::Stdout, 8, "y")]);
    }

    #[test]
    fn empty_text_is_no_event_and_a_nul_is_kept_as_a_replacement_character() {
        given::<RunnableLog>(&[])
            .when(append(1, OutputStream::Stdout, ""))
            .then_nothing();
        given::<RunnableLog>(&[])
            .when(append(1, OutputStream::Stdout, "a\0b"))
            .then(vec![appended(1, OutputStream::Stdout, 0, "a\u{FFFD}b")]);
    }
}
