package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tokenledger/tokenledger/api"
	"github.com/tokenledger/tokenledger/consumers"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/expiry"
	"github.com/tokenledger/tokenledger/natsconn"
	"github.com/tokenledger/tokenledger/projections"
	"github.com/tokenledger/tokenledger/webhooks"
)

// Defaults of ProjectConfig.
const (
	// DefaultHealthListen is where `tokenledger project` serves /livez and
	// /readyz: loopback only, for a local probe or sidecar.
	DefaultHealthListen = "127.0.0.1:9091"
	// DefaultReadyMaxLag is how many events the projection may be behind
	// the stream and still be ready.
	DefaultReadyMaxLag = 1000
	// DefaultUsageReadyMaxLag is how many usage events the usage
	// projection may be behind the usage stream and still be ready: usage
	// arrives in bursts of up to a flush interval of every validator, so
	// the bound is far larger than the lifecycle projection's.
	DefaultUsageReadyMaxLag = 100_000
	// DefaultProjectPostgresConns bounds the projector's PostgreSQL pool:
	// the leadership holds one connection, the projector and the usage
	// consumer one each and status reads another; the expiry scheduler and
	// the webhook dispatcher need theirs, so that they never make the
	// projector wait for a connection.
	DefaultProjectPostgresConns = 8
)

// ProjectConfig configures `tokenledger project`: the projection workers
// as deployed in production, apart from the API. Start from
// DefaultRollupRetention is how long hourly usage rollups are kept by
// default: about thirteen months, so a year can be compared with the one
// before.
const DefaultRollupRetention = 400 * 24 * time.Hour

// DefaultProjectConfig.
type ProjectConfig struct {
	// NATSURL is the NATS server (or comma-separated servers) holding the
	// event streams.
	NATSURL string
	// NATSAuth holds the credentials and TLS settings of the NATS
	// connections.
	NATSAuth natsconn.Auth
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
	// projection's (its checkpoint). Its Logger is set by
	// StartProject.
	Lifecycle consumers.LifecycleConfig
	// Usage configures the usage consumer, which projects the usage
	// stream into token_usage and slides sessions by Usage.Policy (it must
	// be the issuing policy of the deployment). Its Name must differ from
	// Lifecycle.Name; its Logger is set by StartProject.
	Usage consumers.UsageConfig
	// RollupRetention is how long the usage consumer keeps the hourly
	// usage rollups (projections.WithRollupRetention); zero: forever.
	RollupRetention time.Duration
	// HealthListen is the address of the health endpoint (/livez,
	// /readyz); empty disables it.
	HealthListen string
	// ReadyMaxLag is how many events behind the stream the projection may
	// be while /readyz still answers ready.
	ReadyMaxLag uint64
	// UsageReadyMaxLag is how many events behind the usage stream the usage
	// projection may be while /readyz still answers ready.
	UsageReadyMaxLag uint64
	// Expiry configures the expiry scheduler, which records the expiry
	// notices with the ledger (under Usage.Policy); ExpiryOff disables it.
	Expiry    expiry.Config
	ExpiryOff bool
	// Webhooks configures the webhook dispatcher, which runs while this
	// process leads the projection.
	Webhooks webhooks.Config
}

// DefaultProjectConfig returns the defaults of `tokenledger project`.
func DefaultProjectConfig() ProjectConfig {
	return ProjectConfig{
		RollupRetention:  DefaultRollupRetention,
		NATSURL:          DefaultNATSURL,
		PostgresMaxConns: DefaultProjectPostgresConns,
		Store:            eventstore.DefaultConfig(),
		Lifecycle: consumers.LifecycleConfig{
			Name:         projections.LifecycleName,
			RetryInitial: consumers.DefaultRetryInitial,
			RetryMax:     consumers.DefaultRetryMax,
		},
		Usage: consumers.UsageConfig{
			Name:         projections.UsageName,
			BatchSize:    consumers.DefaultUsageBatchSize,
			MaxWait:      consumers.DefaultUsageMaxWait,
			Policy:       domain.DefaultPolicy(),
			RetryInitial: consumers.DefaultRetryInitial,
			RetryMax:     consumers.DefaultRetryMax,
		},
		HealthListen:     DefaultHealthListen,
		ReadyMaxLag:      DefaultReadyMaxLag,
		UsageReadyMaxLag: DefaultUsageReadyMaxLag,
		Expiry:           expiry.DefaultConfig(),
		Webhooks:         webhooks.DefaultConfig(),
	}
}

// Validate reports every problem with c at once.
func (c ProjectConfig) Validate() error {
	errs := connectionErrors(c.NATSURL, c.NATSAuth, c.PostgresURL, c.Store)
	if c.RollupRetention < 0 {
		errs = append(errs, fmt.Errorf("usage rollup retention %s is negative", c.RollupRetention))
	}
	if c.PostgresMaxConns < 2 {
		errs = append(errs, fmt.Errorf("postgres max conns %d must be at least 2", c.PostgresMaxConns))
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
	switch {
	case c.Usage.Name == "":
		errs = append(errs, errors.New("usage projection name must be set"))
	case c.Usage.Name == c.Lifecycle.Name:
		errs = append(errs, fmt.Errorf("usage projection name %q is the lifecycle projection's: they need checkpoints of their own", c.Usage.Name))
	case strings.HasSuffix(c.Usage.Name, "_rebuild"):
		errs = append(errs, fmt.Errorf("usage projection name %q ends in _rebuild, which names a rebuild's checkpoint", c.Usage.Name))
	}
	if c.Usage.Policy == (domain.Policy{}) {
		errs = append(errs, errors.New("usage consumer: policy must be set"))
	}
	if err := c.Usage.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("usage consumer: %w", err))
	}
	if err := c.Expiry.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Webhooks.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.HealthListen != "" {
		if _, _, err := net.SplitHostPort(c.HealthListen); err != nil {
			errs = append(errs, fmt.Errorf("health listen address: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Project is a running `tokenledger project`: the lifecycle projector, the
// usage consumer and their health endpoint.
type Project struct {
	// Projector is the lifecycle projector; its Progress and Ready are safe
	// to call at any time.
	Projector *consumers.LifecycleProjector
	// Usage is the usage consumer; its Progress and Ready are safe to call
	// at any time.
	Usage *consumers.UsageConsumer
	// Projections is the read model both write.
	Projections *projections.ReadModel

	run, usageRun *workerRun
	leader        *leader
	done          chan struct{}
	health        net.Addr
}

// Active reports whether this process leads the projection (its workers
// run); false while it stands by for another `project` process.
func (p *Project) Active() bool { return p.leader.isActive() }

// HealthAddr returns the address the health endpoint listens on (with the
// port chosen when HealthListen asked for port 0); nil when disabled.
func (p *Project) HealthAddr() net.Addr { return p.health }

// Done is closed when the lifecycle projector or the usage consumer
// stopped, by itself on an error it does not retry (a stream is missing,
// the connection is closed; the process should then exit and be
// restarted, Err says why) or because stop was called.
func (p *Project) Done() <-chan struct{} { return p.done }

// Err returns the errors the lifecycle projector and the usage consumer
// stopped with, joined; nil while they run or after a clean stop.
func (p *Project) Err() error { return errors.Join(p.run.result(), p.usageRun.result()) }

// StartProject connects to NATS and PostgreSQL, checks the schema, starts
// the lifecycle projector and the usage consumer, each in a goroutine of
// its own, and, unless disabled, the health endpoint:
//
//   - GET /livez answers 200 while the process serves requests;
//   - GET /readyz answers 200 when both are consuming, neither is halted,
//     the lifecycle projection is at most cfg.ReadyMaxLag events behind its
//     stream and the usage projection at most cfg.UsageReadyMaxLag behind
//     the usage stream, and 503 otherwise; its JSON body carries the
//     lifecycle projection's status (checkpoint, stream end, lag, the
//     halted event), the usage projection's under "usage" and, when not
//     ready, the reasons (see api.ProjectionHealth).
//
// The projector gets a NATS connection of its own (it drains and closes it
// when it stops); the event store, the usage consumer and the status reads
// use another. The returned stop function stops the usage consumer and the
// projector first (waiting for the work in flight), then the health
// endpoint, then closes the connections; it returns their errors, if they
// stopped with one. It is safe to call once StartProject has returned
// without error.
func StartProject(ctx context.Context, cfg ProjectConfig, log *slog.Logger) (_ *Project, _ func(context.Context) error, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	var cleanups stopStack
	defer func() {
		if err != nil {
			_ = cleanups.stop(context.WithoutCancel(ctx))
		}
	}()

	store, pool, err := connectBoth(ctx, &cleanups, "tokenledger-project", cfg.NATSURL, cfg.NATSAuth, cfg.Store, cfg.PostgresURL, cfg.PostgresMaxConns)
	if err != nil {
		return nil, nil, err
	}

	p := &Project{Projections: projections.New(pool, projections.WithRollupRetention(cfg.RollupRetention))}
	// The health endpoint is stopped last, after the projector, so that it
	// says why the projector is not ready while it stops.
	health := &http.Server{ReadHeaderTimeout: 5 * time.Second}
	var ln net.Listener
	if cfg.HealthListen != "" {
		if ln, err = net.Listen("tcp", cfg.HealthListen); err != nil {
			return nil, nil, fmt.Errorf("health endpoint: %w", err)
		}
		p.health = ln.Addr()
		cleanups.push(func(ctx context.Context) error {
			// Shutdown closes the listener once Serve took it. Closed
			// first, it raced Serve's return: Shutdown closed it again
			// and failed the stop with "use of closed network
			// connection". Closing it after covers a listener Serve
			// never took.
			err := health.Shutdown(ctx)
			_ = ln.Close()
			return err
		})
	}
	// The workers run only while this process leads the projection;
	// another `project` process stands by meanwhile. The leadership is
	// given up after the workers stopped.
	p.leader = newLeader(pool, cfg.Lifecycle.Name, log)
	cleanups.push(p.leader.release)
	p.Projector, p.run, err = startProjector(store, cfg.NATSURL, cfg.NATSAuth, p.Projections, cfg.Lifecycle, p.leader, log,
		nats.Name("tokenledger-project-consumer"), nats.MaxReconnects(-1))
	if err != nil {
		return nil, nil, err
	}
	cleanups.push(p.run.stop)
	p.Usage, p.usageRun, err = startUsage(store, p.Projections, cfg.Usage, p.leader, log)
	if err != nil {
		return nil, nil, err
	}
	cleanups.push(p.usageRun.stop)
	if !cfg.ExpiryOff {
		run, err := startExpiry(store, pool, p.Projections, cfg.Usage.Policy, cfg.Usage.Clock, cfg.Expiry, p.leader, log)
		if err != nil {
			return nil, nil, err
		}
		cleanups.push(run.stop)
	}
	hooks, err := startWebhooks(store, cfg.NATSURL, cfg.NATSAuth, pool, cfg.Webhooks, p.leader, log,
		nats.Name("tokenledger-project-webhooks"), nats.MaxReconnects(-1))
	if err != nil {
		return nil, nil, err
	}
	cleanups.push(hooks.stop)
	go p.leader.acquire()
	p.done = make(chan struct{})
	go func() {
		defer close(p.done)
		select {
		case <-p.run.done:
		case <-p.usageRun.done:
		}
	}()
	if ln != nil {
		health.Handler = api.StandbyHealth(api.ProjectionHealth(p.Projector, cfg.ReadyMaxLag, p.Usage, cfg.UsageReadyMaxLag),
			p.leader.isActive, cfg.Lifecycle.Name)
		go func() { _ = health.Serve(ln) }()
		log.Info("health endpoint listening", "addr", p.health.String(), "livez", "/livez", "readyz", "/readyz")
	}
	log.Info("projecting", "projection", cfg.Lifecycle.Name, "stream", cfg.Store.Stream,
		"usage_projection", cfg.Usage.Name, "usage_stream", cfg.Store.UsageStream)
	return p, cleanups.stop, nil
}

// startProjector creates the lifecycle projector on a NATS connection of
// its own and runs it (once gate, if not nil, leads) until the returned run
// is stopped.
func startProjector(store *eventstore.Store, natsURL string, auth natsconn.Auth, proj *projections.ReadModel,
	cfg consumers.LifecycleConfig, gate *leader, log *slog.Logger, opts ...nats.Option) (*consumers.LifecycleProjector, *workerRun, error) {
	conn, err := natsconn.Connect(natsURL, auth, opts...)
	if err != nil {
		return nil, nil, err
	}
	cfg.Logger = log
	p, err := consumers.NewLifecycleProjector(store, conn, proj, cfg)
	if err != nil {
		return nil, nil, err
	}
	run := p.Run
	if gate != nil {
		run = gate.gated(run, p.Close)
	}
	return p, runWorker("lifecycle projector", run, log), nil
}

// startUsage creates the usage consumer, on the store's connection, and
// runs it (once gate, if not nil, leads) until the returned run is stopped.
func startUsage(store *eventstore.Store, proj *projections.ReadModel, cfg consumers.UsageConfig,
	gate *leader, log *slog.Logger) (*consumers.UsageConsumer, *workerRun, error) {
	cfg.Logger = log
	c, err := consumers.NewUsageConsumer(store, proj, cfg)
	if err != nil {
		return nil, nil, err
	}
	run := c.Run
	if gate != nil {
		run = gate.gated(run, nil)
	}
	return c, runWorker("usage consumer", run, log), nil
}

// runWorker calls run in a goroutine until the returned run is stopped.
func runWorker(name string, run func(context.Context) error, log *slog.Logger) *workerRun {
	ctx, cancel := context.WithCancel(context.Background())
	r := &workerRun{name: name, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		err := run(ctx)
		r.mu.Lock()
		r.err = err
		r.mu.Unlock()
		if err != nil {
			log.Error(name+" stopped", "error", err)
		}
	}()
	return r
}

// workerRun is a projection worker's Run in its goroutine.
type workerRun struct {
	name   string
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	err    error
}

func (r *workerRun) result() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// stop ends Run and waits for it, at most until ctx ends, and returns the
// error Run stopped with.
func (r *workerRun) stop(ctx context.Context) error {
	r.cancel()
	select {
	case <-r.done:
		return r.result()
	case <-ctx.Done():
		return fmt.Errorf("%s did not stop in time: %w", r.name, ctx.Err())
	}
}
