//! `runnables`, `runnable_files` and `runnable_image_files`: the runnables (stream
//! `runnable-<uuid>`), the files of each one's tree, and the files of each one's image.
//!
//! - `runnables`: one row per runnable that exists; a removed or reaped one's rows are deleted,
//!   in all three tables. `image_*` are NULL until its first save, and hold its latest image's
//!   manifest digest, save time and start command after. `last_access` is the `at` of its latest
//!   event but a removal or a reap (as the aggregate's fold keeps it): what the reaper reads.
//! - `runnable_files`: one row per file of its tree, `digest` the blob its content is stored
//!   under (`eventstore`'s `blobs`), never the content. Folders are not rows: they are derived
//!   from the paths ([`children`]).
//! - `runnable_image_files`: one row per file of its image, replaced whole by each save.
//!
//! Every column comes from the events alone (their `at`, the stream's version), never the time
//! they were projected, so a replay rebuilds the same rows. `state` is not a column: nothing runs
//! a runnable yet, so every view says `stopped`. Does not own who may see what (the queries in
//! `commands`), the blobs, nor the rules (the aggregate in `domain`).

use crate::projection::{Param, Projection, Tables, Writes};
use crate::read_models::identity::Page;
use bosun_domain::runnables::{FileEntry, Runnable, RunnableEvent};
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

/// The state every runnable is in while nothing runs them.
pub const STOPPED: &str = "stopped";

impl Projection for Runnables {
    fn name(&self) -> &'static str {
        "runnables"
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &[RUNNABLES, FILES, IMAGE_FILES]
    }

    fn filter(&self) -> Filter {
        Filter {
            categories: vec!["runnable".into()],
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
                version             BIGINT NOT NULL);
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
                PRIMARY KEY (runnable, path));",
            runnables = tables.name(RUNNABLES),
            files = tables.name(FILES),
            image_files = tables.name(IMAGE_FILES),
        )
    }

    fn indexes(&self, tables: &Tables) -> String {
        let runnables = tables.name(RUNNABLES);
        format!(
            "CREATE INDEX ON {runnables} (owner);
             CREATE INDEX ON {runnables} (parent) WHERE parent IS NOT NULL;
             CREATE INDEX ON {runnables} (created_at DESC, id);
             CREATE INDEX ON {runnables} (last_access, id) WHERE image_digest IS NULL;"
        )
    }

    fn apply(&self, event: &RecordedEvent, tables: &Tables, writes: &mut Writes) {
        if event.stream_id.category() != "runnable" {
            return;
        }
        let Ok(id) = Uuid::parse_str(event.stream_id.id()) else {
            skipped(event, &"the stream's id is not a uuid");
            return;
        };
        match bosun_domain::decode::<RunnableEvent>(&event.event_type, &event.data) {
            Ok(decoded) => apply_runnable(event, id, decoded, tables, writes),
            Err(e) => skipped(event, &e),
        }
    }
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
                        version = EXCLUDED.version"
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
                format!("DELETE FROM {runnables} WHERE id = $1"),
                vec![Box::new(id)],
            );
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
    /// `stopped`: nothing runs runnables yet.
    #[schema(example = "stopped")]
    pub state: String,
    /// Its latest access: a file read or written, a change, a save.
    pub last_access: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// Its stream's version.
    pub version: u64,
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
            state: STOPPED.to_string(),
            last_access: runnable.last_access()?,
            created_at: runnable.created_at()?,
            version,
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
         last_access, created_at, version"
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
    RunnableView {
        id: r.get(0),
        name: r.get(1),
        owner: r.get(2),
        parent: r.get(3),
        image,
        start_command: r.get(6),
        state: STOPPED.to_string(),
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
            ],
        )
        .await
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
