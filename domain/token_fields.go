package domain

import (
	"slices"
	"time"
)

// ID returns the token's id.
func (t *Token) ID() TokenID { return t.st.id }

// Owner returns whose token it is.
func (t *Token) Owner() OwnerID { return t.st.owner }

// Name returns the token's label.
func (t *Token) Name() string { return t.st.name }

// Scopes returns a copy of the token's scopes, sorted.
func (t *Token) Scopes() []string { return slices.Clone(t.st.scopes) }

// HasScope reports whether the token carries scope s.
func (t *Token) HasScope(s string) bool {
	_, found := slices.BinarySearch(t.st.scopes, s)
	return found
}

// Kind returns whether the token is an api token or a session.
func (t *Token) Kind() TokenKind { return t.st.kind }

// SecretHash returns the SHA-256 of the token's secret.
func (t *Token) SecretHash() SecretHash { return t.st.secretHash }

// CreatedAt returns the instant the token was issued.
func (t *Token) CreatedAt() time.Time { return t.st.createdAt }

// ExpiresAt returns the token's current expiry; ok is false if it never
// expires.
func (t *Token) ExpiresAt() (at time.Time, ok bool) { return t.st.expiresAt, !t.st.expiresAt.IsZero() }

// IdleTimeout returns how far a use may push a session's expiry; zero for
// api tokens.
func (t *Token) IdleTimeout() time.Duration { return t.st.idleTimeout }

// AbsoluteExpiresAt returns the cap a session can never be extended past;
// ok is false for api tokens.
func (t *Token) AbsoluteExpiresAt() (at time.Time, ok bool) {
	return t.st.absoluteExpiresAt, !t.st.absoluteExpiresAt.IsZero()
}

// RevokedAt returns when the token was revoked; ok is false if it was not
// revoked by itself (an owner-wide revocation, and a revocation of its
// rotation family, are the Owner's facts, see Check and
// Owner.FamilyRevocationOf; a token of a State has its family's
// revocation applied, see State.Apply).
func (t *Token) RevokedAt() (at time.Time, ok bool) { return t.st.revokedAt, t.st.revoked }

// RevokedReason returns the reason given at revocation, if any.
func (t *Token) RevokedReason() string { return t.st.revokedReason }

// RevokedBy returns the actor who revoked the token, if it is revoked.
func (t *Token) RevokedBy() string { return t.st.revokedBy }

// LastUsedAt returns the latest recorded use; ok is false if the token was
// never used.
func (t *Token) LastUsedAt() (at time.Time, ok bool) {
	return t.st.lastUsedAt, !t.st.lastUsedAt.IsZero()
}

// UseCount returns the number of recorded uses.
func (t *Token) UseCount() uint64 { return t.st.useCount }

// IssuedSequence returns the stream sequence of the token's issued event,
// or zero while that event is not stored.
func (t *Token) IssuedSequence() uint64 { return t.st.issuedSequence }

// Version returns the stream sequence of the latest stored event applied to
// the token: the expectation under which its Changes must be appended.
// Applying a pending event (sequence zero) leaves it unchanged.
func (t *Token) Version() uint64 { return t.st.version }

// RotatedFrom returns the token this one replaced, if it was issued by a
// rotation.
func (t *Token) RotatedFrom() (id TokenID, ok bool) {
	return t.st.rotatedFrom, !t.st.rotatedFrom.IsZero()
}

// Family returns the first token of the rotation chain this token belongs
// to: the token itself unless it was issued by a rotation that recorded
// its family.
func (t *Token) Family() TokenID {
	if !t.st.family.IsZero() {
		return t.st.family
	}
	return t.st.id
}

// RotatedOut reports whether the token was rotated and its grace has
// passed at now: presenting its secret then is a reuse of a rotated-out
// secret. A revoked token is not rotated out: it is revoked.
func (t *Token) RotatedOut(now time.Time) bool {
	return t.st.issued && !t.st.revoked && !t.st.rotatedTo.IsZero() &&
		!t.st.expiresAt.IsZero() && !now.Before(t.st.expiresAt)
}

// RotatedTo returns the token that replaced this one, if it was rotated.
func (t *Token) RotatedTo() (id TokenID, ok bool) { return t.st.rotatedTo, !t.st.rotatedTo.IsZero() }
