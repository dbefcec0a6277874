package main

import (
	"net/netip"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/tokenledger/tokenledger/domain"
)

// dayDurationValue is a configuration flag holding a duration that may be
// given in days and weeks as well as Go's units or whole seconds ("30d",
// "2w", "1d12h", "720h", "3600"), as domain.ParseDuration reads them. It
// prints as Go prints a duration ("720h0m0s").
type dayDurationValue struct{ d *time.Duration }

// dayDurationVar binds a dayDurationValue flag to p, set to value.
func dayDurationVar(f *pflag.FlagSet, p *time.Duration, name string, value time.Duration, usage string) {
	*p = value
	f.Var(dayDurationValue{p}, name, usage)
}

func (v dayDurationValue) String() string {
	if v.d == nil {
		return "0s"
	}
	return v.d.String()
}

func (v dayDurationValue) Set(s string) error {
	d, err := domain.ParseDuration(s)
	if err != nil {
		return err
	}
	*v.d = d
	return nil
}

func (v dayDurationValue) Type() string { return "duration" }

// prefixesValue is a configuration flag holding CIDR prefixes, given
// comma-separated or by repeating the flag; a single address is taken as
// a /32 or /128.
type prefixesValue struct {
	p   *[]netip.Prefix
	set bool
}

// prefixesVar binds a prefixesValue flag to p.
func prefixesVar(f *pflag.FlagSet, p *[]netip.Prefix, name, usage string) {
	f.Var(&prefixesValue{p: p}, name, usage)
}

func (v *prefixesValue) String() string {
	if v.p == nil {
		return ""
	}
	return strings.Join(domain.CIDRStrings(*v.p), ",")
}

func (v *prefixesValue) Set(s string) error {
	var fields []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			fields = append(fields, f)
		}
	}
	ps, err := domain.NormalizeCIDRs(fields)
	if err != nil {
		return err
	}
	if !v.set {
		*v.p, v.set = nil, true
	}
	*v.p = append(*v.p, ps...)
	return nil
}

func (v *prefixesValue) Type() string { return "cidrs" }
