package consumers_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
)

// BenchmarkUsageConsumer measures the usage consumer end to end — fetch,
// decode, fold, one upsert per batch, acknowledgement, the kind lookup of
// the tokens used — catching up with 20,000 usage events of 5,000 api
// tokens stored while it was stopped. events/s is the projection rate,
// statements/s the batches written.
func BenchmarkUsageConsumer(b *testing.B) {
	const events, tokens = 20_000, 5_000
	for _, size := range []int{100, 1000, 5000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			e := newUsageEnv(b, nil)
			ids := make([]domain.TokenID, tokens)
			for i := range ids {
				ids[i] = e.issue(domain.IssueRequest{Owner: domain.OwnerID(fmt.Sprint("owner-", i))}, true).ID()
			}
			rng := rand.New(rand.NewPCG(2, 2))
			cfg := e.config()
			cfg.BatchSize = size
			cfg.MaxWait = time.Second
			var statements uint64
			for b.Loop() {
				b.StopTimer()
				for range events / 1000 {
					e.appendUses(randomUses(b, rng, ids, 1000, e.clock.Now())...)
				}
				last := e.usageLast()
				b.StartTimer()
				r := e.start(cfg)
				waitSlid(b, r.w, last)
				b.StopTimer()
				statements += r.w.Stats().Statements
				if err := r.stop(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(b.N*events)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(statements)/b.Elapsed().Seconds(), "statements/s")
		})
	}
}
