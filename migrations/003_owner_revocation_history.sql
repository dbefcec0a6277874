-- Every owner-wide revocation of an owner, in stream order, as a JSON array
-- of {"seq", "at", "until", "reason"} ("until" and "reason" absent when not
-- given). The first revocation that covers a token (its issued_seq is lower
-- than "seq", or it was created before "until") is the one that revoked
-- it: reads show its instant and reason as the token's revocation. Rows
-- projected before this column existed know only their latest revocation;
-- `tokenledger replay` rebuilds the whole list from the stream.
ALTER TABLE owner_revocations ADD COLUMN revocations jsonb NOT NULL DEFAULT '[]';

UPDATE owner_revocations SET revocations = jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
    'seq', revoked_before_seq, 'at', revoked_before, 'until', until, 'reason', reason)));
