// Package projections keeps tokenledger's read model in PostgreSQL: the
// tables tokens and owner_revocations, projected from the lifecycle stream,
// and the queries the API and the validators read them with.
//
// Every change goes through ApplyBatch, which applies a batch of stored
// events in stream order and advances the projection's checkpoint (the
// sequence of the last event applied) in the same transaction. Events at or
// below the checkpoint are skipped, so re-delivering events after a crash
// changes nothing: each event is applied exactly once.
//
// How an event changes the tables is exactly how domain.Token.Apply and
// domain.Owner.Apply change the aggregates (domain.State is the reference
// the tests compare against):
//
//   - token.issued inserts the token's row (with its rotation family, if it
//     names one); a second one for the same id is ignored; issued_seq and
//     last_seq take its sequence.
//   - token.expiry_set sets expires_at (and rotated_to, when it names a
//     successor) unless the token is revoked.
//   - token.revoked sets revoked_at (the event's time), revoked_reason and
//     revoked_by (the event's actor), unless the token is revoked already:
//     the first revocation wins.
//   - token.used moves last_used_at to the later of the two instants and adds
//     its count to use_count, whatever the token's status.
//   - owner.tokens_revoked upserts the owner's row in owner_revocations:
//     revoked_before, revoked_before_seq (the event's sequence) and reason
//     take the new values, until becomes the later of the old and new ones,
//     and the revocation is added to the row's list of every revocation
//     (revocations), as domain.Owner.Revocations.
//   - owner.family_revoked sets revoked_at (the event's time),
//     revoked_reason and revoked_by (the event's actor) on the row of every
//     token of the owner's rotation family that was issued before it and
//     is not revoked yet: the family's first token (its id is the family)
//     and those whose family column names it (token.issued's family), as
//     domain.State applies it. The batch reads those rows by the family.
//     It moves the owner row's last_seq, if the owner has a row, and no
//     token row's.
//   - Events of tokens never issued are ignored and leave no trace.
//   - last_seq of a row is the sequence of the last event of its aggregate
//     at or after its creation, whether or not that event changed anything
//     else, as domain.Token.Version and domain.Owner.Version are.
//
// A token's status is computed when it is read, from its row, its owner's
// row and an instant: revoked if it was revoked or an owner revocation
// covers it (its issued event precedes the revocation in the stream, or it
// was created before the revocation's until), else expired if its expiry is
// at or before the instant, else active. A token an owner revocation covers
// is told the instant and reason of the revocation that revoked it, the
// first of the owner's list that covers it (TokenRow.OwnerRevokedAt), as
// domain.Owner.RevocationOf tells it: no token row is written for an
// owner-wide revocation.
//
// Reads: Get and List for the API, Snapshot for validators (every row and
// the checkpoint they reflect, read in one REPEATABLE READ transaction).
//
// Rebuild re-creates the read model from scratch into shadow tables while
// the live projection keeps running (Load a folded state with COPY, catch up
// with ApplyBatch), then swaps it in atomically: Swap takes the live
// checkpoint's row lock, which the live ApplyBatch also takes first, applies
// the events the live projection got ahead with, and renames the tables in
// the same transaction. The live projector only waits for the swap, then
// continues on the new tables from the new checkpoint; readers see either
// the old tables or the new ones.
package projections
