package audit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/projections"
)

// Source is the event store as StateAt reads it: the whole lifecycle
// stream and the whole usage stream, in stream order. *eventstore.Store
// implements it.
type Source interface {
	Read(ctx context.Context, from uint64, fn func(domain.Envelope) error) (last uint64, err error)
	ReadUsage(ctx context.Context, from uint64, fn func(domain.Envelope) error) (last uint64, err error)
}

// Snapshot is every token as it was at an instant.
type Snapshot struct {
	// At is the instant.
	At time.Time
	// Sequence is the lifecycle stream sequence of the last event at or
	// before At (of any owner); zero when there is none.
	Sequence uint64
	// Tokens are the tokens issued at or before At, in id order, as the
	// read model's rows with Status and OwnerRevoked resolved at At and
	// usage combined as the read model combines it. SecretHash is always
	// zero. IssuedSeq and LastSeq are lifecycle stream sequences, as in
	// the read model.
	Tokens []projections.TokenRow
}

// StateAt returns every token (of owner only, unless owner is nil) as it was
// at instant at: the fold by domain.State of every lifecycle event whose
// time is at or before at, in stream order, with the usage of the usage
// stream's token.used events whose time is at or before at. See the package
// documentation for what the instant means and for the usage retention.
//
// Both streams are read to their ends as captured when StateAt starts,
// concurrently. Memory grows with the number of tokens kept. Errors are
// the store's, wrapped; a stored message that is not a valid event stops
// the replay (an *eventstore.DecodeError).
func StateAt(ctx context.Context, src Source, at time.Time, owner *domain.OwnerID) (Snapshot, error) {
	if at.IsZero() {
		return Snapshot{}, fmt.Errorf("state at: %w: no instant", domain.ErrInvalidArgument)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	type usageResult struct {
		uses map[domain.TokenID]use
		err  error
	}
	usageDone := make(chan usageResult, 1)
	go func() {
		uses, err := usageAt(ctx, src, at)
		if err != nil {
			cancel()
		}
		usageDone <- usageResult{uses, err}
	}()

	st := domain.NewState()
	var seq uint64
	f := ownerFilter{owner: owner}
	_, err := src.Read(ctx, 0, func(e domain.Envelope) error {
		if e.Time.After(at) {
			return nil
		}
		seq = e.Sequence
		if f.keep(e) {
			st.Apply(e)
		}
		return nil
	})
	if err != nil {
		cancel()
	}
	u := <-usageDone
	// A failed usage read cancels the replay: report its cause, not the
	// cancellation.
	if err == nil || (u.err != nil && errors.Is(err, context.Canceled)) {
		err = u.err
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("state at %s: %w", at.Format(time.RFC3339Nano), err)
	}

	out := Snapshot{At: at, Sequence: seq, Tokens: make([]projections.TokenRow, 0, st.Len())}
	for t := range st.Tokens() {
		row := projections.TokenRowFromDomain(t)
		row.SecretHash = domain.SecretHash{}
		o, _ := st.Owner(t.Owner())
		row.Status = t.Status(at, o)
		row.OwnerRevoked = o.Covers(t)
		if us, ok := u.uses[t.ID()]; ok {
			row.UseCount = addSaturating(row.UseCount, us.count)
			if us.last.After(row.LastUsedAt) {
				row.LastUsedAt = us.last
			}
		}
		out.Tokens = append(out.Tokens, row)
	}
	return out, nil
}

// use is what the usage stream tells of one token up to an instant.
type use struct {
	count uint64
	last  time.Time
}

// usageAt folds the uses of the usage stream's events (usage batches and
// token.used events) whose time is at or before at, per token.
func usageAt(ctx context.Context, src Source, at time.Time) (map[domain.TokenID]use, error) {
	uses := map[domain.TokenID]use{}
	_, err := src.ReadUsage(ctx, 0, func(e domain.Envelope) error {
		if e.Time.After(at) {
			return nil
		}
		for id, d := range domain.Uses(e) {
			u := uses[id]
			u.count = addSaturating(u.count, d.Count)
			if d.LastAt.After(u.last) {
				u.last = d.LastAt
			}
			uses[id] = u
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("usage: %w", err)
	}
	return uses, nil
}

// addSaturating adds as the read model does: counts saturate at the
// largest bigint.
func addSaturating(a, b uint64) uint64 {
	const most = math.MaxInt64
	if a >= most || b >= most || a+b >= most {
		return most
	}
	return a + b
}

// ownerFilter keeps the events of one owner: its owner-wide events and
// the events of its tokens. Without an owner it keeps everything.
type ownerFilter struct {
	owner *domain.OwnerID
	// mine records, per token seen issued, whether the first token.issued
	// (the one domain.State applies) named the owner.
	mine map[domain.TokenID]bool
}

func (f *ownerFilter) keep(e domain.Envelope) bool {
	if f.owner == nil {
		return true
	}
	switch e.AggregateKind {
	case domain.AggregateOwner:
		return e.AggregateID == string(*f.owner)
	case domain.AggregateToken:
		id, ok := e.TokenID()
		if !ok {
			return false
		}
		if mine, seen := f.mine[id]; seen {
			return mine
		}
		d, ok := domain.PayloadAs[domain.TokenIssued](e.Data)
		if !ok {
			// An event before its token's issue is ignored by the fold.
			return false
		}
		if f.mine == nil {
			f.mine = map[domain.TokenID]bool{}
		}
		f.mine[id] = d.Owner == *f.owner
		return f.mine[id]
	}
	return false
}

// EventSource is the event store as a Reader reads it; *eventstore.Store
// implements it.
type EventSource interface {
	Source
	HistorySource
}

// Reader answers the audit questions of one ledger from its event store
// and, to find an owner's tokens, its read model. A Reader is safe for
// concurrent use.
type Reader struct {
	store      EventSource
	read       ReadModel
	projection string
}

// NewReader returns a Reader of store and read, whose tokens the lifecycle
// projection named projection writes.
func NewReader(store EventSource, read ReadModel, projection string) *Reader {
	return &Reader{store: store, read: read, projection: projection}
}

// OwnerHistory is OwnerHistory on the Reader's store and read model.
func (r *Reader) OwnerHistory(ctx context.Context, owner domain.OwnerID) (History, error) {
	return OwnerHistory(ctx, r.store, r.read, r.projection, owner)
}

// TokenHistory is TokenHistory on the Reader's store.
func (r *Reader) TokenHistory(ctx context.Context, id domain.TokenID) (History, error) {
	return TokenHistory(ctx, r.store, id)
}

// StateAt is StateAt on the Reader's store.
func (r *Reader) StateAt(ctx context.Context, at time.Time, owner *domain.OwnerID) (Snapshot, error) {
	return StateAt(ctx, r.store, at, owner)
}

// Owners is StoreOwners on the Reader's store: an OwnerOf for one
// Timeline call.
func (r *Reader) Owners(ctx context.Context) OwnerOf {
	return StoreOwners(ctx, r.store)
}
