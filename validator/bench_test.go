package validator_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/validator"
)

// benchTokens is how many tokens the validation benchmarks cycle through
// (a power of two).
const benchTokens = 1024

// benchValidator starts a validator on real servers with benchTokens
// tokens, usage recording on (the default flush interval), and returns it
// with their secrets.
func benchValidator(b *testing.B, cfg validator.Config) (*validator.Validator, []string) {
	b.Helper()
	e := newEnv(b)
	now := time.Now()
	secrets := make([]string, benchTokens)
	for i := range secrets {
		secrets[i], _ = e.issue(b, domain.OwnerID("owner-"+string(rune('a'+i%26))), now, nil)
	}
	e.project(b)
	return e.start(b, cfg), secrets
}

// BenchmarkValidate validates known tokens. "serial" times one goroutine
// and samples the latency of one validation in 64 (the two clock readings
// around it are part of the sample); "parallel" runs GOMAXPROCS
// goroutines. The "coarse-clock" variants read a CoarseClock instead of
// the system clock.
func BenchmarkValidate(b *testing.B) {
	b.Run("system-clock", func(b *testing.B) {
		v, secrets := benchValidator(b, validator.Config{})
		benchValidate(b, v, secrets)
	})
	b.Run("coarse-clock", func(b *testing.B) {
		clock := validator.NewCoarseClock(time.Millisecond)
		defer clock.Stop()
		v, secrets := benchValidator(b, validator.Config{Clock: clock})
		benchValidate(b, v, secrets)
	})
}

func benchValidate(b *testing.B, v *validator.Validator, secrets []string) {
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		var samples [1 << 16]time.Duration
		n := 0
		i := 0
		for b.Loop() {
			s := secrets[i&(benchTokens-1)]
			i++
			if i&63 != 0 {
				if _, err := v.Validate(ctx, s); err != nil {
					b.Fatal(err)
				}
				continue
			}
			t0 := time.Now()
			_, err := v.Validate(ctx, s)
			samples[n&(len(samples)-1)] = time.Since(t0)
			n++
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "validations/s")
		if n > 0 {
			got := slices.Clone(samples[:min(n, len(samples))])
			slices.Sort(got)
			b.ReportMetric(float64(got[len(got)/2].Nanoseconds()), "p50-ns")
			b.ReportMetric(float64(got[len(got)*99/100].Nanoseconds()), "p99-ns")
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		var worker atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			// Workers start far apart, so they do not validate the same
			// token at the same time.
			i := int(worker.Add(1)) * benchTokens / 4
			for pb.Next() {
				if _, err := v.Validate(ctx, secrets[i&(benchTokens-1)]); err != nil {
					b.Error(err)
					return
				}
				i++
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "validations/s")
	})
}

// BenchmarkValidateUnknownOld validates well-formed secrets of old ids no
// token has: refused from memory, without a store lookup.
func BenchmarkValidateUnknownOld(b *testing.B) {
	v, _ := benchValidator(b, validator.Config{})
	old := make([]string, benchTokens)
	for i := range old {
		old[i] = forge(b, time.Now().Add(-time.Hour))
	}
	ctx := context.Background()
	b.ReportAllocs()
	var worker atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		i := int(worker.Add(1)) * benchTokens / 4
		for pb.Next() {
			if _, err := v.Validate(ctx, old[i&(benchTokens-1)]); !errors.Is(err, validator.ErrUnknown) {
				b.Errorf("got %v, want unknown", err)
				return
			}
			i++
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "validations/s")
	if st := v.Stats(); st.Lookups != 0 {
		b.Errorf("%d store lookups, want none", st.Lookups)
	}
}
