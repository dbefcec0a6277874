package webhooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tokenledger/tokenledger/domain"
)

// Defaults of Config.
const (
	DefaultConsumer         = "tokenledger_webhooks"
	DefaultRetryPeriod      = 24 * time.Hour
	DefaultBackoffInitial   = 5 * time.Second
	DefaultBackoffMax       = time.Hour
	DefaultTimeout          = 10 * time.Second
	DefaultMaxResponseBytes = 64 << 10
	DefaultConcurrency      = 64
	DefaultPollInterval     = time.Second
	DefaultAckWait          = 10 * time.Second
)

// Config configures a Dispatcher.
type Config struct {
	// Consumer is the name of the durable JetStream consumer the
	// dispatcher reads the lifecycle stream with.
	Consumer string
	// AckWait is how long the server waits for the fan-out of an event
	// before it delivers the event again (after a crash, say).
	AckWait time.Duration
	// RetryPeriod is how long a delivery is retried after its first
	// attempt before it is marked failed (and its endpoint disabled).
	RetryPeriod time.Duration
	// BackoffInitial is the pause after the first failed attempt; each
	// further failure doubles it, up to BackoffMax.
	BackoffInitial time.Duration
	BackoffMax     time.Duration
	// Timeout bounds one attempt: connecting, sending and the answer's
	// headers and body.
	Timeout time.Duration
	// MaxResponseBytes is how much of an answer's body is read.
	MaxResponseBytes int64
	// Concurrency is how many deliveries are attempted at once (each to
	// another endpoint or token), and how many connections to one host
	// are kept open.
	Concurrency int
	// PollInterval is the longest pause between two looks for deliveries
	// due.
	PollInterval time.Duration
	// AllowPrivateTargets lets deliveries go to loopback, private and
	// link-local addresses (refused by default: server-side request
	// forgery).
	AllowPrivateTargets bool
	// Disabled records the disabling of an endpoint as an event in the
	// stream (ledger.Service implements it); nil records none, leaving it
	// to the endpoint's disabled_at and the log.
	Disabled DisabledRecorder
	// Clock tells the time; nil means domain.SystemClock.
	Clock domain.Clock
	// Logger receives failures; nil discards them. Secrets never reach it.
	Logger *slog.Logger
}

// DisabledRecorder records that an endpoint was disabled, on the history
// of owner (the endpoint's, or, for an endpoint of every owner, the owner
// of the event whose delivery failed), once however often it is called.
type DisabledRecorder interface {
	RecordWebhookDisabled(ctx context.Context, owner domain.OwnerID, d domain.OwnerWebhookDisabled) (bool, error)
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Consumer:         DefaultConsumer,
		AckWait:          DefaultAckWait,
		RetryPeriod:      DefaultRetryPeriod,
		BackoffInitial:   DefaultBackoffInitial,
		BackoffMax:       DefaultBackoffMax,
		Timeout:          DefaultTimeout,
		MaxResponseBytes: DefaultMaxResponseBytes,
		Concurrency:      DefaultConcurrency,
		PollInterval:     DefaultPollInterval,
	}
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Consumer == "" {
		errs = append(errs, errors.New("webhook consumer name must be set"))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"ack wait", c.AckWait}, {"retry period", c.RetryPeriod}, {"initial backoff", c.BackoffInitial},
		{"max backoff", c.BackoffMax}, {"timeout", c.Timeout}, {"poll interval", c.PollInterval}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("webhook %s %s must be positive", d.name, d.v))
		}
	}
	if c.BackoffMax < c.BackoffInitial {
		errs = append(errs, fmt.Errorf("webhook max backoff %s is below the initial backoff %s", c.BackoffMax, c.BackoffInitial))
	}
	if c.MaxResponseBytes < 0 {
		errs = append(errs, fmt.Errorf("webhook max response bytes %d must not be negative", c.MaxResponseBytes))
	}
	if c.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("webhook concurrency %d must be positive", c.Concurrency))
	}
	return errors.Join(errs...)
}

// backoff is the pause after the n-th failed attempt (n >= 1).
func (c Config) backoff(n int) time.Duration {
	d := c.BackoffInitial
	for i := 1; i < n && d < c.BackoffMax; i++ {
		d *= 2
	}
	return min(d, c.BackoffMax)
}
