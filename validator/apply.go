package validator

import (
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/projections"
)

// How events, snapshot rows and looked-up histories change the state. The
// rules are domain.Token.Apply's and domain.Owner.Apply's, on the fields a
// validator needs: a second token.issued is ignored, revocation is
// terminal (an expiry_set after it changes nothing), the latest owner
// revocation in stream order sets the watermark and "until" only grows.
// Every function here runs with state.mu held.

func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

// micros is an event time in Unix microseconds, the precision of event
// times (domain.NormalizeTime).
func micros(t time.Time) int64 { return t.UnixMicro() }

// expiryMicros is an optional expiry in Unix microseconds; nil (and the
// zero time) is neverExpires.
func expiryMicros(t *time.Time) int64 {
	if t == nil || t.IsZero() {
		return neverExpires
	}
	return t.UnixMicro()
}

// tokenWriter is what applies events to a state: the state and the stream
// position bookkeeping of the tokens looked up ahead of the tail.
type tokenWriter struct {
	s *state
	// ahead holds, for tokens loaded from the store before the tail
	// delivered all their events, the sequence of the last event applied
	// that way. The tail skips that token's events up to it, so the
	// out-of-band load and the tail's later delivery of the same events
	// apply each event once.
	ahead map[domain.TokenID]uint64
	// watched holds, for the ids a store lookup is loading, the events of
	// the id the tail applied meanwhile: applied to a token not in memory
	// they change nothing, so the lookup applies them with the history it
	// loaded, which may have been read before them.
	watched map[domain.TokenID][]domain.Envelope
}

func newTokenWriter(s *state) *tokenWriter {
	return &tokenWriter{s: s, ahead: make(map[domain.TokenID]uint64), watched: make(map[domain.TokenID][]domain.Envelope)}
}

// watch starts collecting the events of id the tail applies.
func (w *tokenWriter) watch(id domain.TokenID) { w.watched[id] = nil }

// unwatch stops collecting the events of id and returns those collected.
func (w *tokenWriter) unwatch(id domain.TokenID) []domain.Envelope {
	seen := w.watched[id]
	delete(w.watched, id)
	return seen
}

// applyTail applies one lifecycle event delivered by the tail, in stream
// order.
func (w *tokenWriter) applyTail(e domain.Envelope) {
	w.s.advance(e.Sequence)
	switch e.AggregateKind {
	case domain.AggregateToken:
		id, ok := e.TokenID()
		if !ok {
			return
		}
		if seen, ok := w.watched[id]; ok {
			w.watched[id] = append(seen, e)
		}
		if last, ok := w.ahead[id]; ok {
			if e.Sequence <= last {
				if e.Sequence == last {
					delete(w.ahead, id)
				}
				return
			}
			delete(w.ahead, id)
		}
		w.applyToken(id, e)
	case domain.AggregateOwner:
		w.applyOwner(e)
	}
}

// applyToken applies one event of token id.
func (w *tokenWriter) applyToken(id domain.TokenID, e domain.Envelope) {
	ent, _, _ := w.s.find(&id)
	switch e.Type {
	case domain.TypeTokenIssued:
		d, ok := domain.PayloadAs[domain.TokenIssued](e.Data)
		if !ok || ent != nil {
			return
		}
		w.s.insert(newToken{
			id:        id,
			hash:      d.SecretHash,
			owner:     d.Owner,
			scopes:    d.Scopes,
			session:   d.Kind == domain.KindSession,
			created:   micros(e.Time),
			expires:   expiryMicros(d.ExpiresAt),
			issuedSeq: e.Sequence,
			family:    deref(d.Family),
			cidrs:     d.AllowedCIDRs,
		})
	case domain.TypeTokenCIDRsSet:
		d, ok := domain.PayloadAs[domain.TokenCIDRsSet](e.Data)
		if !ok || ent == nil {
			return
		}
		w.s.setCIDRs(ent, d.AllowedCIDRs)
	case domain.TypeTokenExpirySet:
		d, ok := domain.PayloadAs[domain.TokenExpirySet](e.Data)
		if !ok || ent == nil {
			return
		}
		base, exp := idBase(&id), expiryMicros(d.ExpiresAt)
		for {
			st := ent.state.Load()
			if st&flagRevoked != 0 {
				return
			}
			next := withExpiry(st, base, exp)
			if d.RotatedTo != nil {
				next |= flagRotated
			}
			if ent.state.CompareAndSwap(st, next) {
				return
			}
		}
	case domain.TypeTokenRevoked:
		if ent != nil {
			ent.setFlags(flagRevoked)
		}
	}
}

// applyOwner applies one owner event. The watermark is the sequence of
// the latest revocation and "until" the latest of all: both are maxima,
// so owner events may be applied in any order, and more than once. A
// revocation of a rotation family revokes its members issued before it
// (terminal, so in any order too).
func (w *tokenWriter) applyOwner(e domain.Envelope) {
	if f, ok := domain.PayloadAs[domain.OwnerFamilyRevoked](e.Data); ok && e.Type == domain.TypeOwnerFamilyRevoked && e.Sequence != 0 {
		w.s.revokeFamily(domain.OwnerID(e.AggregateID), f.Family, e.Sequence)
		return
	}
	d, ok := domain.PayloadAs[domain.OwnerTokensRevoked](e.Data)
	if !ok || e.Type != domain.TypeOwnerTokensRevoked || e.Sequence == 0 {
		return
	}
	until := int64(noUntil)
	if d.Until != nil {
		until = expiryMicros(d.Until)
	}
	w.s.revokeOwner(domain.OwnerID(e.AggregateID), e.Sequence, until)
}

// applyObserved applies a stored event ahead of the tail if its effect
// does not depend on the order of events: an issue (a second one is
// ignored), a revocation (terminal), an owner revocation (maxima) or a
// family revocation (terminal).
func (w *tokenWriter) applyObserved(e domain.Envelope) {
	switch e.Type {
	case domain.TypeTokenIssued, domain.TypeTokenRevoked:
		if id, ok := e.TokenID(); ok {
			w.applyToken(id, e)
		}
	case domain.TypeOwnerTokensRevoked, domain.TypeOwnerFamilyRevoked:
		w.applyOwner(e)
	}
}

// applyHistory applies the whole history of token id, as loaded from the
// store, when the tail has applied the stream up to applied. The events
// the tail already applied are skipped if the token is known (the tail
// applies in order, so all of them are reflected); all are applied to a
// token not in memory (never seen, or evicted); the rest are applied
// now and remembered in ahead, so that the tail skips them when it
// delivers them. It reports whether the token is known afterwards.
func (w *tokenWriter) applyHistory(id domain.TokenID, events []domain.Envelope, applied uint64) bool {
	ent, _, _ := w.s.find(&id)
	known := ent != nil
	last := w.ahead[id]
	for _, e := range events {
		if (known && e.Sequence <= applied) || e.Sequence <= last {
			continue
		}
		w.applyToken(id, e)
		last = e.Sequence
	}
	ent, _, _ = w.s.find(&id)
	if last > applied {
		w.ahead[id] = last
	}
	if len(w.ahead) > maxAhead {
		w.prune(applied)
	}
	return ent != nil
}

// maxAhead is the size of ahead from which entries the tail has passed
// are swept. They are removed as the tail delivers them; a sweep only
// matters if the tail skipped one, which it does not.
const maxAhead = 4096

func (w *tokenWriter) prune(applied uint64) {
	for id, last := range w.ahead {
		if last <= applied {
			delete(w.ahead, id)
		}
	}
}

// loadLiveRow inserts a token of the snapshot, unless it can no longer
// validate: revoked with an id older than youngAfter (Unix µs; a young
// one is kept, or it would be looked up), or expired at or before
// keepAfter (Unix µs: the snapshot's time less the eviction grace) and
// not rotated out (a rotated-out token is kept for the reuse check, until
// a sweep finds its family gone). projections.ReadModel.ValidatorSnapshot
// leaves most of those in the database already; the rule here is the
// precise one (an id's time is its millisecond, the row's creation time
// has the microseconds). Snapshot rows are distinct tokens, loaded into
// an empty state: r is not looked for first.
func (w *tokenWriter) loadLiveRow(r *projections.ValidatorRow, keepAfter, youngAfter int64) {
	if (r.Revoked || r.OwnerRevoked) && idBase(&r.ID) <= youngAfter {
		return
	}
	expires := int64(neverExpires)
	if r.HasExpiry {
		expires = r.ExpiresAt
	}
	if expires <= keepAfter && !r.Rotated {
		return
	}
	w.s.insertInterned(newToken{
		id:           r.ID,
		hash:         r.SecretHash,
		session:      r.Session,
		created:      r.CreatedAt,
		expires:      expires,
		issuedSeq:    r.IssuedSeq,
		revoked:      r.Revoked,
		ownerRevoked: r.OwnerRevoked,
		rotated:      r.Rotated,
		family:       r.Family,
		cidrSet:      w.s.internCIDRsText(r.AllowedCIDRs),
	}, w.s.internOwnerBytes(r.Owner), w.s.internScopesText(r.Scopes))
}

// loadOwner records an owner's revocations from the snapshot, for the
// tokens inserted later (the snapshot's rows it covers were left out).
func (w *tokenWriter) loadOwner(r *projections.OwnerRevocationRow) {
	until := int64(noUntil)
	if !r.Until.IsZero() {
		until = micros(r.Until)
	}
	w.s.noteOwnerRevocation(w.s.internOwner(r.Owner), r.RevokedBeforeSeq, until)
}
