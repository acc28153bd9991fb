-- Sessions: one row each; status, last_seq, open_turn and agent_live are
-- derived from the events written in the same transaction.
CREATE TABLE sessions (
    id                TEXT PRIMARY KEY,
    agent             TEXT NOT NULL,
    status            TEXT NOT NULL,
    cwd               TEXT NOT NULL,
    model             TEXT,
    permission_mode   TEXT NOT NULL,
    title             TEXT,
    native_session_id TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    last_seq          INTEGER NOT NULL DEFAULT 0,
    metadata          TEXT,
    config            TEXT NOT NULL,
    agent_live        INTEGER NOT NULL DEFAULT 0,
    open_turn         TEXT
);
CREATE INDEX sessions_by_created ON sessions (created_at DESC, id DESC);

-- The event log. gseq is the global cursor, seq the per-session one.
CREATE TABLE events (
    gseq       INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    type       TEXT NOT NULL,
    json       TEXT NOT NULL,
    raw        TEXT
);
CREATE UNIQUE INDEX events_by_session ON events (session_id, seq);

-- Items started and not yet completed, so a restart can close them.
CREATE TABLE open_items (
    session_id TEXT NOT NULL,
    item_id    TEXT NOT NULL,
    item       TEXT NOT NULL,
    PRIMARY KEY (session_id, item_id)
);
