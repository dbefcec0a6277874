package projections

import (
	"math"
	"slices"

	"github.com/tokenledger/tokenledger/domain"
)

// batchFold applies a batch of events to the rows they touch, in memory,
// with the semantics of domain.Token.Apply and domain.Owner.Apply. It is
// loaded with the current rows first (absent rows stay absent), then the
// changed rows are written back: new ones inserted, changed ones updated.
type batchFold struct {
	tokens map[domain.TokenID]*tokenEntry
	owners map[domain.OwnerID]*ownerEntry
}

type tokenEntry struct {
	row     TokenRow
	present bool // the row exists, in the table or created by this batch
	stored  bool // the row is in the table
	dirty   bool
}

type ownerEntry struct {
	row     OwnerRevocationRow
	present bool
	dirty   bool
}

func newBatchFold() *batchFold {
	return &batchFold{
		tokens: make(map[domain.TokenID]*tokenEntry),
		owners: make(map[domain.OwnerID]*ownerEntry),
	}
}

// apply applies one stored event (non-zero Sequence).
func (f *batchFold) apply(e domain.Envelope) {
	switch e.AggregateKind {
	case domain.AggregateToken:
		id, ok := e.TokenID()
		if !ok {
			return
		}
		ent := f.tokens[id]
		if ent == nil {
			ent = &tokenEntry{}
			f.tokens[id] = ent
		}
		f.applyToken(ent, id, e)
	case domain.AggregateOwner:
		id := domain.OwnerID(e.AggregateID)
		ent := f.owners[id]
		if ent == nil {
			ent = &ownerEntry{}
			f.owners[id] = ent
		}
		applyOwner(ent, id, e)
		if d, ok := domain.PayloadAs[domain.OwnerFamilyRevoked](e.Data); ok && e.Type == domain.TypeOwnerFamilyRevoked {
			f.applyFamilyRevoked(id, e, d)
		}
	}
}

// applyFamilyRevoked revokes, as a token.revoked at e would, every member
// of d.Family issued before e: the batch holds all their rows (the lock
// reads them by family, see touched).
func (f *batchFold) applyFamilyRevoked(owner domain.OwnerID, e domain.Envelope, d domain.OwnerFamilyRevoked) {
	for _, ent := range f.tokens {
		r := &ent.row
		if !ent.present || r.Owner != owner || (r.ID != d.Family && r.Family != d.Family) ||
			r.IssuedSeq >= e.Sequence || !r.RevokedAt.IsZero() {
			continue
		}
		r.RevokedAt = e.Time
		r.RevokedReason = d.Reason
		r.RevokedBy = e.Actor
		ent.dirty = true
	}
}

func (f *batchFold) applyToken(ent *tokenEntry, id domain.TokenID, e domain.Envelope) {
	if !ent.present {
		d, ok := domain.PayloadAs[domain.TokenIssued](e.Data)
		if !ok {
			return
		}
		ent.row = TokenRow{
			ID:                id,
			Owner:             d.Owner,
			Name:              d.Name,
			Scopes:            append([]string{}, d.Scopes...),
			Kind:              d.Kind,
			SecretHash:        d.SecretHash,
			CreatedAt:         e.Time,
			ExpiresAt:         deref(d.ExpiresAt),
			IdleTimeout:       d.IdleTimeout.Duration(),
			AbsoluteExpiresAt: deref(d.AbsoluteExpiresAt),
			IssuedSeq:         e.Sequence,
			LastSeq:           e.Sequence,
		}
		if d.RotatedFrom != nil {
			ent.row.RotatedFrom = *d.RotatedFrom
		}
		if d.Family != nil {
			ent.row.Family = *d.Family
		}
		if len(d.AllowedCIDRs) > 0 {
			ent.row.AllowedCIDRs = slices.Clone(d.AllowedCIDRs)
		}
		ent.present, ent.dirty = true, true
		return
	}
	r := &ent.row
	r.LastSeq = e.Sequence
	ent.dirty = true
	switch e.Type {
	case domain.TypeTokenUsed:
		if d, ok := domain.PayloadAs[domain.TokenUsed](e.Data); ok {
			r.UseCount = addSaturating(r.UseCount, d.Count)
			if d.LastAt.After(r.LastUsedAt) {
				r.LastUsedAt = d.LastAt
			}
		}
	case domain.TypeTokenExpirySet:
		if d, ok := domain.PayloadAs[domain.TokenExpirySet](e.Data); ok && r.RevokedAt.IsZero() {
			r.ExpiresAt = deref(d.ExpiresAt)
			if d.RotatedTo != nil {
				r.RotatedTo = *d.RotatedTo
			}
		}
	case domain.TypeTokenCIDRsSet:
		if d, ok := domain.PayloadAs[domain.TokenCIDRsSet](e.Data); ok && r.RevokedAt.IsZero() {
			r.AllowedCIDRs = nil
			if len(d.AllowedCIDRs) > 0 {
				r.AllowedCIDRs = slices.Clone(d.AllowedCIDRs)
			}
		}
	case domain.TypeTokenRevoked:
		if d, ok := domain.PayloadAs[domain.TokenRevoked](e.Data); ok && r.RevokedAt.IsZero() {
			r.RevokedAt = e.Time
			r.RevokedReason = d.Reason
			r.RevokedBy = e.Actor
		}
	}
}

func applyOwner(ent *ownerEntry, id domain.OwnerID, e domain.Envelope) {
	d, ok := domain.PayloadAs[domain.OwnerTokensRevoked](e.Data)
	ok = ok && e.Type == domain.TypeOwnerTokensRevoked
	if !ent.present {
		if !ok {
			return
		}
		ent.row = OwnerRevocationRow{Owner: id}
		ent.present = true
	}
	r := &ent.row
	r.LastSeq = e.Sequence
	ent.dirty = true
	if !ok {
		return
	}
	r.RevokedBefore = d.RevokedBefore
	r.RevokedBeforeSeq = e.Sequence
	r.Reason = d.Reason
	if d.Until != nil && d.Until.After(r.Until) {
		r.Until = *d.Until
	}
	r.Revocations = append(slices.Clip(r.Revocations), RevocationEntry{Sequence: e.Sequence, At: d.RevokedBefore, Until: deref(d.Until), Reason: d.Reason})
}

// addSaturating adds n uses to count, stopping at the largest bigint.
func addSaturating(count, n uint64) uint64 {
	const maxCount = math.MaxInt64
	if n >= maxCount || count > maxCount-n {
		return maxCount
	}
	return count + n
}

func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}
