package validator_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/projections"
	"github.com/tokenledger/tokenledger/validator"
)

var startTokens = flag.Int("start-tokens", 200_000, "live tokens of the read model BenchmarkStartFromSnapshot starts a validator from (10000000 for the target figure)")

// BenchmarkStartFromSnapshot starts a validator from a read model in real
// PostgreSQL of -start-tokens live tokens (of one owner per ten, 100
// scope sets) and a fifth as many more that can no longer validate
// (revoked, or expired beyond the eviction grace), and reports the start's
// time, the peak of the live heap during it and the live heap after it
// (steady state), the peak RSS of the process during it, and the CPU time
// the process spent on it (PostgreSQL's is not counted). Filling the
// database is not timed: at 10,000,000 tokens it takes minutes.
//
//	go test -run '^$' -bench BenchmarkStartFromSnapshot -benchtime 1x -start-tokens 10000000 -timeout 60m ./validator
func BenchmarkStartFromSnapshot(b *testing.B) {
	live := *startTokens
	dead := live / 5
	e := newEnv(b)
	now := time.Now()
	ctx := context.Background()
	scopeSets := make([][]string, 100)
	for i := range scopeSets {
		scopeSets[i] = []string{"read", fmt.Sprintf("scope-%d", i)}
	}
	rows := func(yield func(projections.TokenRow) bool) {
		for i := range live + dead {
			// No id is young: a young revoked token would be kept.
			created := now.Add(-time.Duration(i%(30*24*60)+10) * time.Minute)
			id, err := domain.NewTokenID(created, nil)
			if err != nil {
				b.Fatal(err)
			}
			var seed [8]byte
			binary.LittleEndian.PutUint64(seed[:], uint64(i))
			r := projections.TokenRow{
				ID:         id,
				Owner:      domain.OwnerID(fmt.Sprintf("owner-%d", i/10)),
				Name:       "bench",
				Scopes:     scopeSets[i%len(scopeSets)],
				Kind:       domain.KindAPI,
				SecretHash: domain.SecretHash(sha256.Sum256(append(id[:], seed[:]...))),
				CreatedAt:  domain.NormalizeTime(created),
				ExpiresAt:  domain.NormalizeTime(created.Add(90 * 24 * time.Hour)),
				IssuedSeq:  uint64(i + 1),
				LastSeq:    uint64(i + 1),
			}
			switch {
			case i >= live && i%2 == 0:
				r.RevokedAt, r.RevokedReason = r.CreatedAt.Add(time.Minute), "bench"
			case i >= live:
				r.ExpiresAt = domain.NormalizeTime(now.Add(-48 * time.Hour))
			}
			if !yield(r) {
				return
			}
		}
	}
	rb := e.read.NewRebuild(projection)
	began := time.Now()
	if _, err := rb.Load(ctx, uint64(live+dead), rows, nil); err != nil {
		b.Fatal(err)
	}
	if _, err := rb.Swap(ctx, nil); err != nil {
		b.Fatal(err)
	}
	b.Logf("read model of %d live and %d dead tokens filled in %s", live, dead, time.Since(began).Round(time.Second))

	for b.Loop() {
		b.StopTimer()
		runtime.GC()
		resetPeakRSS(b)
		v := e.newValidator(b, validator.Config{Clock: domain.SystemClock{}})
		var peakHeap atomic.Uint64
		stop := sampleHeap(&peakHeap)
		b.StartTimer()
		t0, cpu0 := time.Now(), processCPU(b)
		if err := v.Start(ctx); err != nil {
			b.Fatal(err)
		}
		took, cpu := time.Since(t0), processCPU(b)-cpu0
		b.StopTimer()
		stop()
		peakRSS := readPeakRSS(b)
		runtime.GC()
		steady := liveHeap()
		if got := v.Status().Tokens; got != live {
			b.Fatalf("%d tokens in memory, want %d", got, live)
		}
		b.ReportMetric(took.Seconds(), "start-s")
		b.ReportMetric(cpu.Seconds(), "start-cpu-s")
		b.ReportMetric(float64(steady)/1e6, "steady-heap-MB")
		b.ReportMetric(float64(peakHeap.Load())/1e6, "peak-heap-MB")
		b.ReportMetric(float64(peakHeap.Load())/float64(steady), "peak/steady")
		b.ReportMetric(float64(peakRSS)/1e6, "peak-rss-MB")
		_ = v.Close(ctx)
		b.StartTimer()
	}
}

// processCPU is the CPU time the process used so far (user and system):
// on a shared machine, the start's own cost whatever else runs.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// heapObjects is the runtime metric of the bytes of live and not yet
// swept heap objects: the heap's size between collections.
const heapObjects = "/memory/classes/heap/objects:bytes"

// sampleHeap records the largest heap size seen every millisecond into
// peak until the returned stop is called.
func sampleHeap(peak *atomic.Uint64) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		s := []metrics.Sample{{Name: heapObjects}}
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); <-finished }
}

// liveHeap is the heap's size right after a collection.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: heapObjects}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// resetPeakRSS resets the process's peak resident set size (VmHWM).
func resetPeakRSS(b *testing.B) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Fatalf("reset the peak RSS: %v", err)
	}
}

// readPeakRSS returns the process's peak resident set size since the last
// reset, in bytes.
func readPeakRSS(b *testing.B) uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb * 1024
		}
	}
	b.Fatal("no VmHWM in /proc/self/status")
	return 0
}
