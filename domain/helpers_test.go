package domain

import (
	"errors"
	"io"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// t0 is the instant tests start at.
var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

var testMeta = Meta{Actor: "admin:test", CorrelationID: "req-1"}

// seededEntropy returns a deterministic entropy source, so that failures
// reproduce.
func seededEntropy(seed uint64) io.Reader {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	return rand.NewChaCha8(s)
}

func ptr[T any](v T) *T { return &v }

// issue issues a token that the test expects to be accepted.
func issue(t *testing.T, p Policy, owner *Owner, req IssueRequest, now time.Time) (*Token, Secret) {
	t.Helper()
	if req.Owner == "" {
		req.Owner = "alice"
	}
	tok, secret, err := IssueToken(p, owner, req, testMeta, now, nil)
	if err != nil {
		t.Fatalf("IssueToken(%+v): %v", req, err)
	}
	return tok, secret
}

// stream plays the event store: it assigns increasing sequences to the
// pending changes of aggregates and keeps every stored event.
type stream struct {
	seq    uint64
	events []Envelope
}

// store appends the pending changes of each aggregate, in the order given.
func (s *stream) store(t *testing.T, aggs ...interface {
	Changes() []Envelope
	MarkStored(...uint64) error
}) {
	t.Helper()
	for _, a := range aggs {
		changes := a.Changes()
		seqs := make([]uint64, len(changes))
		for i, e := range changes {
			s.seq++
			seqs[i] = s.seq
			e.Sequence = s.seq
			s.events = append(s.events, e)
		}
		if err := a.MarkStored(seqs...); err != nil {
			t.Fatalf("MarkStored: %v", err)
		}
	}
}

// of returns the stored events of one aggregate.
func (s *stream) of(kind AggregateKind, id string) []Envelope {
	var out []Envelope
	for _, e := range s.events {
		if e.AggregateKind == kind && e.AggregateID == id {
			out = append(out, e)
		}
	}
	return out
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want one wrapping %v", err, want)
	}
}

func sameTokenState(t *testing.T, got, want *Token) {
	t.Helper()
	if !reflect.DeepEqual(got.st, want.st) {
		t.Fatalf("token state differs:\n got  %+v\n want %+v", got.st, want.st)
	}
}

func expiry(t *testing.T, tok *Token) time.Time {
	t.Helper()
	at, ok := tok.ExpiresAt()
	if !ok {
		t.Fatalf("token %s has no expiry", tok.ID())
	}
	return at
}

func lastChange(t *testing.T, changes []Envelope) Envelope {
	t.Helper()
	if len(changes) == 0 {
		t.Fatal("no changes recorded")
	}
	return changes[len(changes)-1]
}
