package main

import (
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
