package ledger

import (
	"errors"
	"fmt"
)

var (
	// ErrForbidden: the caller is authenticated but may not do this (act
	// for another owner, escalate scopes, extend an expiry).
	ErrForbidden = errors.New("forbidden")
	// ErrLifetimeExceedsCaller: a caller without ledger:admin asked for a
	// token that would outlive its own token (an expiry after the caller's,
	// or none at all), by issuing or by rotating. It wraps ErrForbidden.
	ErrLifetimeExceedsCaller = fmt.Errorf("%w: the token would outlive the caller's own token", ErrForbidden)
	// ErrConflict: the token changed concurrently on every attempt, or its
	// state forbids the change (already rotated). It wraps
	// eventstore.ErrConflict when attempts ran out.
	ErrConflict = errors.New("conflict")
	// ErrUnavailable: the event store or the read model could not be
	// reached or did not answer in time; nothing may have been recorded,
	// and the call can be retried.
	ErrUnavailable = errors.New("unavailable")
)
