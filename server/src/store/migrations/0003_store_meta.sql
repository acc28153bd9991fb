-- Facts about the store itself; `store_id` is created with it (or at the
-- first open after this migration) and never changes, so a client can tell
-- one store from another (and a copy restored in place from a fresh one).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
