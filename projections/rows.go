package projections

import (
	"iter"
	"math"
	"time"

	"github.com/tokenledger/tokenledger/domain"
)

// TokenRow is one row of the tokens table, plus the status computed when it
// was read. Absent values are zero values, as in the domain: a zero time is
// SQL NULL ("never" for ExpiresAt and LastUsedAt), a zero TokenID is no
// token, an empty string is no text. Times are UTC with microsecond
// precision.
type TokenRow struct {
	ID         domain.TokenID
	Owner      domain.OwnerID
	Name       string
	Scopes     []string
	Kind       domain.TokenKind
	SecretHash domain.SecretHash
	// CreatedAt is the time of the token.issued event.
	CreatedAt time.Time
	// ExpiresAt is the current expiry; zero means the token does not
	// expire.
	ExpiresAt time.Time
	// IdleTimeout is a session's idle timeout (whole seconds); zero for api
	// tokens.
	IdleTimeout time.Duration
	// AbsoluteExpiresAt is a session's cap; zero for api tokens.
	AbsoluteExpiresAt time.Time
	RotatedFrom       domain.TokenID
	RotatedTo         domain.TokenID
	// Family is the first token of the rotation chain of a token issued by
	// a rotation (token.issued's family); zero for a token not issued by
	// a rotation, the first of its own family.
	Family domain.TokenID
	// AllowedCIDRs are the networks the token may be used from, in
	// canonical form (see domain.NormalizeCIDRs); none means any network.
	AllowedCIDRs []string
	// RevokedAt is when the token itself was revoked, or its rotation
	// family (owner.family_revoked), whichever came first in the stream;
	// zero if neither was (an owner-wide revocation does not set it, see
	// OwnerRevoked).
	RevokedAt     time.Time
	RevokedReason string
	RevokedBy     string
	// LastUsedAt is the latest recorded use; zero means never used. Read
	// back (Get, List, Snapshot) it is the later of the token's own column,
	// fed by token.used events of the lifecycle stream, and its row of
	// token_usage, fed by the usage stream (ApplyUsageBatch); written (by
	// ApplyBatch, Rebuild.Load) it is the token's own column only.
	LastUsedAt time.Time
	// UseCount is the number of recorded uses, saturating at
	// math.MaxInt64 (the largest bigint). Read back it is the sum of both
	// places, as for LastUsedAt.
	UseCount uint64
	// IssuedSeq is the stream sequence of the token.issued event.
	IssuedSeq uint64
	// LastSeq is the stream sequence of the last event of the token.
	LastSeq uint64

	// Status is computed when the row is read: see the package doc.
	Status domain.TokenStatus
	// OwnerRevoked reports that an owner-wide revocation covers the token
	// (whether or not it was also revoked by itself).
	OwnerRevoked bool
	// OwnerRevokedAt and OwnerRevokedReason tell the owner-wide revocation
	// that revoked the token, computed when the row is read: the first of
	// its owner's revocations, in stream order, that covers it (as
	// domain.Owner.RevocationOf). Zero unless OwnerRevoked.
	OwnerRevokedAt     time.Time
	OwnerRevokedReason string
}

// StatusError says why the token is not active, as domain.Token.Check does
// and with the same precedence: nil when active, else domain.ErrTokenRevoked
// (revoked by itself), domain.ErrOwnerRevoked (covered by an owner-wide
// revocation) or domain.ErrTokenExpired.
func (r *TokenRow) StatusError() error {
	switch {
	case !r.RevokedAt.IsZero():
		return domain.ErrTokenRevoked
	case r.OwnerRevoked:
		return domain.ErrOwnerRevoked
	case r.Status == domain.StatusExpired:
		return domain.ErrTokenExpired
	}
	return nil
}

// resolveStatus sets Status and OwnerRevoked as of now, given the row of the
// token's owner (nil if the owner has none).
func (r *TokenRow) resolveStatus(owner *OwnerRevocationRow, now time.Time) {
	r.OwnerRevoked = owner.Covers(r)
	r.OwnerRevokedAt, r.OwnerRevokedReason = time.Time{}, ""
	if r.OwnerRevoked {
		for _, rev := range owner.Revocations {
			if rev.covers(r) {
				r.OwnerRevokedAt, r.OwnerRevokedReason = rev.At, rev.Reason
				break
			}
		}
	}
	switch {
	case !r.RevokedAt.IsZero() || r.OwnerRevoked:
		r.Status = domain.StatusRevoked
	case !r.ExpiresAt.IsZero() && !now.Before(r.ExpiresAt):
		r.Status = domain.StatusExpired
	default:
		r.Status = domain.StatusActive
	}
}

// OwnerRevocationRow is one row of owner_revocations: the latest owner-wide
// revocation of an owner's tokens.
type OwnerRevocationRow struct {
	Owner domain.OwnerID
	// RevokedBefore is the instant of the latest revocation, for display.
	RevokedBefore time.Time
	// RevokedBeforeSeq is the stream sequence of the latest revocation:
	// tokens of the owner issued at a lower sequence are revoked.
	RevokedBeforeSeq uint64
	// Until is the latest "no new tokens before" instant of all the
	// owner's revocations; zero if none set one.
	Until  time.Time
	Reason string
	// LastSeq is the stream sequence of the owner's last event.
	LastSeq uint64
	// Revocations are every revocation of the owner, in stream order; nil
	// when only the columns above are read.
	Revocations []RevocationEntry
}

// RevocationEntry is one owner-wide revocation (an owner.tokens_revoked
// event), as the revocations column keeps it.
type RevocationEntry struct {
	// Sequence is the stream sequence of the event.
	Sequence uint64 `json:"seq"`
	// At is its instant (RevokedBefore).
	At time.Time `json:"at"`
	// Until is the ban it set; zero if none.
	Until time.Time `json:"until,omitzero"`
	// Reason is the reason given, if any.
	Reason string `json:"reason,omitempty"`
}

// covers reports whether this one revocation revokes t, a token of its
// owner, by the rule of OwnerRevocationRow.Covers.
func (e RevocationEntry) covers(t *TokenRow) bool {
	return t.IssuedSeq < e.Sequence || (!e.Until.IsZero() && t.CreatedAt.Before(e.Until))
}

// Covers reports whether the revocation revokes token t, as
// domain.Owner.Covers does for stored events: t is o's and was issued
// before the revocation in the stream, or created before Until. A nil o
// covers nothing.
func (o *OwnerRevocationRow) Covers(t *TokenRow) bool {
	if o == nil || t.Owner != o.Owner {
		return false
	}
	return t.IssuedSeq < o.RevokedBeforeSeq || (!o.Until.IsZero() && t.CreatedAt.Before(o.Until))
}

// TokenRowFromDomain returns the row the projection holds for a token
// folded by domain.State: every column, Status unset. Use it to feed
// Rebuild.Load from a fold. A token loaded with domain.TokenFromHistory
// alone does not know a revocation of its rotation family (its owner's
// event, which domain.State applies to it).
func TokenRowFromDomain(t *domain.Token) TokenRow {
	r := TokenRow{
		ID:            t.ID(),
		Owner:         t.Owner(),
		Name:          t.Name(),
		Scopes:        t.Scopes(),
		Kind:          t.Kind(),
		SecretHash:    t.SecretHash(),
		CreatedAt:     t.CreatedAt(),
		IdleTimeout:   t.IdleTimeout(),
		RevokedReason: t.RevokedReason(),
		RevokedBy:     t.RevokedBy(),
		UseCount:      min(t.UseCount(), math.MaxInt64),
		IssuedSeq:     t.IssuedSequence(),
		LastSeq:       t.Version(),
	}
	r.ExpiresAt, _ = t.ExpiresAt()
	r.AbsoluteExpiresAt, _ = t.AbsoluteExpiresAt()
	r.RotatedFrom, _ = t.RotatedFrom()
	r.RotatedTo, _ = t.RotatedTo()
	if f := t.Family(); f != t.ID() {
		r.Family = f
	}
	r.RevokedAt, _ = t.RevokedAt()
	r.LastUsedAt, _ = t.LastUsedAt()
	r.AllowedCIDRs = domain.CIDRStrings(t.AllowedCIDRs())
	return r
}

// OwnerRowFromDomain returns the owner_revocations row of an owner folded by
// domain.State; ok is false if the owner has no revocation (and so no row).
func OwnerRowFromDomain(o *domain.Owner) (row OwnerRevocationRow, ok bool) {
	before, revoked := o.RevokedBefore()
	if !revoked {
		return OwnerRevocationRow{}, false
	}
	row = OwnerRevocationRow{
		Owner:            o.ID(),
		RevokedBefore:    before,
		RevokedBeforeSeq: o.RevokedBeforeSequence(),
		Reason:           o.Reason(),
		LastSeq:          o.Version(),
	}
	row.Until, _ = o.Until()
	for _, r := range o.Revocations() {
		row.Revocations = append(row.Revocations, RevocationEntry{Sequence: r.Sequence, At: r.At, Until: r.Until, Reason: r.Reason})
	}
	return row, true
}

// StateTokenRows yields the rows of every token of s, in id order.
func StateTokenRows(s *domain.State) iter.Seq[TokenRow] {
	return func(yield func(TokenRow) bool) {
		for t := range s.Tokens() {
			if !yield(TokenRowFromDomain(t)) {
				return
			}
		}
	}
}

// StateOwnerRows yields the owner_revocations rows of s, in owner order.
func StateOwnerRows(s *domain.State) iter.Seq[OwnerRevocationRow] {
	return func(yield func(OwnerRevocationRow) bool) {
		for o := range s.Owners() {
			if row, ok := OwnerRowFromDomain(o); ok && !yield(row) {
				return
			}
		}
	}
}
