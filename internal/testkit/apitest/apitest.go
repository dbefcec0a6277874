// Package apitest runs a whole tokenledger API node for tests: a real
// embedded nats-server with JetStream, a real PostgreSQL database (package
// stacktest), the lifecycle projector and the usage consumer, and the API
// node exactly as `tokenledger serve` assembles it (app.StartAPI), serving on
// a loopback port. Import it only from _test.go files; the test binary's
// TestMain must call stacktest.Main.
package apitest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"

	"github.com/tokenledger/tokenledger/app"
	"github.com/tokenledger/tokenledger/consumers"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/ledger"
	"github.com/tokenledger/tokenledger/migrations"
	"github.com/tokenledger/tokenledger/projections"
	"github.com/tokenledger/tokenledger/stack"
	"github.com/tokenledger/tokenledger/webhooks"
)

// Stack is a running API node and everything behind it.
type Stack struct {
	// URL is the API's base URL (http://127.0.0.1:port).
	URL string
	// Admin is the secret of the bootstrap admin token (owner "admin",
	// scope ledger:admin).
	Admin string
	// AdminID is its token id.
	AdminID domain.TokenID
	// Clock is the clock of the ledger, the validator and the read model;
	// advance it to expire tokens.
	Clock *domain.ManualClock
	// Policy is the issuing policy.
	Policy domain.Policy

	NATS        *stack.NATS
	Store       *eventstore.Store
	Pool        *pgxpool.Pool
	Projections *projections.ReadModel
	Projector   *consumers.LifecycleProjector
	Usage       *consumers.UsageConsumer
	API         *app.API

	natsStopped   bool
	stopProjector func() error
	opts          Options
	log           *slog.Logger
}

// apiConfig is the configuration of the stack's API nodes.
func (s *Stack) apiConfig() app.APIConfig {
	cfg := app.DefaultAPIConfig()
	cfg.HTTPAddr, cfg.Policy, cfg.Clock = "127.0.0.1:0", s.Policy, s.Clock
	if s.opts.MutationTimeout > 0 {
		cfg.MutationTimeout = s.opts.MutationTimeout
	}
	cfg.RequireAuthScope = s.opts.RequireAuthScope
	cfg.Webhooks = webhooks.NewManager(s.Pool, s.Store, false, s.Clock)
	cfg.SecretScanningKeysURL = s.opts.SecretScanningKeysURL
	cfg.TracerProvider = s.opts.TracerProvider
	cfg.TrustedProxies = s.opts.TrustedProxies
	return cfg
}

// StartNode starts another API node on the stack's event store and read
// model, with a validator of its own (loaded from the read model, tailing
// the stream), as a second `tokenledger serve` would be, and returns its
// base URL. It is stopped when the test ends.
func (s *Stack) StartNode(tb testing.TB) string {
	tb.Helper()
	api, stop, err := app.StartAPI(context.Background(), s.apiConfig(), s.Store, s.Projections, nil, s.log)
	if err != nil {
		tb.Fatalf("start another api node: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := stop(ctx); err != nil && !s.natsStopped {
			tb.Errorf("stop api node: %v", err)
		}
	})
	return api.URL()
}

// StopProjector stops the lifecycle projector and waits until it has
// stopped, so that the read model stays behind the stream from then on.
func (s *Stack) StopProjector(tb testing.TB) {
	tb.Helper()
	if err := s.stopProjector(); err != nil && !errors.Is(err, context.Canceled) {
		tb.Fatalf("projector: %v", err)
	}
}

// StopNATS shuts the nats-server down for good, to test what happens
// without the event store. The stack's cleanup then does not expect the
// validator to flush its usage.
func (s *Stack) StopNATS(tb testing.TB) {
	tb.Helper()
	s.natsStopped = true
	s.NATS.Shutdown()
}

// Options change the stack Start builds.
type Options struct {
	// Log receives the logs of every component; nil discards them.
	Log *slog.Logger
	// Policy replaces domain.DefaultPolicy.
	Policy *domain.Policy
	// MutationTimeout replaces the API's default (api.DefaultMutationTimeout).
	MutationTimeout time.Duration
	// RequireAuthScope starts the API node with the setting of that name
	// (app.APIConfig.RequireAuthScope).
	RequireAuthScope bool
	// SecretScanningKeysURL is where the API node fetches the keys of
	// secret scanning reports; empty leaves the route off.
	SecretScanningKeysURL string
	// TracerProvider starts the API node with HTTP server spans
	// (app.APIConfig.TracerProvider).
	TracerProvider trace.TracerProvider
	// TrustedProxies starts the API node with the setting of that name
	// (app.APIConfig.TrustedProxies).
	TrustedProxies []netip.Prefix
}

// Start starts a stack for tb and stops it at cleanup: the API first (so
// the validator flushes usage), then the workers, then the connections.
func Start(tb testing.TB, o Options) *Stack {
	tb.Helper()
	ctx := context.Background()
	log := o.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Stack{
		Clock:  domain.NewManualClock(time.Now().UTC().Truncate(time.Microsecond)),
		Policy: domain.DefaultPolicy(),
	}
	if o.Policy != nil {
		s.Policy = *o.Policy
	}
	s.NATS = stacktest.NATS(tb)
	nc := stacktest.Conn(tb, s.NATS)
	var err error
	s.Store, err = eventstore.Open(ctx, nc, domain.NewDefaultRegistry(), eventstore.DefaultConfig())
	if err != nil {
		tb.Fatalf("open event store: %v", err)
	}
	s.Pool = stacktest.PostgresPool(tb)
	conn, err := s.Pool.Acquire(ctx)
	if err != nil {
		tb.Fatalf("acquire: %v", err)
	}
	err = migrations.Migrate(ctx, conn.Conn())
	conn.Release()
	if err != nil {
		tb.Fatalf("migrate: %v", err)
	}
	s.Projections = projections.New(s.Pool, projections.WithClock(s.Clock))

	boot, err := ledger.BootstrapAdmin(ctx, s.Store, s.Policy, s.Clock)
	if err != nil {
		tb.Fatalf("bootstrap: %v", err)
	}
	s.Admin, s.AdminID = boot.Secret.Reveal(), boot.Token.ID()

	runCtx, cancel := context.WithCancel(ctx)
	var done []chan error
	run := func(f func(context.Context) error) {
		ch := make(chan error, 1)
		done = append(done, ch)
		go func() { ch <- f(runCtx) }()
	}
	s.Projector, err = consumers.NewLifecycleProjector(s.Store, stacktest.Conn(tb, s.NATS, nats.Name("apitest-projector")), s.Projections,
		consumers.LifecycleConfig{Name: projections.LifecycleName, Logger: log})
	if err != nil {
		tb.Fatalf("projector: %v", err)
	}
	projCtx, stopProj := context.WithCancel(runCtx)
	projDone := make(chan error, 1)
	go func() { projDone <- s.Projector.Run(projCtx) }()
	s.stopProjector = sync.OnceValue(func() error {
		stopProj()
		return <-projDone
	})
	s.Usage, err = consumers.NewUsageConsumer(s.Store, s.Projections, consumers.UsageConfig{
		Name: projections.UsageName, Policy: s.Policy, Clock: s.Clock, Logger: log, MaxWait: 50 * time.Millisecond,
	})
	if err != nil {
		tb.Fatalf("usage consumer: %v", err)
	}
	run(s.Usage.Run)
	s.waitProjected(tb)

	s.opts, s.log = o, log
	var stopAPI func(context.Context) error
	s.API, stopAPI, err = app.StartAPI(ctx, s.apiConfig(), s.Store, s.Projections, nil, log)
	if err != nil {
		cancel()
		tb.Fatalf("start api: %v", err)
	}
	s.URL = s.API.URL()
	tb.Cleanup(func() {
		timeout := 10 * time.Second
		if s.natsStopped {
			timeout = 100 * time.Millisecond
		}
		stopCtx, stop := context.WithTimeout(context.Background(), timeout)
		defer stop()
		if err := stopAPI(stopCtx); err != nil && !s.natsStopped {
			tb.Errorf("stop api: %v", err)
		}
		cancel()
		if err := s.stopProjector(); err != nil && !errors.Is(err, context.Canceled) {
			tb.Errorf("projector: %v", err)
		}
		for _, ch := range done {
			if err := <-ch; err != nil && !errors.Is(err, context.Canceled) {
				tb.Errorf("worker: %v", err)
			}
		}
	})
	return s
}

// waitProjected waits until the lifecycle projection has applied every
// event in the stream.
func (s *Stack) waitProjected(tb testing.TB) {
	tb.Helper()
	ctx := context.Background()
	stacktest.Eventually(tb, 20*time.Second, func() bool {
		last, err := s.Store.StreamLastSequence(ctx)
		if err != nil {
			return false
		}
		cp, err := s.Projections.Checkpoint(ctx, projections.LifecycleName)
		return err == nil && cp >= last
	}, "the projection did not catch up with the stream")
}

// WaitProjected waits until the read model reflects every event appended
// so far (List reads the read model).
func (s *Stack) WaitProjected(tb testing.TB) { tb.Helper(); s.waitProjected(tb) }

// LastSequence returns the lifecycle stream's last sequence.
func (s *Stack) LastSequence(tb testing.TB) uint64 {
	tb.Helper()
	seq, err := s.Store.StreamLastSequence(context.Background())
	if err != nil {
		tb.Fatalf("stream last sequence: %v", err)
	}
	return seq
}

// Client returns an HTTP client for the stack; requests carry no
// credentials unless the caller sets them, and redirects are answers, not
// followed. Its timeout is well past the API's mutation timeout, so a
// test sees the server's answer (503 at the deadline), not its own
// client giving up.
func (s *Stack) Client() *http.Client {
	return &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
