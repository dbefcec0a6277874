package consumers_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
)

// writer appends random but valid histories through the event store, the
// way the API does: domain commands over a manual clock, each change
// appended under its aggregate's expectation. Uses (token.used) go to the
// usage stream, which the lifecycle projector must not see.
type writer struct {
	t        testing.TB
	store    *eventstore.Store
	rng      *rand.Rand
	entropy  *rand.ChaCha8
	clock    *domain.ManualClock
	policy   domain.Policy
	ownerIDs []domain.OwnerID
	owners   map[domain.OwnerID]*domain.Owner
	tokens   []*domain.Token
	// stored holds every token's stored lifecycle events, to rebuild a
	// throwaway aggregate for recording uses.
	stored map[domain.TokenID][]domain.Envelope
	// lifecycle counts the events appended to the lifecycle stream.
	lifecycle int
	issued    int
	uses      int
}

func newWriter(t testing.TB, store *eventstore.Store, seed uint64, owners int) *writer {
	t.Helper()
	w := &writer{
		t:       t,
		store:   store,
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		entropy: rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 7}),
		clock:   domain.NewManualClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)),
		policy:  domain.DefaultPolicy(),
		owners:  make(map[domain.OwnerID]*domain.Owner),
		stored:  make(map[domain.TokenID][]domain.Envelope),
	}
	w.policy.AllowNeverExpires = true
	for i := range owners {
		w.ownerIDs = append(w.ownerIDs, domain.OwnerID(fmt.Sprintf("owner %d/ü.*>", i)))
	}
	return w
}

// appendEvents appends at least n more lifecycle events, and issues
// tokens, spread over them, until maxTokens have been issued.
func (w *writer) appendEvents(n, maxTokens int) {
	w.t.Helper()
	target := w.lifecycle + n
	for w.lifecycle < target || w.issued < maxTokens {
		w.step(target, maxTokens)
	}
}

// step runs one random command, which appends zero or more events.
func (w *writer) step(target, maxTokens int) {
	w.t.Helper()
	now := w.clock.Advance(time.Duration(1+w.rng.IntN(600)) * time.Second)
	left := max(target-w.lifecycle, 1)
	if len(w.tokens) == 0 || (w.issued < maxTokens && w.rng.IntN(left) < 2*(maxTokens-w.issued)) {
		w.issue(now)
		return
	}
	t := w.tokens[w.rng.IntN(len(w.tokens))]
	switch p := w.rng.IntN(1000); {
	case p < 100:
		w.recordUse(t, now)
	case p < 450:
		at := now.Add(time.Duration(1+w.rng.IntN(90*24)) * time.Hour)
		atp := &at
		if t.Kind() == domain.KindSession {
			if limit, ok := t.AbsoluteExpiresAt(); ok && limit.After(now) {
				at = now.Add(time.Duration(w.rng.Int64N(int64(limit.Sub(now)))) + time.Microsecond)
			}
		} else if w.rng.IntN(5) == 0 {
			atp = nil
		}
		if err := t.SetExpiry(w.policy, atp, w.meta(), now); err == nil {
			w.appendToken(t, eventstore.ExpectToken(t.ID(), t.Version()))
		}
	case p < 600:
		if ok, err := t.ExtendSession(now.Add(-time.Duration(w.rng.IntN(600))*time.Second), 0, w.meta(), now); err == nil && ok {
			w.appendToken(t, eventstore.ExpectToken(t.ID(), t.Version()))
		}
	case p < 700:
		if err := t.Revoke(fmt.Sprintf("reason %d", w.rng.IntN(3)), w.meta(), now); err == nil && len(t.Changes()) > 0 {
			w.appendToken(t, eventstore.ExpectToken(t.ID(), t.Version()))
		}
	case p < 850:
		if w.issued < maxTokens {
			w.rotate(t, now)
		}
	case p < 865:
		w.revokeOwner(now)
	}
}

func (w *writer) meta() domain.Meta {
	return domain.Meta{Actor: fmt.Sprintf("user:%d", w.rng.IntN(5)), CorrelationID: fmt.Sprintf("c-%d", w.rng.IntN(1000))}
}

func (w *writer) owner(id domain.OwnerID) *domain.Owner {
	o := w.owners[id]
	if o == nil {
		o = domain.NewOwner(id)
		w.owners[id] = o
	}
	return o
}

func (w *writer) issue(now time.Time) {
	w.t.Helper()
	id := w.ownerIDs[w.rng.IntN(len(w.ownerIDs))]
	o := w.owner(id)
	req := domain.IssueRequest{
		Owner:  id,
		Name:   fmt.Sprintf("token %d", w.issued),
		Scopes: []string{"read", fmt.Sprintf("scope:%d", w.rng.IntN(4)), "write"}[:1+w.rng.IntN(3)],
	}
	switch w.rng.IntN(4) {
	case 0:
		req.Kind = domain.KindSession
		req.IdleTimeout = time.Duration(1+w.rng.IntN(120)) * time.Minute
	case 1:
		req.NeverExpires = true
	case 2:
		req.ExpiresIn = time.Duration(1+w.rng.IntN(60*24)) * time.Hour
	}
	t, _, err := domain.IssueToken(w.policy, o, req, w.meta(), now, w.entropy)
	if err != nil {
		return // the owner is blocked from new tokens
	}
	// An issue expects the owner's last event, so it cannot pass an
	// owner-wide revocation.
	w.appendToken(t, eventstore.ExpectOwner(id, o.Version()))
	w.tokens = append(w.tokens, t)
	w.issued++
}

func (w *writer) rotate(old *domain.Token, now time.Time) {
	w.t.Helper()
	o := w.owner(old.Owner())
	nt, _, err := domain.Rotate(w.policy, o, old, time.Duration(w.rng.IntN(48))*time.Hour, nil, w.meta(), now, w.entropy)
	if err != nil {
		return
	}
	newChanges, oldChanges := nt.Changes(), old.Changes()
	stored, err := w.store.AppendAtomic(context.Background(),
		eventstore.Change{Expect: eventstore.ExpectOwner(o.ID(), o.Version()), Events: newChanges},
		eventstore.Change{Expect: eventstore.ExpectToken(old.ID(), old.Version()), Events: oldChanges})
	if err != nil {
		w.t.Fatalf("append rotation of %s: %v", old.ID(), err)
	}
	w.markStored(nt, stored[:len(newChanges)])
	w.markStored(old, stored[len(newChanges):])
	w.tokens = append(w.tokens, nt)
	w.issued++
}

func (w *writer) revokeOwner(now time.Time) {
	w.t.Helper()
	o := w.owner(w.ownerIDs[w.rng.IntN(len(w.ownerIDs))])
	var until *time.Time
	if w.rng.IntN(3) == 0 {
		u := now.Add(time.Duration(1+w.rng.IntN(72)) * time.Hour)
		until = &u
	}
	if err := o.RevokeTokens(until, fmt.Sprintf("compromise %d", w.rng.IntN(3)), w.meta(), now); err != nil {
		return
	}
	stored, err := w.store.Append(context.Background(), eventstore.ExpectOwner(o.ID(), o.Version()), o.Changes()...)
	if err != nil {
		w.t.Fatalf("append revocation of owner %q: %v", o.ID(), err)
	}
	if err := o.MarkStored(sequences(stored)...); err != nil {
		w.t.Fatalf("mark owner stored: %v", err)
	}
	w.lifecycle += len(stored)
}

// recordUse records a use on a throwaway copy of t, rebuilt from its
// stored lifecycle events, and appends it to the usage stream: uses have
// their own stream and must not move t's lifecycle version.
func (w *writer) recordUse(t *domain.Token, now time.Time) {
	w.t.Helper()
	tmp, err := domain.TokenFromHistory(w.stored[t.ID()])
	if err != nil {
		w.t.Fatalf("rebuild token %s: %v", t.ID(), err)
	}
	first := now.Add(-time.Duration(w.rng.IntN(3600)) * time.Second)
	if err := tmp.RecordUse(uint64(1+w.rng.IntN(100)), first, now, "192.0.2.1", w.meta(), now); err != nil {
		return
	}
	if _, err := w.store.AppendUsage(context.Background(), tmp.Changes()...); err != nil {
		w.t.Fatalf("append use of %s: %v", t.ID(), err)
	}
	w.uses++
}

func (w *writer) appendToken(t *domain.Token, expect eventstore.Expect) {
	w.t.Helper()
	stored, err := w.store.Append(context.Background(), expect, t.Changes()...)
	if err != nil {
		w.t.Fatalf("append to token %s: %v", t.ID(), err)
	}
	w.markStored(t, stored)
}

func (w *writer) markStored(t *domain.Token, stored []domain.Envelope) {
	w.t.Helper()
	if err := t.MarkStored(sequences(stored)...); err != nil {
		w.t.Fatalf("mark token stored: %v", err)
	}
	w.stored[t.ID()] = append(w.stored[t.ID()], stored...)
	w.lifecycle += len(stored)
}

func sequences(events []domain.Envelope) []uint64 {
	seqs := make([]uint64, len(events))
	for i, e := range events {
		seqs[i] = e.Sequence
	}
	return seqs
}
