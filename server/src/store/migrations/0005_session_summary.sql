-- A session at a glance (tether_protocol::SessionSummary), kept by the
-- writer from the events of each commit: the text of the first message (its
-- first 2 KiB) and of the assistant's last completed message (its last
-- 2 KiB), turns started, and the usage the turns reported, summed. The view
-- shapes the texts into one line each.
ALTER TABLE sessions ADD COLUMN first_prompt TEXT;
ALTER TABLE sessions ADD COLUMN last_text TEXT;
ALTER TABLE sessions ADD COLUMN turns INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN input_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN output_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN cost_usd REAL;

-- Sessions stored before this migration get theirs from their events, as the
-- writer would have: the first non-blank text part of the first turn's input,
-- and the text parts of the last assistant message joined. (SQL counts the
-- 2048 in characters where the writer counts bytes; either way the view
-- shows one line of at most 200 characters.)
UPDATE sessions SET
    turns = (SELECT count(*) FROM events e WHERE e.session_id = sessions.id AND e.type = 'turn.started'),
    input_tokens = (SELECT coalesce(sum(json_extract(e.json, '$.data.usage.input_tokens')), 0)
                    FROM events e WHERE e.session_id = sessions.id AND e.type = 'turn.completed'),
    output_tokens = (SELECT coalesce(sum(json_extract(e.json, '$.data.usage.output_tokens')), 0)
                     FROM events e WHERE e.session_id = sessions.id AND e.type = 'turn.completed'),
    cost_usd = (SELECT sum(json_extract(e.json, '$.data.usage.cost_usd'))
                FROM events e WHERE e.session_id = sessions.id AND e.type = 'turn.completed'),
    first_prompt = (SELECT substr(json_extract(p.value, '$.text'), 1, 2048)
                    FROM events e, json_each(e.json, '$.data.input') p
                    WHERE e.session_id = sessions.id AND e.type = 'turn.started'
                      AND json_extract(p.value, '$.type') = 'text'
                      AND trim(json_extract(p.value, '$.text'), ' ' || char(9, 10, 13)) <> ''
                    ORDER BY e.seq, p.key LIMIT 1),
    last_text = (SELECT substr(t.text, -2048) FROM (
                    SELECT e.seq AS seq,
                           (SELECT group_concat(json_extract(p.value, '$.text'), '')
                            FROM json_each(e.json, '$.data.item.content') p
                            WHERE json_extract(p.value, '$.type') = 'text') AS text
                    FROM events e
                    WHERE e.session_id = sessions.id AND e.type = 'item.completed'
                      AND json_extract(e.json, '$.data.item.kind') = 'message'
                      AND json_extract(e.json, '$.data.item.role') = 'assistant') t
                 WHERE trim(coalesce(t.text, ''), ' ' || char(9, 10, 13)) <> ''
                 ORDER BY t.seq DESC LIMIT 1);
