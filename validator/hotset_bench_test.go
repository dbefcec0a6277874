package validator_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/validator"
)

// coldBenchTokens and coldBenchCapacity: a deployment of which a validator
// holds one token in eight.
const (
	coldBenchTokens   = 2048
	coldBenchCapacity = 256
)

// BenchmarkColdValidate validates tokens that are not in the memory of a
// validator with a Capacity, on real servers: "lookup" times a validation
// that loads the token from the event store (one per operation; run it
// with -benchtime Nx, N at most a few thousand, so that every token
// validated is cold), and reports its p50 and p99 and the live heap per
// token held; "limited" times the refusal of a cold token once the cold
// lookup rate limit is reached (from memory, no store round trip).
func BenchmarkColdValidate(b *testing.B) {
	e := newEnv(b)
	now := time.Now()
	secrets := make([]string, coldBenchTokens)
	ids := make([]domain.TokenID, coldBenchTokens)
	for i := range secrets {
		var tok *domain.Token
		secrets[i], tok = e.issue(b, domain.OwnerID(fmt.Sprintf("owner-%d", i%64)), now.Add(-time.Hour), nil)
		ids[i] = tok.ID()
	}
	e.project(b)
	ctx := context.Background()

	b.Run("lookup", func(b *testing.B) {
		v := e.start(b, validator.Config{Capacity: coldBenchCapacity, ColdLookupRate: 1e6, ColdLookupBurst: 1e6})
		var samples []time.Duration
		i := 0
		for b.Loop() {
			for validator.Holds(v, ids[i%coldBenchTokens]) {
				i++
			}
			t0 := time.Now()
			_, err := v.Validate(ctx, secrets[i%coldBenchTokens])
			samples = append(samples, time.Since(t0))
			if err != nil {
				b.Fatalf("token %d (held %v): %v; stats %+v", i%coldBenchTokens, validator.Holds(v, ids[i%coldBenchTokens]), err, v.Stats())
			}
			i++
		}
		slices.Sort(samples)
		b.ReportMetric(float64(samples[len(samples)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(samples[len(samples)*99/100].Microseconds()), "p99-µs")
		st := v.Stats()
		b.ReportMetric(float64(st.ColdLookups)/float64(b.N), "lookups/op")
		b.ReportMetric(float64(v.Status().Tokens), "tokens-held")
	})

	b.Run("limited", func(b *testing.B) {
		v := e.start(b, validator.Config{Capacity: coldBenchCapacity, ColdLookupRate: 1e-9, ColdLookupBurst: 1})
		cold := -1
		for i, id := range ids {
			if !validator.Holds(v, id) {
				cold = i
				break
			}
		}
		// The burst of one goes to another cold token.
		for i, id := range ids {
			if i != cold && !validator.Holds(v, id) {
				_, _ = v.Validate(ctx, secrets[i])
				break
			}
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Validate(ctx, secrets[cold]); !errors.Is(err, validator.ErrLookupLimited) {
				b.Fatalf("got %v, want ErrLookupLimited", err)
			}
		}
	})
}
