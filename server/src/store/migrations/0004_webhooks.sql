-- Webhook subscriptions. `secret` keys the deliveries' HMAC (never answered
-- back, never logged). `filters` is JSON {"events":[..]|null,"sessions":[..]|null}.
-- `cursor` is the last acknowledged gseq: delivery resumes after it.
-- `inflight_to` is the last gseq of the batch being sent (NULL when none),
-- so a batch cut short by a crash is sent again whole and identical. Times
-- are unix ms; `state` is 'active' or 'failing'.
CREATE TABLE webhooks (
    id                   TEXT PRIMARY KEY,
    url                  TEXT NOT NULL,
    secret               TEXT NOT NULL,
    filters              TEXT NOT NULL,
    cursor               INTEGER NOT NULL,
    inflight_to          INTEGER,
    delivered_events     INTEGER NOT NULL DEFAULT 0,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    state                TEXT NOT NULL DEFAULT 'active',
    last_error           TEXT,
    created_at           INTEGER NOT NULL,
    last_attempt_at      INTEGER,
    last_success_at      INTEGER
);
