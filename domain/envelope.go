package domain

import (
	"crypto/rand"
	"time"

	"github.com/oklog/ulid/v2"
)

// AggregateKind names the kind of aggregate an event belongs to.
type AggregateKind string

const (
	// AggregateToken events have a TokenID as aggregate id.
	AggregateToken AggregateKind = "token"
	// AggregateOwner events have an OwnerID as aggregate id.
	AggregateOwner AggregateKind = "owner"
)

// Meta is who caused a command and in which request, copied into every event
// the command records.
type Meta struct {
	// Actor is who caused the change: for example "token:01J…" for an API
	// caller, "admin:bootstrap", or "system:session-slide".
	Actor string
	// CorrelationID ties together the events of one request (and the
	// request's log lines).
	CorrelationID string
}

// MaxActorLen and MaxCorrelationIDLen bound the free-text metadata.
const (
	MaxActorLen         = 256
	MaxCorrelationIDLen = 128
)

// Validate reports whether m's fields are within their limits.
func (m Meta) Validate() error {
	if err := validateText("actor", m.Actor, 1, MaxActorLen); err != nil {
		return err
	}
	if m.CorrelationID == "" {
		return nil
	}
	return validateText("correlation id", m.CorrelationID, 1, MaxCorrelationIDLen)
}

// Envelope is one event with its metadata: what every stored event looks
// like. Envelopes are values; Data is the typed payload.
type Envelope struct {
	ID            EventID
	Type          EventType
	AggregateKind AggregateKind
	// AggregateID is the token id (canonical ULID), the owner id, or for a
	// validator's usage batch its actor.
	AggregateID   string
	Actor         string
	Time          time.Time
	Schema        int
	CorrelationID string
	Data          Event
	// Sequence is the event's position in the stream. It is set when an
	// event is read back from the event store (or returned by an append),
	// and is zero on an event that is recorded but not stored yet. It is
	// not part of the encoded event.
	Sequence uint64
}

// TokenID returns the token an event belongs to; ok is false for events of
// other aggregates.
func (e Envelope) TokenID() (id TokenID, ok bool) {
	if e.AggregateKind != AggregateToken {
		return TokenID{}, false
	}
	u, err := ulid.ParseStrict(e.AggregateID)
	if err != nil {
		return TokenID{}, false
	}
	return TokenID(u), true
}

// newEnvelope wraps data recorded at instant at by m. Times are normalised
// to UTC with microsecond precision, the precision PostgreSQL keeps, so a
// projection and a fold of the same events agree to the last digit.
func newEnvelope(kind AggregateKind, aggregateID string, data Event, m Meta, at time.Time) (Envelope, error) {
	at = NormalizeTime(at)
	id, err := NewEventID(at, nil)
	if err != nil {
		return Envelope{}, err
	}
	return Envelope{
		ID:            id,
		Type:          data.EventType(),
		AggregateKind: kind,
		AggregateID:   aggregateID,
		Actor:         m.Actor,
		Time:          at,
		Schema:        1,
		CorrelationID: m.CorrelationID,
		Data:          data,
	}, nil
}

// NormalizeTime returns t in UTC, truncated to microseconds and without a
// monotonic clock reading: the form every time in an event takes.
func NormalizeTime(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}

func normalizeTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	n := NormalizeTime(*t)
	return &n
}

// defaultEntropy gives ids crypto/rand randomness, monotonic within one
// millisecond so that ids made in one process sort in the order they were
// made. Safe for concurrent use.
var defaultEntropy = &ulid.LockedMonotonicReader{MonotonicReader: ulid.Monotonic(rand.Reader, 0)}

func (k AggregateKind) valid() bool {
	return k == AggregateToken || k == AggregateOwner || k == AggregateValidator
}

// PayloadAs returns ev as a T, whether it holds a T or a non-nil *T (a
// payload decoded from storage or recorded by a command may be either).
func PayloadAs[T Event](ev Event) (T, bool) {
	switch d := any(ev).(type) {
	case T:
		return d, true
	case *T:
		if d != nil {
			return *d, true
		}
	}
	var zero T
	return zero, false
}
