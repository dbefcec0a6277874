package validator

import (
	"net/netip"
	"slices"
	"time"

	"github.com/tokenledger/tokenledger/domain"
)

// Principal is whose a validated token is and what it may do.
//
// Owner and Scopes are shared with the validator's state and with every
// other Principal of the same owner or scope set: no copy is made per
// validation. Treat them as read-only; Scopes has no spare capacity, so
// appending to it copies.
type Principal struct {
	// TokenID is the token's id.
	TokenID domain.TokenID
	// Owner is whose token it is.
	Owner domain.OwnerID
	// Scopes are the token's scopes, sorted and without duplicates.
	Scopes []string
	// Kind is domain.KindAPI or domain.KindSession.
	Kind domain.TokenKind
	// ExpiresAt is the token's expiry as known to the validator; the zero
	// time means the token does not expire.
	ExpiresAt time.Time
	// AllowedCIDRs are the networks the token may be used from, sorted;
	// none means any network. Shared like Scopes: read-only.
	AllowedCIDRs []netip.Prefix
}

// HasScope reports whether the token carries scope s. It does not
// allocate.
func (p *Principal) HasScope(s string) bool {
	_, found := slices.BinarySearch(p.Scopes, s)
	return found
}
