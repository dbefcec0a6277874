// Package metrics exports tokenledger's Prometheus metrics: HTTP requests,
// forward-auth validations, event store appends, and, read at scrape time
// from the components themselves, the validator's counters and state and the
// projections' lag.
//
// A Metrics has a registry of its own (with the Go runtime and process
// collectors), served by Handler. Every method is safe on a nil *Metrics,
// where it does nothing, so components can be built and tested without
// metrics. All methods are safe for concurrent use.
//
// The library hot path (validator.Validator.Validate) is not instrumented
// per call: the validator counts in its own atomics, and WatchValidator reads
// them when Prometheus scrapes.
//
// # Metrics
//
// Build (package version):
//
//   - tokenledger_build_info{version,revision,go_version} gauge, always 1
//
// Forward-auth refusals (ObserveAuthRefusal):
//
//   - tokenledger_auth_refusals_total{reason} counter
//
// HTTP (InstrumentHTTP):
//
//   - tokenledger_http_requests_total{route,method,code} counter
//   - tokenledger_http_request_duration_seconds{route} histogram
//
// route is the ServeMux pattern that served the request ("GET /v1/tokens/{id}")
// or "unmatched"; method is the request method, or "other" for a non-standard
// one. Neither can take a value a client makes up.
//
// Validation on the HTTP path (ObserveValidation):
//
//   - tokenledger_validation_duration_seconds{result} histogram, 250 ns to 2.5 s
//
// Validator (WatchValidator), read from validator.Stats and validator.Status:
//
//   - tokenledger_validations_total{result} counter: valid, malformed, unknown,
//     expired, revoked, owner_revoked, stale (valid lags by up to one flush
//     interval of the validator)
//   - tokenledger_validator_lookups_total{outcome} counter: how young unknown
//     ids were resolved: loaded (a store load), coalesced (shared another
//     caller's load), limited (refused by the rate limit), negative_hit
//     (refused because a recent load found nothing)
//   - tokenledger_validator_lookup_errors_total counter: store loads that failed
//   - tokenledger_usage_events_published_total, tokenledger_usage_events_dropped_total,
//     tokenledger_usage_uses_published_total, tokenledger_usage_uses_dropped_total,
//     tokenledger_usage_publish_errors_total counters
//   - tokenledger_validator_events_applied_total, tokenledger_validator_tail_restarts_total counters
//   - tokenledger_validator_running, tokenledger_validator_tokens, tokenledger_validator_owners,
//     tokenledger_validator_applied_sequence, tokenledger_validator_stale (0 or 1),
//     tokenledger_validator_stale_seconds gauges
//
// Projections (WatchProjection, WatchLifecycle, WatchUsage), read from their
// Status at scrape time, labelled {projection,kind}:
//
//   - tokenledger_projection_up gauge: 1 if the status could be read at this
//     scrape, 0 if not (then the four gauges below are absent)
//   - tokenledger_projection_status_errors_total counter
//   - tokenledger_projection_lag_events, tokenledger_projection_lag_seconds,
//     tokenledger_projection_checkpoint, tokenledger_projection_halted (0 or 1) gauges
//
// The usage projection (WatchUsage) adds, labelled {projection}, from
// projections.UsageStats: tokenledger_usage_projection_events_total,
// tokenledger_usage_projection_batches_total, tokenledger_usage_projection_rows_total,
// tokenledger_usage_projection_redelivered_total, tokenledger_usage_projection_deferred_total,
// tokenledger_usage_projection_aged_out_total, tokenledger_session_extensions_total,
// tokenledger_session_extension_conflicts_total and
// tokenledger_session_extension_errors_total.
//
// Degraded parts (WatchDegraded), checked at scrape time:
//
//   - tokenledger_degraded{part} gauge: 1 while the part (one a node serves
//     without, such as the read model) fails its check, else 0
//
// Appends (ObserveAppend, ObserveRetry), labelled {op}:
//
//   - tokenledger_append_duration_seconds histogram, 10 µs to 1 s
//   - tokenledger_append_conflicts_total counter (eventstore.ErrConflict)
//   - tokenledger_append_errors_total counter (every other error)
//   - tokenledger_append_retries_total counter
package metrics

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tokenledger/tokenledger/version"
)

// namespace prefixes every tokenledger metric.
const namespace = "tokenledger"

// maxScrapesInFlight bounds concurrent scrapes: each one asks every watched
// projection for its status.
const maxScrapesInFlight = 4

// Metrics holds tokenledger's metrics and the registry that serves them.
// Create it with New. A nil *Metrics is valid: every method is then a no-op.
// Safe for concurrent use.
type Metrics struct {
	reg     *prometheus.Registry
	log     *slog.Logger
	handler http.Handler

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec

	validationDuration *prometheus.HistogramVec
	// validationByResult holds the observers of the known results, so
	// the forward-auth path does no label lookup.
	validationByResult map[string]prometheus.Observer

	appendDuration  *prometheus.HistogramVec
	appendConflicts *prometheus.CounterVec
	appendErrors    *prometheus.CounterVec
	appendRetries   *prometheus.CounterVec
	authRefusals    *prometheus.CounterVec

	validator   *validatorCollector
	projections *projectionCollector
	degraded    *degradedCollector
}

// New returns a Metrics with a registry of its own holding every tokenledger
// metric and the Go runtime and process collectors. logger receives the
// errors of serving a scrape and the projections' status failures; nil
// means slog.Default().
func New(logger *slog.Logger) *Metrics {
	if logger == nil {
		logger = slog.Default()
	}
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		log: logger,
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "http_requests_total",
			Help:      "HTTP requests served, by ServeMux pattern (\"unmatched\" for none), method and status code.",
		}, []string{"route", "method", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "http_request_duration_seconds",
			Help:      "Time to serve an HTTP request, by ServeMux pattern (\"unmatched\" for none).",
			Buckets:   httpBuckets,
		}, []string{"route"}),
		validationDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "validation_duration_seconds",
			Help:      "Time to validate a presented secret on the HTTP path, by result.",
			Buckets:   validationBuckets,
		}, []string{"result"}),
		appendDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "append_duration_seconds",
			Help:      "Time of an append to the event store, whatever its outcome, by operation.",
			Buckets:   appendBuckets,
		}, []string{"op"}),
		appendConflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "append_conflicts_total",
			Help:      "Appends refused because the aggregate changed since it was read (optimistic concurrency), by operation.",
		}, []string{"op"}),
		appendErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "append_errors_total",
			Help:      "Appends that failed for another reason than a conflict, by operation.",
		}, []string{"op"}),
		authRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "auth_refusals_total",
			Help:      "Forward-auth checks (/v1/auth) answered 401 or 403, by reason: no_token, malformed, unknown, expired, revoked, owner_revoked, insufficient_scope.",
		}, []string{"reason"}),
		appendRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "append_retries_total",
			Help:      "Operations decided and appended again after a conflict, by operation.",
		}, []string{"op"}),
		validator:   newValidatorCollector(),
		projections: newProjectionCollector(logger),
		degraded:    newDegradedCollector(),
	}
	m.validationByResult = make(map[string]prometheus.Observer, len(validationResults))
	for _, r := range validationResults {
		m.validationByResult[r] = m.validationDuration.WithLabelValues(r)
	}
	build := version.Get()
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace,
		Name:      "build_info",
		Help:      "Always 1; the labels name the running build: its version, the commit it was built from and the Go release that built it.",
	}, []string{"version", "revision", "go_version"})
	buildInfo.WithLabelValues(build.Version, build.Revision, build.GoVersion).Set(1)
	reg.MustRegister(
		buildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.httpRequests, m.httpDuration, m.validationDuration,
		m.appendDuration, m.appendConflicts, m.appendErrors, m.appendRetries, m.authRefusals,
		m.validator, m.projections, m.degraded,
	)
	m.handler = promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            errorLog{logger},
		ErrorHandling:       promhttp.ContinueOnError,
		Registry:            reg,
		MaxRequestsInFlight: maxScrapesInFlight,
	}))
	return m
}

// Registry returns the registry holding m's metrics, for registering more
// collectors on it; nil for a nil m.
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// Handler returns the handler of GET /metrics: the registry in the Prometheus
// text format (or another format the scraper negotiates). A collector's error
// is logged and the other metrics are still served. For a nil m it answers
// 404.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return m.handler
}

// errorLog passes promhttp's errors to slog.
type errorLog struct{ l *slog.Logger }

// Println logs v as one error record.
func (e errorLog) Println(v ...any) {
	e.l.Error("serving metrics", "error", strings.TrimSpace(fmt.Sprint(v...)))
}
