package export

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/tokenledger/tokenledger/domain"
)

// The owner cache keeps the most recently used entries up to its capacity.
func TestOwnerCacheEvictsTheLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	id := func(i int) domain.TokenID { return domain.TokenID{byte(i >> 8), byte(i)} }
	owner := func(i int) domain.OwnerID { return domain.OwnerID(fmt.Sprint("owner-", i)) }
	c := newOwnerCache(3)
	for i := range 3 {
		c.put(id(i), owner(i))
	}
	c.get(id(0))           // 0 becomes the most recent: 1 is the least
	c.put(id(3), owner(3)) // evicts 1
	c.put(id(2), "moved")  // updates 2, now the most recent
	c.put(id(4), owner(4)) // evicts 0
	for i, want := range map[int]domain.OwnerID{0: "", 1: "", 2: "moved", 3: owner(3), 4: owner(4)} {
		got, ok := c.get(id(i))
		if got != want || ok != (want != "") {
			t.Errorf("get(%d) = %q, %t; want %q", i, got, ok, want)
		}
	}
	if len(c.idx) != 3 || len(c.ents) != 3 {
		t.Errorf("the cache holds %d entries in %d slots, want 3", len(c.idx), len(c.ents))
	}
	// A long run keeps the size and finds exactly the last three.
	for i := 10; i < 10_000; i++ {
		c.put(id(i), owner(i))
		if i%7 == 0 {
			c.get(id(i - 1))
		}
	}
	for i := 9_990; i < 10_000; i++ {
		_, ok := c.get(id(i))
		if want := i >= 9_997; ok != want {
			t.Errorf("after the run, get(%d) found %t, want %t", i, ok, want)
		}
	}
}

// BenchmarkOwnerCache measures the heap a full owner cache of
// DefaultOwnerCache entries holds, each with an owner of 20 bytes of its
// own, and the cost of a lookup.
func BenchmarkOwnerCache(b *testing.B) {
	id := func(i int) domain.TokenID {
		return domain.TokenID{byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i), 1}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c := newOwnerCache(DefaultOwnerCache)
	for i := range DefaultOwnerCache {
		// Each entry holds a string of its own, as the owners of decoded
		// events are.
		c.put(id(i), domain.OwnerID(fmt.Sprintf("owner-%06d@corp.com", i%1000)))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perEntry := float64(after.HeapAlloc-before.HeapAlloc) / DefaultOwnerCache
	i := 0
	for b.Loop() {
		if _, ok := c.get(id(i % DefaultOwnerCache)); !ok {
			b.Fatal("miss")
		}
		i += 7919
	}
	runtime.KeepAlive(c)
	b.ReportMetric(perEntry, "B/entry")
	b.ReportMetric(perEntry*DefaultOwnerCache/(1<<20), "MB")
}
