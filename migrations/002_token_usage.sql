-- Usage projected from the usage stream, one row per token ever used, kept
-- apart from tokens:
--   * a use can be projected before the lifecycle projection has inserted
--     the token's row; an upsert here keeps it, where an UPDATE of tokens
--     would lose it;
--   * rebuilding tokens from the lifecycle stream (and swapping the
--     rebuilt table in) must not wipe usage, which the usage stream keeps
--     only for its retention and so could not be rebuilt.
-- Only the usage projection writes it, under its own checkpoint in
-- projection_checkpoints (the usage stream's sequence). Reads combine it
-- with the columns of tokens fed by token.used events of the lifecycle
-- stream: the later last_used_at, the sum of the counts. No foreign key to
-- tokens, on purpose: a use may come first, and the rebuild drops tokens.

CREATE TABLE token_usage (
    token_id         uuid        PRIMARY KEY,
    last_used_at     timestamptz NOT NULL,
    use_count        bigint      NOT NULL CHECK (use_count > 0),  -- saturates at the largest bigint
    first_used_at    timestamptz,
    last_client_addr text                                          -- of the latest use; NULL: it recorded none
);

-- Every write is an update of a row by its key that changes no indexed
-- column: with free space left on each page, PostgreSQL updates in place
-- (a HOT update) without touching the primary key index.
ALTER TABLE token_usage SET (fillfactor = 90);
