//! Runnables: file trees with a start command, run in a sandbox, saved as images and forked
//! from them.
//!
//! Stream: `runnable-<uuid>`. A file's bytes are a blob, keyed by its digest (`eventstore`);
//! the events name digests only, so a fork or an image copies no bytes.
//!
//! Not here: storing blobs (`eventstore`), who may act on a runnable (`commands`), the reaper's
//! schedule and the sandbox (`runner`).

mod log;
mod owner;
mod run;
mod runnable;
mod values;

pub use log::{RunnableLog, RunnableLogCommand, RunnableLogEvent};
pub use owner::{RunnableOwner, RunnableOwnerCommand, RunnableOwnerEvent};
pub use run::{cap_skipped, Run, RunPhase, RunStopReason, SkippedFile, MAX_SKIPPED};
pub use runnable::{
    access_every, ForkSource, Image, Runnable, RunnableCommand, RunnableEvent, ACCESS_EVERY_AT_MOST,
};
pub use values::{
    manifest_digest, Digest, FileEntry, FileLimits, FilePath, RunnableId, RunnableName,
    StartCommand, MAX_NAME_CHARS, MAX_PATH_BYTES, MAX_PATH_COMPONENT_BYTES,
    MAX_START_COMMAND_CHARS,
};

#[cfg(test)]
mod tests;
