package domain

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/oklog/ulid/v2"
)

// The expiry notices: facts a token's expiry announces, before it comes
// and when it has passed. They change nothing a validator decides; they
// are there to be seen (history, export, state --at) and announced
// (webhooks).
const (
	TypeTokenExpiring EventType = "token.expiring.v1"
	TypeTokenExpired  EventType = "token.expired.v1"
)

// ExpiringReason says what a token.expiring announces.
type ExpiringReason string

const (
	// ExpiringByExpiry: the token's expiry is within the lead time.
	ExpiringByExpiry ExpiringReason = "expiry"
	// ExpiringByInactivity: an inactivity policy will revoke the token
	// within the lead time unless it is used.
	ExpiringByInactivity ExpiringReason = "inactivity"
)

// Valid reports whether r is a known reason.
func (r ExpiringReason) Valid() bool { return r == ExpiringByExpiry || r == ExpiringByInactivity }

// TokenExpiring announces that a token ends at ExpiresAt, Lead before it
// does (or less, when the notice came late). It is recorded once per token,
// lead time and expiry.
type TokenExpiring struct {
	// ExpiresAt is the instant the token ends.
	ExpiresAt time.Time `json:"expires_at"`
	// Lead is the lead time this notice is for.
	Lead   Seconds        `json:"lead"`
	Reason ExpiringReason `json:"reason"`
}

// EventType implements Event.
func (TokenExpiring) EventType() EventType { return TypeTokenExpiring }

// TokenExpired records that a token's expiry ExpiresAt has passed. It is
// recorded once per token and expiry, after the instant (the token was
// expired from ExpiresAt on, whenever this event was recorded).
type TokenExpired struct {
	ExpiresAt time.Time `json:"expires_at"`
}

// EventType implements Event.
func (TokenExpired) EventType() EventType { return TypeTokenExpired }

func (e *TokenExpiring) normalize() error {
	if !e.Reason.Valid() {
		return fmt.Errorf("unknown expiring reason %q", e.Reason)
	}
	if e.Lead == 0 || e.Lead > maxSeconds {
		return fmt.Errorf("lead %d s out of range", e.Lead)
	}
	var err error
	e.ExpiresAt, err = normalizeEventTime("expires_at", e.ExpiresAt)
	return err
}

func (e *TokenExpired) normalize() error {
	var err error
	e.ExpiresAt, err = normalizeEventTime("expires_at", e.ExpiresAt)
	return err
}

// DefaultExpiryLeads are the lead times of expiry notices unless
// configured otherwise: 30 days, 7 days and 1 day.
var DefaultExpiryLeads = []time.Duration{30 * Day, 7 * Day, Day}

// MaxExpiryLeads bounds the number of lead times.
const MaxExpiryLeads = 16

// ValidateExpiryLeads reports whether leads are usable lead times: 1 to
// MaxExpiryLeads positive whole numbers of seconds, all different. Errors
// wrap ErrInvalidArgument.
func ValidateExpiryLeads(leads []time.Duration) error {
	if len(leads) == 0 || len(leads) > MaxExpiryLeads {
		return fmt.Errorf("%w: %d lead times, want 1 to %d", ErrInvalidArgument, len(leads), MaxExpiryLeads)
	}
	seen := make(map[time.Duration]bool, len(leads))
	for _, l := range leads {
		switch {
		case l <= 0 || l%time.Second != 0 || l > maxSeconds.Duration():
			return fmt.Errorf("%w: lead time %s is not a positive whole number of seconds", ErrInvalidArgument, l)
		case seen[l]:
			return fmt.Errorf("%w: lead time %s given twice", ErrInvalidArgument, l)
		}
		seen[l] = true
	}
	return nil
}

// ExpiryNoticeID is the event id of the notice of type t (TypeTokenExpiring
// or TypeTokenExpired) for token id, lead time lead (zero for
// TypeTokenExpired) and expiry expiresAt: the same inputs always give the
// same id, so every writer that decides the notice records the same event,
// and the event store keeps it once. Its ULID time is the instant the
// notice falls due; its randomness a SHA-256 of the inputs.
func ExpiryNoticeID(t EventType, id TokenID, reason ExpiringReason, lead time.Duration, expiresAt time.Time) EventID {
	h := sha256.New()
	h.Write([]byte("tokenledger expiry notice\x00"))
	h.Write([]byte(t))
	h.Write([]byte{0})
	h.Write(id[:])
	h.Write([]byte(reason))
	h.Write([]byte{0})
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(SecondsOf(lead)))
	binary.BigEndian.PutUint64(b[8:], uint64(NormalizeTime(expiresAt).UnixMicro()))
	h.Write(b[:])
	sum := h.Sum(nil)
	due := expiresAt.Add(-lead)
	if due.Before(time.UnixMilli(0)) {
		due = time.UnixMilli(0)
	}
	var u ulid.ULID
	_ = u.SetTime(ulid.Timestamp(due)) // within range: events hold years 1 to 9999
	copy(u[6:], sum[:10])
	return EventID(u)
}

// AnnounceExpiry records the expiry notice of an api token that is due at
// now, if it was not recorded before:
//
//   - token.expired once the expiry has passed (the token expired by
//     itself, not revoked);
//   - otherwise token.expiring for the shortest of leads that has come
//     (expiry - lead <= now) after the token was issued; a longer lead
//     whose instant has also passed is skipped, never announced late after
//     a shorter one, and a lead not shorter than the token's life at
//     issue (whose instant came before the issue) is never announced. A
//     token rotated out announces no expiring notice.
//
// It records at most one event, with the id ExpiryNoticeID gives, and
// reports whether it did. Nothing is recorded for a token that does not
// expire, a session (whose expiry slides with use), or a token revoked by
// itself or, when owner is given, by its owner or its rotation family.
// Each expiry is announced on its own: a token whose expiry changed has
// notices for the new expiry. Errors wrap ErrNotFound or
// ErrInvalidArgument.
func (t *Token) AnnounceExpiry(owner *Owner, leads []time.Duration, m Meta, now time.Time) (bool, error) {
	recorded, err := t.announceExpiry(owner, leads, m, now)
	if err != nil {
		return false, t.wrap("announce expiry of", err)
	}
	return recorded, nil
}

func (t *Token) announceExpiry(owner *Owner, leads []time.Duration, m Meta, now time.Time) (bool, error) {
	if err := t.exists(); err != nil {
		return false, err
	}
	if err := ValidateExpiryLeads(leads); err != nil {
		return false, err
	}
	if err := m.Validate(); err != nil {
		return false, err
	}
	if err := checkNow(now); err != nil {
		return false, err
	}
	exp := t.st.expiresAt
	if t.st.kind != KindAPI || exp.IsZero() {
		return false, nil
	}
	switch err := t.Check(now, owner); {
	case errors.Is(err, ErrTokenExpired):
		id := ExpiryNoticeID(TypeTokenExpired, t.st.id, "", 0, exp)
		if t.noticed(id) {
			return false, nil
		}
		return true, t.recordAs(id, TokenExpired{ExpiresAt: exp}, m, now)
	case err != nil:
		return false, nil
	}
	if !t.st.rotatedTo.IsZero() {
		return false, nil
	}
	return t.warnAhead(exp, ExpiringByExpiry, leads, m, now)
}

// warnAhead records the token.expiring warning of the shortest lead time
// in leads that is due now before the token ends at end for reason, unless
// it is recorded already, and reports whether it recorded one. A warning
// due before the token was issued never goes out (no warning at issue).
func (t *Token) warnAhead(end time.Time, reason ExpiringReason, leads []time.Duration, m Meta, now time.Time) (bool, error) {
	sorted := slices.Clone(leads)
	slices.Sort(sorted)
	remaining := end.Sub(now)
	for _, lead := range sorted {
		if lead < remaining || !end.Add(-lead).After(t.st.createdAt) {
			continue
		}
		id := ExpiryNoticeID(TypeTokenExpiring, t.st.id, reason, lead, end)
		if t.noticed(id) {
			return false, nil
		}
		return true, t.recordAs(id, TokenExpiring{ExpiresAt: end, Lead: SecondsOf(lead), Reason: reason}, m, now)
	}
	return false, nil
}

// noticed reports whether the notice with id was recorded.
func (t *Token) noticed(id EventID) bool { return slices.Contains(t.st.notices, id) }

// recordAs is record with a chosen event id.
func (t *Token) recordAs(id EventID, data Event, m Meta, now time.Time) error {
	e, err := newEnvelope(AggregateToken, t.st.idText, data, m, now)
	if err != nil {
		return err
	}
	e.ID = id
	t.Apply(e)
	t.changes = append(t.changes, e)
	return nil
}
