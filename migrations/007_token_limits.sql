-- Networks a token may be used from: the canonical CIDR prefixes of
-- token.issued's allowed_cidrs, replaced by each token.cidrs_set; NULL: any
-- network. Rows projected before this column existed have none;
-- `tokenledger rebuild` rebuilds it from the stream.
ALTER TABLE tokens ADD COLUMN allowed_cidrs text[];

-- The last distinct client addresses a token was used from, latest first,
-- at most five: a JSON array of {"addr": text, "at": timestamptz}. Written
-- by the usage projection in the same statement as the rest of the row.
ALTER TABLE token_usage ADD COLUMN recent_addrs jsonb;

-- Uses per token and hour (UTC), from the usage stream: a usage event's
-- count goes to the hour of its last use. Written by the usage projection
-- in the same statement as token_usage, under its checkpoint; rows older
-- than the configured retention are deleted as batches are written.
-- `tokenledger rebuild --usage` rebuilds them from the usage stream.
CREATE TABLE token_usage_hourly (
    token_id  uuid        NOT NULL,
    hour      timestamptz NOT NULL CHECK (date_trunc('hour', hour, 'UTC') = hour),
    use_count bigint      NOT NULL CHECK (use_count > 0),
    PRIMARY KEY (token_id, hour)
);

CREATE INDEX token_usage_hourly_hour_idx ON token_usage_hourly (hour);
