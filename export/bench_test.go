package export_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/export"
)

// benchEvents is the size of the stream the benchmarks export.
const benchEvents = 200_000

// benchStore is a stream of benchEvents lifecycle events (the mix of
// newHistory), exported in full by the benchmarks.
func benchStore(b *testing.B, n int) (*testStore, export.Filter) {
	b.Helper()
	store := newStore(b)
	publish(b, store, n, newHistory(3, false).next)
	return store, export.Filter{From: genStart, To: genStart.Add(time.Duration(n+1000) * time.Millisecond), Format: export.JSONL}
}

// BenchmarkExport measures Export of a whole stream of 200,000 lifecycle
// events to JSON lines (and CSV): read, decode, resolve owners, encode,
// chain, write, sign. events/s is the rate of one export.
func BenchmarkExport(b *testing.B) {
	store, filter := benchStore(b, benchEvents)
	_, priv := signingKey(b)
	for _, format := range []export.Format{export.JSONL, export.CSV} {
		b.Run(string(format), func(b *testing.B) {
			filter.Format = format
			path := filepath.Join(b.TempDir(), "bench."+string(format))
			var res export.Result
			for b.Loop() {
				var err error
				res, err = export.Export(context.Background(), store.Store, path, export.Options{Filter: filter, Key: priv})
				if err != nil {
					b.Fatal(err)
				}
			}
			if res.Manifest.Records != benchEvents {
				b.Fatalf("exported %d events, want %d", res.Manifest.Records, benchEvents)
			}
			b.ReportMetric(float64(benchEvents)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(res.Owners.Loads), "owner-loads/op")
		})
	}
}

// BenchmarkVerify measures Verify of an export of 200,000 events:
// signature, file hash, chain, order, range and counts. events/s is the
// rate of one verification.
func BenchmarkVerify(b *testing.B) {
	store, filter := benchStore(b, benchEvents)
	pub, priv := signingKey(b)
	for _, format := range []export.Format{export.JSONL, export.CSV} {
		b.Run(string(format), func(b *testing.B) {
			filter.Format = format
			path := filepath.Join(b.TempDir(), "bench."+string(format))
			if _, err := export.Export(context.Background(), store.Store, path, export.Options{Filter: filter, Key: priv}); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				rep, err := export.Verify(context.Background(), path, export.VerifyOptions{PublicKey: pub})
				if err != nil {
					b.Fatal(err)
				}
				if !rep.OK() || rep.Records != benchEvents {
					b.Fatalf("verify: %d records:\n%s", rep.Records, messages(rep))
				}
			}
			b.ReportMetric(float64(benchEvents)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkMemory measures the peak heap of an export (with the default
// owner cache and with one of 10,000 entries) and of a verification, of
// 100,000 and of 1,000,000 events (lifecycle and usage, JSON lines),
// sampling runtime.ReadMemStats every 5 ms: apart from the owner cache
// filling up to its capacity, it must not grow with the number of events.
// peak-heap-MB is the highest HeapAlloc seen minus the heap before the
// operation.
func BenchmarkMemory(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(progressCount(n), func(b *testing.B) {
			store := newStore(b)
			publish(b, store, n, newHistory(5, true).next)
			pub, priv := signingKey(b)
			filter := historyFilter(n, export.JSONL)
			filter.IncludeUsage = true
			path := filepath.Join(b.TempDir(), "ledger.jsonl")
			var exportPeak, smallCachePeak, verifyPeak uint64
			for b.Loop() {
				exportPeak = peakHeap(func() {
					if _, err := export.Export(context.Background(), store.Store, path, export.Options{Filter: filter, Key: priv}); err != nil {
						b.Fatal(err)
					}
				})
				smallCachePeak = peakHeap(func() {
					if _, err := export.Export(context.Background(), store.Store, path, export.Options{Filter: filter, Key: priv, OwnerCache: 10_000}); err != nil {
						b.Fatal(err)
					}
				})
				verifyPeak = peakHeap(func() {
					rep, err := export.Verify(context.Background(), path, export.VerifyOptions{PublicKey: pub})
					if err != nil || !rep.OK() {
						b.Fatalf("verify: %v\n%s", err, messages(rep))
					}
				})
			}
			b.ReportMetric(float64(exportPeak)/(1<<20), "export-peak-heap-MB")
			b.ReportMetric(float64(smallCachePeak)/(1<<20), "export-cache10k-peak-heap-MB")
			b.ReportMetric(float64(verifyPeak)/(1<<20), "verify-peak-heap-MB")
		})
	}
}

// peakHeap runs fn and returns the highest heap in use while it ran, above
// the heap before it.
func peakHeap(fn func()) uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > base && ms.HeapAlloc-base > peak.Load() {
				peak.Store(ms.HeapAlloc - base)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	fn()
	close(stop)
	<-done
	return peak.Load()
}

func progressCount(n int) string {
	if n >= 1_000_000 {
		return fmt.Sprintf("%dM", n/1_000_000)
	}
	return fmt.Sprintf("%dk", n/1000)
}
