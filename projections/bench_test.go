package projections_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/internal/testkit/projectionstest"
	"github.com/tokenledger/tokenledger/projections"
)

// benchHistory is a random history of realistic shape (about 70% used,
// 15% expiry_set, 8% issued, the rest revocations), generated once.
var benchHistory = sync.OnceValue(func() []domain.Envelope {
	return projectionstest.RandomHistory(99, projectionstest.HistoryConfig{Tokens: 20_000, Owners: 500, Events: 200_000}).Events
})

// benchEvents returns events n .. n+size-1 of an endless stream that
// repeats benchHistory with ever higher sequences (repeated issues are
// ignored, repeated uses applied).
func benchEvents(base []domain.Envelope, n, size int) []domain.Envelope {
	out := make([]domain.Envelope, size)
	for i := range out {
		e := base[(n+i)%len(base)]
		e.Sequence = uint64(n + i + 1)
		out[i] = e
	}
	return out
}

// BenchmarkApplyBatch measures ApplyBatch on the live tables for batches of
// 1, 100 and 1000 events of a realistic mix; events/s is the throughput.
func BenchmarkApplyBatch(b *testing.B) {
	base := benchHistory()
	for _, size := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("events=%d", size), func(b *testing.B) {
			s, _ := newStore(b)
			ctx := context.Background()
			// Start from a populated projection.
			for i := 0; i < 20_000; i += 1000 {
				if _, err := s.ApplyBatch(ctx, live, benchEvents(base, i, 1000)); err != nil {
					b.Fatal(err)
				}
			}
			next := 20_000
			b.ResetTimer()
			for b.Loop() {
				events := benchEvents(base, next, size)
				next += size
				if n, err := s.ApplyBatch(ctx, live, events); err != nil || n != size {
					b.Fatalf("applied %d of %d: %v", n, size, err)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// benchRows returns n synthetic token rows of every kind and state, in id
// order, built once.
var benchRows = sync.OnceValue(func() []projections.TokenRow {
	const n = 1_000_000
	rng := rand.New(rand.NewPCG(1, 2))
	entropy := rand.NewChaCha8([32]byte{7})
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	rows := make([]projections.TokenRow, n)
	for i := range rows {
		created := start.Add(time.Duration(i) * time.Second)
		id, err := domain.NewTokenID(created, entropy)
		if err != nil {
			panic(err)
		}
		var h domain.SecretHash
		_, _ = entropy.Read(h[:])
		r := projections.TokenRow{
			ID: id, Owner: domain.OwnerID(fmt.Sprintf("owner-%d", rng.IntN(50_000))), Name: "ci deploy key",
			Scopes: []string{"read", "write"}, Kind: domain.KindAPI, SecretHash: h, CreatedAt: created,
			ExpiresAt: created.Add(30 * 24 * time.Hour), IssuedSeq: uint64(i + 1), LastSeq: uint64(i + 1),
		}
		if i%3 == 0 {
			r.LastUsedAt, r.UseCount = created.Add(time.Hour), uint64(rng.IntN(10_000))
		}
		if i%10 == 0 {
			r.RevokedAt, r.RevokedReason, r.RevokedBy = created.Add(2*time.Hour), "rotated", "user:admin"
		}
		if i%4 == 0 {
			r.Kind, r.IdleTimeout, r.AbsoluteExpiresAt = domain.KindSession, 30*time.Minute, created.Add(24*time.Hour)
		}
		rows[i] = r
	}
	return rows
})

// BenchmarkRebuildLoad measures Rebuild.Load of 1,000,000 token rows (COPY,
// then the indexes): rows/s is the throughput of the whole load.
func BenchmarkRebuildLoad(b *testing.B) {
	rows := benchRows()
	s, _ := newStore(b)
	rb := s.NewRebuild(live)
	ctx := context.Background()
	var copyTime, indexTime time.Duration
	b.ResetTimer()
	for b.Loop() {
		stats, err := rb.Load(ctx, uint64(len(rows)), func(yield func(projections.TokenRow) bool) {
			for i := range rows {
				if !yield(rows[i]) {
					return
				}
			}
		}, nil)
		if err != nil {
			b.Fatal(err)
		}
		copyTime += stats.Copy
		indexTime += stats.Index
	}
	b.ReportMetric(float64(b.N*len(rows))/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(copyTime.Seconds()/float64(b.N), "copy-s/op")
	b.ReportMetric(indexTime.Seconds()/float64(b.N), "index-s/op")
}

// replayHistory is a history of 1,000,000 events, generated once.
var replayHistory = sync.OnceValue(func() []domain.Envelope {
	return projectionstest.RandomHistory(100, projectionstest.HistoryConfig{Tokens: 150_000, Owners: 20_000, Events: 1_000_000}).Events
})

// BenchmarkReplay measures the projection's part of a replay of 1,000,000
// events: the fold by domain.State, then Rebuild.Load of its rows and the
// swap. Reading and decoding the events is not included.
func BenchmarkReplay(b *testing.B) {
	events := replayHistory()
	s, _ := newStore(b)
	ctx := context.Background()
	var fold, load time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		state := domain.NewState()
		for _, e := range events {
			state.Apply(e)
		}
		fold += time.Since(start)
		start = time.Now()
		rb := s.NewRebuild(live)
		last := events[len(events)-1].Sequence
		if _, err := rb.Load(ctx, last, projections.StateTokenRows(state), projections.StateOwnerRows(state)); err != nil {
			b.Fatal(err)
		}
		if _, err := rb.Swap(ctx, nil); err != nil {
			b.Fatal(err)
		}
		load += time.Since(start)
	}
	b.ReportMetric(float64(b.N*len(events))/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(fold.Seconds()/float64(b.N), "fold-s/op")
	b.ReportMetric(load.Seconds()/float64(b.N), "load-s/op")
}

// BenchmarkSnapshot measures Snapshot of 1,000,000 tokens, as a validator
// loads them at start.
func BenchmarkSnapshot(b *testing.B) {
	rows := benchRows()
	s, _ := newStore(b)
	ctx := context.Background()
	rb := s.NewRebuild(live)
	if _, err := rb.Load(ctx, uint64(len(rows)), func(yield func(projections.TokenRow) bool) {
		for i := range rows {
			if !yield(rows[i]) {
				return
			}
		}
	}, nil); err != nil {
		b.Fatal(err)
	}
	if _, err := rb.Swap(ctx, nil); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		n := 0
		info, err := s.Snapshot(ctx, live, func(projections.TokenRow) error { n++; return nil })
		if err != nil || n != len(rows) || info.Sequence != uint64(len(rows)) {
			b.Fatalf("snapshot of %d rows at %d: %v", n, info.Sequence, err)
		}
	}
	b.ReportMetric(float64(b.N*len(rows))/b.Elapsed().Seconds(), "rows/s")
}
