package metrics

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokenledger/tokenledger/validator"
)

// Results of a validation, the values of the result label.
const (
	ResultValid             = "valid"
	ResultMalformed         = "malformed"
	ResultUnknown           = "unknown"
	ResultExpired           = "expired"
	ResultRevoked           = "revoked"
	ResultOwnerRevoked      = "owner_revoked"
	ResultStale             = "stale"
	ResultInsufficientScope = "insufficient_scope"
	ResultIPNotAllowed      = "ip_not_allowed"
	// ResultError is a validation that ended without a verdict (the
	// validator not started or closed).
	ResultError = "error"
)

// validationResults are the results ObserveValidation records without a
// label lookup.
var validationResults = []string{
	ResultValid, ResultMalformed, ResultUnknown, ResultExpired, ResultRevoked,
	ResultOwnerRevoked, ResultStale, ResultInsufficientScope, ResultIPNotAllowed, ResultError,
}

// validationBuckets span a validation from memory (a few hundred
// nanoseconds) to a store lookup of a young id (milliseconds, bounded by
// validator.DefaultLookupTimeout).
var validationBuckets = []float64{
	250e-9, 500e-9, 1e-6, 2.5e-6, 5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6,
	1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5,
}

// ValidationResult returns the result label of a validator.Validate error:
// ResultValid for nil, the matching Result constant for the validator's
// refusals, ResultError for anything else. It never returns
// ResultInsufficientScope: the caller decides that after a valid result.
func ValidationResult(err error) string {
	switch {
	case err == nil:
		return ResultValid
	case errors.Is(err, validator.ErrMalformed):
		return ResultMalformed
	case errors.Is(err, validator.ErrUnknown):
		return ResultUnknown
	case errors.Is(err, validator.ErrExpired):
		return ResultExpired
	case errors.Is(err, validator.ErrRevoked):
		return ResultRevoked
	case errors.Is(err, validator.ErrOwnerRevoked):
		return ResultOwnerRevoked
	case errors.Is(err, validator.ErrIPNotAllowed):
		return ResultIPNotAllowed
	case errors.Is(err, validator.ErrStale):
		return ResultStale
	default:
		return ResultError
	}
}

// ObserveValidation records one validation on the HTTP path that took d and
// ended with result, one of the Result constants (ValidationResult maps a
// Validate error to one). result becomes a label value: pass only those
// constants.
func (m *Metrics) ObserveValidation(result string, d time.Duration) {
	if m == nil {
		return
	}
	o, ok := m.validationByResult[result]
	if !ok {
		o = m.validationDuration.WithLabelValues(result)
	}
	o.Observe(d.Seconds())
}

// WatchValidator exports v's counters (validator.Stats) and state
// (validator.Status), read when Prometheus scrapes: it adds nothing to
// Validate. It replaces any validator watched before; a nil v stops
// watching.
func (m *Metrics) WatchValidator(v *validator.Validator) {
	if m == nil {
		return
	}
	if v == nil {
		m.validator.watch(nil, nil)
		return
	}
	m.validator.watch(func() (validator.Stats, validator.Status) { return v.Stats(), v.Status() }, time.Now)
}

// validatorSource is what the validator collector reads at each scrape.
type validatorSource struct {
	read func() (validator.Stats, validator.Status)
	now  func() time.Time
}

// validatorCollector exports a validator's Stats and Status as constant
// metrics, built at scrape time.
type validatorCollector struct {
	src atomic.Pointer[validatorSource]

	validations, lookups, lookupErrors                                 *prometheus.Desc
	usageEvents, usageDropped, usesPublished, usesDropped, usageErrors *prometheus.Desc
	eventsApplied, tailRestarts                                        *prometheus.Desc
	evicted, coldLookups                                               *prometheus.Desc
	running, tokens, owners, appliedSequence, stale, staleSeconds      *prometheus.Desc
}

func newValidatorCollector() *validatorCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
	}
	return &validatorCollector{
		validations:     d("validations_total", "Validations by the validator, by result; valid is counted when the uses are flushed, up to one flush interval late.", "result"),
		lookups:         d("validator_lookups_total", "Young unknown token ids, by how they were resolved: loaded from the store, coalesced with another caller's load, limited by the rate limit, or refused by a recent negative load (negative_hit).", "outcome"),
		lookupErrors:    d("validator_lookup_errors_total", "Store loads of young unknown token ids that failed."),
		usageEvents:     d("usage_events_published_total", "Usage batches (one per flush, more for a flush too large for one message) stored in the usage stream."),
		usageDropped:    d("usage_events_dropped_total", "Usage batches given up on (flush queue full or close timed out)."),
		usesPublished:   d("usage_uses_published_total", "Uses counted by the stored token.used events."),
		usesDropped:     d("usage_uses_dropped_total", "Uses counted by the dropped token.used events."),
		usageErrors:     d("usage_publish_errors_total", "Failed attempts to store a batch of token.used events (each is retried until stored or dropped)."),
		eventsApplied:   d("validator_events_applied_total", "Lifecycle events the validator's tail applied."),
		tailRestarts:    d("validator_tail_restarts_total", "Times following the lifecycle stream failed and was started again."),
		evicted:         d("validator_evicted_total", "Tokens evicted from the validator's memory, by reason: dead (revoked, or expired beyond the eviction grace) or capacity (could still validate, evicted least recently validated first to keep the memory within the configured capacity).", "reason"),
		coldLookups:     d("validator_cold_lookups_total", "Token ids neither young nor in memory of a validator with a capacity, by how they were resolved: loaded from the store, coalesced with another caller's load, or limited by the cold lookup rate limit (refused).", "outcome"),
		running:         d("validator_running", "1 between the validator's successful start and its close, else 0."),
		tokens:          d("validator_tokens", "Tokens in the validator's memory."),
		owners:          d("validator_owners", "Owners in the validator's memory."),
		appliedSequence: d("validator_applied_sequence", "Lifecycle stream sequence of the last event the validator applied."),
		stale:           d("validator_stale", "1 while the validator has not followed the lifecycle stream for longer than its staleness bound, else 0."),
		staleSeconds:    d("validator_stale_seconds", "How long the validator has not been following the lifecycle stream; 0 while it follows it."),
	}
}

// watch makes the collector read read at each scrape, with now telling the
// time for the staleness age; a nil read exports nothing.
func (c *validatorCollector) watch(read func() (validator.Stats, validator.Status), now func() time.Time) {
	if read == nil {
		c.src.Store(nil)
		return
	}
	c.src.Store(&validatorSource{read: read, now: now})
}

// Describe implements prometheus.Collector.
func (c *validatorCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.validations, c.lookups, c.lookupErrors,
		c.usageEvents, c.usageDropped, c.usesPublished, c.usesDropped, c.usageErrors,
		c.eventsApplied, c.tailRestarts, c.evicted, c.coldLookups,
		c.running, c.tokens, c.owners, c.appliedSequence, c.stale, c.staleSeconds,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *validatorCollector) Collect(ch chan<- prometheus.Metric) {
	src := c.src.Load()
	if src == nil {
		return
	}
	s, st := src.read()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter(c.validations, s.Valid, ResultValid)
	counter(c.validations, s.Malformed, ResultMalformed)
	counter(c.validations, s.Unknown, ResultUnknown)
	counter(c.validations, s.Expired, ResultExpired)
	counter(c.validations, s.Revoked, ResultRevoked)
	counter(c.validations, s.OwnerRevoked, ResultOwnerRevoked)
	counter(c.validations, s.Stale, ResultStale)
	counter(c.lookups, s.Lookups, "loaded")
	counter(c.lookups, s.LookupsCoalesced, "coalesced")
	counter(c.lookups, s.LookupsLimited, "limited")
	counter(c.lookups, s.NegativeHits, "negative_hit")
	counter(c.lookupErrors, s.LookupErrors)
	counter(c.usageEvents, s.UsageEventsPublished)
	counter(c.usageDropped, s.UsageEventsDropped)
	counter(c.usesPublished, s.UsesPublished)
	counter(c.usesDropped, s.UsesDropped)
	counter(c.usageErrors, s.UsagePublishErrors)
	counter(c.eventsApplied, s.EventsApplied)
	counter(c.tailRestarts, s.TailRestarts)
	counter(c.evicted, s.Evicted, "dead")
	counter(c.evicted, s.CapacityEvicted, "capacity")
	counter(c.coldLookups, s.ColdLookups, "loaded")
	counter(c.coldLookups, s.ColdLookupsCoalesced, "coalesced")
	counter(c.coldLookups, s.ColdLookupsLimited, "limited")
	gauge(c.running, bool01(st.Running))
	gauge(c.tokens, float64(st.Tokens))
	gauge(c.owners, float64(st.Owners))
	gauge(c.appliedSequence, float64(st.AppliedSequence))
	gauge(c.stale, bool01(st.Stale))
	staleFor := 0.0
	if !st.StaleSince.IsZero() {
		staleFor = max(0, src.now().Sub(st.StaleSince).Seconds())
	}
	gauge(c.staleSeconds, staleFor)
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// ObserveAuthRefusal counts a forward-auth check refused for reason
// (tokenledger_auth_refusals_total{reason}). Successful checks are not
// counted here (tokenledger_validation_duration_seconds has them), so the
// hot path pays nothing for it.
func (m *Metrics) ObserveAuthRefusal(reason string) {
	if m == nil {
		return
	}
	m.authRefusals.WithLabelValues(reason).Inc()
}
