package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/tokenledger/tokenledger/sdk"
)

func newStateCommand() *cobra.Command {
	var (
		cf    clientFlags
		at    timeValue
		owner string
	)
	cmd := &cobra.Command{
		Use:   "state --at TIME [--owner OWNER]",
		Short: "Show every token as it was at a past instant",
		Long: `state prints every token (or every token of --owner) as it was at --at:
its status, expiry, revocation and usage as known at that instant, replayed
by a running tokenledger (--server) from its event stream. The caller, whose
token is in ` + tokenEnv + `, needs ledger:admin.

An event counts when its time is at or before --at. Uses older than the
usage stream's retention are no longer known. In the table, "expires in",
"last used ... ago" and the statuses are told as of --at.`,
		Example: `  tokenledger state --at 2026-11-01T00:00:00Z
  tokenledger state --at -2h
  tokenledger state --at 2026-11-01T00:00:00Z --owner alice --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !at.set {
				return errors.New("--at TIME is required: " + timeHelp)
			}
			c, err := cf.clientWithTimeout(stateRequestTimeout)
			if err != nil {
				return err
			}
			st, err := c.StateAt(cmd.Context(), at.t, owner)
			if err != nil {
				return cf.serverError(err)
			}
			return cf.printer(cmd).stateAt(st)
		},
	}
	bindClientFlags(cmd, &cf)
	f := cmd.Flags()
	f.Var(&at, "at", "the instant: "+timeHelp)
	f.StringVar(&owner, "owner", "", "only the tokens of this owner")
	markOwnRequestFlags(cmd)
	return cmd
}

// stateAt prints the tokens of a state at an instant: a table whose
// relative times and statuses are told as of that instant, or the API's
// answer as JSON.
func (p printer) stateAt(st sdk.StateAt) error {
	if st.Items == nil {
		st.Items = []sdk.Token{}
	}
	if p.json {
		return writeStateJSON(p.w, st)
	}
	if _, err := fmt.Fprintf(p.w, "Tokens as they were at %s (stream sequence %d): %s\n\n",
		timestamp(st.At), st.Sequence, plural(uint64(len(st.Items)), "token")); err != nil {
		return err
	}
	return writeTokenTable(p.w, st.Items, st.At)
}

// writeStateJSON writes st as writeJSON does, but token by token: the
// state of a large ledger is hundreds of megabytes of JSON, which need not
// be held whole a second time.
func writeStateJSON(w io.Writer, st sdk.StateAt) error {
	head, err := json.Marshal(st.At)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	fmt.Fprintf(bw, "{\n  \"at\": %s,\n  \"sequence\": %d,\n  \"items\": [", head, st.Sequence)
	var item bytes.Buffer
	enc := json.NewEncoder(&item)
	enc.SetIndent("    ", "  ")
	enc.SetEscapeHTML(false)
	for i := range st.Items {
		item.Reset()
		if err := enc.Encode(&st.Items[i]); err != nil {
			return err
		}
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.WriteString("\n    ")
		bw.Write(bytes.TrimSuffix(item.Bytes(), []byte("\n")))
	}
	if len(st.Items) > 0 {
		bw.WriteString("\n  ")
	}
	bw.WriteString("]\n}\n")
	return bw.Flush()
}
