package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tokenledger/tokenledger/sdk"
)

func newWebhookCommand() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "webhook",
		Short: "Manage the endpoints that receive lifecycle events, through the API",
		Long: `webhook calls the HTTP API of a running tokenledger (--server) as the caller
whose token is in ` + tokenEnv + ` (never taken as a flag). An admin manages
every endpoint and may subscribe to every owner; anyone else only endpoints
of their own owner's events.`,
		Args: cobra.NoArgs,
	}
	bindClientFlags(cmd, &cf)
	cmd.AddCommand(newWebhookAddCommand(&cf), newWebhookListCommand(&cf), newWebhookRemoveCommand(&cf), newWebhookDeliveriesCommand(&cf))
	markRequestFlags(cmd)
	return cmd
}

func newWebhookAddCommand(cf *clientFlags) *cobra.Command {
	var (
		events []string
		owner  string
	)
	cmd := &cobra.Command{
		Use:   "add URL",
		Short: "Register an endpoint; prints its signing secret once",
		Long: `add registers URL to receive lifecycle events as signed POST requests
(Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature). It
prints the signing secret (whsec_...) once: configure the receiver with it.
--event limits the event types (repeat it, or separate them with commas):
token.issued, token.expiring, token.expired, token.revoked, token.leaked,
token.inactive, owner.revoked, family.revoked; none means all.`,
		Example: `  tokenledger webhook add https://hooks.example.com/tokenledger --event token.expiring --event token.leaked`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := sdk.WebhookRequest{URL: args[0], Events: events}
			if cmd.Flags().Changed("owner") {
				req.Owner = &owner
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			w, err := c.CreateWebhook(cmd.Context(), req)
			if err != nil {
				return cf.serverError(err)
			}
			p := cf.printer(cmd)
			if p.json {
				return writeJSON(p.w, w)
			}
			if _, err := fmt.Fprintf(p.w, "Signing secret (shown once, store it now): %s\n\n", w.Secret); err != nil {
				return err
			}
			return writeWebhooks(p.w, []sdk.Webhook{w})
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&events, "event", nil, "event type to receive (repeatable; default: all)")
	f.StringVar(&owner, "owner", "", "receive only this owner's events (admin; others always get their own owner's)")
	return cmd
}

func newWebhookListCommand(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the endpoints the caller may see",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			l, err := c.ListWebhooks(cmd.Context())
			if err != nil {
				return cf.serverError(err)
			}
			p := cf.printer(cmd)
			if p.json {
				return writeJSON(p.w, l)
			}
			return writeWebhooks(p.w, l.Items)
		},
	}
}

func newWebhookRemoveCommand(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "remove ID",
		Short: "Remove an endpoint and its deliveries",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			if err := c.RemoveWebhook(cmd.Context(), args[0]); err != nil {
				return cf.serverError(err)
			}
			p := cf.printer(cmd)
			if p.json {
				return writeJSON(p.w, map[string]string{"removed": args[0]})
			}
			_, err = fmt.Fprintf(p.w, "Webhook endpoint %s removed.\n", cell(args[0]))
			return err
		},
	}
}

func newWebhookDeliveriesCommand(cf *clientFlags) *cobra.Command {
	var limit int
	var before int64
	cmd := &cobra.Command{
		Use:   "deliveries ID",
		Short: "List an endpoint's deliveries, newest first: status, attempts, last error",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			d, err := c.WebhookDeliveries(cmd.Context(), args[0], limit, before)
			if err != nil {
				return cf.serverError(err)
			}
			p := cf.printer(cmd)
			if p.json {
				return writeJSON(p.w, d)
			}
			if len(d.Items) == 0 {
				_, err := fmt.Fprintln(p.w, "No deliveries.")
				return err
			}
			var tb table
			tb.row("ID", "EVENT", "TYPE", "STATUS", "ATTEMPTS", "LAST ATTEMPT", "LAST ERROR")
			for _, x := range d.Items {
				last := "-"
				if x.LastAttemptAt != nil {
					last = timestamp(*x.LastAttemptAt)
				}
				tb.row(strconv.FormatInt(x.ID, 10), x.EventID, x.Type, x.Status, strconv.Itoa(x.Attempts), last, cell(x.LastError))
			}
			if err := tb.write(p.w); err != nil {
				return err
			}
			if d.NextBefore != 0 {
				_, err = fmt.Fprintf(p.w, "More deliveries: add --before %d.\n", d.NextBefore)
			}
			return err
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "most deliveries to list (default 100, at most 500)")
	cmd.Flags().Int64Var(&before, "before", 0, "list the deliveries older than this delivery id")
	return cmd
}

// writeWebhooks writes endpoints as a table.
func writeWebhooks(w io.Writer, eps []sdk.Webhook) error {
	if len(eps) == 0 {
		_, err := fmt.Fprintln(w, "No webhook endpoints.")
		return err
	}
	var tb table
	tb.row("ID", "URL", "OWNER", "EVENTS", "STATE")
	for _, e := range eps {
		owner := "(every owner)"
		if e.Owner != nil {
			owner = cell(*e.Owner)
		}
		events := "(all)"
		if len(e.Events) > 0 {
			events = strings.Join(e.Events, ",")
		}
		state := "enabled"
		if e.DisabledAt != nil {
			state = "disabled " + timestamp(*e.DisabledAt) + ": " + cell(e.DisabledReason)
		}
		tb.row(e.ID, cell(e.URL), owner, events, state)
	}
	return tb.write(w)
}
