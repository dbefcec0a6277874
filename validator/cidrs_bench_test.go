package validator_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/validator"
)

// BenchmarkValidateCIDRs compares, in one run on one validator, plain
// validation of tokens without allowed networks ("plain": Validate) with
// validation of tokens limited to three networks from an address in the
// last of them ("cidrs": ValidateFrom), and ValidateFrom of the tokens
// without networks ("plain-from": the address recorded, nothing checked).
// Each reports its p50 latency (one validation in 64 sampled).
func BenchmarkValidateCIDRs(b *testing.B) {
	e := newEnv(b)
	now := time.Now()
	plain := make([]string, benchTokens)
	limited := make([]string, benchTokens)
	for i := range benchTokens {
		owner := domain.OwnerID("owner-" + string(rune('a'+i%26)))
		plain[i], _ = e.issue(b, owner, now, nil)
		limited[i], _ = e.issue(b, owner, now, func(r *domain.IssueRequest) {
			r.AllowedCIDRs = []string{"10.0.0.0/8", "2001:db8::/32", "203.0.113.0/24"}
		})
	}
	e.project(b)
	v := e.start(b, validator.Config{})
	ctx := context.Background()
	run := func(name string, secrets []string, validate func(string) error) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var samples [1 << 16]time.Duration
			n, i := 0, 0
			for b.Loop() {
				s := secrets[i&(benchTokens-1)]
				i++
				if i&63 != 0 {
					if err := validate(s); err != nil {
						b.Fatal(err)
					}
					continue
				}
				t0 := time.Now()
				err := validate(s)
				samples[n&(len(samples)-1)] = time.Since(t0)
				n++
				if err != nil {
					b.Fatal(err)
				}
			}
			if n > 0 {
				got := slices.Clone(samples[:min(n, len(samples))])
				slices.Sort(got)
				b.ReportMetric(float64(got[len(got)/2].Nanoseconds()), "p50-ns")
			}
		})
	}
	for range 2 {
		run("plain", plain, func(s string) error { _, err := v.Validate(ctx, s); return err })
		run("cidrs", limited, func(s string) error { _, err := v.ValidateFrom(ctx, s, "203.0.113.77"); return err })
		run("plain-from", plain, func(s string) error { _, err := v.ValidateFrom(ctx, s, "203.0.113.77"); return err })
	}
}
