package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/tokenledger/tokenledger/api"
	"github.com/tokenledger/tokenledger/audit"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/ledger"
	"github.com/tokenledger/tokenledger/metrics"
	"github.com/tokenledger/tokenledger/projections"
	"github.com/tokenledger/tokenledger/rebuild"
	"github.com/tokenledger/tokenledger/secretscan"
	"github.com/tokenledger/tokenledger/ui"
	"github.com/tokenledger/tokenledger/validator"
)

// Defaults of the API server.
const (
	// DefaultHTTPAddr is where the API listens: loopback, port 8080.
	DefaultHTTPAddr = "127.0.0.1:8080"
	// HTTP server timeouts: a client gets this long to send its headers,
	// its whole request, to read the answer, and to send the next request
	// on a kept-alive connection.
	httpReadHeaderTimeout = 5 * time.Second
	httpReadTimeout       = 30 * time.Second
	httpWriteTimeout      = 30 * time.Second
	httpIdleTimeout       = 120 * time.Second
	httpMaxHeaderBytes    = 16 << 10
)

// APIConfig configures the API node of `tokenledger serve` and `tokenledger
// dev`: the validator, the ledger and the HTTP server.
type APIConfig struct {
	// HTTPAddr is the host:port the API listens on.
	HTTPAddr string
	// PreferFreePort replaces a taken HTTPAddr port by a free one (dev);
	// otherwise a taken port is an error.
	PreferFreePort bool
	// Policy is the issuing policy.
	Policy domain.Policy
	// Clock tells the time; nil means the system clock.
	Clock domain.Clock
	// ProjectionName is the lifecycle projection the validator loads its
	// snapshot from, and whose lag /readyz reports.
	ProjectionName string
	// MaxStaleness and FailOpen: see validator.Config.
	MaxStaleness time.Duration
	FailOpen     bool
	// EvictionGrace and EvictionInterval: see validator.Config.
	EvictionGrace    time.Duration
	EvictionInterval time.Duration
	// Capacity, ColdLookupRate and ColdLookupBurst: see validator.Config.
	Capacity        int
	ColdLookupRate  float64
	ColdLookupBurst int
	// ReadyMaxLag is how many events the lifecycle projection may be
	// behind the stream before /readyz names it a degraded part (the node
	// stays ready: it validates from memory and appends to the store).
	ReadyMaxLag uint64
	// MaxBodyBytes bounds request bodies.
	MaxBodyBytes int64
	// MutationTimeout bounds every request that may append: see
	// api.Config.MutationTimeout.
	MutationTimeout time.Duration
	// RequireAuthScope makes a forward-auth check that names no scope a 400
	// (api.Config.RequireAuthScope).
	RequireAuthScope bool
	// TrustedProxies are the networks of the reverse proxies whose
	// X-Forwarded-For / Forwarded name the client
	// (api.Config.TrustedProxies).
	TrustedProxies []netip.Prefix
	// Metrics receives the node's metrics and serves them at /metrics;
	// nil means a new registry of the node's own.
	Metrics *metrics.Metrics
	// Webhooks answers the webhook routes (StartServe and StartDev set
	// it); WebhookAllowPrivate lets endpoints name loopback, private and
	// link-local addresses.
	Webhooks            api.Webhooks
	WebhookAllowPrivate bool
	// SecretScanningKeysURL is where GitHub's secret scanning keys are
	// published (JSON); empty turns POST /v1/secret-scanning/github off.
	SecretScanningKeysURL string
	// TracerProvider, if set, makes a server span of every request
	// (api.Config.TracerProvider); nil means no HTTP tracing.
	TracerProvider trace.TracerProvider
}

// DefaultAPIConfig returns the API defaults.
func DefaultAPIConfig() APIConfig {
	return APIConfig{
		HTTPAddr:         DefaultHTTPAddr,
		Policy:           domain.DefaultPolicy(),
		ProjectionName:   projections.LifecycleName,
		MaxStaleness:     validator.DefaultMaxStaleness,
		EvictionGrace:    validator.DefaultEvictionGrace,
		EvictionInterval: validator.DefaultEvictionInterval,
		ColdLookupRate:   validator.DefaultColdLookupRate,
		ColdLookupBurst:  validator.DefaultColdLookupBurst,
		ReadyMaxLag:      DefaultReadyMaxLag,
		MaxBodyBytes:     api.DefaultMaxBodyBytes,
		MutationTimeout:  api.DefaultMutationTimeout,

		SecretScanningKeysURL: secretscan.DefaultKeysURL,
	}
}

// secretScanner returns the verifier of secret scanning reports, or nil
// when url is empty.
func secretScanner(url string) api.SecretScanVerifier {
	if url == "" {
		return nil
	}
	return secretscan.NewVerifier(url, nil)
}

// Validate reports every problem with c at once.
func (c APIConfig) Validate() error {
	var errs []error
	if _, port, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		errs = append(errs, fmt.Errorf("http address %q: %w", c.HTTPAddr, err))
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		errs = append(errs, fmt.Errorf("http address %q: bad port", c.HTTPAddr))
	}
	if err := c.Policy.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("policy: %w", err))
	}
	if err := rebuild.ValidateName(c.ProjectionName); err != nil {
		errs = append(errs, err)
	}
	if c.MaxStaleness <= 0 {
		errs = append(errs, fmt.Errorf("max staleness %s must be positive", c.MaxStaleness))
	}
	if c.EvictionGrace <= 0 {
		errs = append(errs, fmt.Errorf("eviction grace %s must be positive", c.EvictionGrace))
	}
	if c.EvictionInterval <= 0 {
		errs = append(errs, fmt.Errorf("eviction interval %s must be positive", c.EvictionInterval))
	}
	if c.Capacity < 0 {
		errs = append(errs, fmt.Errorf("validator capacity %d must not be negative", c.Capacity))
	}
	if c.ColdLookupRate <= 0 {
		errs = append(errs, fmt.Errorf("cold lookup rate %g must be positive", c.ColdLookupRate))
	}
	if c.ColdLookupBurst <= 0 {
		errs = append(errs, fmt.Errorf("cold lookup burst %d must be positive", c.ColdLookupBurst))
	}
	if c.MaxBodyBytes <= 0 {
		errs = append(errs, fmt.Errorf("max body bytes %d must be positive", c.MaxBodyBytes))
	}
	if c.MutationTimeout <= 0 {
		errs = append(errs, fmt.Errorf("mutation timeout %s must be positive", c.MutationTimeout))
	}
	return errors.Join(errs...)
}

// API is a running API node.
type API struct {
	Validator *validator.Validator
	Ledger    *ledger.Service
	Server    *api.Server
	// Metrics are the node's metrics, served at /metrics.
	Metrics *metrics.Metrics
	// Addr is the address the HTTP server listens on.
	Addr net.Addr

	http *http.Server
}

// URL returns the API's base URL, e.g. http://127.0.0.1:8080.
func (a *API) URL() string { return "http://" + a.Addr.String() }

// StartAPI starts the validator on store and read, the ledger and the HTTP
// server.
//
// The node is ready (/readyz 200) while it can do its work: its validator
// runs within its staleness bound ("validator") and the event store
// answers ("event_store"), so it validates and records changes. The read
// model is not needed for that: the projection's lag beyond ReadyMaxLag
// ("projection") and the checks in degraded (the caller's parts the node
// serves without, such as PostgreSQL itself) are degraded parts, named in
// the /readyz body and in tokenledger_degraded{part}, never a reason to be
// dropped by a load balancer, which would otherwise drop every node at
// once when the shared database goes down.
//
// The returned stop shuts the HTTP server down (letting requests in flight
// finish), then closes the validator, which flushes the usage it counted.
func StartAPI(ctx context.Context, cfg APIConfig, store *eventstore.Store, read *projections.ReadModel,
	degraded map[string]api.Check, log *slog.Logger) (_ *API, _ func(context.Context) error, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = domain.SystemClock{}
	}
	ln, err := listen(cfg.HTTPAddr, cfg.PreferFreePort)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			_ = ln.Close()
		}
	}()

	v, err := validator.New(validator.Config{
		Store:            store,
		Projections:      read,
		ProjectionName:   cfg.ProjectionName,
		Clock:            cfg.Clock,
		MaxStaleness:     cfg.MaxStaleness,
		FailOpen:         cfg.FailOpen,
		EvictionGrace:    cfg.EvictionGrace,
		EvictionInterval: cfg.EvictionInterval,
		Capacity:         cfg.Capacity,
		ColdLookupRate:   cfg.ColdLookupRate,
		ColdLookupBurst:  cfg.ColdLookupBurst,
		Logger:           log,
	})
	if err != nil {
		return nil, nil, err
	}
	if err := v.Start(ctx); err != nil {
		return nil, nil, fmt.Errorf("start validator: %w", err)
	}
	m := cfg.Metrics
	if m == nil {
		m = metrics.New(log)
	}
	m.WatchValidator(v)
	a := &API{Validator: v, Addr: ln.Addr(), Metrics: m}
	defer func() {
		if err != nil {
			_ = v.Close(context.WithoutCancel(ctx))
		}
	}()
	a.Ledger, err = ledger.New(ledger.Config{
		Store:       store,
		Projections: read,
		Policy:      cfg.Policy,
		Clock:       cfg.Clock,
		Observer:    v,
		Metrics:     m,
		LocalUsage:  v,
	})
	if err != nil {
		return nil, nil, err
	}
	v.SetReuseHandler(a.Ledger.RevokeReusedFamily)
	ready := map[string]api.Check{
		"validator": func(context.Context) error {
			st := v.Status()
			if !st.Running {
				return errors.New("not running")
			}
			if st.Stale {
				return fmt.Errorf("stale: %v", st.StaleReason)
			}
			return nil
		},
		"event_store": func(ctx context.Context) error {
			if _, err := store.StreamLastSequence(ctx); err != nil {
				return fmt.Errorf("unreachable: %w", err)
			}
			return nil
		},
	}
	parts := map[string]api.Check{
		"projection": func(ctx context.Context) error {
			return projectionLag(ctx, store, read, cfg.ProjectionName, cfg.ReadyMaxLag)
		},
	}
	for name, c := range degraded {
		if _, ok := ready[name]; ok {
			return nil, nil, fmt.Errorf("api: degraded check %q has the name of a readiness check", name)
		}
		parts[name] = c
	}
	for name, c := range parts {
		m.WatchDegraded(name, c)
	}
	auditReader := audit.NewReader(store, read, cfg.ProjectionName)
	pages, err := ui.New(ui.Config{Ledger: a.Ledger, Audit: auditReader, Clock: cfg.Clock, Log: log, MutationTimeout: cfg.MutationTimeout})
	if err != nil {
		return nil, nil, err
	}
	a.Server, err = api.New(api.Config{
		Ledger:           a.Ledger,
		Validator:        v,
		Metrics:          m,
		Log:              log,
		MaxBodyBytes:     cfg.MaxBodyBytes,
		MutationTimeout:  cfg.MutationTimeout,
		Audit:            auditReader,
		Ready:            ready,
		Degraded:         parts,
		OpenAPI:          openAPIDocument(),
		RequireAuthScope: cfg.RequireAuthScope,
		TrustedProxies:   cfg.TrustedProxies,
		Webhooks:         cfg.Webhooks,
		SecretScanning:   secretScanner(cfg.SecretScanningKeysURL),
		TracerProvider:   cfg.TracerProvider,
		UI:               pages.Handler,
	})
	if err != nil {
		return nil, nil, err
	}
	a.http = &http.Server{
		Handler:           a.Server.Handler(),
		ReadHeaderTimeout: httpReadHeaderTimeout,
		ReadTimeout:       httpReadTimeout,
		WriteTimeout:      httpWriteTimeout,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    httpMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := a.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server stopped", "error", err)
		}
	}()
	log.Info("api listening", "url", a.URL())
	stop := func(ctx context.Context) error {
		errHTTP := a.http.Shutdown(ctx)
		errV := v.Close(ctx)
		return errors.Join(errHTTP, errV)
	}
	return a, stop, nil
}

// listen listens on addr; with preferFree a taken port is replaced by a
// free one.
func listen(addr string, preferFree bool) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil || !preferFree {
		if err != nil {
			return nil, fmt.Errorf("api: listen on %s: %w", addr, err)
		}
		return ln, nil
	}
	host, _, _ := net.SplitHostPort(addr)
	ln, err2 := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err2 != nil {
		return nil, fmt.Errorf("api: listen on %s: %w (and on a free port: %w)", addr, err, err2)
	}
	return ln, nil
}

// projectionLag fails when the projection is more than maxLag events behind
// the lifecycle stream, or either cannot be read.
func projectionLag(ctx context.Context, store *eventstore.Store, read *projections.ReadModel, name string, maxLag uint64) error {
	last, err := store.StreamLastSequence(ctx)
	if err != nil {
		return fmt.Errorf("event store: %w", err)
	}
	cp, err := read.Checkpoint(ctx, name)
	if err != nil {
		return fmt.Errorf("read model: %w", err)
	}
	if last > cp && last-cp > maxLag {
		return fmt.Errorf("projection %s is %d events behind the stream (at most %d allowed)", name, last-cp, maxLag)
	}
	return nil
}

func (c APIConfig) clock() domain.Clock {
	if c.Clock == nil {
		return domain.SystemClock{}
	}
	return c.Clock
}
