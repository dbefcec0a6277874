package validator

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/oklog/ulid/v2"

	"github.com/tokenledger/tokenledger/domain"
)

// benchBase is the time (Unix µs) the synthetic tokens are created from.
const benchBase = 1_800_000_000_000_000

// syntheticToken is token i of a synthetic population: created at
// created (Unix µs) with an id stamped with that time, as the domain
// issues them, of one of owners owners and one of scopes scope sets.
func syntheticToken(rng *rand.Rand, i int, created int64, owners int, scopes [][]string) newToken {
	t := newToken{
		owner:     domain.OwnerID(fmt.Sprintf("user-%d@example.com", i%owners)),
		scopes:    scopes[i%len(scopes)],
		created:   created,
		expires:   created + 30*24*3600*1_000_000,
		issuedSeq: uint64(i + 1),
	}
	for k := 0; k < len(t.id); k += 8 {
		v := rng.Uint64()
		for j := range 8 {
			t.id[k+j] = byte(v >> (8 * j))
		}
	}
	if err := (*ulid.ULID)(&t.id).SetTime(uint64(created / 1000)); err != nil {
		panic(err)
	}
	for k := 0; k < len(t.hash); k += 8 {
		v := rng.Uint64()
		for j := range 8 {
			t.hash[k+j] = byte(v >> (8 * j))
		}
	}
	return t
}

func benchScopes(n int) [][]string {
	scopes := make([][]string, n)
	for i := range scopes {
		scopes[i] = []string{"read", fmt.Sprintf("repo:%d", i), "write"}
	}
	return scopes
}

// BenchmarkMemoryPerToken loads synthetic tokens (one owner per ten
// tokens, 100 scope sets) into a validator's state, the way the snapshot
// loader does, and reports the live heap it retains per token: entries,
// index, interned owners, grants and scope sets, everything. The
// "10M" case needs about 1 GB.
func BenchmarkMemoryPerToken(b *testing.B) {
	for _, tokens := range []int{1_000_000, 10_000_000} {
		b.Run(fmt.Sprintf("%dM", tokens/1_000_000), func(b *testing.B) {
			owners := tokens / 10
			scopes := benchScopes(100)
			var perToken float64
			for b.Loop() {
				rng := rand.New(rand.NewPCG(1, 2))
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				st := newState()
				st.mu.Lock()
				st.advance(math.MaxUint64)
				for i := range tokens {
					st.insert(syntheticToken(rng, i, benchBase+int64(i)*7, owners, scopes))
				}
				st.mu.Unlock()
				runtime.GC()
				runtime.ReadMemStats(&after)
				perToken = float64(after.HeapAlloc-before.HeapAlloc) / float64(tokens)
				if st.tokens() != tokens || st.ownersLen() != owners {
					b.Fatalf("%d tokens, %d owners", st.tokens(), st.ownersLen())
				}
				runtime.KeepAlive(st)
			}
			b.ReportMetric(perToken, "bytes/token")
		})
	}
}
