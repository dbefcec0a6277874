package validator

import (
	"errors"

	"github.com/tokenledger/tokenledger/domain"
)

// Reasons Validate refuses a secret. Match them with errors.Is: the
// returned error may wrap them with detail. Where the domain has a sentinel
// for the same condition the validator's is that very value, so a caller
// matching either the validator's or the domain's sentinel sees it.
var (
	// ErrMalformed: the secret is not in tokenledger's format (length,
	// prefix, characters or checksum), so it was rejected without any
	// lookup. It is domain.ErrMalformedSecret; the returned error says
	// which check failed and never contains the secret.
	ErrMalformed = domain.ErrMalformedSecret
	// ErrUnknown: no token with this secret is known. Either no token has
	// the secret's id, or one has but the secret does not match its hash
	// (the two are not told apart, so a guesser learns nothing). It wraps
	// domain.ErrNotFound.
	ErrUnknown error = &unknownError{}
	// ErrExpired: the token's expiry is at or before now. It is
	// domain.ErrTokenExpired.
	ErrExpired = domain.ErrTokenExpired
	// ErrRevoked: the token itself was revoked. It is
	// domain.ErrTokenRevoked.
	ErrRevoked = domain.ErrTokenRevoked
	// ErrOwnerRevoked: an owner-wide revocation covers the token: its
	// issued event precedes the owner's latest revocation in the stream, or
	// it was created before the revocation's "until". It is
	// domain.ErrOwnerRevoked.
	ErrOwnerRevoked = domain.ErrOwnerRevoked
	// ErrStale: the validator has not been following the lifecycle stream
	// for longer than Config.MaxStaleness, so it cannot tell whether the
	// token was revoked meanwhile, and Config.FailOpen is off.
	ErrStale = errors.New("validator is stale: the lifecycle stream has not been followed within the staleness bound")
	// ErrLookupLimited: the token is not in memory of a validator with a
	// Config.Capacity, and the cold-lookup rate limit is reached, so the
	// validator cannot tell now whether the token is valid, and refuses
	// it (fails closed). It also matches ErrUnknown, so a caller that
	// knows only ErrUnknown refuses it as such; a later attempt may
	// succeed.
	ErrLookupLimited error = &limitedError{}
	// ErrIPNotAllowed: the token is limited to networks (allowed_cidrs)
	// and the client address is in none of them, or was not given, or is
	// not an IP address. The use is not counted.
	ErrIPNotAllowed = errors.New("client address not allowed for this token")
	// ErrNotStarted: Validate was called before Start returned
	// successfully.
	ErrNotStarted = errors.New("validator not started")
	// ErrClosed: Validate was called after Close.
	ErrClosed = errors.New("validator closed")
)

// unknownError is ErrUnknown: its own value, wrapping domain.ErrNotFound.
type unknownError struct{}

func (*unknownError) Error() string { return "unknown token" }

// Unwrap makes ErrUnknown match domain.ErrNotFound.
func (*unknownError) Unwrap() error { return domain.ErrNotFound }

// limitedError is ErrLookupLimited: its own value, wrapping ErrUnknown.
type limitedError struct{}

func (*limitedError) Error() string {
	return "unknown token: not in memory, and the cold lookup rate limit is reached"
}

// Unwrap makes ErrLookupLimited match ErrUnknown.
func (*limitedError) Unwrap() error { return ErrUnknown }

// Preallocated refusals of young unknown ids, so that an attacker sending
// forged ids makes the validator allocate nothing to say no.
var (
	errLookupLimited      = wrapUnknown("young token id not in memory, and the store lookup rate limit is reached")
	errLookupNegative     = wrapUnknown("young token id looked up recently and not found")
	errLookupDisconnected = wrapUnknown("young token id not in memory, and the event store is unreachable")
	errColdDisconnected   = wrapUnknown("token not in memory, and the event store is unreachable")
)

// detailError is ErrUnknown with a detail.
type detailError struct {
	msg   string
	cause error
}

func wrapUnknown(msg string) error { return &detailError{msg: "unknown token: " + msg} }

func (e *detailError) Error() string {
	if e.cause != nil {
		return e.msg + ": " + e.cause.Error()
	}
	return e.msg
}

// Unwrap returns ErrUnknown and the cause, if any.
func (e *detailError) Unwrap() []error {
	if e.cause != nil {
		return []error{ErrUnknown, e.cause}
	}
	return []error{ErrUnknown}
}
