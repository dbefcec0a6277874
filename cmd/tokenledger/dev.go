package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokenledger/tokenledger/app"
)

// stopTimeout bounds a graceful stop: after a signal, everything started is
// shut down within this time.
const stopTimeout = 5 * time.Second

func newDevCommand(g *globalFlags) *cobra.Command {
	cfg := app.DefaultDevConfig()
	var expiryOn bool
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole system in one process on embedded defaults",
		Long: `dev starts an embedded nats-server with JetStream and a private PostgreSQL
cluster (made with initdb under the data directory, unless --postgres-url is
given), opens the event streams and, on a fresh ledger, prints the first admin
token once. All state lives under --data-dir; stop it with Ctrl-C.

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
			ctx := cmd.Context()
			cfg.ExpiryOff = !expiryOn
			tp, stopTracing, err := startTracing(ctx, "dev", log)
			if err != nil {
				return err
			}
			defer stopTracing()
			cfg.API.TracerProvider = tp
			dev, stop, err := app.StartDev(ctx, cfg, log)
			if err != nil {
				return err
			}
			printDevBanner(cmd.OutOrStdout(), dev)
			<-ctx.Done()
			log.Info("stopping")
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
			defer cancel()
			if err := stop(stopCtx); err != nil {
				return fmt.Errorf("stop: %w", err)
			}
			log.Info("stopped")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory holding all state (JetStream store, PostgreSQL cluster)")
	f.StringVar(&cfg.NATSHost, "nats-host", cfg.NATSHost, "address the embedded nats-server listens on")
	f.IntVar(&cfg.NATSPort, "nats-port", cfg.NATSPort, "preferred nats-server port (a taken port is replaced by a free one)")
	f.BoolVar(&cfg.NATSSyncAlways, "nats-sync-always", cfg.NATSSyncAlways, "fsync every JetStream write before acknowledging it")
	f.StringVar(&cfg.PostgresURL, "postgres-url", cfg.PostgresURL, "use this PostgreSQL instead of a local cluster")
	f.IntVar(&cfg.PostgresPort, "postgres-port", cfg.PostgresPort, "preferred port of the local PostgreSQL cluster (a taken port is replaced by a free one)")
	bindAPIFlags(f, &cfg.API)
	dayDurationVar(f, &cfg.RollupRetention, "usage-rollup-retention", cfg.RollupRetention, "how long hourly usage rollups (GET /v1/tokens/{id}/usage) are kept; 0: forever")
	bindPolicyFlags(f, &cfg.Policy)
	bindExpiryFlags(f, &cfg.Expiry, &expiryOn)
	bindWebhookFlags(f, &cfg.Webhooks)
	return cmd
}

func printDevBanner(w io.Writer, dev *app.Dev) {
	fmt.Fprintf(w, "tokenledger dev\n\n")
	fmt.Fprintf(w, "  NATS (JetStream)  %s\n", dev.NATS.ClientURL())
	fmt.Fprintf(w, "  PostgreSQL        %s\n", dev.PostgresURL)
	fmt.Fprintf(w, "  event stream      %s: %s\n", dev.Store.Config().Stream, plural(dev.Events, "event"))
	fmt.Fprintf(w, "  API               %s  (OpenAPI: %s/v1/openapi.json)\n", dev.API.URL(), dev.API.URL())
	fmt.Fprintf(w, "  web UI            %s/ui/  (sign in with the admin token)\n", dev.API.URL())
	// The ports change when the default ones are taken: the CLI must be
	// told which instance to call, or it calls another one.
	fmt.Fprintf(w, "\nPoint the tokenledger CLI at this instance (paste into a shell):\n\n")
	fmt.Fprintf(w, "  export TOKENLEDGER_SERVER=%s\n", dev.API.URL())
	if b := dev.Bootstrapped; b != nil {
		fmt.Fprintf(w, "  export TOKENLEDGER_TOKEN=%s\n", b.Secret.Reveal())
	} else {
		fmt.Fprintf(w, "  export TOKENLEDGER_TOKEN=...  # the admin token printed on this data directory's first start\n")
	}
	if b := dev.Bootstrapped; b != nil {
		fmt.Fprintf(w, "\nFirst start: an admin token was issued. It is shown once, now, and never again:\n\n")
		fmt.Fprintf(w, "  %s\n\n", b.Secret.Reveal())
		fmt.Fprintf(w, "  id %s, owner %s, scopes %v\n", b.Token.ID(), b.Token.Owner(), b.Token.Scopes())
		printCurlExamples(w, dev.API.URL())
	}
	fmt.Fprintf(w, "\n%s\n", readyLine)
}

// readyLine is the banner's last line: everything is up.
const readyLine = "Ready. Ctrl-C stops it."

// plural renders "1 event", "2 events".
func plural(n uint64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// printCurlExamples prints three commands to paste into a shell: issue a
// token (kept in $T), validate it through forward-auth, revoke it.
func printCurlExamples(w io.Writer, url string) {
	fmt.Fprintf(w, "\nTry it (paste into a shell, after the exports above):\n\n")
	fmt.Fprintf(w, "  # 1. issue a token for alice; its secret, shown once, goes into $T\n")
	fmt.Fprintf(w, "  T=$(curl -s -X POST %s/v1/tokens -H \"Authorization: Bearer $TOKENLEDGER_TOKEN\" -H 'Content-Type: application/json' \\\n", url)
	fmt.Fprintf(w, "    -d '{\"owner\": \"alice\", \"name\": \"ci\", \"scopes\": [\"repo:read\"], \"expires_in\": \"24h\"}' | sed -E 's/.*\"token\":\"([^\"]+)\".*/\\1/'); echo \"$T\"\n\n")
	fmt.Fprintf(w, "  # 2. validate it as a gateway does: 200 with X-Token-Owner: alice (401 once revoked)\n")
	fmt.Fprintf(w, "  curl -si %s/v1/auth -H \"Authorization: Bearer $T\"\n\n", url)
	fmt.Fprintf(w, "  # 3. revoke it: holding the secret is enough (RFC 7009)\n")
	fmt.Fprintf(w, "  curl -s -X POST %s/v1/revoke -d \"token=$T\"\n", url)
}
