package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokenledger/tokenledger/sdk"
)

func newTokenLimitCommand(cf *clientFlags) *cobra.Command {
	var (
		cidrs []string
		any   bool
	)
	cmd := &cobra.Command{
		Use:   "limit ID (--allow-cidr CIDR... | --any-network)",
		Short: "Set the networks a token may be used from",
		Long: `limit replaces the networks a token may be used from (--allow-cidr, CIDR
prefixes or single addresses), or lifts the limit (--any-network). A use from
elsewhere is refused (forward-auth answers 403 ip_not_allowed). An owner may
only narrow the networks; only ledger:admin may widen or lift them.`,
		Example: `  tokenledger token limit 01JD... --allow-cidr 203.0.113.0/24 --allow-cidr 2001:db8::/32`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (len(cidrs) > 0) == any {
				return errors.New("give either --allow-cidr or --any-network")
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			t, err := c.SetAllowedCIDRs(cmd.Context(), args[0], cidrs)
			if err != nil {
				return cf.serverError(err)
			}
			return cf.printer(cmd).token(t)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&cidrs, "allow-cidr", nil, "network the token may be used from, a CIDR prefix or an address (repeat or separate with commas)")
	f.BoolVar(&any, "any-network", false, "let the token be used from any network (ledger:admin only, for a limited token)")
	return cmd
}

func newTokenUsageCommand(cf *clientFlags) *cobra.Command {
	var (
		granularity = enumValue{allowed: []string{"hour", "day"}, optional: true}
		from, to    timeValue
	)
	cmd := &cobra.Command{
		Use:   "usage ID",
		Short: "Show a token's uses per hour or day, with a sparkline",
		Long: `usage prints how often a token was used per hour (--granularity hour, the
default: the last day) or per day (--granularity day: the last thirty days),
in UTC, from the usage rollups: a sparkline of the whole period, then one line
per bucket that had uses.`,
		Example: `  tokenledger token usage 01JD... --granularity day --from 2026-11-01`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := sdk.UsageOptions{Granularity: granularity.value}
			if from.set {
				opts.From = from.t
			}
			if to.set {
				opts.To = to.t
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			u, err := c.Usage(cmd.Context(), args[0], opts)
			if err != nil {
				return cf.serverError(err)
			}
			p := cf.printer(cmd)
			if p.json {
				return writeJSON(p.w, u)
			}
			return writeUsage(p.w, u)
		},
	}
	f := cmd.Flags()
	f.Var(&granularity, "granularity", "bucket width: hour or day (empty: hour)")
	f.Var(&from, "from", "first bucket: "+timeHelp)
	f.Var(&to, "to", "last bucket: "+timeHelp)
	return cmd
}

// writeUsage writes a usage series: its total and sparkline, then a line
// per bucket with uses.
func writeUsage(w io.Writer, u sdk.UsageSeries) error {
	width := time.Hour
	if u.Granularity == "day" {
		width = 24 * time.Hour
	}
	var total uint64
	for _, b := range u.Items {
		total += b.Count
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d uses per %s from %s to %s\n", total, u.Granularity, timestamp(u.From), timestamp(u.To))
	b.WriteString(sparkline(u, width))
	b.WriteByte('\n')
	var tb table
	for _, it := range u.Items {
		tb.row(timestamp(it.Start), strconv.FormatUint(it.Count, 10))
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	return tb.write(w)
}

// sparkBars are the bar heights of a sparkline, lowest first.
var sparkBars = []rune(" ▁▂▃▄▅▆▇█")

// sparkline draws one character per bucket of the series' period, from
// From to To: blank for none, the highest bar for the busiest bucket.
func sparkline(u sdk.UsageSeries, width time.Duration) string {
	n := int(u.To.Sub(u.From) / width)
	if n <= 0 {
		return ""
	}
	counts := make([]uint64, n)
	var peak uint64
	for _, it := range u.Items {
		i := int(it.Start.Sub(u.From) / width)
		if i < 0 || i >= n {
			continue
		}
		counts[i] += it.Count
		peak = max(peak, counts[i])
	}
	out := make([]rune, n)
	for i, c := range counts {
		switch {
		case c == 0:
			out[i] = sparkBars[0]
		default:
			// Any use shows at least the lowest bar, the peak the highest.
			out[i] = sparkBars[max(1, int(math.Ceil(float64(c)/float64(peak)*float64(len(sparkBars)-1))))]
		}
	}
	return string(out)
}
