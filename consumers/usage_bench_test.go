package consumers_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
)

// BenchmarkUsageConsumer measures the usage consumer end to end — read,
// decode, fold, one upsert per batch, the kind lookup of the tokens used —
// catching up with 20,000 uses of 5,000 api tokens stored while it was
// stopped, in either form: form=token.used stores them as validators did
// before, one message per token and flush; form=batch as they do now, one
// usage batch per flush of 1,000 tokens. uses/s is the projection rate in
// token uses, statements/s the batches written; append-msgs/s and
// append-uses/s measure storing the uses (AppendUsage, outside the timed
// part).
func BenchmarkUsageConsumer(b *testing.B) {
	const uses, tokens, perFlush = 20_000, 5_000, 1_000
	for _, form := range []string{"token.used", "batch"} {
		for _, size := range []int{100, 1000} {
			b.Run(fmt.Sprintf("form=%s/batch=%d", form, size), func(b *testing.B) {
				e := newUsageEnv(b, nil)
				ids := make([]domain.TokenID, tokens)
				for i := range ids {
					ids[i] = e.issue(domain.IssueRequest{Owner: domain.OwnerID(fmt.Sprint("owner-", i))}, true).ID()
				}
				rng := rand.New(rand.NewPCG(2, 2))
				cfg := e.config()
				cfg.BatchSize = size
				// The last read of a catch-up is not full: a short wait
				// keeps the linger for more out of the measure.
				cfg.MaxWait = 20 * time.Millisecond
				var statements, msgs uint64
				var appending time.Duration
				for b.Loop() {
					b.StopTimer()
					first := e.usageLast() + 1
					began := time.Now()
					for range uses / perFlush {
						if form == "batch" {
							e.appendUses(usageBatches(b, rng, ids, perFlush, e.clock.Now())...)
						} else {
							e.appendUses(randomUses(b, rng, ids, perFlush, e.clock.Now())...)
						}
					}
					appending += time.Since(began)
					last := e.usageLast()
					msgs += last - first + 1
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
				b.ReportMetric(float64(b.N*uses)/b.Elapsed().Seconds(), "uses/s")
				b.ReportMetric(float64(statements)/b.Elapsed().Seconds(), "statements/s")
				b.ReportMetric(float64(msgs)/appending.Seconds(), "append-msgs/s")
				b.ReportMetric(float64(b.N*uses)/appending.Seconds(), "append-uses/s")
				b.ReportMetric(float64(msgs)/float64(b.N), "msgs/op")
			})
		}
	}
}

// usageBatches returns the usage batches of one validator flush: n
// distinct tokens of ids, with random counts, times and addresses.
func usageBatches(tb testing.TB, rng *rand.Rand, ids []domain.TokenID, n int, at time.Time) []domain.Envelope {
	tb.Helper()
	uses := make([]domain.TokenUse, 0, n)
	for _, i := range rng.Perm(len(ids))[:n] {
		last := at.Add(-time.Duration(rng.IntN(1000)) * time.Millisecond)
		u := domain.TokenUse{Token: ids[i], Count: uint64(1 + rng.IntN(20)), FirstAt: last.Add(-time.Duration(rng.IntN(60)) * time.Second), LastAt: last}
		if rng.IntN(3) > 0 {
			u.ClientAddr = fmt.Sprintf("198.51.100.%d", rng.IntN(256))
		}
		uses = append(uses, u)
	}
	events, err := domain.RecordUsage(uses, domain.Meta{Actor: "system:validator"}, at, 0)
	if err != nil {
		tb.Fatal(err)
	}
	return events
}
