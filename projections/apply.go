package projections

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tokenledger/tokenledger/domain"
)

// ErrOutOfOrder is returned (wrapped) by ApplyBatch when the events of a
// batch are not in strictly increasing, non-zero sequence order. Nothing is
// written then.
var ErrOutOfOrder = errors.New("events out of stream order")

// ErrGap is returned (wrapped) by ApplyNext when the first event of a batch
// above the checkpoint is not the one right after it: the batch does not
// continue the projection (the checkpoint moved back under the caller, or
// the caller read from the wrong place). Nothing is written then.
var ErrGap = errors.New("events do not continue the checkpoint")

// ApplyResult tells what ApplyNext did.
type ApplyResult struct {
	// Checkpoint is the projection's checkpoint after the call.
	Checkpoint uint64
	// Applied is how many events were applied now: those of sequences
	// Checkpoint-Applied+1 through Checkpoint.
	Applied int
}

// copyThreshold is the number of new tokens from which a batch inserts them
// with COPY (one extra round trip, then far cheaper per row) instead of one
// pipelined INSERT each.
const copyThreshold = 64

// ApplyBatch applies events, stored events of the lifecycle stream in
// increasing sequence order, to the live tables, in one transaction that
// also advances the checkpoint of projection name. It first locks the
// checkpoint row (creating it at zero), skips the events at or below it
// (already applied: a re-delivery changes nothing), applies the rest in
// order and sets the checkpoint to the highest sequence applied. It returns
// how many events it applied.
//
// Events whose sequences are zero, repeated or decreasing are refused with
// an error wrapping ErrOutOfOrder, before anything is written. Concurrent
// calls for the same name serialise on the checkpoint row; a Rebuild's Swap
// holds that row too, so ApplyBatch waits for a swap and then continues on
// the swapped-in tables.
//
// The batch costs three round trips whatever its size (one more when it
// issues copyThreshold tokens or more): begin, lock and read the rows it
// touches; write them back; commit.
func (s *ReadModel) ApplyBatch(ctx context.Context, name string, events []domain.Envelope) (applied int, err error) {
	return s.apply(ctx, nil, s.live, name, events)
}

// ApplyNext is ApplyBatch for a worker that follows the stream in order:
// after locking the checkpoint row it also requires the first event above
// the checkpoint to be the next one, checkpoint+1, and refuses the batch
// otherwise with an error wrapping ErrGap, writing nothing. Events at or
// below the checkpoint are skipped as ApplyBatch does, so two workers of
// one projection that read the stream at once apply each event exactly
// once: the one behind skips what the other applied, and a batch read from
// the wrong place is refused rather than leaving a hole. The events must
// follow each other in the stream with nothing left out between them.
//
// It returns the checkpoint after the call (also when nothing was applied
// or the batch was refused) and how many events it applied.
func (s *ReadModel) ApplyNext(ctx context.Context, name string, events []domain.Envelope) (ApplyResult, error) {
	n, cp, err := s.applyEvents(ctx, nil, s.live, name, events, true)
	if err != nil {
		return ApplyResult{Checkpoint: cp}, fmt.Errorf("apply batch of %d events to projection %q: %w", len(events), name, err)
	}
	return ApplyResult{Checkpoint: cp, Applied: n}, nil
}

// ApplyBatchTx is ApplyBatch inside the caller's transaction tx, which the
// caller commits or rolls back; the checkpoint row stays locked until then.
// It costs one round trip more than ApplyBatch. tx should not have read or
// written the projection's tables before: a Swap running meanwhile would
// otherwise deadlock with it (PostgreSQL then aborts one of the two).
func (s *ReadModel) ApplyBatchTx(ctx context.Context, tx pgx.Tx, name string, events []domain.Envelope) (applied int, err error) {
	if tx == nil {
		return 0, fmt.Errorf("apply batch to projection %q: %w: nil transaction", name, domain.ErrInvalidArgument)
	}
	return s.apply(ctx, tx, s.live, name, events)
}

// checkOrder refuses a batch whose sequences are not strictly increasing
// and non-zero.
func checkOrder(events []domain.Envelope) error {
	var prev uint64
	for i, e := range events {
		if e.Sequence == 0 {
			return fmt.Errorf("%w: event %d (%s) has no sequence", ErrOutOfOrder, i, e.ID)
		}
		if e.Sequence <= prev {
			return fmt.Errorf("%w: event %d (%s) has sequence %d after %d", ErrOutOfOrder, i, e.ID, e.Sequence, prev)
		}
		prev = e.Sequence
	}
	return nil
}

// apply runs ApplyBatch on table set ts, in tx or, if tx is nil, in a
// transaction of its own.
func (s *ReadModel) apply(ctx context.Context, tx pgx.Tx, ts *tableSet, name string, events []domain.Envelope) (int, error) {
	n, _, err := s.applyEvents(ctx, tx, ts, name, events, false)
	if err != nil {
		return 0, fmt.Errorf("apply batch of %d events to projection %q: %w", len(events), name, err)
	}
	return n, nil
}

// applyEvents applies events on table set ts in tx (or a transaction of
// its own when tx is nil) and returns how many it applied and the
// checkpoint after the call (0 when the checkpoint was not read). With
// next set, a batch that does not continue the checkpoint is refused with
// ErrGap.
func (s *ReadModel) applyEvents(ctx context.Context, tx pgx.Tx, ts *tableSet, name string, events []domain.Envelope, next bool) (int, uint64, error) {
	if err := checkOrder(events); err != nil {
		return 0, 0, err
	}
	if len(events) == 0 {
		if next {
			cp, err := readCheckpoint(ctx, s.pool, name)
			return 0, cp, err
		}
		return 0, 0, nil
	}
	ids, families, owners := touched(events)

	f := newBatchFold()
	var checkpoint int64
	b := &pgx.Batch{}
	ownTx := tx == nil
	if ownTx {
		b.BeginTx(pgx.TxOptions{})
	}
	// The checkpoint row is locked before the tables are touched: a Swap
	// takes the same lock first, so the two cannot deadlock, and once it
	// is ours the statements below resolve the table names afresh.
	if ts.createCheckpoint {
		b.Queue(insertCheckpointSQL, name)
	}
	b.Queue(lockCheckpointSQL, name).QueryRow(func(row pgx.Row) error {
		err := row.Scan(&checkpoint)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNoRebuild
		}
		return err
	})
	if !ownTx {
		// Statements new to the connection are prepared before the batch
		// runs, and preparing a read of the tables inside tx would lock
		// them before the checkpoint: lock the checkpoint on its own.
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return 0, 0, fmt.Errorf("lock checkpoint: %w", err)
		}
		b = &pgx.Batch{}
	}
	b.Queue(ts.lockTokens, ids, families).Query(func(rows pgx.Rows) error {
		sc := newTokenScan(false)
		for rows.Next() {
			if err := sc.scan(rows); err != nil {
				return fmt.Errorf("scan token: %w", err)
			}
			r := sc.row()
			f.tokens[r.ID] = &tokenEntry{row: r, present: true, stored: true}
		}
		return rows.Err()
	})
	b.Queue(ts.lockOwners, owners).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			o, err := scanOwner(rows)
			if err != nil {
				return fmt.Errorf("scan owner revocation: %w", err)
			}
			f.owners[o.Owner] = &ownerEntry{row: o, present: true}
		}
		return rows.Err()
	})

	var br pgx.BatchResults
	if ownTx {
		// With the begin in the batch, new statements are prepared before
		// the transaction starts, so they hold no lock.
		br = s.pool.SendBatch(ctx, b)
		tx = br.Tx()
		defer func() { _ = tx.Rollback(ctx) }()
	} else {
		br = tx.SendBatch(ctx, b)
	}
	if err := br.Close(); err != nil {
		return 0, 0, fmt.Errorf("lock checkpoint and rows: %w", err)
	}

	if next {
		for _, e := range events {
			if e.Sequence <= uint64(checkpoint) {
				continue
			}
			if e.Sequence != uint64(checkpoint)+1 {
				return 0, uint64(checkpoint), fmt.Errorf("%w: the checkpoint is %d, the batch continues at %d", ErrGap, checkpoint, e.Sequence)
			}
			break
		}
	}
	applied, last := 0, uint64(checkpoint)
	for _, e := range events {
		if e.Sequence <= uint64(checkpoint) {
			continue
		}
		f.apply(e)
		applied++
		last = e.Sequence
	}
	if applied == 0 {
		if ownTx {
			// Nothing changed: rolling back releases the lock without a
			// commit to flush.
			if err := tx.Rollback(ctx); err != nil {
				return 0, 0, fmt.Errorf("roll back: %w", err)
			}
		}
		return 0, last, nil
	}
	wb, err := writeFold(ctx, tx, ts, f)
	if err != nil {
		return 0, 0, err
	}
	wb.Queue(saveCheckpointSQL, name, int64(last))
	if err := tx.SendBatch(ctx, wb).Close(); err != nil {
		return 0, 0, fmt.Errorf("write rows and checkpoint %d: %w", last, err)
	}
	if ownTx {
		if err := tx.Commit(ctx); err != nil {
			return 0, 0, fmt.Errorf("commit: %w", err)
		}
	}
	return applied, last, nil
}

// touched returns the distinct token ids and owners events belong to, and
// the families owner.family_revoked events revoke.
func touched(events []domain.Envelope) (ids, families []pgtype.UUID, owners []string) {
	seenTokens := make(map[domain.TokenID]struct{}, len(events))
	seenOwners := make(map[string]struct{})
	ids = make([]pgtype.UUID, 0, len(events))
	families = []pgtype.UUID{}
	owners = []string{}
	for _, e := range events {
		switch e.AggregateKind {
		case domain.AggregateToken:
			if id, ok := e.TokenID(); ok {
				if _, dup := seenTokens[id]; !dup {
					seenTokens[id] = struct{}{}
					ids = append(ids, uuidArg(id))
				}
			}
		case domain.AggregateOwner:
			if _, dup := seenOwners[e.AggregateID]; !dup {
				seenOwners[e.AggregateID] = struct{}{}
				owners = append(owners, e.AggregateID)
			}
			if d, ok := domain.PayloadAs[domain.OwnerFamilyRevoked](e.Data); ok && e.Type == domain.TypeOwnerFamilyRevoked {
				families = append(families, uuidArg(d.Family))
			}
		}
	}
	return ids, families, owners
}

// writeFold prepares the writes of the rows f changed: new tokens inserted
// (copied at once when there are many), stored ones updated, owner
// revocations upserted. It returns the batch of statements still to send.
func writeFold(ctx context.Context, tx pgx.Tx, ts *tableSet, f *batchFold) (*pgx.Batch, error) {
	var inserts []*TokenRow
	var upd tokenUpdates
	for _, ent := range f.tokens {
		switch {
		case !ent.dirty:
		case !ent.stored:
			inserts = append(inserts, &ent.row)
		default:
			upd.add(&ent.row)
		}
	}
	var own ownerUpserts
	for _, ent := range f.owners {
		if ent.dirty {
			own.add(&ent.row)
		}
	}

	b := &pgx.Batch{}
	if len(inserts) >= copyThreshold {
		n, err := copyTokens(ctx, tx, ts.tokens, slices.Values(inserts), false)
		if err != nil {
			return nil, fmt.Errorf("copy %d new tokens: %w", len(inserts), err)
		}
		if int(n) != len(inserts) {
			return nil, fmt.Errorf("copied %d new tokens, want %d", n, len(inserts))
		}
	} else {
		for _, r := range inserts {
			b.Queue(ts.insertToken, tokenValues(make([]any, 0, len(tokenColumns)), r)...)
		}
	}
	if n := len(upd.ids); n > 0 {
		b.Queue(ts.updateTokens, upd.ids, upd.expiresAt, upd.rotatedTo, upd.revokedAt, upd.revokedReason,
			upd.revokedBy, upd.lastUsedAt, upd.useCount, upd.lastSeq, upd.cidrs).Exec(func(ct pgconn.CommandTag) error {
			if int(ct.RowsAffected()) != n {
				return fmt.Errorf("updated %d token rows, want %d", ct.RowsAffected(), n)
			}
			return nil
		})
	}
	if len(own.owners) > 0 {
		b.Queue(ts.upsertOwners, own.owners, own.revokedBefore, own.revokedBeforeSeq, own.until, own.reason, own.lastSeq, own.revocations)
	}
	return b, nil
}

// tokenUpdates holds the mutable columns of changed token rows, one array
// per column, for one UPDATE ... FROM unnest.
type tokenUpdates struct {
	ids, rotatedTo                   []pgtype.UUID
	expiresAt, revokedAt, lastUsedAt []pgtype.Timestamptz
	revokedReason, revokedBy         []pgtype.Text
	useCount, lastSeq                []int64
	// cidrs are the allowed networks separated by single spaces, empty
	// for none: a text[][] cannot hold rows of different lengths.
	cidrs []string
}

func (u *tokenUpdates) add(r *TokenRow) {
	u.ids = append(u.ids, uuidArg(r.ID))
	u.expiresAt = append(u.expiresAt, timestamptzArg(r.ExpiresAt))
	u.rotatedTo = append(u.rotatedTo, uuidArg(r.RotatedTo))
	u.revokedAt = append(u.revokedAt, timestamptzArg(r.RevokedAt))
	u.revokedReason = append(u.revokedReason, textArg(r.RevokedReason))
	u.revokedBy = append(u.revokedBy, textArg(r.RevokedBy))
	u.lastUsedAt = append(u.lastUsedAt, timestamptzArg(r.LastUsedAt))
	u.useCount = append(u.useCount, int64(r.UseCount))
	u.lastSeq = append(u.lastSeq, int64(r.LastSeq))
	u.cidrs = append(u.cidrs, strings.Join(r.AllowedCIDRs, " "))
}

type ownerUpserts struct {
	owners                    []string
	revokedBefore             []time.Time
	until                     []pgtype.Timestamptz
	reason                    []pgtype.Text
	revokedBeforeSeq, lastSeq []int64
	revocations               [][]byte
}

func (u *ownerUpserts) add(o *OwnerRevocationRow) {
	u.owners = append(u.owners, string(o.Owner))
	u.revokedBefore = append(u.revokedBefore, o.RevokedBefore)
	u.revokedBeforeSeq = append(u.revokedBeforeSeq, int64(o.RevokedBeforeSeq))
	u.until = append(u.until, timestamptzArg(o.Until))
	u.reason = append(u.reason, textArg(o.Reason))
	u.lastSeq = append(u.lastSeq, int64(o.LastSeq))
	u.revocations = append(u.revocations, revocationsArg(o.Revocations))
}
