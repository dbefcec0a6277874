package validator

import (
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
)

// BenchmarkChurn simulates a year of a deployment through the tail's
// apply path, on a controllable clock: every simulated day issues perDay
// tokens with a 30-day lifetime (one owner per ten tokens) and revokes
// one in ten of those issued the day before, and a sweep runs every day
// with the default one-day grace. It is a scaled equivalent of 1 M issues
// a day (perDay = 10,000: about 4 M events in the year instead of 400 M)
// and reports the live heap after the first 30 days (the live set is
// reached) and after the year, per token in memory: it stays flat,
// proportional to the live set, not to the history.
func BenchmarkChurn(b *testing.B) {
	const (
		days     = 365
		perDay   = 10_000
		lifetime = 30 * 24 * time.Hour
	)
	scopes := benchScopes(100)
	var heapMonth, heapYear, tokensMonth, tokensYear, events float64
	for b.Loop() {
		rng := rand.New(rand.NewPCG(5, 6))
		st := newState()
		w := newTokenWriter(st)
		start := time.UnixMicro(benchBase).UTC()
		var seq uint64
		var prev []domain.TokenID
		var base runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&base)
		for day := range days {
			st.mu.Lock()
			today := make([]domain.TokenID, 0, perDay)
			for i := range perDay {
				at := start.Add(time.Duration(day)*24*time.Hour + time.Duration(i)*(24*time.Hour/perDay))
				t := syntheticToken(rng, day*perDay+i, at.UnixMicro(), perDay*3, scopes)
				exp := at.Add(lifetime)
				seq++
				w.applyTail(domain.Envelope{
					Type: domain.TypeTokenIssued, AggregateKind: domain.AggregateToken, AggregateID: t.id.String(),
					Sequence: seq, Time: at,
					Data: domain.TokenIssued{Owner: t.owner, Scopes: t.scopes, Kind: domain.KindAPI, SecretHash: t.hash, ExpiresAt: &exp},
				})
				today = append(today, t.id)
			}
			for i := 0; i < len(prev); i += 10 {
				seq++
				w.applyTail(domain.Envelope{
					Type: domain.TypeTokenRevoked, AggregateKind: domain.AggregateToken, AggregateID: prev[i].String(),
					Sequence: seq, Time: start.Add(time.Duration(day) * 24 * time.Hour),
					Data: domain.TokenRevoked{},
				})
			}
			prev = today
			now := start.Add(time.Duration(day+1) * 24 * time.Hour).UnixMicro()
			st.sweep(0, st.hwm, now, (24 * time.Hour).Microseconds(), now-(2*time.Minute).Microseconds())
			st.settle()
			st.mu.Unlock()
			if day == 29 || day == days-1 {
				var m runtime.MemStats
				runtime.GC()
				runtime.GC()
				runtime.ReadMemStats(&m)
				heap := float64(m.HeapAlloc - base.HeapAlloc)
				if day == 29 {
					heapMonth, tokensMonth = heap, float64(st.tokens())
				} else {
					heapYear, tokensYear = heap, float64(st.tokens())
				}
			}
		}
		events = float64(seq)
		runtime.KeepAlive(st)
	}
	b.ReportMetric(events, "events")
	b.ReportMetric(tokensMonth, "tokens-day30")
	b.ReportMetric(tokensYear, "tokens-day365")
	b.ReportMetric(heapMonth/1e6, "heap-MB-day30")
	b.ReportMetric(heapYear/1e6, "heap-MB-day365")
	b.ReportMetric(heapYear/tokensYear, "bytes/token-day365")
}
