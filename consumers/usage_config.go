package consumers

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/projections"
)

// Defaults of UsageConfig, used for its zero fields.
const (
	// DefaultUsageBatchSize is the most usage events one batch reads
	// and one transaction writes: large enough that a batch costs a few
	// milliseconds of PostgreSQL per thousand events, small enough that a
	// failed batch is retried cheaply.
	DefaultUsageBatchSize = 1000
	// DefaultUsageMaxWait is how long the consumer waits for a batch to
	// fill after its first event.
	// Under load batches fill before it; when quiet it bounds both the
	// delay before a use shows as "last used" (well under the resolution
	// anyone reads it at) and the write rate, to about two statements a
	// second, while gathering the bursts every validator sends once per
	// flush interval into few batches.
	DefaultUsageMaxWait = 500 * time.Millisecond
	// MaxUsageBatchSize bounds UsageConfig.BatchSize.
	MaxUsageBatchSize = 50_000
)

// UsageConfig configures a UsageConsumer. Zero fields take the defaults
// above (Policy: domain.DefaultPolicy, Clock: domain.SystemClock, Logger:
// slog.Default, RetryInitial and RetryMax: the lifecycle projector's
// defaults).
type UsageConfig struct {
	// Name names the projection: its checkpoint row in PostgreSQL. It must
	// differ from
	// the name of every other projection in the same database. 1 to 64
	// ASCII letters, digits, '-' or '_'.
	Name string
	// BatchSize is the most events read, folded and written at once
	// (1 to MaxUsageBatchSize).
	BatchSize int
	// MaxWait is how long the consumer waits, after the first event of a
	// batch, for BatchSize events before it writes what it has.
	MaxWait time.Duration
	// Policy supplies SessionExtendStep, the debounce of session sliding
	// (see domain.SessionSlideStep).
	Policy domain.Policy
	// Clock tells the time sessions are slid at.
	Clock domain.Clock
	// RetryInitial is the first pause after a failed write (PostgreSQL
	// unreachable, for example) or a batch that could not advance; the
	// pause doubles up to RetryMax. A failed write is retried forever.
	RetryInitial time.Duration
	// RetryMax caps that pause.
	RetryMax time.Duration
	// SkipSequence is the operator's explicit escape hatch for a usage
	// event that can never be decoded: the stream sequence of the one event
	// the consumer may skip, only if it fails to decode and is the next
	// event to apply. The skip is logged at error level and advances the
	// checkpoint past it. 0 skips nothing.
	SkipSequence uint64
	// Logger receives the consumer's logs.
	Logger *slog.Logger
}

// withDefaults returns c with every zero field set to its default.
func (c UsageConfig) withDefaults() UsageConfig {
	if c.Name == "" {
		c.Name = projections.UsageName
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultUsageBatchSize
	}
	if c.MaxWait == 0 {
		c.MaxWait = DefaultUsageMaxWait
	}
	if c.Policy == (domain.Policy{}) {
		c.Policy = domain.DefaultPolicy()
	}
	if c.Clock == nil {
		c.Clock = domain.SystemClock{}
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
// with errors.Join; nil means NewUsageConsumer accepts c.
func (c UsageConfig) Validate() error {
	c = c.withDefaults()
	var errs []error
	if err := validName(c.Name); err != nil {
		errs = append(errs, err)
	}
	if c.BatchSize < 1 || c.BatchSize > MaxUsageBatchSize {
		errs = append(errs, fmt.Errorf("batch size %d outside 1..%d", c.BatchSize, MaxUsageBatchSize))
	}
	if c.MaxWait < 0 {
		errs = append(errs, fmt.Errorf("max wait %s is negative", c.MaxWait))
	}
	if err := c.Policy.Validate(); err != nil {
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
