package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/expiry"
)

// bindExpiryFlags binds the expiry scheduler's settings; on is whether it
// runs.
func bindExpiryFlags(f *pflag.FlagSet, c *expiry.Config, on *bool) {
	*on = true
	f.BoolVar(on, "expiry-notices", *on, "record token.expiring and token.expired events for api tokens (the expiry scheduler)")
	f.Var(&leadsValue{&c.Leads}, "expiry-leads", "lead times of token.expiring notices, comma-separated (e.g. 30d,7d,1d)")
	f.DurationVar(&c.Interval, "expiry-interval", c.Interval, "pause between the expiry scheduler's passes")
	f.Var(&daysValue{&c.Inactivity}, "inactivity-days", "revoke tokens not used for this many days (counted from the issue if never used), reason inactive, after token.expiring warnings at the --expiry-leads; 0: off")
}

// daysValue is a whole number of days, kept as a duration.
type daysValue struct{ d *time.Duration }

func (v *daysValue) String() string {
	if v.d == nil {
		return "0"
	}
	return strconv.FormatInt(int64(*v.d/domain.Day), 10)
}

func (v *daysValue) Set(s string) error {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 32)
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not a whole number of days", s)
	}
	*v.d = time.Duration(n) * domain.Day
	return nil
}

func (*daysValue) Type() string { return "days" }

// leadsValue is a comma-separated list of durations in the forms
// domain.ParseDuration reads.
type leadsValue struct{ d *[]time.Duration }

func (v *leadsValue) String() string {
	if v.d == nil {
		return ""
	}
	parts := make([]string, len(*v.d))
	for i, d := range *v.d {
		if d%domain.Day == 0 {
			parts[i] = strings.TrimSuffix(time.Duration(d/domain.Day).String(), "ns") + "d"
		} else {
			parts[i] = d.String()
		}
	}
	return strings.Join(parts, ",")
}

func (v *leadsValue) Set(s string) error {
	var out []time.Duration
	for part := range strings.SplitSeq(s, ",") {
		d, err := domain.ParseDuration(strings.TrimSpace(part))
		if err != nil {
			return err
		}
		out = append(out, d)
	}
	if err := domain.ValidateExpiryLeads(out); err != nil {
		return err
	}
	*v.d = out
	return nil
}

func (v *leadsValue) Type() string { return "durations" }
