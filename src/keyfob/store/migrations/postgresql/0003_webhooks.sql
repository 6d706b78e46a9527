-- Webhook endpoints and their outbox (docs/webhooks.md).

-- An endpoint keyfob sends security events to. The signing secret has to be usable to
-- sign, so it cannot be hashed: it is sealed with AES-256-GCM under a key derived from
-- the deployment secret (keyfob.webhooks.sealing), like the signing keys.
-- event_types is ',type,type,': a subscription test is one strpos().
CREATE TABLE webhook_endpoints (
    id            text             NOT NULL PRIMARY KEY,
    url           text             NOT NULL,
    secret_sealed bytea            NOT NULL,
    event_types   text             NOT NULL,
    enabled       boolean          NOT NULL DEFAULT true,
    description   text             NOT NULL DEFAULT '',
    created_at    double precision NOT NULL
);

-- The outbox and delivery log: one row per (message, endpoint), written beside the
-- event; the workers of every `keyfob serve` instance claim due rows with
-- FOR UPDATE SKIP LOCKED under a lease and send them.
CREATE TABLE webhook_deliveries (
    id               bigint           GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id      text             NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    message_id       text             NOT NULL,
    event_type       text             NOT NULL,
    payload          text             NOT NULL,
    status           text             NOT NULL,
    attempts         integer          NOT NULL DEFAULT 0,
    created_at       double precision NOT NULL,
    next_attempt_at  double precision,
    last_attempt_at  double precision,
    last_status_code integer,
    last_error       text             NOT NULL DEFAULT '',
    lease            text,
    leased_until     double precision
);

-- What the workers poll for: only pending rows are in this index.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
-- `keyfob webhooks deliveries --endpoint`, and the cascade when an endpoint goes.
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, id);
