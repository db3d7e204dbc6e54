//! A job's output on its way to the log: what its process (or HTTP task) wrote, kept in the
//! order it came (runs of one stream) and appended in batches (every `FLUSH_EVERY`, or at
//! `FLUSH_BYTES`), each event at most `FLUSH_BYTES` and never ending inside a UTF-8 character
//! unless nothing more will come; capped at the job's output limit, with a line saying where it
//! was cut; a chunk whose append failed retried exactly as it was (its attempt and length).
//!
//! Does not own: reading the process's pipes (`process`), when to flush (`supervise`), nor what
//! the log can store (a NUL becomes U+FFFD in the domain, as invalid UTF-8 does here).

use crate::job_stream::JobStream;
use crate::workers::Context;
use bosun_commands::CommandError;
use bosun_domain::jobs::{JobCommand, OutputStream};
use std::time::Duration;
use uuid::Uuid;

/// Output is appended at least this often while a job runs…
pub(crate) const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// …or as soon as this much has gathered. Each append costs a commit, and a very large event
/// costs more per byte (`bosun bench output`, 30 MB: 2.6 s in 64 KiB events, 0.86 s in 256 KiB,
/// 1.4 s in 1 MiB); the live feed's buffer also holds each event.
pub(crate) const FLUSH_BYTES: usize = 256 * 1024;

/// Output waiting to be appended, in the order it came (runs of one stream), and the cap on all
/// of it: what a job's output and a runnable's log share.
pub(crate) struct Buffer {
    pending: Vec<(OutputStream, Vec<u8>)>,
    kept: u64,
    limit: u64,
    /// Named in the line saying where the output was cut (the setting of the limit), if any.
    setting: Option<&'static str>,
    cut: bool,
    /// The chunk whose append failed with an unknown outcome: its attempt and length, retried
    /// exactly so (more output may have come after it since).
    unsettled: Option<(Uuid, usize)>,
}

/// The next chunk to append: its attempt, its stream and its text.
pub(crate) struct Chunk {
    pub attempt: Uuid,
    pub stream: OutputStream,
    pub text: String,
}

impl Buffer {
    /// Output capped at `limit` bytes in all; `setting` names that limit in the cut line.
    pub fn new(limit: u64, setting: Option<&'static str>) -> Self {
        Buffer {
            pending: Vec::new(),
            kept: 0,
            limit,
            setting,
            cut: false,
            unsettled: None,
        }
    }

    /// Everything dropped, the cap counted from nothing again.
    pub fn reset(&mut self) {
        self.pending.clear();
        self.unsettled = None;
        self.kept = 0;
        self.cut = false;
    }

    /// What is pending dropped (the cap still counts what was kept).
    pub fn drop_pending(&mut self) {
        self.pending.clear();
        self.unsettled = None;
    }

    pub fn pending(&self) -> usize {
        self.pending.iter().map(|(_, b)| b.len()).sum()
    }

    #[cfg(test)]
    pub fn runs(&self) -> &[(OutputStream, Vec<u8>)] {
        &self.pending
    }

    pub fn push(&mut self, stream: OutputStream, bytes: &[u8]) {
        if self.cut {
            return;
        }
        let room = self.limit.saturating_sub(self.kept + self.pending() as u64) as usize;
        let mut run = bytes[..bytes.len().min(room)].to_vec();
        if bytes.len() > room {
            let setting = self.setting.map(|s| format!(" ({s})")).unwrap_or_default();
            run.extend_from_slice(
                format!(
                    "\n[bosun: output cut here: more than {} bytes{setting}]\n",
                    self.limit
                )
                .as_bytes(),
            );
            self.cut = true;
        }
        match self.pending.last_mut() {
            Some((last, buffer)) if *last == stream => buffer.extend_from_slice(&run),
            _ => self.pending.push((stream, run)),
        }
    }

    /// The next chunk to append, a run of one stream at most [`FLUSH_BYTES`]: the one whose
    /// append failed again, exactly; `None` once nothing is pending, or only a character split
    /// at the very end, which waits for its rest unless this is the `last` flush. Until
    /// [`Buffer::appended`], it is unsettled.
    pub fn next(&mut self, last: bool) -> Option<Chunk> {
        loop {
            let only = self.pending.len() == 1;
            let (stream, bytes) = self.pending.first()?;
            let (attempt, complete) = match self.unsettled {
                Some(unsettled) => unsettled,
                None => (Uuid::new_v4(), chunk_length(bytes, last || !only)),
            };
            if complete == 0 {
                if bytes.is_empty() {
                    self.pending.remove(0);
                    continue;
                }
                return None;
            }
            let chunk = Chunk {
                attempt,
                stream: *stream,
                text: String::from_utf8_lossy(&bytes[..complete]).into_owned(),
            };
            self.unsettled = Some((attempt, complete));
            return Some(chunk);
        }
    }

    /// The chunk [`Buffer::next`] gave is in the log.
    pub fn appended(&mut self) {
        let Some((_, complete)) = self.unsettled.take() else {
            return;
        };
        self.kept += complete as u64;
        if let Some((_, bytes)) = self.pending.first_mut() {
            bytes.drain(..complete);
            if bytes.is_empty() {
                self.pending.remove(0);
            }
        }
    }
}

/// A job's output on its way to its stream.
pub(crate) struct Output {
    buffer: Buffer,
    /// The orchestration task whose output this is now.
    pub task: Option<u32>,
    /// One event per flush while its process runs, flushed on the tick only (not as soon as
    /// `FLUSH_BYTES` gathered): a role job's instance, one of several appending to the job's
    /// stream at once, leaves the stream still between its appends, so a kill or stop asked
    /// meanwhile gets in. The last flush appends all that is left.
    pub paced: bool,
}

impl Output {
    /// Output of a job, capped at `limit` bytes in all (all its tasks together).
    pub fn new(limit: u64) -> Self {
        Output {
            buffer: Buffer::new(limit, None),
            task: None,
            paced: false,
        }
    }

    pub fn pending(&self) -> usize {
        self.buffer.pending()
    }

    pub fn push(&mut self, stream: OutputStream, bytes: &[u8]) {
        self.buffer.push(stream, bytes)
    }

    /// Appends what is pending, a run per event, in order. A character split across reads at
    /// the very end waits for its rest, unless this is the last flush. What fails to append stays
    /// pending for the next flush.
    pub async fn flush(
        &mut self,
        context: &Context,
        job: &mut JobStream,
        last: bool,
    ) -> Result<(), CommandError> {
        while let Some(chunk) = self.buffer.next(last) {
            // Not retried here: what fails stays pending for the next flush, while supervision
            // goes on (renewing the lease, watching for a kill).
            let command = JobCommand::AppendOutput {
                stream: chunk.stream,
                text: chunk.text,
                task: self.task,
            };
            job.append_once(context, chunk.attempt, &command).await?;
            self.buffer.appended();
            if self.paced && !last {
                break;
            }
        }
        Ok(())
    }
}

/// How much of a run of output goes into one event: at most `FLUSH_BYTES` (after an outage a
/// run may have grown far beyond), never ending inside a character unless the run is `whole`
/// (nothing more will come for it).
fn chunk_length(bytes: &[u8], whole: bool) -> usize {
    if bytes.len() <= FLUSH_BYTES {
        return if whole {
            bytes.len()
        } else {
            bytes.len() - incomplete_tail(bytes)
        };
    }
    let cut = &bytes[..FLUSH_BYTES];
    cut.len() - incomplete_tail(cut)
}

/// How many bytes at the end of `bytes` begin a UTF-8 character whose rest has not come yet.
fn incomplete_tail(bytes: &[u8]) -> usize {
    for back in 1..=bytes.len().min(3) {
        let byte = bytes[bytes.len() - back];
        if byte & 0b1100_0000 == 0b1000_0000 {
            continue; // a continuation byte: its lead is further back
        }
        let needed = match byte {
            b if b & 0b1110_0000 == 0b1100_0000 => 2,
            b if b & 0b1111_0000 == 0b1110_0000 => 3,
            b if b & 0b1111_1000 == 0b1111_0000 => 4,
            _ => return 0,
        };
        return if back < needed { back } else { 0 };
    }
    0
}

#[cfg(test)]
mod tests {
    use super::{chunk_length, incomplete_tail, FLUSH_BYTES};

    #[test]
    fn an_event_holds_at_most_flush_bytes_and_whole_characters() {
        let euro = "€".as_bytes();
        assert_eq!(chunk_length(b"abc", true), 3);
        assert_eq!(chunk_length(&[b'a', euro[0]], false), 1);
        assert_eq!(chunk_length(&[b'a', euro[0]], true), 2);
        let mut long = vec![b'x'; FLUSH_BYTES - 1];
        long.extend_from_slice(euro);
        assert_eq!(
            chunk_length(&long, true),
            FLUSH_BYTES - 1,
            "the euro sign waits"
        );
        assert_eq!(
            chunk_length(&vec![b'x'; 3 * FLUSH_BYTES], true),
            FLUSH_BYTES
        );
    }

    #[test]
    fn holds_back_only_a_character_cut_at_the_end() {
        let e_acute = "é".as_bytes(); // 2 bytes
        let euro = "€".as_bytes(); // 3 bytes
        assert_eq!(incomplete_tail(b"abc"), 0);
        assert_eq!(incomplete_tail(&[b'a', e_acute[0]]), 1);
        assert_eq!(incomplete_tail(&[b'a', e_acute[0], e_acute[1]]), 0);
        assert_eq!(incomplete_tail(&[b'a', euro[0], euro[1]]), 2);
        assert_eq!(
            incomplete_tail(&[0xff, b'a', euro[0]]),
            1,
            "an invalid byte earlier does not matter"
        );
        assert_eq!(incomplete_tail(euro), 0);
    }
}
