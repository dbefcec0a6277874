package validator

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/tokenledger/tokenledger/domain"
)

// BenchmarkMemoryPerToken loads 1,000,000 synthetic tokens (100,000
// owners, 100 scope sets) into a validator's state, the way the snapshot
// loader does, and reports the heap it retains per token: entries, index,
// interned owners and scope sets, everything.
func BenchmarkMemoryPerToken(b *testing.B) {
	const (
		tokens    = 1_000_000
		owners    = 100_000
		scopeSets = 100
	)
	scopes := make([][]string, scopeSets)
	for i := range scopes {
		scopes[i] = []string{"read", fmt.Sprintf("repo:%d", i), "write"}
	}
	var perToken float64
	for b.Loop() {
		rng := rand.New(rand.NewPCG(1, 2))
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		st := newState()
		w := newTokenWriter(st)
		st.mu.Lock()
		for i := range tokens {
			var t newToken
			for k := 0; k < len(t.id); k += 8 {
				v := rng.Uint64()
				for j := range 8 {
					t.id[k+j] = byte(v >> (8 * j))
				}
			}
			for k := 0; k < len(t.hash); k += 8 {
				v := rng.Uint64()
				for j := range 8 {
					t.hash[k+j] = byte(v >> (8 * j))
				}
			}
			t.owner = domain.OwnerID(fmt.Sprintf("user-%d@example.com", i%owners))
			t.scopes = scopes[i%scopeSets]
			t.created = 1_800_000_000_000_000 + int64(i)
			t.expires = t.created + 30*24*3600*1_000_000
			t.issuedSeq = uint64(i + 1)
			w.s.insert(t)
		}
		st.mu.Unlock()
		runtime.GC()
		runtime.ReadMemStats(&after)
		perToken = float64(after.HeapAlloc-before.HeapAlloc) / tokens
		if st.tokens() != tokens || st.ownersLen() != owners {
			b.Fatalf("%d tokens, %d owners", st.tokens(), st.ownersLen())
		}
		runtime.KeepAlive(st)
	}
	b.ReportMetric(perToken, "bytes/token")
}
