package domain

import (
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// Limits on the free-form fields of a token.
const (
	// MaxNameLen is the longest token name, in bytes.
	MaxNameLen = 200
	// MaxScopes is the largest number of scopes a token may carry.
	MaxScopes = 64
	// MaxScopeLen is the longest scope, in bytes.
	MaxScopeLen = 128
	// MaxReasonLen is the longest revocation reason, in bytes.
	MaxReasonLen = 500
	// MaxClientAddrLen is the longest client address a use records.
	MaxClientAddrLen = 64
	// MaxRouteLen is the longest route a secret reuse records.
	MaxRouteLen = 200
)

// TokenStatus is what a token is at a given instant.
type TokenStatus string

const (
	// StatusActive: the token is neither revoked nor expired.
	StatusActive TokenStatus = "active"
	// StatusExpired: the token's expiry has passed.
	StatusExpired TokenStatus = "expired"
	// StatusRevoked: the token was revoked, by itself or with all tokens of
	// its owner. Revocation is terminal.
	StatusRevoked TokenStatus = "revoked"
)

// Token is the aggregate of one token's history. Its state is changed only
// by applying events: commands (IssueToken, SetExpiry, Revoke, Rotate,
// RecordUse, ExtendSession) validate their input, then record events, which
// are applied at once and kept in Changes until stored. Load a stored token
// with TokenFromHistory. A Token is not safe for concurrent use.
//
// The zero Token is a token not yet issued: its commands report ErrNotFound
// and it applies nothing but a token.issued event.
type Token struct {
	st      tokenState
	changes []Envelope
}

// tokenState is everything Apply changes; zero times mean "not set".
type tokenState struct {
	issued            bool
	id                TokenID
	idText            string
	owner             OwnerID
	name              string
	scopes            []string
	kind              TokenKind
	secretHash        SecretHash
	createdAt         time.Time
	expiresAt         time.Time
	idleTimeout       time.Duration
	absoluteExpiresAt time.Time
	revoked           bool
	revokedAt         time.Time
	revokedReason     string
	revokedBy         string
	// revokedSequence is the stream sequence of the revocation; zero
	// while it is pending.
	revokedSequence uint64
	lastUsedAt      time.Time
	useCount        uint64
	issuedSequence  uint64
	version         uint64
	rotatedFrom     TokenID
	rotatedTo       TokenID
	family          TokenID
	// cidrs are the networks the token may be used from; nil: any.
	cidrs []netip.Prefix
	// notices are the ids of the expiry notices recorded (see
	// AnnounceExpiry); they decide nothing else.
	notices []EventID
}

// TokenFromHistory rebuilds a token from its stored events, oldest first.
// The first event must be the token's token.issued; every event must belong
// to the same token, and non-zero sequences must increase. No history is
// ErrNotFound; anything else wrong is ErrCorruptEvent.
func TokenFromHistory(events []Envelope) (*Token, error) {
	if len(events) == 0 {
		return nil, fmt.Errorf("token history: %w", ErrNotFound)
	}
	id, ok := events[0].TokenID()
	if !ok {
		return nil, fmt.Errorf("token history: %w: first event %s is not a token event", ErrCorruptEvent, events[0].ID)
	}
	if _, ok := PayloadAs[TokenIssued](events[0].Data); !ok {
		return nil, fmt.Errorf("token %s history: %w: first event is %q, not %q", id, ErrCorruptEvent, events[0].Type, TypeTokenIssued)
	}
	t := &Token{}
	var last uint64
	for i, e := range events {
		eid, ok := e.TokenID()
		switch {
		case !ok || eid != id:
			return nil, fmt.Errorf("token %s history: %w: event %d (%s) belongs to %s %q", id, ErrCorruptEvent, i, e.ID, e.AggregateKind, truncateForError(e.AggregateID))
		case e.Data == nil || e.Data.EventType() != e.Type:
			return nil, fmt.Errorf("token %s history: %w: event %d (%s) of type %q has a mismatched payload", id, ErrCorruptEvent, i, e.ID, e.Type)
		case e.Sequence != 0 && e.Sequence <= last:
			return nil, fmt.Errorf("token %s history: %w: event %d (%s) has sequence %d after %d", id, ErrCorruptEvent, i, e.ID, e.Sequence, last)
		}
		if e.Sequence != 0 {
			last = e.Sequence
		}
		t.Apply(e)
	}
	return t, nil
}

// Changes returns the events recorded by commands and not yet marked stored,
// oldest first, in a new slice.
func (t *Token) Changes() []Envelope { return slices.Clone(t.changes) }

// MarkStored records that the pending Changes were appended at the given
// stream sequences, one per change and in order, and clears them: Version
// (and IssuedSequence, if the issued event was among them) take the stored
// sequences. The sequences must increase and follow Version; otherwise
// nothing changes and the error wraps ErrInvalidArgument.
func (t *Token) MarkStored(sequences ...uint64) error {
	if err := checkStored(len(t.changes), t.st.version, sequences); err != nil {
		return fmt.Errorf("token %s: %w", t.st.id, err)
	}
	for i, seq := range sequences {
		switch t.changes[i].Type {
		case TypeTokenIssued:
			t.st.issuedSequence = seq
		case TypeTokenRevoked:
			t.st.revokedSequence = seq
		}
	}
	if n := len(sequences); n > 0 {
		t.st.version = sequences[n-1]
	}
	t.changes = nil
	return nil
}

func checkStored(pending int, version uint64, sequences []uint64) error {
	if len(sequences) != pending {
		return fmt.Errorf("%w: %d sequences for %d pending events", ErrInvalidArgument, len(sequences), pending)
	}
	prev := version
	for _, seq := range sequences {
		if seq <= prev {
			return fmt.Errorf("%w: sequence %d does not follow %d", ErrInvalidArgument, seq, prev)
		}
		prev = seq
	}
	return nil
}

// Status returns what the token is at now: revoked if it or (when owner is
// given) an owner-wide revocation covering it revoked it, else expired if
// now is at or after its expiry, else active. A token not issued has no
// status ("").
func (t *Token) Status(now time.Time, owner *Owner) TokenStatus {
	switch t.Check(now, owner) {
	case nil:
		return StatusActive
	case ErrTokenExpired:
		return StatusExpired
	case ErrNotFound:
		return ""
	default:
		return StatusRevoked
	}
}

// Check reports whether the token may be used at now: nil, or exactly one of
// the sentinels ErrTokenRevoked (revoked by itself, or, when owner is
// given, a revocation of its rotation family covers it; see
// Owner.FamilyRevocationOf), ErrOwnerRevoked (owner, if given, covers it;
// see Owner.Covers), ErrTokenExpired (now is at or after the expiry) or
// ErrNotFound (the token was never issued), in that order of precedence. It
// does not allocate.
func (t *Token) Check(now time.Time, owner *Owner) error {
	switch {
	case t == nil || !t.st.issued:
		return ErrNotFound
	case t.st.revoked, owner.revokesFamily(t):
		return ErrTokenRevoked
	case owner != nil && owner.Covers(t):
		return ErrOwnerRevoked
	case !t.st.expiresAt.IsZero() && !now.Before(t.st.expiresAt):
		return ErrTokenExpired
	}
	return nil
}

// Extends reports whether at would be a later expiry than the current one;
// nil (never expires) is later than any instant. Setting the same expiry
// again does not extend. Who may extend is a matter of authorization.
func (t *Token) Extends(at *time.Time) bool {
	cur, expires := t.ExpiresAt()
	switch {
	case !expires:
		return false
	case at == nil:
		return true
	default:
		return NormalizeTime(*at).After(cur)
	}
}

func (t *Token) exists() error {
	if t == nil || !t.st.issued {
		return ErrNotFound
	}
	return nil
}

func (t *Token) wrap(op string, err error) error {
	if t == nil || !t.st.issued {
		return fmt.Errorf("%s token: %w", op, err)
	}
	return fmt.Errorf("%s token %s: %w", op, t.st.idText, err)
}

// record wraps data in an envelope at now, applies it and keeps it pending.
func (t *Token) record(data Event, m Meta, now time.Time) error {
	e, err := newEnvelope(AggregateToken, t.st.idText, data, m, now)
	if err != nil {
		return err
	}
	t.Apply(e)
	t.changes = append(t.changes, e)
	return nil
}
