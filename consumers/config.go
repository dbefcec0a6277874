package consumers

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Defaults of LifecycleConfig, used for its zero fields.
const (
	DefaultLifecycleName = "lifecycle"
	DefaultRetryInitial  = 100 * time.Millisecond
	DefaultRetryMax      = 5 * time.Second
	DefaultAckWait       = 30 * time.Second
)

// maxNameLen bounds the projection name, which is also the name of the
// durable JetStream consumer.
const maxNameLen = 64

// LifecycleConfig configures a LifecycleProjector. Zero fields take the
// defaults above; Logger defaults to slog.Default.
type LifecycleConfig struct {
	// Name names the projection: the checkpoint row in PostgreSQL and the
	// durable JetStream consumer are both called Name. Two projectors with
	// the same name share one position; one with a new name starts from
	// the beginning of the stream. 1 to 64 ASCII letters, digits, '-' or
	// '_'.
	Name string
	// RetryInitial is the first pause after a failed attempt to apply an
	// event (PostgreSQL unreachable, for example); the pause doubles after
	// every failure up to RetryMax. The same backoff spaces the redeliveries
	// of an event that halted the projector.
	RetryInitial time.Duration
	// RetryMax caps that pause. A transient failure is retried forever.
	RetryMax time.Duration
	// AckWait is how long the server waits for an event to be acknowledged
	// before delivering it again. While the projector retries an event it
	// tells the server at every attempt that it is still working on it, so
	// AckWait must exceed three times RetryMax; each attempt is bounded by
	// AckWait/3.
	AckWait time.Duration
	// SkipSequence is the operator's explicit escape hatch for an event that
	// can never be decoded: the stream sequence of the one event the
	// projector may skip, only if that event fails to decode, and only when
	// it is the next event to apply. The skip is logged at error level and
	// advances the checkpoint past the event. 0 skips nothing. See the
	// package documentation before using it.
	SkipSequence uint64
	// Logger receives the projector's logs; watermill's own messages are
	// logged one level lower (its per-message info lines at debug).
	Logger *slog.Logger
}

// withDefaults returns c with every zero field set to its default.
func (c LifecycleConfig) withDefaults() LifecycleConfig {
	if c.Name == "" {
		c.Name = DefaultLifecycleName
	}
	if c.RetryInitial == 0 {
		c.RetryInitial = DefaultRetryInitial
	}
	if c.RetryMax == 0 {
		c.RetryMax = DefaultRetryMax
	}
	if c.AckWait == 0 {
		c.AckWait = DefaultAckWait
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports every problem of c, after defaults are applied, joined
// with errors.Join; nil means NewLifecycleProjector accepts c.
func (c LifecycleConfig) Validate() error {
	c = c.withDefaults()
	var errs []error
	if err := validName(c.Name); err != nil {
		errs = append(errs, err)
	}
	if c.RetryInitial < 0 {
		errs = append(errs, fmt.Errorf("retry initial %s is negative", c.RetryInitial))
	}
	if c.RetryMax < c.RetryInitial {
		errs = append(errs, fmt.Errorf("retry max %s is below retry initial %s", c.RetryMax, c.RetryInitial))
	}
	if c.AckWait <= 3*c.RetryMax {
		errs = append(errs, fmt.Errorf("ack wait %s must exceed three times retry max (%s)", c.AckWait, 3*c.RetryMax))
	}
	return errors.Join(errs...)
}

// validName accepts names that are valid both as a JetStream durable
// consumer name and as a checkpoint name.
func validName(name string) error {
	if len(name) > maxNameLen {
		return fmt.Errorf("name %q is longer than %d bytes", name[:maxNameLen]+"…", maxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("name %q: only ASCII letters, digits, '-' and '_' are allowed", name)
		}
	}
	return nil
}
