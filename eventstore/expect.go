package eventstore

import (
	"fmt"

	"github.com/tokenledger/tokenledger/domain"
)

// Aggregate names one event stream within the store: a token or an owner.
// The zero value names nothing. Aggregates are comparable values.
type Aggregate struct {
	kind domain.AggregateKind
	id   string
}

// Token names the aggregate of token id.
func Token(id domain.TokenID) Aggregate {
	return Aggregate{kind: domain.AggregateToken, id: id.String()}
}

// Owner names the aggregate of owner (its owner-wide events, not the
// events of its tokens).
func Owner(owner domain.OwnerID) Aggregate {
	return Aggregate{kind: domain.AggregateOwner, id: string(owner)}
}

// NewAggregate names the aggregate of the given kind and id, checking that
// the id is valid for the kind (a canonical TokenID, or a valid owner).
func NewAggregate(kind domain.AggregateKind, id string) (Aggregate, error) {
	switch kind {
	case domain.AggregateToken:
		tid, err := domain.ParseTokenID(id)
		if err != nil {
			return Aggregate{}, err
		}
		return Token(tid), nil
	case domain.AggregateOwner:
		if err := domain.ValidateOwner(domain.OwnerID(id)); err != nil {
			return Aggregate{}, err
		}
		return Owner(domain.OwnerID(id)), nil
	default:
		return Aggregate{}, fmt.Errorf("%w: unknown aggregate kind %q", domain.ErrInvalidArgument, kind)
	}
}

// AggregateOf returns the aggregate event e belongs to, checking its id.
func AggregateOf(e domain.Envelope) (Aggregate, error) {
	a, err := NewAggregate(e.AggregateKind, e.AggregateID)
	if err != nil {
		return Aggregate{}, fmt.Errorf("event %s: %w", e.ID, err)
	}
	return a, nil
}

// Kind returns the aggregate's kind ("" for the zero Aggregate).
func (a Aggregate) Kind() domain.AggregateKind { return a.kind }

// ID returns the aggregate's id: the canonical TokenID or the owner id.
func (a Aggregate) ID() string { return a.id }

// IsZero reports whether a names nothing.
func (a Aggregate) IsZero() bool { return a.kind == "" }

// String returns "token <id>" or "owner <id>".
func (a Aggregate) String() string {
	if a.IsZero() {
		return "no aggregate"
	}
	return string(a.kind) + " " + a.id
}

// Expect is the optimistic concurrency condition of an append: the stream
// sequence of the last event of one aggregate, as the caller last saw it.
// The append succeeds only if that aggregate's last event still has that
// sequence (0: the aggregate has no event yet); otherwise it fails with
// ErrConflict and nothing is stored.
//
// The aggregate checked need not be the one the events belong to. Issuing a
// token appends to the new token's subject but expects the owner's last
// sequence, so an issue and an owner-wide revocation cannot pass each
// other: whichever is stored second sees its expectation fail.
type Expect struct {
	agg     Aggregate
	lastSeq uint64
}

// ExpectToken expects token id's last event to be at stream sequence
// lastSeq (0: the token has no event yet).
func ExpectToken(id domain.TokenID, lastSeq uint64) Expect {
	return Expect{agg: Token(id), lastSeq: lastSeq}
}

// ExpectOwner expects owner's last owner-wide event to be at stream
// sequence lastSeq (0: the owner has no such event yet).
func ExpectOwner(owner domain.OwnerID, lastSeq uint64) Expect {
	return Expect{agg: Owner(owner), lastSeq: lastSeq}
}

// ExpectAt expects aggregate a's last event to be at stream sequence
// lastSeq.
func ExpectAt(a Aggregate, lastSeq uint64) Expect {
	return Expect{agg: a, lastSeq: lastSeq}
}

// ExpectNothing appends without a concurrency check. It is right only for
// events that are valid whatever else happened to the aggregate meanwhile,
// because the domain accepts them in any state: a revocation (terminal and
// idempotent: a second one changes nothing), or an event whose id was
// already chosen and which is being re-sent. Anything decided from the
// aggregate's state (issue, expiry changes, rotation) must use ExpectToken
// or ExpectOwner.
//
// Checked appends do not reliably see unchecked ones that race them: on a
// replicated stream the server checks an expectation against the events
// already applied, so an unchecked event still being replicated can end up
// just before a checked one whose expectation predates it. An unchecked
// event must therefore never be one a checked writer needs to know about
// to decide correctly.
func ExpectNothing() Expect { return Expect{} }

// Aggregate returns the aggregate whose last sequence is checked; zero for
// ExpectNothing.
func (e Expect) Aggregate() Aggregate { return e.agg }

// LastSequence returns the expected sequence of the aggregate's last event.
func (e Expect) LastSequence() uint64 { return e.lastSeq }

// Checked reports whether e checks anything (false for ExpectNothing).
func (e Expect) Checked() bool { return !e.agg.IsZero() }

// String describes e for error messages.
func (e Expect) String() string {
	if !e.Checked() {
		return "no expectation"
	}
	return fmt.Sprintf("%s at sequence %d", e.agg, e.lastSeq)
}

func (e Expect) validate() error {
	if !e.Checked() {
		return nil
	}
	if _, err := NewAggregate(e.agg.kind, e.agg.id); err != nil {
		return fmt.Errorf("expectation: %w", err)
	}
	return nil
}
