package eventstore_test

import (
	"context"
	"testing"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
)

// BenchmarkFollow follows a lifecycle stream of 50,000 events from its
// start and decodes each, as the validators' tail and the workers' readers
// do: events/s is the rate of Follower.Next plus Store.Decode.
//
//	go test -run '^$' -bench BenchmarkFollow -benchtime 5x ./eventstore
func BenchmarkFollow(b *testing.B) {
	const n = 50_000
	nc := stacktest.Conn(b, stacktest.NATS(b))
	ctx := context.Background()
	store, err := eventstore.Open(ctx, nc, domain.NewDefaultRegistry(), eventstore.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = store.Close() })
	events := make([]domain.Envelope, 0, n)
	for range n {
		_, e := benchIssue(b)
		events = append(events, e)
	}
	if err := store.Seed(ctx, events); err != nil {
		b.Fatal(err)
	}
	var sink uint64
	for b.Loop() {
		f, err := store.Follow(ctx, eventstore.Lifecycle, 1, eventstore.FollowConfig{Buffer: 1024, Remove: true})
		if err != nil {
			b.Fatal(err)
		}
		for range n {
			m, err := f.Next()
			if err != nil {
				b.Fatal(err)
			}
			e, err := store.Decode(m)
			if err != nil {
				b.Fatal(err)
			}
			sink += e.Sequence
		}
		f.Stop()
	}
	if sink == 0 {
		b.Fatal("nothing read")
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
}
