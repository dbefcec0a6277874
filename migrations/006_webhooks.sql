-- Webhook endpoints and the deliveries of lifecycle events to them. The
-- dispatcher fans each event of the lifecycle stream out into one delivery
-- per subscribed endpoint (its JetStream acknowledgement follows the
-- insert), then sends each endpoint the deliveries of one token (or owner)
-- in stream order, retrying with backoff; every attempt is recorded.
CREATE TABLE webhook_endpoints (
    id              text        PRIMARY KEY,         -- a ULID
    url             text        NOT NULL,
    owner           text,                            -- NULL: every owner (admin only)
    events          text[]      NOT NULL,            -- '{}': every event type
    -- The signing secret itself: a webhook signature is an HMAC, which
    -- needs the key. Never logged, never shown again after registration.
    secret          bytea       NOT NULL CHECK (octet_length(secret) >= 24),
    created_by      text        NOT NULL,
    created_at      timestamptz NOT NULL,
    -- Only events after this stream sequence are delivered.
    created_seq     bigint      NOT NULL,
    disabled_at     timestamptz,
    disabled_reason text
);

CREATE INDEX webhook_endpoints_owner_idx ON webhook_endpoints (owner);

CREATE TABLE webhook_deliveries (
    id              bigserial   PRIMARY KEY,
    endpoint_id     text        NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id        text        NOT NULL,            -- the webhook-id header
    seq             bigint      NOT NULL,            -- stream sequence of the event
    order_key       text        NOT NULL,            -- "token:<id>" or "owner:<owner>": delivered in seq order per key
    type            text        NOT NULL,            -- the webhook event type
    body            bytea       NOT NULL,
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        int         NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL,
    first_attempt_at timestamptz,
    last_attempt_at timestamptz,
    next_attempt_at timestamptz NOT NULL,
    last_status     int,                              -- HTTP status of the last attempt, if one came
    last_error      text,
    done_at         timestamptz,
    UNIQUE (endpoint_id, event_id)
);

CREATE INDEX webhook_deliveries_pending_idx ON webhook_deliveries (endpoint_id, order_key, seq) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, id);

CREATE TABLE webhook_attempts (
    delivery_id     bigint      NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt         int         NOT NULL,
    at              timestamptz NOT NULL,
    status          int,
    error           text,
    PRIMARY KEY (delivery_id, attempt)
);

-- Lifecycle events the dispatcher could not read (never expected): kept
-- for an operator, with the reason.
CREATE TABLE webhook_poison (
    id              bigserial   PRIMARY KEY,
    msg_id          text        NOT NULL,
    payload         bytea       NOT NULL,
    metadata        jsonb       NOT NULL,
    at              timestamptz NOT NULL DEFAULT now()
);
