package consumers

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tokenledger/tokenledger/projections"
)

// Defaults of LifecycleConfig, used for its zero fields.
const (
	DefaultRetryInitial = 100 * time.Millisecond
	DefaultRetryMax     = 5 * time.Second
)

// lifecycleBatchSize is the most lifecycle events one transaction applies.
// Under load batches fill while the previous one commits; a quiet stream
// gives batches of one event, applied as soon as they arrive.
const lifecycleBatchSize = 1000

// maxNameLen bounds a projection's name.
const maxNameLen = 64

// LifecycleConfig configures a LifecycleProjector. Zero fields take the
// defaults above; Logger defaults to slog.Default.
type LifecycleConfig struct {
	// Name names the projection: its checkpoint row in PostgreSQL. Two
	// projectors with the same name share one position; one with a new
	// name starts from the beginning of the stream. 1 to 64 ASCII letters,
	// digits, '-' or '_'.
	Name string
	// RetryInitial is the first pause after a failed attempt to apply a
	// batch (PostgreSQL unreachable, for example) or to read the stream;
	// the pause doubles after every failure up to RetryMax. The same
	// backoff spaces the projector's new reads of an event that halted it.
	RetryInitial time.Duration
	// RetryMax caps that pause. A transient failure is retried forever.
	RetryMax time.Duration
	// SkipSequence is the operator's explicit escape hatch for an event that
	// can never be decoded: the stream sequence of the one event the
	// projector may skip, only if that event fails to decode, and only when
	// it is the next event to apply. The skip is logged at error level and
	// advances the checkpoint past the event. 0 skips nothing. See the
	// package documentation before using it.
	SkipSequence uint64
	// Logger receives the projector's logs.
	Logger *slog.Logger
}

// withDefaults returns c with every zero field set to its default.
func (c LifecycleConfig) withDefaults() LifecycleConfig {
	if c.Name == "" {
		c.Name = projections.LifecycleName
	}
	if c.RetryInitial == 0 {
		c.RetryInitial = DefaultRetryInitial
	}
	if c.RetryMax == 0 {
		c.RetryMax = DefaultRetryMax
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
	return errors.Join(errs...)
}

// validName accepts names that are valid as a checkpoint name (and, as
// before, as a JetStream consumer name).
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
