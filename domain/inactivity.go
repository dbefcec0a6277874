package domain

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"time"

	"github.com/oklog/ulid/v2"
)

// ReasonInactive is the reason of a revocation by the inactivity policy:
// the token was not used for the policy's number of days.
const ReasonInactive = "inactive"

// InactivityRevocationID is the event id of the revocation of token id by
// the inactivity policy, due at due: the same inputs always give the same
// id, so every writer that decides the revocation records the same event,
// and the event store keeps it once. Its ULID time is due; its randomness
// a SHA-256 of the inputs.
func InactivityRevocationID(id TokenID, due time.Time) EventID {
	h := sha256.New()
	h.Write([]byte("tokenledger inactivity revocation\x00"))
	h.Write(id[:])
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(NormalizeTime(due).UnixMicro()))
	h.Write(b[:])
	sum := h.Sum(nil)
	if due.Before(time.UnixMilli(0)) {
		due = time.UnixMilli(0)
	}
	var u ulid.ULID
	_ = u.SetTime(ulid.Timestamp(due)) // within range: events hold years 1 to 9999
	copy(u[6:], sum[:10])
	return EventID(u)
}

// EnforceInactivity applies the inactivity policy to a token that,
// unless used, is to be revoked at due (its last use, or its issue if it
// was never used, plus the policy's number of days):
//
//   - once due has come, it revokes the token with reason ReasonInactive,
//     with the id InactivityRevocationID gives;
//   - before, it records token.expiring with reason ExpiringByInactivity
//     for the shortest of leads that has come (due - lead <= now) after the
//     token was issued, with the id ExpiryNoticeID gives (ExpiresAt is
//     due), as expiry notices are: a longer lead whose instant has also
//     passed is skipped.
//
// Leads may be empty (no warnings). It records at most one event and
// reports whether it did. Nothing is
// recorded for a token that is revoked or expired, by itself or, when
// owner is given, by its owner or its rotation family. Errors wrap
// ErrNotFound or ErrInvalidArgument.
func (t *Token) EnforceInactivity(owner *Owner, due time.Time, leads []time.Duration, m Meta, now time.Time) (bool, error) {
	recorded, err := t.enforceInactivity(owner, due, leads, m, now)
	if err != nil {
		return false, t.wrap("enforce the inactivity policy on", err)
	}
	return recorded, nil
}

func (t *Token) enforceInactivity(owner *Owner, due time.Time, leads []time.Duration, m Meta, now time.Time) (bool, error) {
	if err := t.exists(); err != nil {
		return false, err
	}
	if len(leads) > 0 {
		if err := ValidateExpiryLeads(leads); err != nil {
			return false, err
		}
	}
	if err := m.Validate(); err != nil {
		return false, err
	}
	if err := checkNow(now); err != nil {
		return false, err
	}
	if due.IsZero() {
		return false, errors.New("inactivity revocation instant is zero")
	}
	due = NormalizeTime(due)
	if t.Check(now, owner) != nil {
		return false, nil
	}
	if !now.Before(due) {
		return true, t.recordAs(InactivityRevocationID(t.st.id, due), TokenRevoked{Reason: ReasonInactive}, m, now)
	}
	return t.warnAhead(due, ExpiringByInactivity, leads, m, now)
}
