package projections_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/projections"
)

// BenchmarkApplyUsageBatch measures ApplyUsageBatch with 100, 1,000 and
// 10,000 distinct tokens per batch (one event each), chosen at random
// among the 1,000,000 rows of a populated usage table, so that nearly
// every row is an update of a row elsewhere in the table. rows/s is the
// write throughput, statements/s the batches (one usage write statement
// each, in its own transaction) per second.
func BenchmarkApplyUsageBatch(b *testing.B) {
	const tableRows = 1_000_000
	s, pool := newStore(b)
	ctx := context.Background()
	ids := make([]domain.TokenID, tableRows)
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range ids {
		var id domain.TokenID
		for j := range id {
			id[j] = byte(rng.Uint32())
		}
		ids[i] = id
	}
	start := time.Date(2031, 5, 1, 0, 0, 0, 0, time.UTC)
	i := 0
	_, err := pool.CopyFrom(ctx, pgx.Identifier{projections.UsageTable},
		[]string{"token_id", "last_used_at", "use_count", "first_used_at"},
		pgx.CopyFromFunc(func() ([]any, error) {
			if i == len(ids) {
				return nil, nil
			}
			i++
			return []any{pgtype.UUID{Bytes: ids[i-1], Valid: true}, start, int64(1), start}, nil
		}))
	if err != nil {
		b.Fatalf("populate usage: %v", err)
	}
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE "+projections.UsageTable); err != nil {
		b.Fatal(err)
	}
	var seq uint64
	var u usageStream
	for _, size := range []int{100, 1000, 10_000} {
		b.Run(fmt.Sprintf("tokens=%d", size), func(b *testing.B) {
			batch := make([]domain.Envelope, size)
			for b.Loop() {
				b.StopTimer()
				at := start.Add(time.Duration(seq) * time.Millisecond)
				picked := make(map[int]bool, size)
				for j := range batch {
					k := rng.IntN(len(ids))
					for picked[k] {
						k = rng.IntN(len(ids))
					}
					picked[k] = true
					seq++
					batch[j] = u.use(ids[k], 3, at, at, "192.0.2.1")
					batch[j].Sequence = seq
				}
				u.events = u.events[:0]
				b.StartTimer()
				res, err := s.ApplyUsageBatch(ctx, usageName, batch)
				if err != nil || len(res.Usage) != size {
					b.Fatalf("wrote %d rows of %d: %v", len(res.Usage), size, err)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "statements/s")
		})
	}
}
