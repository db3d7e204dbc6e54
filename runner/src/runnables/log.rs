//! A runnable's output on its way to its log (`runnable_log-<uuid>`), batched as a job's is
//! (`crate::output`): kept in the order it came (runs of one stream), appended every
//! `FLUSH_EVERY` or at `FLUSH_BYTES`, each event at most `FLUSH_BYTES` and never ending inside a
//! UTF-8 character unless nothing more will come; capped per run at `runnables.max_log_bytes`,
//! with a line saying where it was cut (bosun's own notes count too); a chunk whose append
//! failed retried exactly as it was (its attempt and length). The log's state is held between
//! appends, so an append reads nothing.
//!
//! Does not own: reading the process's pipes, when to flush (`run`), what the log stores (a NUL
//! becomes U+FFFD in the domain, as invalid UTF-8 does here).

use super::stream::ACTOR;
use crate::output::{Buffer, FLUSH_BYTES};
use crate::units::Context;
use bosun_commands::{CommandError, Held};
use bosun_domain::jobs::OutputStream;
use bosun_domain::runnables::{RunnableId, RunnableLog, RunnableLogCommand};
use bosun_domain::Aggregate;
use chrono::Utc;
use std::time::{Duration, Instant};
use uuid::Uuid;

pub(crate) struct Log {
    id: RunnableId,
    held: Option<Held<RunnableLog>>,
    /// The run whose output this is.
    generation: u64,
    /// Of this run, capped.
    buffer: Buffer,
}

impl Log {
    /// The log of runnable `id`, each run's output capped at `limit` bytes.
    pub fn new(id: RunnableId, limit: u64) -> Self {
        Log {
            id,
            held: None,
            generation: 0,
            buffer: Buffer::new(limit, Some("runnables.max_log_bytes")),
        }
    }

    /// What comes next is the output of the run of `generation` (what is pending of the one
    /// before is dropped: it was flushed for the last time).
    pub fn begin(&mut self, generation: u64) {
        self.generation = generation;
        self.buffer.reset();
    }

    pub fn pending(&self) -> usize {
        self.buffer.pending()
    }

    pub fn push(&mut self, stream: OutputStream, bytes: &[u8]) {
        self.buffer.push(stream, bytes)
    }

    /// A line of bosun's own in the log, on stderr: what a sync did not keep. Counted against
    /// the cap as the run's output is (past it, dropped).
    pub fn note(&mut self, text: &str) {
        let line = format!("[bosun: {text}]\n");
        self.push(OutputStream::Stderr, line.as_bytes());
    }

    /// Appends what is pending, a run per event, in order. A character split across reads at
    /// the very end waits for its rest, unless this is the `last` flush. What fails to append
    /// stays pending for the next flush.
    pub async fn flush(&mut self, context: &Context, last: bool) -> Result<(), CommandError> {
        while let Some(chunk) = self.buffer.next(last) {
            let command = RunnableLogCommand::Append {
                generation: self.generation,
                stream: chunk.stream,
                text: chunk.text,
                at: Utc::now(),
            };
            self.append_once(context, chunk.attempt, command).await?;
            self.buffer.appended();
        }
        Ok(())
    }

    /// The last flush of a run: retried through an outage of the log for up to a third of a
    /// lease; what is left then is dropped (said in the node's log).
    pub async fn flush_last(&mut self, context: &Context) {
        let give_up = Instant::now() + context.lease / 3;
        let mut pause = Duration::from_millis(50);
        loop {
            match self.flush(context, true).await {
                Ok(()) => return,
                Err(e) if e.is_transient() && Instant::now() + pause < give_up => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(e) => {
                    tracing::warn!(runnable = %self.id, error = %e, bytes = self.pending(), "the run's last output could not be kept");
                    self.buffer.drop_pending();
                    return;
                }
            }
        }
    }

    async fn append_once(
        &mut self,
        context: &Context,
        attempt: Uuid,
        command: RunnableLogCommand,
    ) -> Result<(), CommandError> {
        let held = match &mut self.held {
            Some(held) => held,
            None => self.held.insert(
                context
                    .commands
                    .hold::<RunnableLog>(&self.id.to_string())
                    .await?,
            ),
        };
        context
            .commands
            .execute_held(
                held,
                &ACTOR,
                &context.origin,
                attempt,
                |log: &RunnableLog| log.handle(command.clone()),
            )
            .await
            .map(|_| ())
    }
}

/// Whether enough is pending to append now rather than at the next tick.
pub(crate) fn full(log: &Log) -> bool {
    log.pending() >= FLUSH_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(log: &Log) -> Vec<(OutputStream, String)> {
        log.buffer
            .runs()
            .iter()
            .map(|(s, b)| (*s, String::from_utf8_lossy(b).into_owned()))
            .collect()
    }

    #[test]
    fn a_runs_output_is_kept_in_order_and_cut_at_its_cap() {
        let mut log = Log::new(RunnableId::new(Uuid::new_v4()), 10);
        log.begin(1);
        log.push(OutputStream::Stdout, b"abc");
        log.push(OutputStream::Stdout, b"def");
        log.push(OutputStream::Stderr, b"gh");
        log.push(OutputStream::Stdout, b"ijklmn");
        log.push(OutputStream::Stdout, b"more");
        let got = text(&log);
        assert_eq!(got[0], (OutputStream::Stdout, "abcdef".into()));
        assert_eq!(got[1], (OutputStream::Stderr, "gh".into()));
        assert!(got[2]
            .1
            .starts_with("ij\n[bosun: output cut here: more than 10 bytes"));
        assert_eq!(got.len(), 3);
        // Past the cap, a note of bosun's own is dropped too.
        log.note("not synced: x");
        assert_eq!(text(&log).len(), 3);
        // The next run has a cap of its own.
        log.begin(2);
        assert_eq!(log.pending(), 0);
        log.push(OutputStream::Stdout, b"0123456789");
        assert_eq!(
            text(&log),
            vec![(OutputStream::Stdout, "0123456789".into())]
        );
    }

    #[test]
    fn a_note_counts_against_the_cap() {
        let mut log = Log::new(RunnableId::new(Uuid::new_v4()), 40);
        log.begin(1);
        log.push(OutputStream::Stderr, b"err\n");
        log.note("not synced: a");
        assert_eq!(
            text(&log),
            vec![(OutputStream::Stderr, "err\n[bosun: not synced: a]\n".into())]
        );
        log.note("not synced: a much longer path");
        let all = &text(&log)[0].1;
        assert!(
            all.starts_with("err\n[bosun: not synced: a]\n[bosun: not s\n[bosun: output cut here"),
            "{all:?}"
        );
        let before = log.pending();
        log.note("more");
        assert_eq!(log.pending(), before);
    }
}
