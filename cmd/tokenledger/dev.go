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
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole system in one process on embedded defaults",
		Long: `dev starts an embedded nats-server with JetStream and a private PostgreSQL
cluster (made with initdb under the data directory, unless --postgres-url is
given), opens the event streams and, on a fresh ledger, prints the first admin
token once. All state lives under --data-dir; stop it with Ctrl-C.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.newLogger()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
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
	return cmd
}

func printDevBanner(w io.Writer, dev *app.Dev) {
	fmt.Fprintf(w, "tokenledger dev\n\n")
	fmt.Fprintf(w, "  NATS (JetStream)  %s\n", dev.NATS.ClientURL())
	fmt.Fprintf(w, "  PostgreSQL        %s\n", dev.PostgresURL)
	fmt.Fprintf(w, "  event stream      %s: %s\n", dev.Store.Config().Stream, plural(dev.Events, "event"))
	if b := dev.Bootstrapped; b != nil {
		fmt.Fprintf(w, "\nFirst start: an admin token was issued. It is shown once, now, and never again:\n\n")
		fmt.Fprintf(w, "  %s\n\n", b.Secret.Reveal())
		fmt.Fprintf(w, "  id %s, owner %s, scopes %v\n", b.Token.ID(), b.Token.Owner(), b.Token.Scopes())
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
