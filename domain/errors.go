package domain

import (
	"errors"
	"fmt"
)

// Sentinel errors for conditions callers act on. Commands wrap them with
// context; match them with errors.Is.
var (
	// ErrInvalidArgument: the input is malformed or outside its limits.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrPolicyViolation: the input is well formed but the policy forbids
	// it (expiry too far ahead, never-expiring token not allowed, ...).
	ErrPolicyViolation = errors.New("policy violation")
	// ErrTokenRevoked: the token is revoked; revocation is terminal.
	ErrTokenRevoked = errors.New("token revoked")
	// ErrOwnerRevoked: the token itself is not revoked, but its owner's
	// tokens were revoked after it was issued (Owner.Covers), which revokes
	// it just as terminally.
	ErrOwnerRevoked = errors.New("token revoked with all tokens of its owner")
	// ErrTokenExpired: the token's expiry has passed. Unlike revocation this
	// is a matter of time, not of a recorded fact.
	ErrTokenExpired = errors.New("token expired")
	// ErrMalformedSecret: a presented secret is not in tokenledger's format
	// (wrong length, prefix, separator, characters or checksum), so it is
	// rejected without any lookup. The error never contains the input.
	ErrMalformedSecret = errors.New("malformed secret")
	// ErrLifetimeBound: the token asked for would live past the bound its
	// request carries (IssueRequest.NotAfter): a requested expiry after
	// it, or no expiry at all.
	ErrLifetimeBound = errors.New("lifetime beyond its bound")
	// ErrOwnerBlocked: the owner's tokens were revoked with an "until"
	// that has not passed yet, so no new token may be issued.
	ErrOwnerBlocked = errors.New("owner blocked from new tokens")
	// ErrNotFound: no such token (no events for its id).
	ErrNotFound = errors.New("not found")
	// ErrUnknownEventType: an event's type is not in the registry.
	ErrUnknownEventType = errors.New("unknown event type")
	// ErrCorruptEvent: an event could not be decoded.
	ErrCorruptEvent = errors.New("corrupt event")
)

// PolicyViolation is the error of a well-formed request the policy forbids.
// It matches ErrPolicyViolation with errors.Is; Rule says which rule it
// breaks, for people ("sessions always expire"), without the context the
// callers wrap around it, so an answer can name the rule once.
type PolicyViolation struct {
	Rule string
}

// Error is "policy violation: " and the rule.
func (e *PolicyViolation) Error() string { return ErrPolicyViolation.Error() + ": " + e.Rule }

// Is reports whether target is ErrPolicyViolation.
func (e *PolicyViolation) Is(target error) bool { return target == ErrPolicyViolation }

// policyViolation returns a *PolicyViolation whose rule is formatted as by
// fmt.Sprintf.
func policyViolation(format string, args ...any) error {
	return &PolicyViolation{Rule: fmt.Sprintf(format, args...)}
}
