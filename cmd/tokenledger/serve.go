package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tokenledger/tokenledger/app"
	"github.com/tokenledger/tokenledger/domain"
)

// bindPolicyFlags binds the issuing policy. Every process that issues or
// slides tokens (serve, project, dev) must run with the same policy.
func bindPolicyFlags(f *pflag.FlagSet, p *domain.Policy) {
	dayDurationVar(f, &p.DefaultLifetime, "default-lifetime", p.DefaultLifetime, "lifetime of a token issued without an expiry (and a session's default cap)")
	dayDurationVar(f, &p.MaxLifetime, "max-lifetime", p.MaxLifetime, "longest expiry an api token may have, counted from its creation")
	f.BoolVar(&p.AllowNeverExpires, "allow-never-expires", p.AllowNeverExpires, "allow api tokens without expiry")
	dayDurationVar(f, &p.SessionIdleTimeout, "session-idle-timeout", p.SessionIdleTimeout, "how long a session lives after its last use (whole seconds)")
	dayDurationVar(f, &p.SessionMaxLifetime, "session-max-lifetime", p.SessionMaxLifetime, "absolute cap of a session's life, however much it is used")
	f.DurationVar(&p.SessionExtendStep, "session-extend-step", p.SessionExtendStep, "smallest move of a session's expiry worth recording (half the idle timeout for a session whose idle timeout is at most twice the step)")
}

// bindAPIFlags binds the API node's settings, apart from the policy.
func bindAPIFlags(f *pflag.FlagSet, c *app.APIConfig) {
	f.StringVar(&c.HTTPAddr, "http-addr", c.HTTPAddr, "host:port the HTTP API listens on")
	f.DurationVar(&c.MaxStaleness, "max-staleness", c.MaxStaleness, "how long the validator answers after losing the lifecycle stream before it refuses every token")
	f.BoolVar(&c.FailOpen, "fail-open", c.FailOpen, "keep answering from memory when stale instead of refusing (revocations may then be missed)")
	dayDurationVar(f, &c.EvictionGrace, "eviction-grace", c.EvictionGrace, "how long after its expiry a token stays in the validator's memory, refused as expired; then it is refused as unknown")
	f.DurationVar(&c.EvictionInterval, "eviction-interval", c.EvictionInterval, "how often the validator evicts revoked tokens and tokens expired beyond the eviction grace from its memory")
	f.IntVar(&c.Capacity, "validator-capacity", c.Capacity, "most tokens the validator keeps in memory (about 61 bytes each), least recently validated evicted first; others are looked up in the event store by id when presented. 0: every token that can validate")
	f.Float64Var(&c.ColdLookupRate, "cold-lookup-rate", c.ColdLookupRate, "with --validator-capacity: event store lookups per second of tokens not in memory; beyond it they are refused")
	f.IntVar(&c.ColdLookupBurst, "cold-lookup-burst", c.ColdLookupBurst, "with --validator-capacity: event store lookups of tokens not in memory that may happen at once")
	f.Int64Var(&c.MaxBodyBytes, "max-body-bytes", c.MaxBodyBytes, "largest request body the API accepts")
	f.DurationVar(&c.MutationTimeout, "mutation-timeout", c.MutationTimeout, "longest a request that appends may take: it answers success by then, or 503 with Retry-After")
	f.StringVar(&c.SecretScanningKeysURL, "secret-scanning-keys-url", c.SecretScanningKeysURL, "URL of GitHub's secret scanning public keys (JSON) that POST /v1/secret-scanning/github verifies reports with; empty turns the route off")
	prefixesVar(f, &c.TrustedProxies, "trusted-proxies", "CIDR prefixes (comma-separated) of the reverse proxies in front of the API: only a request from one of them has its client address taken from X-Forwarded-For or Forwarded (for usage and allowed networks); others' headers are ignored")
	f.BoolVar(&c.RequireAuthScope, "require-auth-scope", c.RequireAuthScope, "answer 400 scope_required to a forward-auth check (/v1/auth) that names no scope, so a gateway configured without one fails closed")
}

func newServeCommand(g *globalFlags) *cobra.Command {
	cfg := app.DefaultServeConfig()
	shutdownTimeout := defaultShutdownTimeout
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run an API node: the HTTP API and the in-memory validator",
		Long: `serve runs an API node against a deployment's NATS and PostgreSQL: the
HTTP API (token management, RFC 7009 revocation, RFC 7662 introspection,
forward-auth at /v1/auth, /metrics, /livez, /readyz, /v1/openapi.json) and the
validator that answers from memory: a snapshot of the read model plus a live
tail of the lifecycle stream. The read model is kept by 'tokenledger project',
which must run too. API nodes are stateless: run as many as needed.

/readyz answers 200 while the validator is within its staleness bound and the
event store answers: the node validates and records changes. PostgreSQL down or
the projection lagging are named in the body ("degraded") and in the metric
tokenledger_degraded{part}, not in the status, so a load balancer keeps every
node while the shared database is away.

SIGINT or SIGTERM stops it gracefully: requests in flight finish, then the
validator flushes the usage it counted.

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
			if shutdownTimeout <= 0 {
				return fmt.Errorf("--shutdown-timeout %s must be positive", shutdownTimeout)
			}
			ctx := cmd.Context()
			tp, stopTracing, err := startTracing(ctx, "serve", log)
			if err != nil {
				return err
			}
			defer stopTracing()
			cfg.API.TracerProvider = tp
			s, stop, err := app.StartServe(ctx, cfg, log)
			if err != nil {
				return oneLine(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "tokenledger API listening on %s\n", s.URL())
			<-ctx.Done()
			log.Info("stopping")
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
			defer cancel()
			if err := stop(stopCtx); err != nil {
				return fmt.Errorf("stop: %w", err)
			}
			log.Info("stopped")
			return nil
		},
	}
	f := cmd.Flags()
	bindConnectFlags(f, &cfg.NATSURL, &cfg.NATSAuth, &cfg.PostgresURL, &cfg.Store)
	f.Int32Var(&cfg.PostgresMaxConns, "postgres-max-conns", cfg.PostgresMaxConns, "size of the PostgreSQL connection pool")
	bindAPIFlags(f, &cfg.API)
	f.BoolVar(&cfg.API.WebhookAllowPrivate, "webhook-allow-private", cfg.API.WebhookAllowPrivate, webhookAllowPrivateUsage)
	bindPolicyFlags(f, &cfg.API.Policy)
	f.StringVar(&cfg.API.ProjectionName, "projection", cfg.API.ProjectionName, "lifecycle projection the validator loads its snapshot from")
	f.Uint64Var(&cfg.API.ReadyMaxLag, "ready-max-lag", cfg.API.ReadyMaxLag, "most events the projection may be behind the stream before /readyz names it degraded (the node stays ready)")
	f.DurationVar(&shutdownTimeout, "shutdown-timeout", shutdownTimeout, "longest graceful stop after SIGINT or SIGTERM")
	return cmd
}
