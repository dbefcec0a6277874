package domain

import (
	"fmt"
	"time"
)

type lifetime struct {
	expiresAt time.Time // zero: never
	absolute  time.Time // sessions only
	idle      time.Duration
}

// issueLifetime applies p to a validated request at the normalised instant
// now.
func (p Policy) issueLifetime(kind TokenKind, req IssueRequest, now time.Time) (lifetime, error) {
	var requested time.Time
	switch {
	case req.ExpiresIn > 0:
		requested = NormalizeTime(now.Add(req.ExpiresIn))
	case req.ExpiresAt != nil:
		requested = NormalizeTime(*req.ExpiresAt)
	}
	var notAfter time.Time
	if req.NotAfter != nil {
		notAfter = NormalizeTime(*req.NotAfter)
	}
	if kind == KindAPI {
		switch {
		case req.NeverExpires && !p.AllowNeverExpires:
			return lifetime{}, policyViolation("tokens that never expire are not allowed")
		case req.NeverExpires && !notAfter.IsZero():
			return lifetime{}, fmt.Errorf("%w: a token that never expires would outlive %s", ErrLifetimeBound, notAfter.Format(time.RFC3339Nano))
		case req.NeverExpires:
			return lifetime{}, nil
		case requested.IsZero():
			exp, err := capLifetime(NormalizeTime(now.Add(p.DefaultLifetime)), notAfter, now)
			return lifetime{expiresAt: exp}, err
		}
		if err := checkExpiryWindow(requested, now, now.Add(p.MaxLifetime), "the max lifetime"); err != nil {
			return lifetime{}, err
		}
		if err := checkBound(requested, notAfter); err != nil {
			return lifetime{}, err
		}
		return lifetime{expiresAt: requested}, nil
	}

	if req.NeverExpires {
		return lifetime{}, policyViolation("sessions always expire")
	}
	capAt := requested
	if capAt.IsZero() {
		var err error
		if capAt, err = capLifetime(NormalizeTime(now.Add(min(p.DefaultLifetime, p.SessionMaxLifetime))), notAfter, now); err != nil {
			return lifetime{}, err
		}
	}
	if err := checkExpiryWindow(capAt, now, now.Add(p.SessionMaxLifetime), "the session max lifetime"); err != nil {
		return lifetime{}, err
	}
	if err := checkBound(capAt, notAfter); err != nil {
		return lifetime{}, err
	}
	idle := req.IdleTimeout
	if idle == 0 {
		idle = p.SessionIdleTimeout
	}
	if idle > p.SessionMaxLifetime {
		return lifetime{}, policyViolation("idle timeout %s exceeds the session max lifetime %s", idle, p.SessionMaxLifetime)
	}
	exp := NormalizeTime(now.Add(idle))
	if capAt.Before(exp) {
		exp = capAt
	}
	return lifetime{expiresAt: exp, absolute: capAt, idle: idle}, nil
}

// capLifetime caps an expiry the policy chose at notAfter (zero: no bound).
// A bound at or before now leaves no lifetime to give.
func capLifetime(exp, notAfter, now time.Time) (time.Time, error) {
	if notAfter.IsZero() || !exp.After(notAfter) {
		return exp, nil
	}
	if !notAfter.After(now) {
		return time.Time{}, fmt.Errorf("%w: the bound %s has passed", ErrLifetimeBound, notAfter.Format(time.RFC3339Nano))
	}
	return notAfter, nil
}

// checkBound refuses a requested expiry after notAfter (zero: no bound).
func checkBound(at, notAfter time.Time) error {
	if !notAfter.IsZero() && at.After(notAfter) {
		return fmt.Errorf("%w: expiry %s is after %s", ErrLifetimeBound, at.Format(time.RFC3339Nano), notAfter.Format(time.RFC3339Nano))
	}
	return nil
}

// checkExpiryWindow requires now < at <= latest.
func checkExpiryWindow(at, now, latest time.Time, what string) error {
	if !at.After(now) {
		return policyViolation("expiry %s is not in the future", at.Format(time.RFC3339Nano))
	}
	if at.After(latest) {
		return policyViolation("expiry %s is beyond %s (%s)", at.Format(time.RFC3339Nano), what, latest.Format(time.RFC3339Nano))
	}
	return nil
}
