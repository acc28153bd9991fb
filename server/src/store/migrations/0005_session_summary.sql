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

-- Sessions stored before this migration get theirs from their events.
UPDATE sessions SET
    turns = (SELECT count(*) FROM events e WHERE e.session_id = sessions.id AND e.type = 'turn.started'),
    input_tokens = (SELECT coalesce(sum(json_extract(e.json, '$.data.usage.input_tokens')), 0)
                    FROM events e WHERE e.session_id = sessions.id AND e.type = 'turn.completed'),
    output_tokens = (SELECT coalesce(sum(json_extract(e.json, '$.data.usage.output_tokens')), 0)
                     FROM events e WHERE e.session_id = sessions.id AND e.type = 'turn.completed'),
    cost_usd = (SELECT sum(json_extract(e.json, '$.data.usage.cost_usd'))
                FROM events e WHERE e.session_id = sessions.id AND e.type = 'turn.completed'),
    first_prompt = (SELECT substr(json_extract(e.json, '$.data.input[0].text'), 1, 2048)
                    FROM events e WHERE e.session_id = sessions.id AND e.type = 'turn.started'
                    ORDER BY e.seq LIMIT 1),
    last_text = (SELECT substr(json_extract(e.json, '$.data.item.content[0].text'), -2048)
                 FROM events e WHERE e.session_id = sessions.id AND e.type = 'item.completed'
                   AND json_extract(e.json, '$.data.item.kind') = 'message'
                   AND json_extract(e.json, '$.data.item.role') = 'assistant'
                   AND json_extract(e.json, '$.data.item.content[0].text') <> ''
                 ORDER BY e.seq DESC LIMIT 1);
