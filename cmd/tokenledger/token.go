package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/sdk"
)

// Token statuses and kinds as the API names them.
var (
	tokenStatuses = []string{"active", "expired", "revoked"}
	tokenKinds    = []string{"api", "session"}
)

func newTokenCommand() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Issue, list, show, expire, rotate and revoke tokens through the API",
		Long: `token calls the HTTP API of a running tokenledger (--server) as the caller
whose token is in ` + tokenEnv + `. The token is taken from the environment
only, never from a flag, so that it stays out of shell history and process
listings. A token without ledger:admin manages only its own owner's tokens.

Results are printed as tables (--output table) or as one JSON document of
the API's types (--output json). A secret is printed once, by issue and
rotate, and never again.`,
		Args: cobra.NoArgs,
	}
	bindClientFlags(cmd, &cf)
	cmd.AddCommand(
		newTokenIssueCommand(&cf),
		newTokenListCommand(&cf),
		newTokenShowCommand(&cf),
		newTokenExpireCommand(&cf),
		newTokenLimitCommand(&cf),
		newTokenUsageCommand(&cf),
		newTokenRotateCommand(&cf),
		newTokenRevokeCommand(&cf),
	)
	markRequestFlags(cmd)
	return cmd
}

func newTokenIssueCommand(cf *clientFlags) *cobra.Command {
	var (
		req                    sdk.IssueRequest
		kind                   = enumValue{allowed: tokenKinds, optional: true}
		expiresIn, idleTimeout durationValue
		expiresAt              timeValue
		scopes                 []string
		neverExpires           bool
		cidrs                  []string
	)
	cmd := &cobra.Command{
		Use:   "issue",
		Short: "Issue a token and print its secret, once",
		Long: `issue asks the server for a new token and prints its secret once: store it
now, it is never shown again. Without --expires-in, --expires-at or
--never-expires the token gets the policy's default lifetime.`,
		Example: `  tokenledger token issue --name ci --scope repo:read --scope repo:write --expires-in 30d`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if countTrue(expiresIn.set, expiresAt.set, neverExpires) > 1 {
				return errors.New("--expires-in, --expires-at and --never-expires exclude each other")
			}
			if err := errors.Join(expiresIn.positive("expires-in"), idleTimeout.positive("idle-timeout")); err != nil {
				return err
			}
			// pflag reads --scope "" as no scope at all: a script passing
			// an unset variable must not get an unscoped token silently.
			if cmd.Flags().Changed("scope") && len(scopes) == 0 {
				return errors.New("--scope: empty scope")
			}
			for _, s := range scopes {
				if s == "" {
					return errors.New("--scope: empty scope")
				}
			}
			req.Scopes, req.Kind, req.NeverExpires, req.AllowedCIDRs = scopes, kind.value, neverExpires, cidrs
			if expiresIn.set {
				d := sdk.Duration(expiresIn.d)
				req.ExpiresIn = &d
			}
			if expiresAt.set {
				req.ExpiresAt = &expiresAt.t
			}
			if idleTimeout.set {
				d := sdk.Duration(idleTimeout.d)
				req.IdleTimeout = &d
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			issued, err := c.Issue(cmd.Context(), req)
			if err != nil {
				return cf.serverError(err)
			}
			return cf.printer(cmd).issued(issued)
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Owner, "owner", "", "owner of the new token (only ledger:admin may name another owner than the caller's; empty: the caller's)")
	f.StringVar(&req.Name, "name", "", "name of the new token, for people")
	f.StringSliceVar(&scopes, "scope", nil, "scope of the new token; repeat the flag or separate with commas for several")
	f.Var(&kind, "kind", "kind of the new token: api or session (empty: api)")
	f.Var(&expiresIn, "expires-in", "lifetime of the new token: "+durationHelp)
	f.Var(&expiresAt, "expires-at", "expiry of the new token: "+timeHelp)
	f.BoolVar(&neverExpires, "never-expires", false, "issue a token that does not expire (if the policy allows it)")
	f.Var(&idleTimeout, "idle-timeout", "idle timeout of a session: "+durationHelp+" (empty: the policy's)")
	f.StringSliceVar(&cidrs, "allow-cidr", nil, "network the new token may be used from, a CIDR prefix or an address (repeat or separate with commas; none: any network)")
	return cmd
}

func newTokenListCommand(cf *clientFlags) *cobra.Command {
	var (
		opts                      sdk.ListOptions
		status                    = enumValue{allowed: tokenStatuses, optional: true}
		unusedFor, expiringWithin durationValue
		all                       bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List tokens, filtered, a page at a time or all of them",
		Long: `list prints the tokens the caller may see, oldest first (in the order they
were issued), a page at a time: the last line names the --cursor of the next
page. --all follows every page.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Limit < 0 {
				return fmt.Errorf("--limit %d: want a positive number (0: the server's default)", opts.Limit)
			}
			if err := errors.Join(unusedFor.positive("unused-for"), expiringWithin.positive("expiring-within")); err != nil {
				return err
			}
			opts.Status, opts.UnusedFor, opts.ExpiringWithin = status.value, unusedFor.d, expiringWithin.d
			c, err := cf.client()
			if err != nil {
				return err
			}
			if !all {
				page, err := c.List(cmd.Context(), opts)
				if err != nil {
					return cf.serverError(err)
				}
				return cf.printer(cmd).tokens(page.Items, page.NextCursor)
			}
			tokens := []sdk.Token{}
			for t, err := range c.ListAll(cmd.Context(), opts) {
				if err != nil {
					return cf.serverError(err)
				}
				tokens = append(tokens, t)
			}
			return cf.printer(cmd).tokens(tokens, "")
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Owner, "owner", "", "only tokens of this owner (only ledger:admin may name another owner than the caller's)")
	f.Var(&status, "status", "only tokens in this status: active, expired or revoked")
	f.Var(&unusedFor, "unused-for", "only tokens not used for this long, never-used ones included: "+durationHelp)
	f.Var(&expiringWithin, "expiring-within", "only tokens expiring within this long: "+durationHelp)
	f.IntVar(&opts.Limit, "limit", 0, "most tokens per page (0: the server's default)")
	f.StringVar(&opts.Cursor, "cursor", "", "start at this page, as named by the previous page")
	f.BoolVar(&all, "all", false, "follow every page and print all tokens at once (JSON: one {\"items\": [...]} document)")
	return cmd
}

func newTokenShowCommand(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show every field of a token",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			t, err := c.Get(cmd.Context(), args[0])
			if err != nil {
				return cf.serverError(err)
			}
			return cf.printer(cmd).token(t)
		},
	}
}

func newTokenExpireCommand(cf *clientFlags) *cobra.Command {
	var (
		at    timeValue
		in    durationValue
		never bool
	)
	cmd := &cobra.Command{
		Use:   "expire ID (--at TIME | --in DURATION | --never)",
		Short: "Set when a token expires, or that it does not",
		Long: `expire sets a token's expiry: at a time (--at), after a duration from now
(--in), or never (--never). An owner may bring an expiry closer; only
ledger:admin may push it later or remove it. A revoked token cannot be
changed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if countTrue(at.set, in.set, never) != 1 {
				return errors.New("give exactly one of --at TIME, --in DURATION and --never")
			}
			if err := in.positive("in"); err != nil {
				return err
			}
			var expiry *time.Time
			switch {
			case at.set:
				expiry = &at.t
			case in.set:
				t := time.Now().Add(in.d).UTC().Truncate(time.Second)
				expiry = &t
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			t, err := c.SetExpiry(cmd.Context(), args[0], expiry)
			if err != nil {
				return cf.serverError(err)
			}
			return cf.printer(cmd).token(t)
		},
	}
	f := cmd.Flags()
	f.Var(&at, "at", "expire the token at this time: "+timeHelp)
	f.Var(&in, "in", "expire the token this long from now: "+durationHelp)
	f.BoolVar(&never, "never", false, "remove the token's expiry (ledger:admin only)")
	return cmd
}

func newTokenRotateCommand(cf *clientFlags) *cobra.Command {
	var grace durationValue
	cmd := &cobra.Command{
		Use:   "rotate ID",
		Short: "Replace a token by a new one and print the new secret, once",
		Long: `rotate issues a new token with the same owner, name and scopes and prints
its secret once. The old token expires after --grace (at once without it),
time to deploy the new secret.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if grace.set && grace.d < 0 {
				return fmt.Errorf("--grace %s: want zero or a positive duration", grace.d)
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			r, err := c.Rotate(cmd.Context(), args[0], grace.d)
			if err != nil {
				return cf.serverError(err)
			}
			return cf.printer(cmd).rotated(r)
		},
	}
	cmd.Flags().Var(&grace, "grace", "how long the old token stays valid: "+durationHelp+" (empty: it expires at once)")
	return cmd
}

func newTokenRevokeCommand(cf *clientFlags) *cobra.Command {
	var (
		reason      string
		secretStdin bool
	)
	cmd := &cobra.Command{
		Use:   "revoke (ID | --secret-stdin)",
		Short: "Revoke a token by its id, or a leaked secret read from stdin",
		Long: `revoke ID revokes a token for good, as the caller of ` + tokenEnv + `.

revoke --secret-stdin revokes the token of a secret read from stdin, as
anyone who holds a leaked secret may (RFC 7009): it needs no ` + tokenEnv + `
and sends no credentials. The server answers alike for unknown secrets, so
success does not confirm the secret was a token. Pipe the secret in, so
that it does not land in shell history:

  pbpaste | tokenledger token revoke --secret-stdin`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if secretStdin {
				if len(args) != 0 || reason != "" {
					return errors.New("--secret-stdin takes no token id and no --reason")
				}
				secret, err := readSecret(cmd.InOrStdin())
				if err != nil {
					return err
				}
				// The format carries a checksum: a typo or a stray word is
				// caught here, not answered by the server's "recorded"
				// (which it says alike for every string). The error never
				// holds the input.
				if _, _, err := domain.CheckSecret(secret); err != nil {
					return fmt.Errorf("stdin does not hold a tokenledger secret (%w): nothing was sent", err)
				}
				c, err := cf.anonymousClient()
				if err != nil {
					return err
				}
				if err := c.RevokeSecret(cmd.Context(), secret); err != nil {
					return cf.serverError(err)
				}
				return cf.printer(cmd).secretRevoked()
			}
			if len(args) != 1 {
				return errors.New("give the token's id, or --secret-stdin")
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			if err := c.Revoke(cmd.Context(), args[0], reason); err != nil {
				return cf.serverError(err)
			}
			return cf.printer(cmd).revoked(args[0])
		},
	}
	f := cmd.Flags()
	f.StringVar(&reason, "reason", "", "why the token is revoked, kept in its history")
	f.BoolVar(&secretStdin, "secret-stdin", false, "revoke the token of the secret read from stdin, without credentials")
	return cmd
}

// countTrue counts the true values of bs: how many of exclusive flags were
// given.
func countTrue(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}
