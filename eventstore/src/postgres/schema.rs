//! The event store's tables. `events` is append-only: a trigger refuses updates, deletes and
//! truncation, so not even a stray SQL session can rewrite history. `blobs` holds contents the
//! events name by digest (see [`crate::blobs`]); it is its own migration component (`blobs`),
//! so the `eventstore` component stays at version 1 and an older binary, which knows only that
//! one, still opens a database that has blobs.

use crate::migrate::Migration;

pub const COMPONENT: &str = "eventstore";

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "events log and head",
    sql: r#"
CREATE TABLE events (
    position       BIGINT PRIMARY KEY,
    stream_id      TEXT NOT NULL,
    version        BIGINT NOT NULL,
    event_id       UUID NOT NULL UNIQUE,
    event_type     TEXT NOT NULL,
    schema_version INT NOT NULL,
    category       TEXT NOT NULL,
    data           JSONB NOT NULL,
    metadata       JSONB NOT NULL,
    recorded_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (stream_id, version)
);
CREATE INDEX events_category_position ON events (category, position);
CREATE INDEX events_type_position ON events (event_type, position);

-- The single counter row. A writer holds its row lock from assigning positions until commit,
-- so commits become visible in position order: the ordering guarantee.
CREATE TABLE events_head (
    id       BOOLEAN PRIMARY KEY DEFAULT true CHECK (id),
    position BIGINT NOT NULL
);
INSERT INTO events_head (id, position) VALUES (true, 0);

CREATE FUNCTION events_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only: % refused', TG_OP;
END $$;
CREATE TRIGGER events_no_update BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_are_immutable();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_immutable();
"#,
}];

/// The blobs' component, migrated after [`COMPONENT`]'s.
pub const BLOBS_COMPONENT: &str = "blobs";

pub const BLOBS_MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "content-addressed blobs",
    sql: r#"
-- A content, once, under the SHA-256 of its bytes (lowercase hex). Rows are only inserted.
CREATE TABLE blobs (
    digest     TEXT PRIMARY KEY CHECK (digest ~ '^[0-9a-f]{64}$'),
    size       BIGINT NOT NULL CHECK (size >= 0),
    content    BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
"#,
}];
