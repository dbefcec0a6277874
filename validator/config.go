package validator

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/projections"
)

// Defaults of Config, used for its zero fields.
const (
	// DefaultMaxStaleness outlasts a client reconnect and a JetStream
	// leader election (a few seconds), so routine failovers do not turn
	// into refusals, while bounding how long a revocation can go unseen.
	DefaultMaxStaleness = 10 * time.Second
	// DefaultYoungWindow is how old a token id (by the time inside its
	// ULID) may be and still be looked up in the event store when it is
	// not in memory. The live tail delivers an issue within milliseconds;
	// two minutes covers a tail that lags or reconnects, and keeps every
	// older unknown id a pure in-memory refusal.
	DefaultYoungWindow = 2 * time.Minute
	// DefaultMaxClockSkew is how far in the future a token id's time may
	// be and still count as young: the issuing node's clock may run ahead
	// of this one's.
	DefaultMaxClockSkew = 10 * time.Second
	// DefaultLookupRate and DefaultLookupBurst bound store lookups of young
	// unknown ids, whoever sends them: at most DefaultLookupBurst at once,
	// refilled at DefaultLookupRate per second.
	DefaultLookupRate  = 100
	DefaultLookupBurst = 50
	// DefaultLookupTimeout bounds one store lookup.
	DefaultLookupTimeout = 2 * time.Second
	// DefaultNegativeTTL is how long a young id found in no store lookup
	// is refused without asking again; DefaultNegativeCacheSize bounds
	// how many such ids are remembered (the oldest are forgotten first).
	DefaultNegativeTTL       = 5 * time.Second
	DefaultNegativeCacheSize = 10000
	// DefaultFlushInterval: see Config.FlushInterval.
	DefaultFlushInterval = time.Second
	// DefaultFlushQueue is how many flushes may wait for the usage stream:
	// a minute of usage at the default interval.
	DefaultFlushQueue = 60
	// DefaultEvictionGrace is how long after its expiry a token stays in
	// memory, refused with ErrExpired; then it is refused like an unknown
	// id. A day keeps the precise answer for clients that retry an
	// expired token soon after, at the cost of one day of expired tokens
	// in memory.
	DefaultEvictionGrace = 24 * time.Hour
	// DefaultEvictionInterval is how often a validator sweeps its memory
	// for tokens that can no longer validate.
	DefaultEvictionInterval = time.Minute
	// DefaultColdLookupRate and DefaultColdLookupBurst bound the store
	// lookups of tokens not in memory of a validator with a Capacity (cold
	// lookups), apart from those of young ids: at most
	// DefaultColdLookupBurst at once, refilled at DefaultColdLookupRate
	// per second. A cold lookup is one JetStream round trip, about 0.3 ms
	// on one host.
	DefaultColdLookupRate  = 1000
	DefaultColdLookupBurst = 100
	// DefaultUsageActor is the actor of the usage batches a validator
	// records.
	DefaultUsageActor = "system:validator"
)

// Config configures a Validator. Zero fields take the defaults above;
// Store and Projections are required.
type Config struct {
	// Store is the event store: its lifecycle stream is tailed, young
	// unknown ids are looked up in it, and usage events are appended to
	// its usage stream. The validator uses the store's NATS connection and
	// does not close it.
	Store *eventstore.Store
	// Projections is the read model the validator loads its initial state
	// from (a consistent snapshot and the stream sequence it reflects).
	Projections *projections.ReadModel
	// ProjectionName is the projection whose snapshot is loaded.
	ProjectionName string
	// Clock tells "now" for expiry, for the age of token ids, for
	// staleness and for usage times. The default is domain.SystemClock.
	// It is called once per Validate and must not allocate.
	Clock domain.Clock
	// MaxStaleness bounds how long the validator keeps answering after it
	// stopped following the lifecycle stream (NATS disconnected, the
	// consumer failing, an event it cannot decode). Beyond it Validate
	// returns ErrStale, unless FailOpen.
	MaxStaleness time.Duration
	// FailOpen keeps answering from the last known state when the
	// validator is stale, instead of refusing with ErrStale. Revocations
	// made meanwhile are then not seen: choose it only where availability
	// matters more than a timely revocation.
	FailOpen bool
	// YoungWindow: a token id not in memory is looked up in the event
	// store only if the time in its ULID is at most YoungWindow before now
	// (and at most MaxClockSkew after it). Every other unknown id is
	// refused from memory.
	YoungWindow time.Duration
	// MaxClockSkew: see YoungWindow.
	MaxClockSkew time.Duration
	// LookupRate is the sustained number of store lookups per second for
	// young unknown ids, for the whole validator; LookupBurst how many may
	// happen at once. Lookups of the same id are coalesced into one, and
	// only that one counts.
	LookupRate  float64
	LookupBurst int
	// LookupTimeout bounds one store lookup.
	LookupTimeout time.Duration
	// NegativeTTL is how long a young id that a lookup did not find is
	// refused without another lookup; NegativeCacheSize bounds how many
	// such ids are kept.
	NegativeTTL       time.Duration
	NegativeCacheSize int
	// FlushInterval is how often the uses counted in memory are written to
	// the usage stream, as one usage batch holding every token used in the
	// interval. One second bounds what a crash loses to one second of
	// usage, keeps "last used" fresh to the second, and writes one
	// message per second (more only for a flush larger than
	// domain.DefaultUsageBatchBytes) whatever the request rate and the
	// number of tokens used.
	FlushInterval time.Duration
	// FlushQueue is how many flushes may wait for the usage stream while
	// it is unreachable. When the queue is full a new flush is dropped and
	// counted in Stats.UsageEventsDropped.
	FlushQueue int
	// UsageActor is the actor recorded in usage batches.
	UsageActor string
	// EvictionGrace is how long after its expiry a token is kept in
	// memory (refused with ErrExpired); revoked tokens are evicted at the
	// next sweep. An evicted token is refused like an unknown id, from
	// memory. The snapshot a validator starts from is read without them.
	// A rotated-out token is kept while its rotation family has a token
	// that can validate, for the reuse check.
	EvictionGrace time.Duration
	// EvictionInterval is how often the memory is swept for tokens to
	// evict.
	EvictionInterval time.Duration
	// Capacity bounds how many tokens the validator keeps in memory, for
	// deployments whose live set does not fit one node; 0 (the default)
	// keeps every token that can still validate, and refuses any other
	// id older than YoungWindow from memory.
	//
	// With a Capacity the memory holds a hot set: the snapshot is loaded
	// up to Capacity tokens, the tail inserts the tokens it sees issued,
	// and when the memory holds more than Capacity a clock sweep evicts
	// the tokens least recently validated until it holds 15/16 of it.
	// A well-formed secret whose token is not in memory is then looked up
	// in the event store by its id whatever its age (a cold lookup): its
	// events, and its owner's family revocations if it belongs to a
	// rotation family, so that a cold token's revocation is seen however
	// old. Cold lookups are coalesced per id, a miss is remembered for
	// NegativeTTL, and they are rate limited by ColdLookupRate and
	// ColdLookupBurst; beyond the limit a cold token is refused with
	// ErrLookupLimited. See docs/validator-memory.md.
	Capacity int
	// ColdLookupRate is the sustained number of cold lookups per second,
	// for the whole validator; ColdLookupBurst how many may happen at
	// once. They are counted apart from the lookups of young ids
	// (LookupRate), so that cold tokens cannot starve new ones.
	ColdLookupRate  float64
	ColdLookupBurst int
	// Logger receives the validator's logs. The default is slog.Default.
	Logger *slog.Logger
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.ProjectionName == "" {
		c.ProjectionName = projections.LifecycleName
	}
	if c.Clock == nil {
		c.Clock = domain.SystemClock{}
	}
	if c.MaxStaleness == 0 {
		c.MaxStaleness = DefaultMaxStaleness
	}
	if c.YoungWindow == 0 {
		c.YoungWindow = DefaultYoungWindow
	}
	if c.MaxClockSkew == 0 {
		c.MaxClockSkew = DefaultMaxClockSkew
	}
	if c.LookupRate == 0 {
		c.LookupRate = DefaultLookupRate
	}
	if c.LookupBurst == 0 {
		c.LookupBurst = DefaultLookupBurst
	}
	if c.LookupTimeout == 0 {
		c.LookupTimeout = DefaultLookupTimeout
	}
	if c.NegativeTTL == 0 {
		c.NegativeTTL = DefaultNegativeTTL
	}
	if c.NegativeCacheSize == 0 {
		c.NegativeCacheSize = DefaultNegativeCacheSize
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.FlushQueue == 0 {
		c.FlushQueue = DefaultFlushQueue
	}
	if c.UsageActor == "" {
		c.UsageActor = DefaultUsageActor
	}
	if c.EvictionGrace == 0 {
		c.EvictionGrace = DefaultEvictionGrace
	}
	if c.EvictionInterval == 0 {
		c.EvictionInterval = DefaultEvictionInterval
	}
	if c.ColdLookupRate == 0 {
		c.ColdLookupRate = DefaultColdLookupRate
	}
	if c.ColdLookupBurst == 0 {
		c.ColdLookupBurst = DefaultColdLookupBurst
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports every problem of c, after defaults are applied, joined
// with errors.Join; nil means New accepts c.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("an event store is required"))
	}
	if c.Projections == nil {
		errs = append(errs, errors.New("a projections store is required"))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"max staleness", c.MaxStaleness},
		{"young window", c.YoungWindow},
		{"max clock skew", c.MaxClockSkew},
		{"lookup timeout", c.LookupTimeout},
		{"negative ttl", c.NegativeTTL},
		{"flush interval", c.FlushInterval},
		{"eviction grace", c.EvictionGrace},
		{"eviction interval", c.EvictionInterval},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %s must not be negative", d.name, d.v))
		}
	}
	if c.LookupRate < 0 {
		errs = append(errs, fmt.Errorf("lookup rate %g must not be negative", c.LookupRate))
	}
	if c.LookupBurst < 0 {
		errs = append(errs, fmt.Errorf("lookup burst %d must not be negative", c.LookupBurst))
	}
	if c.Capacity < 0 {
		errs = append(errs, fmt.Errorf("capacity %d must not be negative", c.Capacity))
	}
	if c.ColdLookupRate < 0 {
		errs = append(errs, fmt.Errorf("cold lookup rate %g must not be negative", c.ColdLookupRate))
	}
	if c.ColdLookupBurst < 0 {
		errs = append(errs, fmt.Errorf("cold lookup burst %d must not be negative", c.ColdLookupBurst))
	}
	if c.NegativeCacheSize < 0 {
		errs = append(errs, fmt.Errorf("negative cache size %d must not be negative", c.NegativeCacheSize))
	}
	if c.FlushQueue < 0 {
		errs = append(errs, fmt.Errorf("flush queue %d must not be negative", c.FlushQueue))
	}
	if err := (domain.Meta{Actor: c.UsageActor}).Validate(); err != nil {
		errs = append(errs, fmt.Errorf("usage actor: %w", err))
	}
	return errors.Join(errs...)
}
