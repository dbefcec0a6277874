package ledger

import (
	"net/netip"
	"slices"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/projections"
)

// Reserved scopes.
const (
	// ScopeAdmin may do everything, for every owner.
	ScopeAdmin = "ledger:admin"
	// ScopeIntrospect may introspect any token (RFC 7662).
	ScopeIntrospect = "ledger:introspect"
)

// Caller is who asks: the principal of the token that authenticated the
// request.
type Caller struct {
	TokenID domain.TokenID
	Owner   domain.OwnerID
	// Scopes are the caller's scopes, sorted.
	Scopes []string
	// ExpiresAt is the expiry of the caller's token as it stood when it
	// authenticated the request; zero means it does not expire. Without
	// ledger:admin, no token the caller issues or rotates may outlive it.
	ExpiresAt time.Time
	// AllowedCIDRs are the networks the caller's token may be used from;
	// none means any. Without ledger:admin, no token the caller issues may
	// be usable from elsewhere.
	AllowedCIDRs []netip.Prefix
}

// IsAdmin reports whether the caller holds ledger:admin.
func (c Caller) IsAdmin() bool { return c.HasScope(ScopeAdmin) }

// HasScope reports whether the caller holds scope s.
func (c Caller) HasScope(s string) bool {
	return slices.Contains(c.Scopes, s)
}

// Actor is how the caller is recorded in the events it causes:
// "token:<id>", which the token's own history resolves to its owner.
func (c Caller) Actor() string { return "token:" + c.TokenID.String() }

// lifetimeBound is the latest expiry a token this caller issues or rotates
// may have: nil for an admin or a caller whose token does not expire (the
// policy alone bounds them), else the caller's own expiry.
func (c Caller) lifetimeBound() *time.Time {
	if c.IsAdmin() || c.ExpiresAt.IsZero() {
		return nil
	}
	at := c.ExpiresAt
	return &at
}

// mayManage reports whether the caller may act on owner's tokens.
func (c Caller) mayManage(owner domain.OwnerID) bool {
	return c.IsAdmin() || c.Owner == owner
}

// View is a token as the API shows it: its aggregate, its status at Now,
// and its usage as recorded so far.
type View struct {
	Token *domain.Token
	// Now is the instant Status was decided at.
	Now    time.Time
	Status domain.TokenStatus
	// OwnerRevoked reports that an owner-wide revocation covers the token;
	// OwnerRevocation is then the one that revoked it (see
	// domain.Owner.RevocationOf).
	OwnerRevoked    bool
	OwnerRevocation domain.Revocation
	// FamilyRevoked reports that a revocation of the token's rotation
	// family revoked it, before any revocation of its own;
	// FamilyRevocation is then that revocation (see
	// domain.Owner.FamilyRevocationOf).
	FamilyRevoked    bool
	FamilyRevocation domain.FamilyRevocation
	// LastUsedAt is the latest recorded use (zero: never used); UseCount
	// the number of recorded uses.
	LastUsedAt time.Time
	UseCount   uint64
	// UsagePartial reports that the read model, which counts the uses
	// every validator reported, could not be read for this answer; the
	// answer is not refused for it. LastUsedAt is then the latest use this
	// node's validator counted (zero if it counted none), and UseCount
	// only what the token's lifecycle history records (uses are counted
	// in the usage stream, so usually 0): both are lower bounds. The rest
	// of the view comes from the event store and is complete.
	UsagePartial bool
	// LastUsedIPs are the last distinct client addresses the token was
	// used from, latest first (see projections.MaxRecentAddrs), from the
	// read model; none when it could not be read or recorded none.
	LastUsedIPs []projections.UsedAddr
}
