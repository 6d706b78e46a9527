-- Webhook endpoints and their outbox (docs/webhooks.md).

-- An endpoint keyfob sends security events to. The signing secret has to be usable to
-- sign, so it cannot be hashed: it is sealed with AES-256-GCM under a key derived from
-- the deployment secret (keyfob.webhooks.sealing), like the signing keys.
-- event_types is ',type,type,': a subscription test is one instr().
CREATE TABLE webhook_endpoints (
    id            TEXT    NOT NULL PRIMARY KEY,
    url           TEXT    NOT NULL,
    secret_sealed BLOB    NOT NULL,
    event_types   TEXT    NOT NULL,
    enabled       INTEGER NOT NULL DEFAULT 1,
    description   TEXT    NOT NULL DEFAULT '',
    created_at    REAL    NOT NULL
);

-- The outbox and delivery log: one row per (message, endpoint), written beside the
-- event; the worker of `keyfob serve` claims due rows under a lease and sends them.
CREATE TABLE webhook_deliveries (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint_id      TEXT    NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    message_id       TEXT    NOT NULL,
    event_type       TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    created_at       REAL    NOT NULL,
    next_attempt_at  REAL,
    last_attempt_at  REAL,
    last_status_code INTEGER,
    last_error       TEXT    NOT NULL DEFAULT '',
    lease            TEXT,
    leased_until     REAL
);

-- What the worker polls for: only pending rows are in this index.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
-- `keyfob webhooks deliveries --endpoint`, and the cascade when an endpoint goes.
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, id);
