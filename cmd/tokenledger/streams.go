package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tokenledger/tokenledger/app"
	"github.com/tokenledger/tokenledger/eventstore"
)

func newStreamsCommand(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "streams",
		Short: "Set up the event streams",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newStreamsInitCommand(g))
	return cmd
}

func newStreamsInitCommand(g *globalFlags) *cobra.Command {
	cfg := app.StreamsConfig{NATSURL: app.DefaultNATSURL, Store: eventstore.DefaultConfig()}
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create the event streams, or apply changed settings to them",
		Long: `init creates the lifecycle and usage streams at --nats-url, append-only, or
updates them where their settings differ from the flags (replicas, the
duplicate window, the usage retention). It is the set-up step of a
deployment, run with the NATS operator's credentials: serve, project,
rebuild and export open the streams as they are and never change them; they
refuse to start when a stream is missing or unsafe.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := g.newLogger(); err != nil {
				return err
			}
			n, err := app.InitStreams(cmd.Context(), cfg)
			if err != nil {
				return oneLine(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "streams %s and %s are ready (%d lifecycle events)\n", cfg.Store.Stream, cfg.Store.UsageStream, n)
			return nil
		},
	}
	f := cmd.Flags()
	bindNATSFlags(f, &cfg.NATSURL, &cfg.NATSAuth)
	bindStoreFlags(f, &cfg.Store)
	return cmd
}
