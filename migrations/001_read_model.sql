-- The read model: a projection of the lifecycle stream. Every row carries
-- the stream sequence of the last event applied to it; the checkpoint of
-- each projection is written in the same transaction as the rows.

CREATE TABLE tokens (
    id                   uuid        PRIMARY KEY,          -- the token's ULID
    owner                text        NOT NULL,
    name                 text        NOT NULL,
    scopes               text[]      NOT NULL,
    kind                 text        NOT NULL CHECK (kind IN ('api', 'session')),
    secret_hash          bytea       NOT NULL UNIQUE CHECK (octet_length(secret_hash) = 32),
    created_at           timestamptz NOT NULL,
    expires_at           timestamptz,                      -- NULL: does not expire
    idle_timeout_seconds bigint,                           -- sessions only
    absolute_expires_at  timestamptz,                      -- sessions only: the cap
    rotated_from         uuid,                             -- the token this one replaced
    rotated_to           uuid,                             -- the token that replaced this one
    revoked_at           timestamptz,
    revoked_reason       text,
    revoked_by           text,
    last_used_at         timestamptz,                      -- NULL: never used
    use_count            bigint      NOT NULL DEFAULT 0,
    issued_seq           bigint      NOT NULL,             -- stream sequence of token.issued
    last_seq             bigint      NOT NULL              -- stream sequence of the last event applied
);

-- Free space in every page lets an update that changes no indexed column
-- stay on its page without touching any index (a HOT update). Use is by far
-- the most frequent change and moves only last_used_at, use_count and
-- last_seq, so none of them is indexed: the "unused for" filter scans in id
-- order instead.
ALTER TABLE tokens SET (fillfactor = 90);

-- List filters: by owner (cursor on id), by expiry.
CREATE INDEX tokens_owner_id_idx     ON tokens (owner, id);
CREATE INDEX tokens_expires_at_idx   ON tokens (expires_at) WHERE revoked_at IS NULL;
CREATE INDEX tokens_revoked_idx      ON tokens (id) WHERE revoked_at IS NOT NULL;

-- One row per owner: the latest owner-wide revocation. A token is covered
-- when its issued event precedes the revocation in the stream
-- (issued_seq < revoked_before_seq) or it was created before "until".
CREATE TABLE owner_revocations (
    owner              text        PRIMARY KEY,
    revoked_before     timestamptz NOT NULL,
    revoked_before_seq bigint      NOT NULL,
    until              timestamptz,
    reason             text,
    last_seq           bigint      NOT NULL
);

-- Projection name → last stream sequence applied.
CREATE TABLE projection_checkpoints (
    name       text        PRIMARY KEY,
    last_seq   bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
