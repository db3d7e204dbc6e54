//! `runnables`, `runnable_files`, `runnable_image_files` and `runnable_output`: the runnables
//! (stream `runnable-<uuid>`), the files of each one's tree, the files of each one's image, and
//! what its runs wrote (stream `runnable_log-<uuid>`).
//!
//! - `runnables`: one row per runnable that exists; a removed or reaped one's rows are deleted,
//!   in all four tables. `image_*` are NULL until its first save, and hold its latest image's
//!   manifest digest, save time and start command after. `last_access` is the `at` of its latest
//!   access (as the aggregate's fold keeps it: its owner's events, not the runner's nor a
//!   change of owner): what the reaper reads. Its run as the aggregate folds it: `wanted`,
//!   `run_generation` (the generation wanted: what the runner reads), `state` and `state_since`
//!   (the phase and when it began), and the run on record's `node`, `pid`, `exit_code`,
//!   `exit_signal`, `diagnostics`.
//! - `runnable_files`: one row per file of its tree, `digest` the blob its content is stored
//!   under (`eventstore`'s `blobs`), never the content. Folders are not rows: they are derived
//!   from the paths ([`children`]). A run's syncs change them too.
//! - `runnable_image_files`: one row per file of its image, replaced whole by each save.
//! - `runnable_output`: one row per chunk of output, by its byte offset in the whole log; a chunk
//!   of a runnable without a row (removed before the runner's last words) is not kept.
//!
//! Every column comes from the events alone (their `at`, the stream's version), never the time
//! they were projected, so a replay rebuilds the same rows. Does not own who may see what (the
//! queries in `commands`), the blobs, nor the rules (the aggregates in `domain`).

use crate::projection::{Param, Projection, Tables, Writes};
use crate::read_models::identity::Page;
use bosun_domain::jobs::OutputStream;
use bosun_domain::runnables::{
    FileEntry, Run, RunPhase, Runnable, RunnableEvent, RunnableLog, RunnableLogEvent,
};
use bosun_domain::Aggregate;
use bosun_eventstore::{Filter, RecordedEvent};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use tokio_postgres::types::ToSql;
use tokio_postgres::GenericClient;
use uuid::Uuid;

pub struct Runnables;

const RUNNABLES: &str = "runnables";
const FILES: &str = "runnable_files";
const IMAGE_FILES: &str = "runnable_image_files";
const OUTPUT: &str = "runnable_output";

impl Projection for Runnables {
    fn name(&self) -> &'static str {
        "runnables"
    }

    fn version(&self) -> i32 {
        2
    }

    fn tables(&self) -> &'static [&'static str] {
        &[RUNNABLES, FILES, IMAGE_FILES, OUTPUT]
    }

    fn filter(&self) -> Filter {
        Filter {
            categories: vec![Runnable::CATEGORY.into(), RunnableLog::CATEGORY.into()],
            ..Filter::default()
        }
    }

    fn create(&self, tables: &Tables) -> String {
        format!(
            "CREATE TABLE {runnables} (
                id                  UUID PRIMARY KEY,
                name                TEXT NOT NULL,
                owner               TEXT NOT NULL,
                parent              UUID,
                start_command       TEXT NOT NULL,
                image_digest        TEXT,
                image_saved_at      TIMESTAMPTZ,
                image_start_command TEXT,
                last_access         TIMESTAMPTZ NOT NULL,
                created_at          TIMESTAMPTZ NOT NULL,
                version             BIGINT NOT NULL,
                wanted              BOOLEAN NOT NULL DEFAULT false,
                run_generation      BIGINT NOT NULL DEFAULT 0,
                state               TEXT NOT NULL DEFAULT 'stopped',
                node                TEXT,
                pid                 INT,
                exit_code           INT,
                exit_signal         INT,
                diagnostics         TEXT,
                state_since         TIMESTAMPTZ);
             CREATE TABLE {files} (
                runnable UUID NOT NULL,
                path     TEXT NOT NULL,
                digest   TEXT NOT NULL,
                size     BIGINT NOT NULL,
                PRIMARY KEY (runnable, path));
             CREATE TABLE {image_files} (
                runnable UUID NOT NULL,
                path     TEXT NOT NULL,
                digest   TEXT NOT NULL,
                size     BIGINT NOT NULL,
                PRIMARY KEY (runnable, path));
             CREATE TABLE {output} (
                runnable_id UUID NOT NULL,
                \"offset\"    BIGINT NOT NULL,
                generation  BIGINT NOT NULL,
                stream      TEXT NOT NULL,
                text        TEXT NOT NULL,
                PRIMARY KEY (runnable_id, \"offset\"));",
            runnables = tables.name(RUNNABLES),
            files = tables.name(FILES),
            image_files = tables.name(IMAGE_FILES),
            output = tables.name(OUTPUT),
        )
    }

    fn indexes(&self, tables: &Tables) -> String {
        let runnables = tables.name(RUNNABLES);
        format!(
            "CREATE INDEX ON {runnables} (owner);
             CREATE INDEX ON {runnables} (parent) WHERE parent IS NOT NULL;
             CREATE INDEX ON {runnables} (created_at DESC, id);
             CREATE INDEX ON {runnables} (last_access, id) WHERE image_digest IS NULL;
             CREATE INDEX ON {runnables} (id) WHERE wanted;"
        )
    }

    fn apply(&self, event: &RecordedEvent, tables: &Tables, writes: &mut Writes) {
        let category = event.stream_id.category();
        if category != Runnable::CATEGORY && category != RunnableLog::CATEGORY {
            return;
        }
        let Ok(id) = Uuid::parse_str(event.stream_id.id()) else {
            skipped(event, &"the stream's id is not a uuid");
            return;
        };
        if category == RunnableLog::CATEGORY {
            match bosun_domain::decode::<RunnableLogEvent>(&event.event_type, &event.data) {
                Ok(decoded) => apply_log(id, decoded, tables, writes),
                Err(e) => skipped(event, &e),
            }
            return;
        }
        match bosun_domain::decode::<RunnableEvent>(&event.event_type, &event.data) {
            Ok(decoded) => apply_runnable(event, id, decoded, tables, writes),
            Err(e) => skipped(event, &e),
        }
    }
}

fn stream_name(stream: OutputStream) -> &'static str {
    match stream {
        OutputStream::Stdout => "stdout",
        OutputStream::Stderr => "stderr",
    }
}

/// A chunk of runnable `id`'s output, kept only while the runnable has a row.
fn apply_log(id: Uuid, decoded: RunnableLogEvent, tables: &Tables, writes: &mut Writes) {
    let runnables = tables.name(RUNNABLES);
    let output = tables.name(OUTPUT);
    match decoded {
        RunnableLogEvent::RunnableOutputAppended {
            generation,
            stream,
            offset,
            text,
            ..
        } => writes.push(
            format!(
                "INSERT INTO {output} (runnable_id, \"offset\", generation, stream, text)
                 SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM {runnables} WHERE id = $1)
                 ON CONFLICT (runnable_id, \"offset\") DO UPDATE SET
                    generation = EXCLUDED.generation, stream = EXCLUDED.stream,
                    text = EXCLUDED.text"
            ),
            vec![
                Box::new(id),
                Box::new(bytes(offset)),
                Box::new(bytes(generation)),
                Box::new(stream_name(stream)),
                Box::new(text),
            ],
        ),
    }
}

/// `state = <phase>` and `state_since`: `at` (an SQL parameter) unless the phase stays what it
/// was (the aggregate's `since` is when the phase began). `phase` is an SQL expression over the
/// row as it was.
fn enter(phase: &str, at: &str) -> String {
    format!(
        "state = {phase}, state_since = CASE WHEN state = {phase} AND state_since IS NOT NULL
             THEN state_since ELSE {at} END"
    )
}

fn phase(phase: RunPhase) -> String {
    format!("'{}'", phase.as_str())
}

fn skipped(event: &RecordedEvent, error: &dyn std::fmt::Display) {
    tracing::error!(position = event.position, event_type = %event.event_type, error = %error, "runnables projection cannot read this event; skipped");
}

fn bytes(size: u64) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

/// Writes `files` as `table`'s rows of runnable `id` (`$1`), in one statement; a path given
/// twice keeps its last entry (the aggregate never gives one twice).
fn insert_files(writes: &mut Writes, table: &str, id: Uuid, files: &[FileEntry]) {
    if files.is_empty() {
        return;
    }
    let unique: BTreeMap<&str, &FileEntry> = files.iter().map(|f| (f.path.as_str(), f)).collect();
    let paths: Vec<String> = unique.keys().map(|p| p.to_string()).collect();
    let digests: Vec<String> = unique
        .values()
        .map(|f| f.digest.as_str().to_string())
        .collect();
    let sizes: Vec<i64> = unique.values().map(|f| bytes(f.size)).collect();
    writes.push(
        format!(
            "INSERT INTO {table} (runnable, path, digest, size)
             SELECT $1, f.path, f.digest, f.size
             FROM unnest($2::TEXT[], $3::TEXT[], $4::BIGINT[]) AS f(path, digest, size)
             ON CONFLICT (runnable, path) DO UPDATE SET
                digest = EXCLUDED.digest, size = EXCLUDED.size"
        ),
        vec![
            Box::new(id),
            Box::new(paths),
            Box::new(digests),
            Box::new(sizes),
        ],
    );
}

fn apply_runnable(
    event: &RecordedEvent,
    id: Uuid,
    decoded: RunnableEvent,
    tables: &Tables,
    writes: &mut Writes,
) {
    let runnables = tables.name(RUNNABLES);
    let files = tables.name(FILES);
    let image_files = tables.name(IMAGE_FILES);
    let version = event.version as i64;
    // A change of the runnable's row: `$1` the runnable, `$2` the version, `$3` the access
    // time, its own parameters from `$4`.
    let set = |writes: &mut Writes, columns: &str, at: DateTime<Utc>, mut params: Vec<Param>| {
        let mut all: Vec<Param> = vec![Box::new(id), Box::new(version), Box::new(at)];
        all.append(&mut params);
        let columns = if columns.is_empty() {
            String::new()
        } else {
            format!("{columns}, ")
        };
        writes.push(
            format!("UPDATE {runnables} SET {columns}last_access = $3, version = $2 WHERE id = $1"),
            all,
        );
    };
    // A change of the runnable's row that is no access: `$1` the runnable, `$2` the version,
    // its own parameters from `$3`.
    let change = |writes: &mut Writes, columns: &str, mut params: Vec<Param>| {
        let mut all: Vec<Param> = vec![Box::new(id), Box::new(version)];
        all.append(&mut params);
        let columns = if columns.is_empty() {
            String::new()
        } else {
            format!("{columns}, ")
        };
        writes.push(
            format!("UPDATE {runnables} SET {columns}version = $2 WHERE id = $1"),
            all,
        );
    };
    let delete_all = |writes: &mut Writes, table: &str| {
        writes.push(
            format!("DELETE FROM {table} WHERE runnable = $1"),
            vec![Box::new(id)],
        );
    };
    match decoded {
        RunnableEvent::RunnableCreated {
            name,
            owner,
            parent,
            start_command,
            files: created,
            at,
            ..
        } => {
            // A conflict is only a log written twice: the row starts afresh.
            writes.push(
                format!(
                    "INSERT INTO {runnables} (id, name, owner, parent, start_command, image_digest,
                        image_saved_at, image_start_command, last_access, created_at, version)
                     VALUES ($1, $2, $3, $4, $5, NULL, NULL, NULL, $6, $6, $7)
                     ON CONFLICT (id) DO UPDATE SET
                        name = EXCLUDED.name, owner = EXCLUDED.owner, parent = EXCLUDED.parent,
                        start_command = EXCLUDED.start_command, image_digest = NULL,
                        image_saved_at = NULL, image_start_command = NULL,
                        last_access = EXCLUDED.last_access, created_at = EXCLUDED.created_at,
                        version = EXCLUDED.version, wanted = false, run_generation = 0,
                        state = 'stopped', node = NULL, pid = NULL, exit_code = NULL,
                        exit_signal = NULL, diagnostics = NULL, state_since = NULL"
                ),
                vec![
                    Box::new(id),
                    Box::new(name.as_str().to_string()),
                    Box::new(owner.as_str().to_string()),
                    Box::new(parent.map(|p| p.as_uuid())),
                    Box::new(start_command.as_str().to_string()),
                    Box::new(at),
                    Box::new(version),
                ],
            );
            delete_all(writes, &files);
            delete_all(writes, &image_files);
            insert_files(writes, &files, id, &created);
        }
        RunnableEvent::RunnableUpdated {
            name,
            start_command,
            at,
        } => set(
            writes,
            "name = COALESCE($4, name), start_command = COALESCE($5, start_command)",
            at,
            vec![
                Box::new(name.map(|n| n.as_str().to_string())),
                Box::new(start_command.map(|c| c.as_str().to_string())),
            ],
        ),
        RunnableEvent::RunnableFileWritten {
            path,
            digest,
            size,
            at,
        } => {
            set(writes, "", at, vec![]);
            insert_files(writes, &files, id, &[FileEntry { path, digest, size }]);
        }
        RunnableEvent::RunnableFilesDeleted { paths, at } => {
            set(writes, "", at, vec![]);
            let paths: Vec<String> = paths.iter().map(|p| p.as_str().to_string()).collect();
            writes.push(
                format!("DELETE FROM {files} WHERE runnable = $1 AND path = ANY($2)"),
                vec![Box::new(id), Box::new(paths)],
            );
        }
        RunnableEvent::RunnableAccessed { at } => set(writes, "", at, vec![]),
        RunnableEvent::RunnableImageSaved {
            digest,
            start_command,
            files: saved,
            at,
        } => {
            set(
                writes,
                "image_digest = $4, image_saved_at = $3, image_start_command = $5",
                at,
                vec![
                    Box::new(digest.as_str().to_string()),
                    Box::new(start_command.as_str().to_string()),
                ],
            );
            // The image is replaced whole.
            delete_all(writes, &image_files);
            insert_files(writes, &image_files, id, &saved);
        }
        RunnableEvent::RunnableRemoved { .. } | RunnableEvent::RunnableReaped { .. } => {
            delete_all(writes, &files);
            delete_all(writes, &image_files);
            writes.push(
                format!("DELETE FROM {} WHERE runnable_id = $1", tables.name(OUTPUT)),
                vec![Box::new(id)],
            );
            writes.push(
                format!("DELETE FROM {runnables} WHERE id = $1"),
                vec![Box::new(id)],
            );
        }
        RunnableEvent::RunnableOwnerChanged { to, .. } => change(
            writes,
            "owner = $3",
            vec![Box::new(to.as_str().to_string())],
        ),
        RunnableEvent::RunnableStartRequested { generation, at }
        | RunnableEvent::RunnableRestartRequested { generation, at } => set(
            writes,
            &format!(
                "wanted = true, run_generation = $4, {}",
                enter(&phase(RunPhase::Starting), "$3")
            ),
            at,
            vec![Box::new(bytes(generation))],
        ),
        RunnableEvent::RunnableStopRequested { at } => {
            // One still starting stops at once; a running one when its runner stops it.
            let after = format!(
                "CASE WHEN state = {starting} THEN {stopped} ELSE state END",
                starting = phase(RunPhase::Starting),
                stopped = phase(RunPhase::Stopped),
            );
            set(
                writes,
                &format!("wanted = false, {}", enter(&after, "$3")),
                at,
                vec![],
            )
        }
        RunnableEvent::RunnableRunStarted { node, pid, at, .. } => change(
            writes,
            &format!(
                "node = $4, pid = $5, exit_code = NULL, exit_signal = NULL, diagnostics = NULL, {}",
                enter(&phase(RunPhase::Running), "$3")
            ),
            vec![
                Box::new(at),
                Box::new(node),
                Box::new(i32::try_from(pid).ok()),
            ],
        ),
        RunnableEvent::RunnableRunEnded {
            generation,
            code,
            signal,
            at,
            ..
        } => {
            // Not started again, unless a newer generation is wanted meanwhile.
            let after = format!(
                "CASE WHEN wanted AND run_generation <> $4 THEN {starting}
                      WHEN $5::INT = 0 THEN {stopped} ELSE {error} END",
                starting = phase(RunPhase::Starting),
                stopped = phase(RunPhase::Stopped),
                error = phase(RunPhase::Error),
            );
            change(
                writes,
                &format!(
                    "pid = NULL, exit_code = $5, exit_signal = $6, {},
                     wanted = wanted AND run_generation <> $4",
                    enter(&after, "$3")
                ),
                vec![
                    Box::new(at),
                    Box::new(bytes(generation)),
                    Box::new(code),
                    Box::new(signal),
                ],
            )
        }
        RunnableEvent::RunnableRunStopped { at, .. } => {
            let after = format!(
                "CASE WHEN wanted THEN {starting} ELSE {stopped} END",
                starting = phase(RunPhase::Starting),
                stopped = phase(RunPhase::Stopped),
            );
            change(
                writes,
                &format!("pid = NULL, {}", enter(&after, "$3")),
                vec![Box::new(at)],
            )
        }
        RunnableEvent::RunnableRunFailed {
            node,
            diagnostics,
            at,
            ..
        } => change(
            writes,
            &format!(
                "wanted = false, node = $4, pid = NULL, exit_code = NULL, exit_signal = NULL,
                 diagnostics = $5, {}",
                enter(&phase(RunPhase::Error), "$3")
            ),
            vec![Box::new(at), Box::new(node), Box::new(diagnostics)],
        ),
        RunnableEvent::RunnableSyncRequested { .. } => change(writes, "", vec![]),
        RunnableEvent::RunnableFilesSynced {
            written, deleted, ..
        } => {
            // Not an access: `last_access` stays.
            change(writes, "", vec![]);
            if !deleted.is_empty() {
                let paths: Vec<String> = deleted.iter().map(|p| p.as_str().to_string()).collect();
                writes.push(
                    format!("DELETE FROM {files} WHERE runnable = $1 AND path = ANY($2)"),
                    vec![Box::new(id), Box::new(paths)],
                );
            }
            insert_files(writes, &files, id, &written);
        }
    }
}

/// A runnable as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RunnableView {
    pub id: Uuid,
    pub name: String,
    /// The user who owns it, by name.
    pub owner: String,
    /// The runnable it was forked from; `null` for a root runnable.
    pub parent: Option<Uuid>,
    /// Its latest saved image; `null` before its first save.
    pub image: Option<ImageView>,
    /// Run as `sh -c` in its tree.
    pub start_command: String,
    /// `stopped`, `starting` (wanted running, no process of the generation wanted yet),
    /// `running` or `error` (it ended with a code other than 0, by a signal, or could not start).
    #[schema(example = "stopped")]
    pub state: String,
    /// Its run once it was ever started; `null` before.
    pub run: Option<RunView>,
    /// Its latest access: a file read or written, a change, a save.
    pub last_access: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// Its stream's version.
    pub version: u64,
}

/// A runnable's run: the generation wanted and the run on record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RunView {
    /// The generation wanted: each start or restart is the previous one plus 1.
    pub generation: u64,
    /// The node of the run on record (running, or the last one).
    pub node: Option<String>,
    /// Its process, while it runs.
    pub pid: Option<u32>,
    /// How the last run ended on its own.
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// Why the last run could not start.
    pub diagnostics: Option<String>,
    /// When `state` began.
    pub since: Option<DateTime<Utc>>,
}

/// A runnable's saved image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ImageView {
    /// The sha256 of its manifest (its files' paths, digests and sizes, and its start command).
    pub digest: String,
    pub saved_at: DateTime<Utc>,
}

/// A file or folder of a runnable's tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FileView {
    /// From the tree's root, without a leading `/`.
    pub path: String,
    /// A folder (derived from the paths of the files under it).
    pub dir: bool,
    /// A file's size in bytes; a folder's, the total of the files under it.
    pub size: u64,
    /// The sha256 of a file's content; `null` for a folder.
    pub digest: Option<String>,
}

impl RunnableView {
    /// The view of a runnable's state as folded from its stream at `version` (for a write's
    /// answer). `None` for a runnable never created, removed or reaped.
    pub fn of_state(runnable: &Runnable, version: u64) -> Option<RunnableView> {
        if !runnable.is_active() {
            return None;
        }
        Some(RunnableView {
            id: runnable.id()?.as_uuid(),
            name: runnable.name()?.as_str().to_string(),
            owner: runnable.owner()?.as_str().to_string(),
            parent: runnable.parent().map(|p| p.as_uuid()),
            image: runnable.image().map(|image| ImageView {
                digest: image.digest.as_str().to_string(),
                saved_at: image.saved_at,
            }),
            start_command: runnable.start_command()?.as_str().to_string(),
            state: runnable.run().phase.as_str().to_string(),
            run: RunView::of_run(runnable.run()),
            last_access: runnable.last_access()?,
            created_at: runnable.created_at()?,
            version,
        })
    }
}

impl RunView {
    /// The view of `run`; `None` for one never asked to run.
    pub fn of_run(run: &Run) -> Option<RunView> {
        if run.generation == 0 {
            return None;
        }
        Some(RunView {
            generation: run.generation,
            node: run.node.clone(),
            pid: run.pid,
            exit_code: run.exit_code,
            signal: run.signal,
            diagnostics: run.diagnostics.clone(),
            since: run.since,
        })
    }
}

/// The immediate children of folder `under` (`""`: the root) among `files` (path, digest,
/// size), by path (byte order): its files, and its folders with the total size of the files
/// under them. When `under` is itself one of the files, that file alone. Empty when nothing is
/// there.
pub fn children<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a str, u64)>,
    under: &str,
) -> Vec<FileView> {
    let under = under.trim_end_matches('/');
    let prefix = if under.is_empty() {
        String::new()
    } else {
        format!("{under}/")
    };
    let mut found: BTreeMap<String, FileView> = BTreeMap::new();
    for (path, digest, size) in files {
        if !under.is_empty() && path == under {
            return vec![FileView {
                path: path.to_string(),
                dir: false,
                size,
                digest: Some(digest.to_string()),
            }];
        }
        let Some(rest) = path.strip_prefix(prefix.as_str()) else {
            continue;
        };
        match rest.split_once('/') {
            None => {
                found.insert(
                    path.to_string(),
                    FileView {
                        path: path.to_string(),
                        dir: false,
                        size,
                        digest: Some(digest.to_string()),
                    },
                );
            }
            Some((folder, _)) => {
                let folder = format!("{prefix}{folder}");
                found
                    .entry(folder.clone())
                    .or_insert(FileView {
                        path: folder,
                        dir: true,
                        size: 0,
                        digest: None,
                    })
                    .size += size;
            }
        }
    }
    found.into_values().collect()
}

/// Which runnables a list shows: those a caller may see, narrowed by the query's filters.
#[derive(Clone, Debug, Default)]
pub struct RunnableQuery {
    /// `None`: every runnable (an admin); `Some(user)`: the user's own, and any with an image.
    pub viewer: Option<String>,
    /// `?owner=`.
    pub owner: Option<String>,
    /// `?parent=`.
    pub parent: Option<Uuid>,
    /// `?has_image=`.
    pub has_image: Option<bool>,
}

/// The columns of a [`RunnableView`], its start command `start_command` (an SQL expression).
fn columns(start_command: &str) -> String {
    format!(
        "id, name, owner, parent, image_digest, image_saved_at, {start_command},
         last_access, created_at, version, state, run_generation, node, pid, exit_code,
         exit_signal, diagnostics, state_since"
    )
}

/// The start command a viewer, the SQL parameter `viewer`, sees: the current one for its owner,
/// its image's for anyone else (who sees only runnables with an image: what a fork starts
/// with, not the owner's work since the save).
fn start_command_seen_by(viewer: &str) -> String {
    format!(
        "CASE WHEN owner = {viewer} THEN start_command
              ELSE coalesce(image_start_command, start_command) END"
    )
}

fn runnable_view(r: &tokio_postgres::Row) -> RunnableView {
    let image = match (r.get::<_, Option<String>>(4), r.get(5)) {
        (Some(digest), Some(saved_at)) => Some(ImageView { digest, saved_at }),
        _ => None,
    };
    let generation = u64::try_from(r.get::<_, i64>(11)).unwrap_or(0);
    let run = (generation > 0).then(|| RunView {
        generation,
        node: r.get(12),
        pid: r
            .get::<_, Option<i32>>(13)
            .and_then(|pid| u32::try_from(pid).ok()),
        exit_code: r.get(14),
        signal: r.get(15),
        diagnostics: r.get(16),
        since: r.get(17),
    });
    RunnableView {
        id: r.get(0),
        name: r.get(1),
        owner: r.get(2),
        parent: r.get(3),
        image,
        start_command: r.get(6),
        state: r.get(10),
        run,
        last_access: r.get(7),
        created_at: r.get(8),
        version: u64::try_from(r.get::<_, i64>(9)).unwrap_or(0),
    }
}

/// A page of the runnables `query` selects, the newest first, and how many it selects in all.
/// A viewer who is not a runnable's owner sees its image's start command.
pub async fn list(
    client: &impl GenericClient,
    query: &RunnableQuery,
    page: Page,
) -> Result<(Vec<RunnableView>, i64), tokio_postgres::Error> {
    let mut conditions = vec!["true".to_string()];
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![];
    let next = |conditions: &mut Vec<String>, condition: &str| {
        conditions.push(condition.replace('?', &format!("${}", conditions.len())));
    };
    let mut start_command = "start_command".to_string();
    if let Some(viewer) = &query.viewer {
        next(&mut conditions, "(owner = ? OR image_digest IS NOT NULL)");
        params.push(viewer);
        start_command = start_command_seen_by(&format!("${}", params.len()));
    }
    if let Some(owner) = &query.owner {
        next(&mut conditions, "owner = ?");
        params.push(owner);
    }
    if let Some(parent) = &query.parent {
        next(&mut conditions, "parent = ?");
        params.push(parent);
    }
    match query.has_image {
        Some(true) => conditions.push("image_digest IS NOT NULL".into()),
        Some(false) => conditions.push("image_digest IS NULL".into()),
        None => {}
    }
    let filter = conditions.join(" AND ");
    let total: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM {RUNNABLES} WHERE {filter}"),
            &params,
        )
        .await?
        .get(0);
    let (limit, offset) = (params.len() + 1, params.len() + 2);
    params.push(&page.limit);
    params.push(&page.offset);
    let rows = client
        .query(
            &format!(
                "SELECT {columns} FROM {RUNNABLES} WHERE {filter}
                 ORDER BY created_at DESC, id LIMIT ${limit} OFFSET ${offset}",
                columns = columns(&start_command),
            ),
            &params,
        )
        .await?;
    Ok((rows.iter().map(runnable_view).collect(), total))
}

/// Runnable `id` if it exists, as `viewer` sees it (`None`: as an admin, its current start
/// command; a user who is not its owner: its image's). Whether they may see it at all is the
/// caller's to check.
pub async fn get(
    client: &impl GenericClient,
    id: Uuid,
    viewer: Option<&str>,
) -> Result<Option<RunnableView>, tokio_postgres::Error> {
    let start_command = match viewer {
        Some(_) => start_command_seen_by("$2::TEXT"),
        None => "start_command".to_string(),
    };
    let sql = format!(
        "SELECT {columns} FROM {RUNNABLES} WHERE id = $1",
        columns = columns(&start_command)
    );
    let row = match viewer {
        Some(viewer) => client.query_opt(&sql, &[&id, &viewer]).await?,
        None => client.query_opt(&sql, &[&id]).await?,
    };
    Ok(row.map(|r| runnable_view(&r)))
}

/// The ids of every runnable `owner` owns, the oldest first: those removed with their owner.
pub async fn owned(
    client: &impl GenericClient,
    owner: &str,
) -> Result<Vec<Uuid>, tokio_postgres::Error> {
    Ok(client
        .query(
            &format!("SELECT id FROM {RUNNABLES} WHERE owner = $1 ORDER BY created_at, id"),
            &[&owner],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Runnable `id`'s output from byte `offset` on (every run, every stream, as they came), at most
/// `max` bytes (whole chunks, so a chunk is never split, but at least one), the offset after it,
/// and the offset the output ends at now.
pub async fn output(
    client: &impl GenericClient,
    id: Uuid,
    offset: i64,
    max: i64,
) -> Result<(String, i64, i64), tokio_postgres::Error> {
    let rows = client
        .query(
            // Only the chunks that can fit: those with less than `max` bytes before them.
            &format!(
                "SELECT \"offset\", text FROM (
                    SELECT \"offset\", text,
                        sum(octet_length(text)) OVER (ORDER BY \"offset\")
                            - octet_length(text) AS before
                    FROM {OUTPUT}
                    WHERE runnable_id = $1 AND \"offset\" + octet_length(text) > $2) chunks
                 WHERE before < $3
                 ORDER BY \"offset\""
            ),
            &[&id, &offset, &max],
        )
        .await?;
    // The last chunk only (the primary key's order), not a sum over the whole log.
    let end: i64 = client
        .query_opt(
            &format!(
                "SELECT (\"offset\" + octet_length(text))::BIGINT FROM {OUTPUT}
                 WHERE runnable_id = $1 ORDER BY \"offset\" DESC LIMIT 1"
            ),
            &[&id],
        )
        .await?
        .map_or(0, |row| row.get(0));
    let mut text = Vec::new();
    let mut next = offset;
    for row in rows {
        let start: i64 = row.get(0);
        let chunk: String = row.get(1);
        let bytes = chunk.as_bytes();
        let skip = (offset - start).clamp(0, bytes.len() as i64) as usize;
        if !text.is_empty() && (text.len() + bytes.len() - skip) as i64 > max {
            break;
        }
        text.extend_from_slice(&bytes[skip..]);
        next = start + bytes.len() as i64;
    }
    // An offset inside a character gives a partial one at the start; it is shown replaced.
    Ok((String::from_utf8_lossy(&text).into_owned(), next, end))
}

/// At most `limit` runnables without an image last accessed before `older_than`, the longest
/// idle first: what the reaper reaps (the aggregate checks again).
pub async fn reapable(
    client: &impl GenericClient,
    older_than: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Uuid>, tokio_postgres::Error> {
    Ok(client
        .query(
            &format!(
                "SELECT id FROM {RUNNABLES} WHERE image_digest IS NULL AND last_access < $1
                 ORDER BY last_access, id LIMIT $2"
            ),
            &[&older_than, &limit],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read_models::test_events::write;
    use crate::{rebuild, Projections};
    use bosun_domain::identity::Username;
    use bosun_domain::runnables::{Digest, FilePath, RunnableId, RunnableName, StartCommand};
    use bosun_eventstore::{EventStore, PgEventStore};
    use std::sync::Arc;
    use std::time::Duration;

    fn entry(path: &str, content: &str) -> FileEntry {
        FileEntry {
            path: FilePath::parse(path).unwrap(),
            digest: Digest::of(content.as_bytes()),
            size: content.len() as u64,
        }
    }

    fn created(
        id: Uuid,
        name: &str,
        owner: &str,
        parent: Option<Uuid>,
        files: Vec<FileEntry>,
        at: DateTime<Utc>,
    ) -> RunnableEvent {
        RunnableEvent::RunnableCreated {
            id: RunnableId::new(id),
            name: RunnableName::parse(name).unwrap(),
            owner: Username::parse(owner).unwrap(),
            parent: parent.map(RunnableId::new),
            start_command: StartCommand::parse("sh main.sh").unwrap(),
            files,
            at,
        }
    }

    fn stream(id: Uuid) -> String {
        format!("runnable-{id}")
    }

    /// Every row of the three tables, ordered: the thing compared row for row.
    async fn rows(store: &PgEventStore) -> Vec<serde_json::Value> {
        crate::read_models::test_events::rows(
            store,
            &[
                (RUNNABLES, "id"),
                (FILES, "runnable, path"),
                (IMAGE_FILES, "runnable, path"),
                (OUTPUT, "runnable_id, \"offset\""),
            ],
        )
        .await
    }

    fn log_stream(id: Uuid) -> String {
        format!("runnable_log-{id}")
    }

    fn appended(generation: u64, offset: u64, text: &str) -> RunnableLogEvent {
        RunnableLogEvent::RunnableOutputAppended {
            generation,
            stream: OutputStream::Stdout,
            offset,
            text: text.into(),
            at: Utc::now(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_owners_syncs_and_output_project_as_the_aggregate_folds_them() {
        use bosun_domain::runnables::{RunStopReason, SkippedFile};
        let config = bosun_eventstore::testing::fresh_database().await;
        let store = PgEventStore::open(&config).await.unwrap();
        let projections = Projections::new(vec![Arc::new(Runnables)]);
        projections.prepare(&config).await.unwrap();
        let running = projections.start(store.clone(), &config).await.unwrap();
        let t0 = "2024-05-01T10:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let t1 = "2024-05-01T11:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let t2 = "2024-05-01T12:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let t3 = "2024-05-01T13:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let [handed, restarting, failed, stopped, gone, moved] = [(); 6].map(|_| Uuid::new_v4());
        let start = |generation, at| RunnableEvent::RunnableStartRequested { generation, at };
        let run = |generation, node: &str, at| RunnableEvent::RunnableRunStarted {
            generation,
            node: node.into(),
            pid: 42,
            at,
        };
        let histories: Vec<(Uuid, Vec<RunnableEvent>)> = vec![
            // Running, its files synced, handed to carl, then asked to stop (still running).
            (
                handed,
                vec![
                    created(
                        handed,
                        "a",
                        "anon-0123456789abcdef",
                        None,
                        vec![entry("main.sh", "x")],
                        t0,
                    ),
                    start(1, t1),
                    run(1, "n1", t1),
                    RunnableEvent::RunnableSyncRequested {
                        sync: Uuid::from_u128(7),
                        at: t2,
                    },
                    RunnableEvent::RunnableFilesSynced {
                        node: "n1".into(),
                        sync: Some(Uuid::from_u128(7)),
                        written: vec![entry("out/a.txt", "a"), entry("out/b.txt", "b")],
                        deleted: vec![FilePath::parse("main.sh").unwrap()],
                        skipped: vec![SkippedFile {
                            path: "link".into(),
                            reason: "a symlink".into(),
                        }],
                        at: t2,
                    },
                    RunnableEvent::RunnableOwnerChanged {
                        from: Username::parse("anon-0123456789abcdef").unwrap(),
                        to: Username::parse("carl").unwrap(),
                        at: t2,
                    },
                    RunnableEvent::RunnableStopRequested { at: t3 },
                ],
            ),
            // Restarted; the old run then ends on its own: the restart stands.
            (
                restarting,
                vec![
                    created(restarting, "b", "ann", None, vec![], t0),
                    start(1, t1),
                    run(1, "n1", t1),
                    RunnableEvent::RunnableRestartRequested {
                        generation: 2,
                        at: t2,
                    },
                    RunnableEvent::RunnableRunEnded {
                        generation: 1,
                        node: "n1".into(),
                        code: Some(1),
                        signal: None,
                        synced: true,
                        at: t3,
                    },
                ],
            ),
            // Could not start.
            (
                failed,
                vec![
                    created(failed, "c", "ann", None, vec![], t0),
                    start(1, t1),
                    RunnableEvent::RunnableRunFailed {
                        generation: 1,
                        node: "n2".into(),
                        diagnostics: "no bwrap".into(),
                        at: t2,
                    },
                ],
            ),
            // Stopped while starting; started, killed, started again on another node, stopped.
            (
                stopped,
                vec![
                    created(stopped, "d", "ann", None, vec![], t0),
                    start(1, t1),
                    RunnableEvent::RunnableStopRequested { at: t1 },
                    start(2, t2),
                    run(2, "n1", t2),
                    RunnableEvent::RunnableRunEnded {
                        generation: 2,
                        node: "n1".into(),
                        code: None,
                        signal: Some(9),
                        synced: true,
                        at: t2,
                    },
                    start(3, t3),
                    run(3, "n2", t3),
                    RunnableEvent::RunnableStopRequested { at: t3 },
                    RunnableEvent::RunnableRunStopped {
                        generation: 3,
                        node: "n2".into(),
                        reason: RunStopReason::Stop,
                        synced: true,
                        at: t3,
                    },
                ],
            ),
            // Its node lost the run: starting again, then taken over.
            (
                moved,
                vec![
                    created(moved, "e", "ann", None, vec![], t0),
                    start(1, t1),
                    run(1, "n1", t1),
                    RunnableEvent::RunnableRunStopped {
                        generation: 1,
                        node: "n1".into(),
                        reason: RunStopReason::Lost,
                        synced: true,
                        at: t2,
                    },
                    run(1, "n2", t3),
                ],
            ),
            (
                gone,
                vec![
                    created(gone, "f", "ann", None, vec![], t0),
                    start(1, t1),
                    RunnableEvent::RunnableRemoved { at: t2 },
                ],
            ),
        ];
        for (id, events) in &histories {
            write(&store, &stream(*id), events).await;
        }
        write(
            &store,
            &log_stream(handed),
            &[appended(1, 0, "abc"), appended(1, 3, "défg")],
        )
        .await;
        // After its removal: not kept.
        write(&store, &log_stream(gone), &[appended(1, 0, "late")]).await;
        let head = store.head().await.unwrap();
        running
            .freshness()
            .wait_for(head, Duration::from_secs(10))
            .await
            .unwrap();

        let client = store.pool().get().await.unwrap();
        // Every row says what the aggregate's fold says.
        for (id, events) in &histories {
            let mut state = Runnable::default();
            events.iter().for_each(|e| state.apply(e));
            let expected = RunnableView::of_state(&state, events.len() as u64 - 1);
            assert_eq!(get(&**client, *id, None).await.unwrap(), expected, "{id}");
        }
        let view = |id| {
            let client: &tokio_postgres::Client = &client;
            async move { get(client, id, None).await.unwrap().unwrap() }
        };
        let handed_view = view(handed).await;
        assert_eq!(
            (handed_view.owner.as_str(), handed_view.state.as_str()),
            ("carl", "running")
        );
        assert_eq!(handed_view.last_access, t3, "the stop, not the runner's");
        assert_eq!(
            handed_view.run,
            Some(RunView {
                generation: 1,
                node: Some("n1".into()),
                pid: Some(42),
                exit_code: None,
                signal: None,
                diagnostics: None,
                since: Some(t1),
            })
        );
        let restarting_view = view(restarting).await;
        assert_eq!(restarting_view.state, "starting");
        let run = restarting_view.run.unwrap();
        assert_eq!(
            (run.generation, run.exit_code, run.since),
            (2, Some(1), Some(t2))
        );
        let failed_view = view(failed).await;
        assert_eq!(failed_view.state, "error");
        assert_eq!(
            failed_view.run.unwrap().diagnostics.as_deref(),
            Some("no bwrap")
        );
        assert_eq!(view(stopped).await.state, "stopped");
        assert_eq!(view(moved).await.run.unwrap().node.as_deref(), Some("n2"));
        assert!(get(&**client, gone, None).await.unwrap().is_none());
        assert_eq!(owned(&**client, "carl").await.unwrap(), [handed]);
        let wanted: Vec<(Uuid, i64)> = client
            .query(
                "SELECT id, run_generation FROM runnables WHERE wanted ORDER BY id",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let mut expected = vec![(restarting, 2), (moved, 1)];
        expected.sort();
        assert_eq!(wanted, expected, "what the runner reads");
        let files: Vec<String> = client
            .query(
                &format!("SELECT path FROM {FILES} WHERE runnable = $1 ORDER BY path"),
                &[&handed],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(files, ["out/a.txt", "out/b.txt"]);

        // The output, paged as a job's: whole chunks, at least one.
        assert_eq!(
            output(&**client, handed, 0, 1000).await.unwrap(),
            ("abcdéfg".to_string(), 8, 8)
        );
        assert_eq!(
            output(&**client, handed, 0, 3).await.unwrap(),
            ("abc".to_string(), 3, 8)
        );
        assert_eq!(
            output(&**client, handed, 3, 1).await.unwrap(),
            ("défg".to_string(), 8, 8)
        );
        assert_eq!(
            output(&**client, handed, 1, 1000).await.unwrap(),
            ("bcdéfg".to_string(), 8, 8)
        );
        assert_eq!(
            output(&**client, handed, 8, 1000).await.unwrap(),
            (String::new(), 8, 8)
        );
        assert_eq!(
            output(&**client, gone, 0, 1000).await.unwrap(),
            (String::new(), 0, 0)
        );
        drop(client);

        let live = rows(&store).await;
        rebuild(&store, &config, &Runnables, |_, _| {})
            .await
            .unwrap();
        assert_eq!(rows(&store).await, live, "a replay rebuilds the same rows");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_projects_into_runnables_and_their_files_and_a_rebuild_gives_the_same_rows() {
        let config = bosun_eventstore::testing::fresh_database().await;
        let store = PgEventStore::open(&config).await.unwrap();
        let projections = Projections::new(vec![Arc::new(Runnables)]);
        projections.prepare(&config).await.unwrap();
        let running = projections.start(store.clone(), &config).await.unwrap();
        let early = "2024-05-01T09:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let t0 = "2024-05-01T10:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let t1 = "2024-05-01T11:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let t2 = "2024-05-01T12:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let t3 = "2024-05-01T13:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let [root, fork, gone, reaped, idle, fresh] = [(); 6].map(|_| Uuid::new_v4());

        // root: the admin's, renamed, a file written and one deleted, saved, its start command
        // changed after, read once more.
        let saved = vec![
            entry("lib/a.txt", "a"),
            entry("lib/c.txt", "ccc"),
            entry("main.sh", "echo hi"),
        ];
        write(
            &store,
            &stream(root),
            &[
                created(
                    root,
                    "hello",
                    "admin",
                    None,
                    vec![
                        entry("main.sh", "echo hi"),
                        entry("lib/a.txt", "a"),
                        entry("lib/deep/b.txt", "bb"),
                    ],
                    t0,
                ),
                RunnableEvent::RunnableUpdated {
                    name: Some(RunnableName::parse("hello world").unwrap()),
                    start_command: None,
                    at: t1,
                },
                RunnableEvent::RunnableFileWritten {
                    path: FilePath::parse("lib/c.txt").unwrap(),
                    digest: Digest::of(b"ccc"),
                    size: 3,
                    at: t1,
                },
                RunnableEvent::RunnableFilesDeleted {
                    paths: vec![FilePath::parse("lib/deep/b.txt").unwrap()],
                    at: t1,
                },
                RunnableEvent::RunnableImageSaved {
                    digest: Digest::of(b"the manifest"),
                    start_command: StartCommand::parse("sh main.sh").unwrap(),
                    files: saved.clone(),
                    at: t2,
                },
                RunnableEvent::RunnableUpdated {
                    name: None,
                    start_command: Some(StartCommand::parse("sh main.sh --unsaved").unwrap()),
                    at: t3,
                },
                RunnableEvent::RunnableAccessed { at: t3 },
            ],
        )
        .await;
        // fork: ann's, of root's image, main.sh rewritten and its start command changed.
        write(
            &store,
            &stream(fork),
            &[
                created(fork, "mine", "ann", Some(root), saved.clone(), t3),
                RunnableEvent::RunnableFileWritten {
                    path: FilePath::parse("main.sh").unwrap(),
                    digest: Digest::of(b"echo mine"),
                    size: 9,
                    at: t3,
                },
                RunnableEvent::RunnableUpdated {
                    name: None,
                    start_command: Some(StartCommand::parse("sh main.sh --mine").unwrap()),
                    at: t3,
                },
            ],
        )
        .await;
        // gone: saved, then removed. reaped: reaped. idle: ann's, untouched since t0.
        // fresh: bob's, just made.
        write(
            &store,
            &stream(gone),
            &[
                created(gone, "gone", "ann", Some(root), saved.clone(), t1),
                RunnableEvent::RunnableImageSaved {
                    digest: Digest::of(b"gone's manifest"),
                    start_command: StartCommand::parse("sh main.sh").unwrap(),
                    files: saved.clone(),
                    at: t1,
                },
                RunnableEvent::RunnableRemoved { at: t2 },
            ],
        )
        .await;
        write(
            &store,
            &stream(reaped),
            &[
                created(reaped, "reaped", "ann", Some(root), saved.clone(), t0),
                RunnableEvent::RunnableReaped {
                    last_access: t0,
                    at: t3,
                },
            ],
        )
        .await;
        write(
            &store,
            &stream(idle),
            &[created(idle, "idle", "ann", Some(root), vec![], early)],
        )
        .await;
        write(
            &store,
            &stream(fresh),
            &[created(
                fresh,
                "fresh",
                "bob",
                Some(root),
                saved.clone(),
                Utc::now(),
            )],
        )
        .await;
        let head = store.head().await.unwrap();
        running
            .freshness()
            .wait_for(head, Duration::from_secs(10))
            .await
            .unwrap();

        let client = store.pool().get().await.unwrap();
        let root_view = get(&**client, root, None).await.unwrap().unwrap();
        assert_eq!(
            root_view,
            RunnableView {
                id: root,
                name: "hello world".into(),
                owner: "admin".into(),
                parent: None,
                image: Some(ImageView {
                    digest: Digest::of(b"the manifest").as_str().to_string(),
                    saved_at: t2,
                }),
                start_command: "sh main.sh --unsaved".into(),
                state: "stopped".into(),
                run: None,
                last_access: t3,
                created_at: t0,
                version: 6,
            }
        );
        // Its owner sees its start command; anyone else its image's.
        let seen = |viewer| {
            let client: &tokio_postgres::Client = &client;
            async move {
                get(client, root, viewer)
                    .await
                    .unwrap()
                    .unwrap()
                    .start_command
            }
        };
        assert_eq!(seen(Some("admin")).await, "sh main.sh --unsaved");
        assert_eq!(seen(Some("bob")).await, "sh main.sh");
        let listed_for = |viewer: Option<&'static str>| {
            let client: &tokio_postgres::Client = &client;
            async move {
                let query = RunnableQuery {
                    viewer: viewer.map(String::from),
                    ..RunnableQuery::default()
                };
                let page = Page {
                    limit: 10,
                    offset: 0,
                };
                let (views, _) = list(client, &query, page).await.unwrap();
                views
                    .into_iter()
                    .map(|v| (v.id, v.start_command))
                    .collect::<Vec<_>>()
            }
        };
        assert!(listed_for(None)
            .await
            .contains(&(root, "sh main.sh --unsaved".to_string())));
        assert!(listed_for(Some("bob"))
            .await
            .contains(&(root, "sh main.sh".to_string())));
        assert!(
            listed_for(Some("ann"))
                .await
                .contains(&(fork, "sh main.sh --mine".to_string())),
            "ann's own fork, without an image: its current start command"
        );
        let fork_view = get(&**client, fork, None).await.unwrap().unwrap();
        assert_eq!(
            (
                fork_view.parent,
                fork_view.image.clone(),
                fork_view.start_command.as_str(),
                fork_view.version
            ),
            (Some(root), None, "sh main.sh --mine", 2)
        );
        for id in [gone, reaped] {
            assert!(get(&**client, id, None).await.unwrap().is_none());
        }

        let page = Page {
            limit: 10,
            offset: 0,
        };
        let ids = |(views, total): (Vec<RunnableView>, i64)| {
            (views.into_iter().map(|v| v.id).collect::<Vec<_>>(), total)
        };
        let seen_by = |viewer: Option<&str>| RunnableQuery {
            viewer: viewer.map(String::from),
            ..RunnableQuery::default()
        };
        assert_eq!(
            ids(list(&**client, &seen_by(None), page).await.unwrap()),
            (vec![fresh, fork, root, idle], 4),
            "every one, the newest first"
        );
        assert_eq!(
            ids(list(&**client, &seen_by(Some("bob")), page).await.unwrap()),
            (vec![fresh, root], 2),
            "bob's own, and those with an image"
        );
        assert_eq!(
            ids(list(&**client, &seen_by(Some("ann")), page).await.unwrap()),
            (vec![fork, root, idle], 3)
        );
        let narrowed = RunnableQuery {
            viewer: Some("ann".into()),
            owner: Some("ann".into()),
            parent: Some(root),
            has_image: Some(false),
        };
        assert_eq!(
            ids(list(&**client, &narrowed, page).await.unwrap()),
            (vec![fork, idle], 2)
        );
        let saved_only = RunnableQuery {
            has_image: Some(true),
            ..RunnableQuery::default()
        };
        assert_eq!(
            ids(list(&**client, &saved_only, page).await.unwrap()),
            (vec![root], 1)
        );
        let second = Page {
            limit: 2,
            offset: 1,
        };
        assert_eq!(
            ids(list(&**client, &seen_by(None), second).await.unwrap()),
            (vec![fork, root], 4)
        );

        // What the rows of a runnable's tree list at a path, as the stream's files are listed.
        let files = |id: Uuid, under: Option<&'static str>| {
            let client = &client;
            async move {
                let rows: Vec<(String, String, i64)> = client
                    .query(
                        &format!("SELECT path, digest, size FROM {FILES} WHERE runnable = $1"),
                        &[&id],
                    )
                    .await?
                    .iter()
                    .map(|r| (r.get(0), r.get(1), r.get(2)))
                    .collect();
                Ok::<_, tokio_postgres::Error>(children(
                    rows.iter()
                        .map(|(p, d, s)| (p.as_str(), d.as_str(), u64::try_from(*s).unwrap())),
                    under.unwrap_or(""),
                ))
            }
        };
        let file = |path: &str, content: &str| FileView {
            path: path.into(),
            dir: false,
            size: content.len() as u64,
            digest: Some(Digest::of(content.as_bytes()).as_str().to_string()),
        };
        let folder = |path: &str, size: u64| FileView {
            path: path.into(),
            dir: true,
            size,
            digest: None,
        };
        assert_eq!(
            files(root, None).await.unwrap(),
            [folder("lib", 4), file("main.sh", "echo hi")]
        );
        assert_eq!(
            files(root, Some("lib/")).await.unwrap(),
            [file("lib/a.txt", "a"), file("lib/c.txt", "ccc")],
            "lib/deep went with its only file"
        );
        assert_eq!(
            files(fork, Some("main.sh")).await.unwrap(),
            [file("main.sh", "echo mine")]
        );
        assert!(files(root, Some("li")).await.unwrap().is_empty());
        assert!(files(idle, None).await.unwrap().is_empty());
        assert!(files(gone, None).await.unwrap().is_empty());

        assert_eq!(reapable(&**client, t1, 10).await.unwrap(), [idle]);
        assert_eq!(
            reapable(&**client, Utc::now() + chrono::Duration::hours(1), 10)
                .await
                .unwrap(),
            [idle, fork, fresh],
            "never one with an image, the longest idle first"
        );
        assert!(reapable(&**client, early, 10).await.unwrap().is_empty());
        assert_eq!(owned(&**client, "ann").await.unwrap(), [idle, fork]);
        assert!(owned(&**client, "nobody").await.unwrap().is_empty());
        drop(client);

        let live = rows(&store).await;
        let image_rows = live.iter().filter(|r| r.get(IMAGE_FILES).is_some()).count();
        assert_eq!(image_rows, 3, "root's image only: {live:?}");
        rebuild(&store, &config, &Runnables, |_, _| {})
            .await
            .unwrap();
        assert_eq!(rows(&store).await, live, "a replay rebuilds the same rows");
    }

    #[test]
    fn a_folder_lists_its_files_and_the_folders_under_it_with_their_sizes() {
        let tree = [
            ("a/b/c.txt", "d1", 5),
            ("a/b/d.txt", "d2", 7),
            ("a/e.txt", "d3", 1),
            ("f.txt", "d4", 2),
            ("ab/g.txt", "d5", 3),
        ];
        let listed = |under: &str| -> Vec<(String, bool, u64)> {
            children(tree, under)
                .into_iter()
                .map(|f| (f.path, f.dir, f.size))
                .collect()
        };
        let row = |path: &str, dir: bool, size: u64| (path.to_string(), dir, size);
        assert_eq!(
            listed(""),
            [
                row("a", true, 13),
                row("ab", true, 3),
                row("f.txt", false, 2)
            ]
        );
        assert_eq!(
            listed("a"),
            [row("a/b", true, 12), row("a/e.txt", false, 1)]
        );
        assert_eq!(listed("a/"), listed("a"));
        assert_eq!(
            listed("a/b"),
            [row("a/b/c.txt", false, 5), row("a/b/d.txt", false, 7)]
        );
        assert_eq!(listed("a/e.txt"), [row("a/e.txt", false, 1)]);
        assert!(listed("a/x").is_empty());
        assert_eq!(children(tree, "f.txt")[0].digest.as_deref(), Some("d4"));
        assert_eq!(children(tree, "a")[0].digest, None);
    }
}
