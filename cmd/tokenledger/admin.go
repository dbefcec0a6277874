package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tokenledger/tokenledger/app"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
)

func newAdminCommand(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Administer a ledger directly through its event store",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newAdminBootstrapCommand(g))
	return cmd
}

func newAdminBootstrapCommand(g *globalFlags) *cobra.Command {
	cfg := app.BootstrapConfig{NATSURL: app.DefaultNATSURL, Store: eventstore.DefaultConfig(), Policy: domain.DefaultPolicy()}
	cmd := &cobra.Command{
		Use:   "bootstrap",
		Short: "Issue the first admin token of a ledger and print it once",
		Long: `bootstrap issues an admin token (owner "admin", scope ledger:admin, the
policy's default lifetime) straight into the event store at --nats-url and
prints its secret once. It refuses a ledger that holds events already, unless
--force: the break-glass path when every admin token is lost, recorded in the
history like any other issue.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := g.newLogger(); err != nil {
				return err
			}
			b, err := app.AdminBootstrap(cmd.Context(), cfg)
			if err != nil {
				return oneLine(err)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "Admin token (shown once, store it now):\n\n  %s\n\n", b.Secret.Reveal())
			exp, _ := b.Token.ExpiresAt()
			fmt.Fprintf(w, "  id %s, owner %s, scopes %v, expires %s\n", b.Token.ID(), b.Token.Owner(), b.Token.Scopes(), exp.Format("2006-01-02 15:04:05Z07:00"))
			return nil
		},
	}
	f := cmd.Flags()
	bindNATSFlags(f, &cfg.NATSURL, &cfg.NATSAuth)
	bindStoreFlags(f, &cfg.Store)
	bindPolicyFlags(f, &cfg.Policy)
	f.BoolVar(&cfg.Force, "force", false, "issue an admin token even if the ledger holds events (break-glass)")
	// Breaking the glass is a decision for one run, never an environment
	// setting.
	_ = f.SetAnnotation("force", requestFlagAnnotation, []string{"true"})
	return cmd
}
