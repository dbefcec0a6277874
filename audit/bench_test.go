package audit_test

import (
	"context"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/audit"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/internal/testkit/projectionstest"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
)

// BenchmarkStateAt100k measures StateAt over 100,000 lifecycle events and
// 20,000 usage events of one random history (tens of thousands of tokens of
// 1,000 owners), for an instant in the middle of it, for all tokens and for
// one owner. Its events/s metric counts the events of both streams read.
func BenchmarkStateAt100k(b *testing.B) {
	ctx := context.Background()
	nc := stacktest.Conn(b, stacktest.NATS(b))
	store, err := eventstore.Open(ctx, nc, domain.NewDefaultRegistry(), eventstore.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	const lifecycleEvents, usageEvents = 100_000, 20_000
	// Most events of a long random history are uses. A prefix of a
	// history is a valid history, and so is one without some of its uses.
	h := projectionstest.RandomHistory(7, projectionstest.HistoryConfig{
		Tokens: 40_000, Owners: 1_000, Events: 8 * lifecycleEvents, Start: time.Now().UTC(),
	})
	var lifecycle, usage []domain.Envelope
	for _, e := range h.Events {
		switch {
		case e.Type != domain.TypeTokenUsed && len(lifecycle) < lifecycleEvents:
			lifecycle = append(lifecycle, e)
		case e.Type == domain.TypeTokenUsed && len(usage) < usageEvents:
			usage = append(usage, e)
		}
	}
	if len(lifecycle) < lifecycleEvents {
		b.Fatalf("the history has %d lifecycle events, want %d", len(lifecycle), lifecycleEvents)
	}
	for start := 0; start < len(lifecycle); start += eventstore.MaxBatch {
		batch := lifecycle[start:min(start+eventstore.MaxBatch, len(lifecycle))]
		if _, err := store.AppendAtomic(ctx, eventstore.Change{Expect: eventstore.ExpectNothing(), Events: batch}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := store.AppendUsage(ctx, usage...); err != nil {
		b.Fatal(err)
	}
	mid := lifecycle[len(lifecycle)/2].Time
	owner := domain.OwnerID("owner 7/ü.*>")
	for _, bc := range []struct {
		name  string
		owner *domain.OwnerID
	}{{"all", nil}, {"one-owner", &owner}} {
		b.Run(bc.name, func(b *testing.B) {
			tokens := 0
			for b.Loop() {
				snap, err := audit.StateAt(ctx, store, mid, bc.owner)
				if err != nil {
					b.Fatal(err)
				}
				tokens = len(snap.Tokens)
			}
			b.ReportMetric(float64(len(lifecycle)+len(usage))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(tokens), "tokens")
			b.ReportMetric(float64(len(lifecycle)), "lifecycle-events")
			b.ReportMetric(float64(len(usage)), "usage-events")
		})
	}
}
