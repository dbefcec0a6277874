package app

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tokenledger/tokenledger/api"
	"github.com/tokenledger/tokenledger/cluster"
	"github.com/tokenledger/tokenledger/consumers"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/expiry"
	"github.com/tokenledger/tokenledger/ledger"
	"github.com/tokenledger/tokenledger/natsconn"
	"github.com/tokenledger/tokenledger/projections"
	"github.com/tokenledger/tokenledger/stack"
	"github.com/tokenledger/tokenledger/webhooks"
)

// DevConfig configures `tokenledger dev`: the whole system in one process,
// with its state under one data directory.
type DevConfig struct {
	// DataDir holds everything the dev stack keeps: nats/ (the JetStream
	// store) and postgres/ (the local cluster, unless PostgresURL is set).
	DataDir string
	// NATSHost and NATSPort are where the embedded nats-server listens; a
	// port that is taken is replaced by a free one.
	NATSHost string
	NATSPort int
	// NATSSyncAlways makes the embedded server fsync every write before it
	// acknowledges it (see package eventstore on what an ack means).
	NATSSyncAlways bool
	// PostgresURL, if set, is used instead of a local cluster.
	PostgresURL string
	// PostgresPort is the preferred port of the local cluster; a port that
	// is taken is replaced by a free one.
	PostgresPort int
	// Store configures the event streams.
	Store eventstore.Config
	// Policy is the issuing policy (default lifetime, maximum lifetime, ...).
	Policy domain.Policy
	// Clock tells the time; nil means the system clock.
	Clock domain.Clock
	// API configures the API node; its Policy and Clock are the dev
	// config's.
	API APIConfig
	// Expiry configures the expiry scheduler; its Clock is the dev
	// config's. ExpiryOff disables it.
	Expiry    expiry.Config
	ExpiryOff bool
	// Webhooks configures the webhook dispatcher; its Clock is the dev
	// config's, and its AllowPrivateTargets applies to registrations too.
	Webhooks webhooks.Config
	// RollupRetention is how long the hourly usage rollups are kept
	// (projections.WithRollupRetention); zero: forever.
	RollupRetention time.Duration
}

// DefaultDevConfig returns the defaults `make run` uses.
func DefaultDevConfig() DevConfig {
	return DevConfig{
		DataDir:      ".tokenledger",
		NATSHost:     "127.0.0.1",
		NATSPort:     4222,
		PostgresPort: 5432,
		Store:        eventstore.DefaultConfig(),
		Policy:       domain.DefaultPolicy(),
		API:          devAPIConfig(),
		Expiry:       expiry.DefaultConfig(),
		Webhooks:     webhooks.DefaultConfig(),

		RollupRetention: DefaultRollupRetention,
	}
}

func devAPIConfig() APIConfig {
	c := DefaultAPIConfig()
	c.PreferFreePort = true
	return c
}

// Validate reports every problem with c at once.
func (c DevConfig) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir must be set"))
	}
	if c.NATSPort < 0 || c.NATSPort > 65535 {
		errs = append(errs, fmt.Errorf("nats port %d is out of range", c.NATSPort))
	}
	if c.PostgresPort < 0 || c.PostgresPort > 65535 {
		errs = append(errs, fmt.Errorf("postgres port %d is out of range", c.PostgresPort))
	}
	if err := c.Store.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("store: %w", err))
	}
	if err := c.Policy.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("policy: %w", err))
	}
	if err := c.Expiry.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Webhooks.Validate(); err != nil {
		errs = append(errs, err)
	}
	apiCfg := c.API
	apiCfg.Policy = c.Policy
	if err := apiCfg.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("api: %w", err))
	}
	return errors.Join(errs...)
}

// Dev is a running development stack.
type Dev struct {
	NATS        *stack.NATS
	Postgres    *stack.Postgres // nil when an external PostgresURL is used
	PostgresURL string
	Store       *eventstore.Store
	// Bootstrapped is set when this start issued the first admin token:
	// its secret is shown once, here, and never again.
	Bootstrapped *ledger.Bootstrapped
	// Events is the number of events in the lifecycle stream at start-up
	// (after any bootstrap).
	Events uint64
	// Projections is the read model in PostgreSQL, kept up to date by
	// Projector, the lifecycle projector, and Usage, the usage consumer
	// (which slides sessions by the dev policy), both running in the
	// process.
	Projections *projections.ReadModel
	Projector   *consumers.LifecycleProjector
	Usage       *consumers.UsageConsumer
	// API is the API node: validator, ledger and HTTP server.
	API *API

	conn *nats.Conn
}

// StartDev starts the embedded nats-server and, unless cfg.PostgresURL is
// set, a local PostgreSQL cluster under cfg.DataDir, brings the database's
// schema up to date, opens the event store, on a fresh ledger issues the
// first admin token, and runs the lifecycle projector (on a NATS
// connection of its own) and the usage consumer (on the store's). The
// returned stop function shuts everything down in reverse order, the usage
// consumer and the projector first; it is safe to call once StartDev has
// returned, whatever it returned.
func StartDev(ctx context.Context, cfg DevConfig, log *slog.Logger) (_ *Dev, _ func(context.Context) error, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = domain.SystemClock{}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("data dir: %w", err)
	}
	var cleanups stopStack
	defer func() {
		if err != nil {
			_ = cleanups.stop(context.WithoutCancel(ctx))
		}
	}()

	users, err := devNATSUsers(cfg)
	if err != nil {
		return nil, nil, err
	}
	d := &Dev{}
	d.NATS, err = stack.StartNATS(stack.NATSConfig{
		Host:       cfg.NATSHost,
		Port:       cfg.NATSPort,
		StoreDir:   filepath.Join(cfg.DataDir, "nats"),
		ServerName: "tokenledger-dev",
		SyncAlways: cfg.NATSSyncAlways,
		Users:      users.users,
		NoAuthUser: devAppUser,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("start nats: %w", err)
	}
	cleanups.push(func(context.Context) error { d.NATS.Shutdown(); return nil })
	log.Info("nats-server started", "url", d.NATS.ClientURL(), "store", filepath.Join(cfg.DataDir, "nats"))

	if cfg.PostgresURL != "" {
		d.PostgresURL = cfg.PostgresURL
	} else {
		d.Postgres, err = stack.StartPostgres(ctx, stack.PostgresConfig{
			DataDir: filepath.Join(cfg.DataDir, "postgres"),
			Port:    cfg.PostgresPort,
			Durable: true,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("start postgres: %w", err)
		}
		cleanups.push(d.Postgres.Stop)
		d.PostgresURL = d.Postgres.URL("postgres")
		log.Info("postgres started", "url", d.PostgresURL, "data", d.Postgres.DataDir())
	}
	schema, err := Migrate(ctx, d.PostgresURL)
	if err != nil {
		return nil, nil, fmt.Errorf("migrate postgres: %w", err)
	}
	log.Info("postgres schema migrated", "from", schema.From, "version", schema.To)

	d.conn, err = d.NATS.Connect(nats.Name("tokenledger-dev"))
	if err != nil {
		return nil, nil, fmt.Errorf("connect to nats: %w", err)
	}
	cleanups.push(func(context.Context) error { return d.conn.Drain() })
	d.Store, err = eventstore.Open(ctx, d.conn, domain.NewDefaultRegistry(), cfg.Store)
	if err != nil {
		return nil, nil, fmt.Errorf("open event store: %w", err)
	}

	d.Events, err = d.Store.StreamLastSequence(ctx)
	if err != nil {
		return nil, nil, err
	}
	if d.Events == 0 {
		d.Bootstrapped, err = ledger.BootstrapAdmin(ctx, d.Store, cfg.Policy, cfg.Clock)
		if err != nil {
			return nil, nil, err
		}
		if d.Events, err = d.Store.StreamLastSequence(ctx); err != nil {
			return nil, nil, err
		}
	}

	pool, err := openPool(ctx, d.PostgresURL, DefaultProjectPostgresConns)
	if err != nil {
		return nil, nil, err
	}
	cleanups.push(func(context.Context) error { pool.Close(); return nil })
	d.Projections = projections.New(pool, projections.WithClock(cfg.Clock), projections.WithRollupRetention(cfg.RollupRetention))
	// The workers run under their own user, on a store of their own: the
	// API node's user may not manage their consumers.
	asWorker := nats.UserInfo(devWorkerUser, users.workerPassword)
	workerConn, err := d.NATS.Connect(nats.Name("tokenledger-dev-workers"), asWorker)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to nats as the workers: %w", err)
	}
	cleanups.push(func(context.Context) error { return workerConn.Drain() })
	workerStore, err := eventstore.Open(ctx, workerConn, domain.NewDefaultRegistry(), cfg.Store)
	if err != nil {
		return nil, nil, fmt.Errorf("open event store as the workers: %w", err)
	}
	var run *workerRun
	d.Projector, run, err = startProjector(workerStore, d.NATS.ClientURL(), natsconn.Auth{}, d.Projections,
		consumers.LifecycleConfig{Name: projections.LifecycleName}, nil, log, nats.Name("tokenledger-dev-projector"), asWorker)
	if err != nil {
		return nil, nil, err
	}
	// The workers are stopped first: they use the store, the pool and the
	// server.
	cleanups.push(run.stop)
	d.Usage, run, err = startUsage(workerStore, d.Projections, consumers.UsageConfig{
		Name:   projections.UsageName,
		Policy: cfg.Policy,
		Clock:  cfg.Clock,
	}, nil, log)
	if err != nil {
		return nil, nil, err
	}
	cleanups.push(run.stop)
	if !cfg.ExpiryOff {
		if run, err = startExpiry(workerStore, pool, d.Projections, cfg.Policy, cfg.Clock, cfg.Expiry, nil, log); err != nil {
			return nil, nil, err
		}
		cleanups.push(run.stop)
	}

	hooks := cfg.Webhooks
	hooks.Clock = cfg.Clock
	if run, err = startWebhooks(workerStore, d.NATS.ClientURL(), natsconn.Auth{}, pool, hooks, nil, log,
		nats.Name("tokenledger-dev-webhooks"), asWorker); err != nil {
		return nil, nil, err
	}
	cleanups.push(run.stop)

	apiCfg := cfg.API
	apiCfg.Policy, apiCfg.Clock = cfg.Policy, cfg.Clock
	apiCfg.Webhooks = webhooks.NewManager(pool, d.Store, cfg.Webhooks.AllowPrivateTargets, cfg.Clock)
	var stopAPI func(context.Context) error
	// The workers are parts the API serves without: their trouble is a
	// degraded part of /readyz, not a reason to stop taking requests.
	d.API, stopAPI, err = StartAPI(ctx, apiCfg, d.Store, d.Projections, map[string]api.Check{
		"projector": func(ctx context.Context) error { return d.Projector.Ready(ctx, apiCfg.ReadyMaxLag) },
		"usage":     func(ctx context.Context) error { return d.Usage.Ready(ctx, DefaultUsageReadyMaxLag) },
	}, log)
	if err != nil {
		return nil, nil, err
	}
	d.API.Metrics.WatchLifecycle(d.Projector)
	d.API.Metrics.WatchUsage(d.Usage)
	// The API stops first: its validator flushes usage into the store,
	// which the usage consumer then still projects.
	cleanups.push(stopAPI)
	return d, cleanups.stop, nil
}

// The embedded server's users, one per role. A client that sends no
// credentials is the API node's user: it may append, read and follow the
// streams, but cannot delete, reconfigure or purge them, nor delete any
// consumer or touch the workers' durable consumers
// (eventstore.APINodeDeniedAPISubjects). The workers' user may also
// manage the workers' consumers; the operator user may do everything.
// The workers' and the operator's passwords are made on first start and
// kept, readable by root only, in the data directory.
const (
	devAppUser           = "tokenledger"
	devWorkerUser        = "worker"
	devWorkerPassword    = "nats-worker-password"
	devOperatorUser      = "operator"
	devOperatorPassword  = "nats-operator-password"
	operatorPasswordSize = 24
)

// devUsers are the embedded server's users and the workers' password.
type devUsers struct {
	users          []stack.NATSUser
	workerPassword string
}

func devNATSUsers(cfg DevConfig) (devUsers, error) {
	operator, err := devPassword(filepath.Join(cfg.DataDir, devOperatorPassword))
	if err != nil {
		return devUsers{}, fmt.Errorf("operator password: %w", err)
	}
	worker, err := devPassword(filepath.Join(cfg.DataDir, devWorkerPassword))
	if err != nil {
		return devUsers{}, fmt.Errorf("worker password: %w", err)
	}
	return devUsers{
		users: []stack.NATSUser{
			{Name: devAppUser, Permissions: cluster.APINodePermissions(cfg.Store)},
			{Name: devWorkerUser, Password: worker, Permissions: cluster.WorkerPermissions(cfg.Store)},
			{Name: devOperatorUser, Password: operator},
		},
		workerPassword: worker,
	}, nil
}

// devPassword returns the password kept at path, making one on first use.
func devPassword(path string) (string, error) {
	password, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		buf := make([]byte, operatorPasswordSize)
		if _, err := rand.Read(buf); err != nil {
			return "", err
		}
		password = []byte(base64.RawURLEncoding.EncodeToString(buf))
		if err := os.WriteFile(path, password, 0o600); err != nil {
			return "", err
		}
	} else if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(password)), nil
}
