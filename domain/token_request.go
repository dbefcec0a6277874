package domain

import (
	"fmt"
	"slices"
	"time"
)

// IssueRequest describes a token to issue. At most one of ExpiresIn,
// ExpiresAt and NeverExpires may be set; none means the policy's default
// lifetime.
type IssueRequest struct {
	// Owner is whose token it is (required).
	Owner OwnerID
	// Name is a free-form label, 0 to MaxNameLen bytes.
	Name string
	// Scopes are RFC 6749 scope tokens; they are de-duplicated and sorted.
	Scopes []string
	// Kind is KindAPI (the default when empty) or KindSession.
	Kind TokenKind
	// ExpiresIn asks for an expiry relative to the issue instant (> 0).
	ExpiresIn time.Duration
	// ExpiresAt asks for an absolute expiry. For a session it is the
	// absolute cap.
	ExpiresAt *time.Time
	// NeverExpires asks for an api token without expiry, if the policy
	// allows it.
	NeverExpires bool
	// IdleTimeout is a session's idle timeout, in whole seconds; zero means
	// the policy's. Only sessions have one.
	IdleTimeout time.Duration
	// RotatedFrom names the token this one replaces (set by Rotate).
	RotatedFrom *TokenID
	// NotAfter, if set, bounds the new token's life from above, whatever
	// the policy allows: an expiry the policy chooses (the default
	// lifetime, a session's default absolute cap) is capped at it, and a
	// requested expiry after it, or NeverExpires, is refused with
	// ErrLifetimeBound. The ledger sets it to the expiry of a caller
	// without ledger:admin, so that no such caller obtains a token that
	// outlives its own.
	NotAfter *time.Time
	// AllowedCIDRs limits the networks the token may be used from (see
	// NormalizeCIDRs); none means any network.
	AllowedCIDRs []string

	// family is the rotation family of a rotated token (set by Rotate).
	family *TokenID
}

// checkCommon validates what every lifecycle command receives.
func checkCommon(p Policy, m Meta, now time.Time) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if err := m.Validate(); err != nil {
		return err
	}
	return checkNow(now)
}

// checkNow refuses instants whose expiries events could not represent.
func checkNow(now time.Time) error {
	if !validEventTime(now) || !validEventTime(now.Add(maxLifetimeBound)) {
		return fmt.Errorf("%w: current time %s out of range", ErrInvalidArgument, now.UTC().Format(time.RFC3339))
	}
	return nil
}

func validateExpiryRequest(kind TokenKind, req IssueRequest) error {
	given := 0
	if req.ExpiresIn != 0 {
		given++
	}
	if req.ExpiresAt != nil {
		given++
	}
	if req.NeverExpires {
		given++
	}
	switch {
	case given > 1:
		return fmt.Errorf("%w: give at most one of expires in, expires at and never expires", ErrInvalidArgument)
	case req.ExpiresIn < 0:
		return fmt.Errorf("%w: expires in %s is not positive", ErrInvalidArgument, req.ExpiresIn)
	case req.ExpiresAt != nil && !validEventTime(*req.ExpiresAt):
		return fmt.Errorf("%w: expires at is out of range", ErrInvalidArgument)
	case req.NotAfter != nil && !validEventTime(*req.NotAfter):
		return fmt.Errorf("%w: not after is out of range", ErrInvalidArgument)
	case req.IdleTimeout != 0 && kind != KindSession:
		return fmt.Errorf("%w: only sessions have an idle timeout", ErrInvalidArgument)
	case req.IdleTimeout < 0:
		return fmt.Errorf("%w: idle timeout %s is not positive", ErrInvalidArgument, req.IdleTimeout)
	case req.IdleTimeout%time.Second != 0:
		return fmt.Errorf("%w: idle timeout %s is not a whole number of seconds", ErrInvalidArgument, req.IdleTimeout)
	}
	return nil
}

// NormalizeScopes checks scopes and returns them sorted and de-duplicated, in
// a new slice. There may be at most MaxScopes; each must be 1 to MaxScopeLen
// bytes of RFC 6749 scope-token characters (%x21 / %x23-5B / %x5D-7E:
// printable ASCII except space, '"' and '\'). Errors wrap ErrInvalidArgument.
func NormalizeScopes(scopes []string) ([]string, error) {
	if len(scopes) > MaxScopes {
		return nil, fmt.Errorf("%w: %d scopes, at most %d allowed", ErrInvalidArgument, len(scopes), MaxScopes)
	}
	out := make([]string, 0, len(scopes))
	for i, s := range scopes {
		if err := ValidateScope(s); err != nil {
			return nil, fmt.Errorf("scope %d: %w", i, err)
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// ValidateScope reports whether s is one RFC 6749 scope token of at most
// MaxScopeLen bytes. Errors wrap ErrInvalidArgument.
func ValidateScope(s string) error {
	if len(s) == 0 || len(s) > MaxScopeLen {
		return fmt.Errorf("%w: a scope must be 1 to %d bytes, got %d", ErrInvalidArgument, MaxScopeLen, len(s))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7E || c == '"' || c == '\\' {
			return fmt.Errorf("%w: scope %q contains the byte %#02x, not allowed in a scope", ErrInvalidArgument, truncateForError(s), c)
		}
	}
	return nil
}
