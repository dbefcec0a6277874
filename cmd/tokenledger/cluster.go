package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokenledger/tokenledger/cluster"
	"github.com/tokenledger/tokenledger/eventstore"
)

// defaultClusterDir is where `tokenledger cluster` keeps everything.
const defaultClusterDir = ".tokenledger-cluster"

func newClusterCommand(g *globalFlags) *cobra.Command {
	cfg := cluster.Config{Dir: defaultClusterDir, NATSServer: "bin/nats-server", Ports: cluster.DefaultPorts, Store: eventstore.DefaultConfig()}
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Run the production topology on this machine: 3 NATS servers, PostgreSQL, 2 serve, project",
		Long: `cluster starts, each in a process of its own, three nats-servers routed into
one JetStream cluster (mutual TLS, a user per role), a PostgreSQL cluster,
then runs streams init (R3 streams), migrate and admin bootstrap as the NATS
operator, and starts two serve nodes (the API nodes' credentials) and a
project process (the workers' credentials). It prints every URL, the first
admin token once, and a ready line. A process that exits on its own is
reported and left down; SIGINT or SIGTERM stops everything. Everything is
kept under --cluster-dir (certificates and credentials in secrets/, the
servers' configuration and stores in nats/, postgres/, one log per process
in logs/), reused by the next start. make cluster builds both binaries and
runs it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := g.newLogger(); err != nil {
				return err
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			cfg.Tokenledger = self
			out := cmd.OutOrStdout()
			cfg.Out = out
			if _, err := os.Stat(cfg.NATSServer); errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("--nats-server %s does not exist: build it with go build -o %s github.com/nats-io/nats-server/v2 (make cluster does)", cfg.NATSServer, cfg.NATSServer)
			}
			ctx := cmd.Context()
			fmt.Fprintf(out, "tokenledger cluster: starting in %s\n", cfg.Dir)
			c, err := cluster.Start(ctx, cfg)
			if err != nil {
				return oneLine(err)
			}
			printClusterBanner(out, c)
			<-ctx.Done()
			fmt.Fprintln(out, "stopping")
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if err := c.Stop(stopCtx); err != nil {
				return fmt.Errorf("stop: %w", err)
			}
			fmt.Fprintln(out, "stopped")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Dir, "cluster-dir", cfg.Dir, "directory holding everything of the cluster command (secrets, NATS stores, PostgreSQL, logs)")
	f.StringVar(&cfg.NATSServer, "nats-server", cfg.NATSServer, "nats-server binary the cluster command runs")
	return cmd
}

func printClusterBanner(w io.Writer, c *cluster.Cluster) {
	fmt.Fprintf(w, "\n")
	for i, u := range c.NATSURLs {
		fmt.Fprintf(w, "  NATS %s            %s  (log: %s/logs/nats-%s.log)\n", c.NATSNames()[i], u, c.Dir(), c.NATSNames()[i])
	}
	fmt.Fprintf(w, "  PostgreSQL         %s\n", c.PostgresURL)
	for i, u := range c.APIURLs {
		fmt.Fprintf(w, "  API serve-%d        %s  (OpenAPI: %s/v1/openapi.json)\n", i+1, u, u)
	}
	for i, u := range c.ProjectHealthURLs {
		role := "leads the projection"
		if i > 0 {
			role = "standby"
		}
		fmt.Fprintf(w, "  project-%d health   %s/readyz  (%s)\n", i+1, u, role)
	}
	fmt.Fprintf(w, "  NATS credentials   %s/secrets (operator, api, worker; CA ca.pem)\n", c.Dir())
	if c.AdminToken != "" {
		fmt.Fprintf(w, "\nFirst start: an admin token was issued. It is shown once, now, and never again:\n\n  %s\n", c.AdminToken)
	}
	fmt.Fprintf(w, "\n%s\n", readyLine)
}
