package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tokenledger/tokenledger/consumers"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/projections"
)

// Defaults of ProjectConfig.
const (
	// DefaultHealthListen is where `tokenledger project` serves /livez and
	// /readyz: loopback only, for a local probe or sidecar.
	DefaultHealthListen = "127.0.0.1:9091"
	// DefaultReadyMaxLag is how many events the projection may be behind
	// the stream and still be ready.
	DefaultReadyMaxLag = 1000
	// DefaultProjectPostgresConns bounds the projector's PostgreSQL pool:
	// it applies one event at a time, and status reads take one more.
	DefaultProjectPostgresConns = 4
	// readyTimeout bounds one readiness check, so a probe gets an answer
	// while a server hangs.
	readyTimeout = 2 * time.Second
)

// ProjectConfig configures `tokenledger project`: the projection workers
// as deployed in production, apart from the API. Start from
// DefaultProjectConfig.
type ProjectConfig struct {
	// NATSURL is the NATS server (or comma-separated servers) holding the
	// event streams.
	NATSURL string
	// PostgresURL is the database holding the read model; its schema must
	// be current (see Migrate).
	PostgresURL string
	// PostgresMaxConns bounds the connection pool.
	PostgresMaxConns int32
	// Store names the streams and their subjects. It must match the
	// deployment's: opening the store updates a stream whose settings
	// differ.
	Store eventstore.Config
	// Lifecycle configures the lifecycle projector; its Name is the
	// projection's (checkpoint and durable consumer). Its Logger is set by
	// StartProject.
	Lifecycle consumers.LifecycleConfig
	// HealthListen is the address of the health endpoint (/livez,
	// /readyz); empty disables it.
	HealthListen string
	// ReadyMaxLag is how many events behind the stream the projection may
	// be while /readyz still answers ready.
	ReadyMaxLag uint64
}

// DefaultProjectConfig returns the defaults of `tokenledger project`.
func DefaultProjectConfig() ProjectConfig {
	return ProjectConfig{
		NATSURL:          DefaultNATSURL,
		PostgresMaxConns: DefaultProjectPostgresConns,
		Store:            eventstore.DefaultConfig(),
		Lifecycle: consumers.LifecycleConfig{
			Name:         DefaultProjectionName,
			RetryInitial: consumers.DefaultRetryInitial,
			RetryMax:     consumers.DefaultRetryMax,
			AckWait:      consumers.DefaultAckWait,
		},
		HealthListen: DefaultHealthListen,
		ReadyMaxLag:  DefaultReadyMaxLag,
	}
}

// Validate reports every problem with c at once.
func (c ProjectConfig) Validate() error {
	var errs []error
	if err := validateNATSURL(c.NATSURL); err != nil {
		errs = append(errs, err)
	}
	if err := validatePostgresURL(c.PostgresURL); err != nil {
		errs = append(errs, err)
	}
	if c.PostgresMaxConns < 2 {
		errs = append(errs, fmt.Errorf("postgres max conns %d must be at least 2", c.PostgresMaxConns))
	}
	if err := c.Store.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("store: %w", err))
	}
	switch {
	case c.Lifecycle.Name == "":
		errs = append(errs, errors.New("projection name must be set"))
	case strings.HasSuffix(c.Lifecycle.Name, "_rebuild"):
		errs = append(errs, fmt.Errorf("projection name %q ends in _rebuild, which names a rebuild's checkpoint", c.Lifecycle.Name))
	}
	if err := c.Lifecycle.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("lifecycle projector: %w", err))
	}
	if c.HealthListen != "" {
		if _, _, err := net.SplitHostPort(c.HealthListen); err != nil {
			errs = append(errs, fmt.Errorf("health listen address: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Project is a running `tokenledger project`: the lifecycle projector and
// its health endpoint.
type Project struct {
	// Projector is the lifecycle projector; its Status and Ready are safe
	// to call at any time.
	Projector *consumers.LifecycleProjector
	// Projections is the read model the projector writes.
	Projections *projections.Store

	run    *projectorRun
	health net.Addr
}

// HealthAddr returns the address the health endpoint listens on (with the
// port chosen when HealthListen asked for port 0); nil when disabled.
func (p *Project) HealthAddr() net.Addr { return p.health }

// Done is closed when the projector stopped by itself, on an error it does
// not retry (the durable consumer was deleted, the stream is missing): the
// process should exit and be restarted. Err then says why.
func (p *Project) Done() <-chan struct{} { return p.run.done }

// Err returns the error the projector stopped with; nil while it runs or
// after a clean stop.
func (p *Project) Err() error { return p.run.result() }

// StartProject connects to NATS and PostgreSQL, checks the schema, starts
// the lifecycle projector and, unless disabled, the health endpoint:
//
//   - GET /livez answers 200 while the process serves requests;
//   - GET /readyz answers 200 when the projector is consuming, is not
//     halted and is at most cfg.ReadyMaxLag events behind the stream, and
//     503 otherwise; both carry a JSON body with the projection's status
//     (checkpoint, stream end, lag, the halted event) and, when not ready,
//     the reason.
//
// The projector gets a NATS connection of its own (it drains and closes it
// when it stops); the event store and the status reads use another. The
// returned stop function stops the projector first (waiting for the event
// in flight), then the health endpoint, then closes the connections; it
// returns the projector's error, if it stopped with one. It is safe to call
// once StartProject has returned without error.
func StartProject(ctx context.Context, cfg ProjectConfig, log *slog.Logger) (_ *Project, _ func(context.Context) error, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	var cleanups []func(context.Context) error
	stopAll := func(ctx context.Context) error {
		var errs []error
		for i := len(cleanups) - 1; i >= 0; i-- {
			errs = append(errs, cleanups[i](ctx))
		}
		return errors.Join(errs...)
	}
	defer func() {
		if err != nil {
			_ = stopAll(context.WithoutCancel(ctx))
		}
	}()

	nc, store, err := connectStore(ctx, cfg.NATSURL, "tokenledger-project", cfg.Store, nats.MaxReconnects(-1))
	if err != nil {
		return nil, nil, err
	}
	cleanups = append(cleanups, func(context.Context) error {
		_ = store.Close()
		nc.Close()
		return nil
	})
	pool, err := openPool(ctx, cfg.PostgresURL, cfg.PostgresMaxConns)
	if err != nil {
		return nil, nil, err
	}
	cleanups = append(cleanups, func(context.Context) error { pool.Close(); return nil })

	p := &Project{Projections: projections.New(pool)}
	// The health endpoint is stopped last, after the projector, so that it
	// says why the projector is not ready while it stops.
	health := &http.Server{ReadHeaderTimeout: 5 * time.Second}
	var ln net.Listener
	if cfg.HealthListen != "" {
		if ln, err = net.Listen("tcp", cfg.HealthListen); err != nil {
			return nil, nil, fmt.Errorf("health endpoint: %w", err)
		}
		p.health = ln.Addr()
		cleanups = append(cleanups, func(ctx context.Context) error {
			_ = ln.Close()
			return health.Shutdown(ctx)
		})
	}
	p.Projector, p.run, err = startProjector(store, cfg.NATSURL, p.Projections, cfg.Lifecycle, log,
		nats.Name("tokenledger-project-consumer"), nats.MaxReconnects(-1))
	if err != nil {
		return nil, nil, err
	}
	cleanups = append(cleanups, p.run.stop)
	if ln != nil {
		health.Handler = HealthHandler(p.Projector, cfg.ReadyMaxLag)
		go func() { _ = health.Serve(ln) }()
		log.Info("health endpoint listening", "addr", p.health.String(), "livez", "/livez", "readyz", "/readyz")
	}
	log.Info("projecting", "projection", cfg.Lifecycle.Name, "stream", cfg.Store.Stream)
	return p, stopAll, nil
}

// startProjector creates the lifecycle projector on a NATS connection of
// its own and runs it until the returned run is stopped.
func startProjector(store *eventstore.Store, natsURL string, proj *projections.Store,
	cfg consumers.LifecycleConfig, log *slog.Logger, opts ...nats.Option) (*consumers.LifecycleProjector, *projectorRun, error) {
	conn, err := nats.Connect(natsURL, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to nats: %w", err)
	}
	return runProjector(store, conn, proj, cfg, log)
}

// runProjector creates the lifecycle projector on conn, which it then
// owns, and runs it until the returned run is stopped.
func runProjector(store *eventstore.Store, conn *nats.Conn, proj *projections.Store,
	cfg consumers.LifecycleConfig, log *slog.Logger) (*consumers.LifecycleProjector, *projectorRun, error) {
	cfg.Logger = log
	p, err := consumers.NewLifecycleProjector(store, conn, proj, cfg)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &projectorRun{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		err := p.Run(ctx)
		r.mu.Lock()
		r.err = err
		r.mu.Unlock()
		if err != nil {
			log.Error("lifecycle projector stopped", "error", err)
		}
	}()
	return p, r, nil
}

// projectorRun is a projector's Run in its goroutine.
type projectorRun struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	err    error
}

func (r *projectorRun) result() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// stop ends Run and waits for it, at most until ctx ends, and returns the
// error Run stopped with.
func (r *projectorRun) stop(ctx context.Context) error {
	r.cancel()
	select {
	case <-r.done:
		return r.result()
	case <-ctx.Done():
		return fmt.Errorf("lifecycle projector did not stop in time: %w", ctx.Err())
	}
}

// HealthStatus is the JSON body of /livez and /readyz.
type HealthStatus struct {
	// Ready is true when the projector is consuming, not halted and within
	// the lag bound.
	Ready bool `json:"ready"`
	// Reason says why it is not ready; empty when ready.
	Reason string `json:"reason,omitempty"`
	// Projection is the projection's name.
	Projection string `json:"projection"`
	// Checkpoint is the sequence of the last event applied, StreamLast the
	// stream's last sequence.
	Checkpoint uint64 `json:"checkpoint"`
	StreamLast uint64 `json:"stream_last"`
	// LagEvents and LagSeconds are how far behind the projection is, in
	// events and in the age of the oldest event not applied yet.
	LagEvents  uint64  `json:"lag_events"`
	LagSeconds float64 `json:"lag_seconds"`
	// MaxLagEvents is the readiness bound on LagEvents.
	MaxLagEvents uint64 `json:"max_lag_events"`
	// Halted names the event the projector stopped at, if it did.
	Halted *HealthHalt `json:"halted,omitempty"`
	// LastError is the projector's last failure, cleared by the next
	// success.
	LastError string `json:"last_error,omitempty"`
}

// HealthHalt is the event a projector halted at.
type HealthHalt struct {
	Sequence uint64    `json:"sequence"`
	Subject  string    `json:"subject"`
	Reason   string    `json:"reason"`
	Since    time.Time `json:"since"`
}

// Readiness is what the health endpoint asks the projector: its status,
// and whether it is ready within a lag bound. *consumers.LifecycleProjector
// implements it.
type Readiness interface {
	Status(ctx context.Context) (consumers.Status, error)
	Ready(ctx context.Context, maxLag uint64) error
}

// HealthHandler serves /livez (200 while the process serves requests) and
// /readyz (200 when p is ready within maxLag events, 503 with the reason
// otherwise), each with a HealthStatus JSON body; /livez answers without
// asking p anything.
func HealthHandler(p Readiness, maxLag uint64) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		body := HealthStatus{Ready: true, MaxLagEvents: maxLag}
		readyErr := p.Ready(ctx, maxLag)
		st, err := p.Status(ctx)
		if err == nil && st.Halted != nil && !errors.Is(readyErr, consumers.ErrHalted) {
			// The projector halted between the two calls: ask again, so
			// that the reason matches the status shown.
			readyErr = p.Ready(ctx, maxLag)
		}
		if readyErr != nil {
			body.Ready, body.Reason = false, readyErr.Error()
		}
		if err != nil {
			body.Ready = false
			if body.Reason == "" {
				body.Reason = err.Error()
			}
		} else {
			body.Projection, body.Checkpoint, body.StreamLast = st.Name, st.Checkpoint, st.StreamLast
			body.LagEvents, body.LagSeconds, body.LastError = st.LagEvents, st.LagSeconds, st.LastError
			if h := st.Halted; h != nil {
				body.Halted = &HealthHalt{Sequence: h.Sequence, Subject: h.Subject, Reason: h.Reason, Since: h.Since}
			}
		}
		code := http.StatusOK
		if !body.Ready {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, body)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
