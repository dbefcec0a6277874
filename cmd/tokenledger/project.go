package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tokenledger/tokenledger/app"
	"github.com/tokenledger/tokenledger/consumers"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/natsconn"
)

// bindConnectFlags binds the flags of the commands that work on a running
// system: where NATS and PostgreSQL are, how to connect to NATS, and the
// stream layout.
func bindConnectFlags(f *pflag.FlagSet, natsURL *string, auth *natsconn.Auth, postgresURL *string, store *eventstore.Config) {
	bindNATSFlags(f, natsURL, auth)
	f.StringVar(postgresURL, "postgres-url", *postgresURL, "PostgreSQL connection URL of the read model, e.g. postgres://user:pass@host:5432/db (required)")
	bindStoreFlags(f, store)
}

// bindNATSFlags binds where NATS is and how to connect to it: the
// credentials (one kind at most) and TLS. Secrets are read from files.
func bindNATSFlags(f *pflag.FlagSet, natsURL *string, auth *natsconn.Auth) {
	f.StringVar(natsURL, "nats-url", *natsURL, "NATS server URL(s) holding the event streams, comma-separated; may carry user:password@")
	f.StringVar(&auth.CredsFile, "nats-creds", auth.CredsFile, "NATS .creds file (user JWT and NKey seed) to connect with")
	f.StringVar(&auth.NKeyFile, "nats-nkey", auth.NKeyFile, "file holding the NKey user seed to connect with")
	f.StringVar(&auth.User, "nats-user", auth.User, "NATS user to connect as, with --nats-password-file")
	f.StringVar(&auth.PasswordFile, "nats-password-file", auth.PasswordFile, "file holding the password of --nats-user")
	f.StringVar(&auth.CAFile, "nats-ca", auth.CAFile, "PEM file of the CA certificates that verify the NATS servers (turns TLS on)")
	f.StringVar(&auth.CertFile, "nats-cert", auth.CertFile, "PEM client certificate for NATS servers that require mutual TLS, with --nats-key")
	f.StringVar(&auth.KeyFile, "nats-key", auth.KeyFile, "PEM private key of --nats-cert")
	f.StringVar(&auth.ServerName, "nats-server-name", auth.ServerName, "name the NATS servers' certificates must carry (default: the URL's host)")
}

// bindStoreFlags binds the event store's settings. The names and the
// subject prefix must match the deployment's streams; the stream settings
// (replicas, duplicate window, usage retention) take effect only where
// streams are set up (streams init, admin bootstrap, dev): every other
// process opens the streams as they are.
func bindStoreFlags(f *pflag.FlagSet, c *eventstore.Config) {
	f.StringVar(&c.Stream, "stream", c.Stream, "name of the lifecycle event stream")
	f.StringVar(&c.UsageStream, "usage-stream", c.UsageStream, "name of the usage event stream")
	f.StringVar(&c.SubjectPrefix, "subject-prefix", c.SubjectPrefix, "first subject token of every event subject")
	f.IntVar(&c.Replicas, "stream-replicas", c.Replicas, "replicas of both streams: 1 for a single server, 3 for a cluster")
	f.DurationVar(&c.DuplicateWindow, "duplicate-window", c.DuplicateWindow, "how long the streams remember event ids to drop re-sent events")
	dayDurationVar(f, &c.UsageMaxAge, "usage-max-age", c.UsageMaxAge, "how long usage events are kept")
}

func newProjectCommand(g *globalFlags) *cobra.Command {
	cfg := app.DefaultProjectConfig()
	healthListen := cfg.HealthListen
	shutdownTimeout := defaultShutdownTimeout
	var expiryOn bool
	cmd := &cobra.Command{
		Use:   "project",
		Short: "Run the projection workers: keep the PostgreSQL read model up to date",
		Long: `project runs the projection workers on their own, as deployed in production.

The lifecycle projector follows the lifecycle stream from the checkpoint of
its projection (--name) on and applies every event to the read model in
PostgreSQL exactly once, in stream order, in batches, each with the
checkpoint in the same transaction; a restart resumes from the checkpoint at
once. The usage consumer (--usage-name) does
the same for the usage stream, in batches of up to --usage-batch events
written in one transaction, into token_usage, and slides the expiry of the
sessions used (by the default issuing policy). Several instances of one name
share the work's position; the database schema must be current (tokenledger
migrate).

A health endpoint on --health-listen serves GET /livez (200 while the process
runs) and GET /readyz (200 when both workers are consuming, neither is halted,
the lifecycle projection is at most --ready-max-lag events behind and the
usage projection at most --usage-ready-max-lag; 503 with a JSON body saying
why otherwise). SIGINT or SIGTERM stops it gracefully: the work in flight is
finished or rolled back, then the connections are closed. It exits with an
error if NATS or PostgreSQL cannot be reached at start, the schema is
outdated, or a worker stops on an error it does not retry, such as its
stream disappearing (let the supervisor restart it); once running it
reconnects to NATS and retries PostgreSQL for as long as they are away.

OpenTelemetry traces are exported when the standard OTEL_* variables ask
for them: OTEL_EXPORTER_OTLP_ENDPOINT (OTLP over HTTP/protobuf) or
OTEL_TRACES_EXPORTER=otlp|console|none, with OTEL_SERVICE_NAME,
OTEL_RESOURCE_ATTRIBUTES and OTEL_TRACES_SAMPLER; see the README's Tracing
section.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.newLogger()
			if err != nil {
				return err
			}
			cfg.HealthListen = healthListen
			cfg.ExpiryOff = !expiryOn
			cfg.Usage.RetryInitial, cfg.Usage.RetryMax = cfg.Lifecycle.RetryInitial, cfg.Lifecycle.RetryMax
			if healthListen == "off" {
				cfg.HealthListen = ""
			}
			if shutdownTimeout <= 0 {
				return fmt.Errorf("--shutdown-timeout %s must be positive", shutdownTimeout)
			}
			ctx := cmd.Context()
			_, stopTracing, err := startTracing(ctx, "project", log)
			if err != nil {
				return err
			}
			defer stopTracing()
			p, stop, err := app.StartProject(ctx, cfg, log)
			if err != nil {
				return oneLine(err)
			}
			select {
			case <-ctx.Done():
				log.Info("stopping")
			case <-p.Done():
			}
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
			defer cancel()
			stopErr := stop(stopCtx)
			if err := p.Err(); err != nil {
				return oneLine(err)
			}
			if stopErr != nil {
				return fmt.Errorf("stop: %w", stopErr)
			}
			log.Info("stopped")
			return nil
		},
	}
	f := cmd.Flags()
	bindConnectFlags(f, &cfg.NATSURL, &cfg.NATSAuth, &cfg.PostgresURL, &cfg.Store)
	f.Int32Var(&cfg.PostgresMaxConns, "postgres-max-conns", cfg.PostgresMaxConns, "size of the PostgreSQL connection pool")
	f.StringVar(&cfg.Lifecycle.Name, "name", cfg.Lifecycle.Name, "projection name: its checkpoint row (letters, digits, - and _)")
	f.DurationVar(&cfg.Lifecycle.RetryInitial, "retry-initial", cfg.Lifecycle.RetryInitial, "first pause after a failure to apply an event (either worker); doubles up to --retry-max")
	f.DurationVar(&cfg.Lifecycle.RetryMax, "retry-max", cfg.Lifecycle.RetryMax, "longest pause between retries of either worker (transient failures are retried forever)")
	f.Uint64Var(&cfg.Lifecycle.SkipSequence, "skip-sequence", 0, "operator's escape hatch: skip the event at this stream sequence if, and only if, it cannot be decoded and is the next to apply (0: none)")
	dayDurationVar(f, &cfg.RollupRetention, "usage-rollup-retention", cfg.RollupRetention, "how long hourly usage rollups (GET /v1/tokens/{id}/usage) are kept; 0: forever")
	f.StringVar(&cfg.Usage.Name, "usage-name", cfg.Usage.Name, "usage projection name: its checkpoint row (letters, digits, - and _)")
	f.IntVar(&cfg.Usage.BatchSize, "usage-batch", cfg.Usage.BatchSize, fmt.Sprintf("most usage events read and written in one transaction (1 to %d)", consumers.MaxUsageBatchSize))
	f.DurationVar(&cfg.Usage.MaxWait, "usage-max-wait", cfg.Usage.MaxWait, "longest wait, after a usage batch's first event, for it to fill before writing what arrived")
	f.Uint64Var(&cfg.Usage.SkipSequence, "usage-skip-sequence", 0, "operator's escape hatch: skip the usage event at this usage-stream sequence if, and only if, it cannot be decoded and is the next to apply (0: none)")
	f.StringVar(&healthListen, "health-listen", healthListen, `address of the /livez and /readyz endpoint ("off" disables it)`)
	f.Uint64Var(&cfg.ReadyMaxLag, "ready-max-lag", cfg.ReadyMaxLag, "most events the projection may be behind the stream while /readyz answers ready")
	f.Uint64Var(&cfg.UsageReadyMaxLag, "usage-ready-max-lag", cfg.UsageReadyMaxLag, "most events the usage projection may be behind the usage stream while /readyz answers ready")
	f.DurationVar(&shutdownTimeout, "shutdown-timeout", shutdownTimeout, "longest graceful stop after SIGINT or SIGTERM")
	bindPolicyFlags(f, &cfg.Usage.Policy)
	bindExpiryFlags(f, &cfg.Expiry, &expiryOn)
	bindWebhookFlags(f, &cfg.Webhooks)
	return cmd
}

// defaultShutdownTimeout bounds project's graceful stop: the event in
// flight, the drain of the connections.
const defaultShutdownTimeout = 15 * time.Second
