package domain

import (
	"errors"
	"fmt"
	"time"
)

// Policy bounds the lifetimes of tokens. Every command that decides a
// lifetime takes the Policy explicitly, so no issue path can skip it.
// Durations that end up in events (the session idle timeout) must be whole
// seconds, the precision events keep.
type Policy struct {
	// DefaultLifetime is the lifetime of an api token issued without an
	// expiry, and the default absolute cap of a session (bounded by
	// SessionMaxLifetime).
	DefaultLifetime time.Duration
	// MaxLifetime is the longest expiry an api token may have, counted from
	// its creation; setting a later expiry afterwards is refused too.
	MaxLifetime time.Duration
	// AllowNeverExpires permits api tokens without expiry. Sessions never
	// get one.
	AllowNeverExpires bool
	// SessionIdleTimeout is how long a session lives after its last use
	// unless the issue request names another idle timeout.
	SessionIdleTimeout time.Duration
	// SessionMaxLifetime caps a session's absolute lifetime from its
	// creation, however much it is used.
	SessionMaxLifetime time.Duration
	// SessionExtendStep debounces sliding: a session's expiry is moved only
	// when the move is longer than this, so a busy session records at most
	// one extension per step instead of one per flush of usage. A session
	// whose idle timeout is not more than twice the step is debounced by
	// half its idle timeout instead (see SessionSlideStep), so every
	// session in steady use slides, whatever idle timeout it was issued
	// with.
	SessionExtendStep time.Duration
}

// DefaultPolicy returns the policy tokenledger uses unless configured
// otherwise:
//   - DefaultLifetime 30 days: every token expires, and a month is long
//     enough for an automation to be noticed and rotated before it breaks;
//   - MaxLifetime 365 days: a token must be rotated at least once a year,
//     bounding how long a leaked secret that nobody noticed stays useful;
//   - AllowNeverExpires false: immortal tokens are the field's most common
//     finding, so they have to be switched on deliberately;
//   - SessionIdleTimeout 30 minutes: the usual interactive idle logout;
//   - SessionMaxLifetime 24 hours: a session in constant use still ends
//     daily, so a stolen session cookie cannot be kept alive by use;
//   - SessionExtendStep 1 minute: a busy session records at most about one
//     extension event a minute, while losing at most a minute of idle time.
func DefaultPolicy() Policy {
	return Policy{
		DefaultLifetime:    30 * 24 * time.Hour,
		MaxLifetime:        365 * 24 * time.Hour,
		AllowNeverExpires:  false,
		SessionIdleTimeout: 30 * time.Minute,
		SessionMaxLifetime: 24 * time.Hour,
		SessionExtendStep:  time.Minute,
	}
}

// Validate reports every problem of p at once (joined with errors.Join), each
// wrapping ErrInvalidArgument; nil means p is usable.
func (p Policy) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("policy: %w: %s", ErrInvalidArgument, fmt.Sprintf(format, args...)))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"default lifetime", p.DefaultLifetime},
		{"max lifetime", p.MaxLifetime},
		{"session idle timeout", p.SessionIdleTimeout},
		{"session max lifetime", p.SessionMaxLifetime},
		{"session extend step", p.SessionExtendStep},
	} {
		if d.v <= 0 {
			bad("%s must be positive, got %s", d.name, d.v)
		}
	}
	if p.DefaultLifetime > p.MaxLifetime {
		bad("default lifetime %s exceeds max lifetime %s", p.DefaultLifetime, p.MaxLifetime)
	}
	if p.SessionIdleTimeout > p.SessionMaxLifetime {
		bad("session idle timeout %s exceeds session max lifetime %s", p.SessionIdleTimeout, p.SessionMaxLifetime)
	}
	if p.SessionIdleTimeout%time.Second != 0 {
		bad("session idle timeout %s is not a whole number of seconds", p.SessionIdleTimeout)
	}
	if p.MaxLifetime > maxLifetimeBound || p.SessionMaxLifetime > maxLifetimeBound {
		bad("lifetimes are limited to %s", maxLifetimeBound)
	}
	return errors.Join(errs...)
}

// SessionSlideStep returns the debounce of sliding a session whose idle
// timeout is idle under the extension step step: the smaller of step and
// idle/2. An extension is recorded once a use would move the expiry by
// more than this, that is once less than idle minus this is left before
// the expiry; with a step of half the idle timeout at most, that is always
// at least half the idle timeout, the time the usage pipeline (the
// validators' flush, the usage consumer's batch) has to record the
// extension before the session expires. A longer step would leave a
// session whose idle timeout is at most the step expiring while in use.
func SessionSlideStep(step, idle time.Duration) time.Duration {
	return min(step, idle/2)
}

// maxLifetimeBound keeps every expiry a policy allows far inside the years
// that RFC 3339 (and so the events' JSON) can represent.
const maxLifetimeBound = 100 * 365 * 24 * time.Hour
