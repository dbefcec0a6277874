package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/oklog/ulid/v2"
	"github.com/spf13/cobra"

	"github.com/tokenledger/tokenledger/audit"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/sdk"
)

func newHistoryCommand() *cobra.Command {
	var (
		cf             clientFlags
		tokenID, owner string
	)
	cmd := &cobra.Command{
		Use:   "history (--token ID | --owner OWNER)",
		Short: "Show the full history of a token or an owner",
		Long: `history prints, oldest first, everything recorded of one token (--token) or
of one owner (--owner: its owner-wide revocations and every event of every
token of the owner), through the HTTP API of a running tokenledger
(--server) as the caller whose token is in ` + tokenEnv + `. A caller
without ledger:admin sees only its own owner's history.

The table is one line per event: its time (UTC) and what happened, who did
it and why, with the owner of an acting token where the caller may see it.
A token's history includes the owner-wide revocation that revoked it. The
last line names the stream sequence the history is complete up to: every
event stored up to it is shown, also of tokens the projector has not
reached yet. --output json prints the events and that sequence as the API
returns them.`,
		Example: `  tokenledger history --token 01JD8X3V4N6Y2K5T7W9X0A1B2C
  tokenledger history --owner alice --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (tokenID == "") == (owner == "") {
				return errors.New("give exactly one of --token ID and --owner OWNER")
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var list sdk.EventList
			if tokenID != "" {
				list, err = c.Events(ctx, tokenID)
			} else {
				list, err = c.OwnerEvents(ctx, owner)
			}
			if err != nil {
				return cf.serverError(err)
			}
			return cf.printer(cmd).history(list, clientOwners(ctx, c), owner != "")
		},
	}
	bindClientFlags(cmd, &cf)
	f := cmd.Flags()
	f.StringVar(&tokenID, "token", "", "the token id (not its secret) whose history to show")
	f.StringVar(&owner, "owner", "", "the owner whose history to show: its revocations and all its tokens' events")
	markOwnRequestFlags(cmd)
	return cmd
}

// markOwnRequestFlags marks the local flags of cmd itself as request
// flags, for a command that is not in a group (markRequestFlags marks the
// subcommands of a group).
func markOwnRequestFlags(cmd *cobra.Command) {
	for _, name := range []string{"token", "owner", "at"} {
		if cmd.Flags().Lookup(name) != nil {
			_ = cmd.Flags().SetAnnotation(name, requestFlagAnnotation, []string{"true"})
		}
	}
}

// history prints a history: one line per event and the stream sequence it
// is complete up to, or the API's EventList as JSON. withSubject adds the
// token or owner each event is about.
func (p printer) history(list sdk.EventList, owners audit.OwnerOf, withSubject bool) error {
	if list.Items == nil {
		list.Items = []sdk.Event{}
	}
	if p.json {
		return writeJSON(p.w, list)
	}
	if err := writeTimeline(p.w, eventEnvelopes(list.Items), owners, withSubject); err != nil {
		return err
	}
	if list.Sequence == 0 {
		return nil
	}
	_, err := fmt.Fprintf(p.w, "\nComplete up to stream sequence %d.\n", list.Sequence)
	return err
}

// writeTimeline writes events as the audit timeline: time and sentence,
// and the subject too when withSubject.
func writeTimeline(w io.Writer, events []domain.Envelope, owners audit.OwnerOf, withSubject bool) error {
	if len(events) == 0 {
		_, err := fmt.Fprintln(w, "No events.")
		return err
	}
	var tb table
	for _, en := range audit.Timeline(events, owners) {
		if withSubject {
			tb.row(en.Time.UTC().Format(audit.TimeLayout), cell(en.Subject), en.Text)
		} else {
			tb.row(en.Time.UTC().Format(audit.TimeLayout), en.Text)
		}
	}
	return tb.write(w)
}

// clientOwners finds the owner of an acting token through the API (GET
// /v1/tokens/{id}); a token the caller may not see is told without its
// owner.
func clientOwners(ctx context.Context, c *sdk.Client) audit.OwnerOf {
	return func(id domain.TokenID) (domain.OwnerID, bool) {
		t, err := c.Get(ctx, id.String())
		if err != nil {
			return "", false
		}
		return domain.OwnerID(t.Owner), true
	}
}

// eventEnvelopes turns the API's events back into envelopes for
// audit.Timeline. A payload that cannot be read (a type this version does
// not know) is left out, and the event is told by its type.
func eventEnvelopes(events []sdk.Event) []domain.Envelope {
	out := make([]domain.Envelope, 0, len(events))
	for _, e := range events {
		env := domain.Envelope{
			Type:          domain.EventType(e.Type),
			AggregateKind: domain.AggregateKind(e.AggregateKind),
			AggregateID:   e.AggregateID,
			Actor:         e.Actor,
			Time:          e.Time,
			Schema:        e.Schema,
			CorrelationID: e.CorrelationID,
			Sequence:      e.Sequence,
		}
		if id, err := ulid.ParseStrict(e.ID); err == nil {
			env.ID = domain.EventID(id)
		}
		env.Data = eventPayload(env.Type, e.Data)
		out = append(out, env)
	}
	return out
}

// eventPayload decodes the payload of an event of type t; nil when the
// type is unknown or the payload unreadable.
func eventPayload(t domain.EventType, data json.RawMessage) domain.Event {
	decode := func(v domain.Event) domain.Event {
		if err := json.Unmarshal(data, v); err != nil {
			return nil
		}
		return v
	}
	switch t {
	case domain.TypeTokenIssued:
		return decode(&domain.TokenIssued{})
	case domain.TypeTokenExpirySet:
		return decode(&domain.TokenExpirySet{})
	case domain.TypeTokenCIDRsSet:
		return decode(&domain.TokenCIDRsSet{})
	case domain.TypeTokenRevoked:
		return decode(&domain.TokenRevoked{})
	case domain.TypeOwnerTokensRevoked:
		return decode(&domain.OwnerTokensRevoked{})
	case domain.TypeOwnerFamilyRevoked:
		return decode(&domain.OwnerFamilyRevoked{})
	case domain.TypeTokenUsed:
		return decode(&domain.TokenUsed{})
	case domain.TypeTokenExpiring:
		return decode(&domain.TokenExpiring{})
	case domain.TypeTokenExpired:
		return decode(&domain.TokenExpired{})
	case domain.TypeOwnerWebhookDisabled:
		return decode(&domain.OwnerWebhookDisabled{})
	}
	return nil
}
