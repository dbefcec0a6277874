package main

import (
	"github.com/spf13/cobra"

	"github.com/tokenledger/tokenledger/sdk"
)

func newOwnerCommand() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "owner",
		Short: "Act on every token of an owner through the API",
		Long: `owner calls the HTTP API of a running tokenledger (--server) as the caller
whose token is in ` + tokenEnv + ` (never taken as a flag).`,
		Args: cobra.NoArgs,
	}
	bindClientFlags(cmd, &cf)
	cmd.AddCommand(newOwnerRevokeCommand(&cf))
	markRequestFlags(cmd)
	return cmd
}

func newOwnerRevokeCommand(cf *clientFlags) *cobra.Command {
	var (
		until  timeValue
		reason string
	)
	cmd := &cobra.Command{
		Use:   "revoke OWNER",
		Short: "Revoke every token of an owner issued up to now",
		Long: `revoke revokes, for good, every token of OWNER issued before the revocation
is recorded; tokens issued later are not covered. With --until, OWNER may
get no new token until then. A caller without ledger:admin may revoke only
its own owner.`,
		Example: `  tokenledger owner revoke alice@example.com --until 2026-12-31T00:00:00Z --reason "left the company"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := sdk.OwnerRevokeRequest{Reason: reason}
			if until.set {
				req.Until = &until.t
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			r, err := c.RevokeOwner(cmd.Context(), args[0], req)
			if err != nil {
				return cf.serverError(err)
			}
			return cf.printer(cmd).ownerRevoked(r)
		},
	}
	f := cmd.Flags()
	f.Var(&until, "until", "block new tokens of the owner until this time: "+timeHelp+"; must be in the future")
	f.StringVar(&reason, "reason", "", "why the owner's tokens are revoked, kept in the history")
	return cmd
}
