-- The rotation family of a token issued by a rotation: the first token of
-- its chain (token.issued's "family"); NULL for a token not issued by a
-- rotation, which is the first of its own family. An owner.family_revoked
-- event revokes, in the row of every member issued before it (the token
-- whose id is the family and those whose family it is), revoked_at,
-- revoked_reason and revoked_by, as a token.revoked would. Rows projected
-- before this column existed have no family; `tokenledger replay` rebuilds
-- it from the stream.
ALTER TABLE tokens ADD COLUMN family uuid;

CREATE INDEX tokens_family_idx ON tokens (family) WHERE family IS NOT NULL;
