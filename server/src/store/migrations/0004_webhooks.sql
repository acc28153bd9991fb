-- Webhook subscriptions. `secret` keys the deliveries' HMAC (never answered
-- back, never logged). `filters` is JSON {"events":[..]|null,"sessions":[..]|null}.
-- `cursor` is the last acknowledged gseq: delivery resumes after it. Times
-- are unix ms; `state` is 'active' or 'failing'.
CREATE TABLE webhooks (
    id                   TEXT PRIMARY KEY,
    url                  TEXT NOT NULL,
    secret               TEXT NOT NULL,
    filters              TEXT NOT NULL,
    cursor               INTEGER NOT NULL,
    delivered_events     INTEGER NOT NULL DEFAULT 0,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    state                TEXT NOT NULL DEFAULT 'active',
    last_error           TEXT,
    created_at           INTEGER NOT NULL,
    last_attempt_at      INTEGER,
    last_success_at      INTEGER
);
