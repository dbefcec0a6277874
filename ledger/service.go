package ledger

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/projections"
)

// DefaultMaxAttempts is how many times a mutation is decided and appended
// before a persisting conflict is reported.
const DefaultMaxAttempts = 8

// Observer receives events right after the store acknowledged them; a
// validator's Observe. It must not block.
type Observer interface {
	Observe(events ...domain.Envelope)
}

// AppendObserver is told the outcome and latency of every append and of
// every conflict retry (package metrics implements it). op names the use
// case: issue, set_expiry, revoke, rotate, revoke_owner, revoke_secret,
// revoke_family.
type AppendObserver interface {
	ObserveAppend(op string, d time.Duration, err error)
	ObserveRetry(op string)
}

// LocalUsage is what this node itself knows of a token's use: a
// validator's LastUse. It must not block.
type LocalUsage interface {
	LastUse(id domain.TokenID) (at time.Time, ok bool)
}

// Config configures a Service.
type Config struct {
	// Store is the event store; *eventstore.Store implements it.
	Store       EventStore
	Projections *projections.ReadModel
	// Policy bounds every lifetime the service decides.
	Policy domain.Policy
	// Clock tells the time; nil means domain.SystemClock.
	Clock domain.Clock
	// Entropy is the randomness of ids and secrets; nil means crypto/rand.
	Entropy io.Reader
	// Observer, if set, is given every stored event (the local validator,
	// so it sees this node's own writes at once).
	Observer Observer
	// Metrics, if set, observes appends and retries.
	Metrics AppendObserver
	// LocalUsage, if set, answers the last use of a token when the read
	// model cannot be read (the local validator); see View.UsagePartial.
	LocalUsage LocalUsage
	// MaxAttempts bounds decide-and-append attempts on conflicts; zero
	// means DefaultMaxAttempts.
	MaxAttempts int
}

// Service runs the use cases. It is safe for concurrent use.
type Service struct {
	cfg Config
}

// New returns a Service for cfg.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Projections == nil {
		return nil, errors.New("ledger: Store and Projections are required")
	}
	if err := cfg.Policy.Validate(); err != nil {
		return nil, fmt.Errorf("ledger: policy: %w", err)
	}
	if cfg.Clock == nil {
		cfg.Clock = domain.SystemClock{}
	}
	if cfg.Entropy == nil {
		cfg.Entropy = rand.Reader
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	return &Service{cfg: cfg}, nil
}

// Policy returns the issuing policy.
func (s *Service) Policy() domain.Policy { return s.cfg.Policy }
