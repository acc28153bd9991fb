-- Events take fewer bytes (issue 28): each row no longer repeats what its
-- columns hold. A log of events (a session's, or the sandbox log, which has
-- no session row) gets a small integer key, and an event row keeps that key
-- instead of the session's 28-character id (in the row and in the index);
-- its `data` alone instead of the whole event JSON, whose envelope
-- (`seq`, `gseq`, `session_id`, `time`, `type`, `source`) the reader
-- rebuilds from the columns, byte for byte as it was stored; `source` as
-- 1 (agent) or 0 (server); `time` as unix milliseconds when the
-- millisecond RFC 3339 text it was is what those milliseconds print as,
-- else as that text.
--
-- A row that the columns would not rebuild exactly (none was ever written
-- so; this keeps it whole all the same) is carried over as it was: `time`
-- NULL and `data` the whole event JSON.
CREATE TABLE session_keys (
    key INTEGER PRIMARY KEY,
    id  TEXT NOT NULL UNIQUE
);
INSERT INTO session_keys (id) SELECT id FROM sessions ORDER BY created_at, id;
INSERT OR IGNORE INTO session_keys (id) SELECT session_id FROM events GROUP BY session_id ORDER BY min(gseq);

-- `time` has no declared type: an INTEGER (unix ms) or a TEXT, as written.
CREATE TABLE events_v6 (
    gseq        INTEGER PRIMARY KEY,
    session_key INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    type        TEXT NOT NULL,
    source      INTEGER NOT NULL,
    time,
    data        TEXT NOT NULL,
    raw         TEXT
);

INSERT INTO events_v6 (gseq, session_key, seq, type, source, time, data, raw)
SELECT gseq, key, seq, type,
       CASE WHEN same THEN src = 'agent' ELSE 0 END,
       CASE WHEN NOT same THEN NULL WHEN ms_ok THEN ms ELSE t END,
       CASE WHEN same THEN data ELSE json END,
       raw
FROM (
    SELECT *,
           coalesce(strftime('%Y-%m-%dT%H:%M:%S', ms / 1000, 'unixepoch') || printf('.%03dZ', ms % 1000) = t, 0)
               AS ms_ok,
           coalesce(src IN ('agent', 'server') AND typeof(t) = 'text' AND
               '{"seq":' || seq || ',"gseq":' || gseq || ',"session_id":"' || session_id || '","time":"' || t ||
               '","type":"' || type || '","source":"' || src || '","data":' || data || '}' = json, 0) AS same
    FROM (
        SELECT *,
               CASE WHEN t GLOB '[12][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9].[0-9][0-9][0-9]Z'
                         AND t >= '1970'
                    THEN unixepoch(substr(t, 1, 19)) * 1000 + CAST(substr(t, 21, 3) AS INTEGER) END AS ms,
               substr(json, at + 8, length(json) - at - 8) AS data
        FROM (
            SELECT e.gseq, k.key, e.seq, e.type, e.json, e.raw, e.session_id,
                   CASE WHEN json_valid(e.json) THEN json_extract(e.json, '$.time') END AS t,
                   CASE WHEN json_valid(e.json) THEN json_extract(e.json, '$.source') END AS src,
                   instr(e.json, ',"data":') AS at
            FROM events e JOIN session_keys k ON k.id = e.session_id
        )
    )
);

DROP INDEX events_by_session;
DROP TABLE events;
ALTER TABLE events_v6 RENAME TO events;
CREATE UNIQUE INDEX events_by_session ON events (session_key, seq);
