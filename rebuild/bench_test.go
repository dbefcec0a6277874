package rebuild_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/rebuild"
)

// benchAppenders is how many goroutines build the benchmark's stream, each
// appending its own tokens' events in atomic batches.
const benchAppenders = 8

// appendBenchStream appends at least n lifecycle events of a realistic
// mix to store: api tokens and sessions issued (about a quarter of the
// events), their expiry set or sessions extended (about two thirds), some
// revoked, and now and then all tokens of an owner revoked. Each token's
// events are in order; tokens of different appenders interleave. It
// returns the number of events appended.
func appendBenchStream(tb testing.TB, store *eventstore.Store, n int) int {
	tb.Helper()
	ctx := context.Background()
	var total atomic.Int64
	errs := make(chan error, benchAppenders)
	var wg sync.WaitGroup
	for w := range benchAppenders {
		wg.Go(func() {
			if err := appendBenchEvents(ctx, store, uint64(w), n/benchAppenders, &total); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
	return int(total.Load())
}

func appendBenchEvents(ctx context.Context, store *eventstore.Store, worker uint64, n int, total *atomic.Int64) error {
	rng := rand.New(rand.NewPCG(worker, 42))
	entropy := rand.NewChaCha8([32]byte{byte(worker), 1})
	policy := domain.DefaultPolicy()
	policy.AllowNeverExpires = true
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(worker) * time.Millisecond)
	meta := domain.Meta{Actor: fmt.Sprintf("user:%d", worker), CorrelationID: "bench"}
	owners := make([]*domain.Owner, 200)
	for i := range owners {
		owners[i] = domain.NewOwner(domain.OwnerID(fmt.Sprintf("owner-%d-%d@example.com", worker, i)))
	}
	batch := make([]domain.Envelope, 0, eventstore.MaxBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if _, err := store.AppendAtomic(ctx, eventstore.Change{Expect: eventstore.ExpectNothing(), Events: batch}); err != nil {
			return err
		}
		total.Add(int64(len(batch)))
		batch = batch[:0]
		return nil
	}
	for appended := 0; appended < n; {
		now = now.Add(time.Second)
		oi := rng.IntN(len(owners))
		owner := owners[oi]
		req := domain.IssueRequest{
			Owner:  owner.ID(),
			Name:   fmt.Sprintf("ci token %d", appended),
			Scopes: []string{"read", "write", fmt.Sprintf("repo:%d", rng.IntN(100))},
		}
		if rng.IntN(4) == 0 {
			req.Kind = domain.KindSession
		} else if rng.IntN(5) == 0 {
			req.NeverExpires = true
		}
		tok, _, err := domain.IssueToken(policy, nil, req, meta, now, entropy)
		if err != nil {
			return err
		}
		for range rng.IntN(5) {
			at := now.Add(time.Duration(1+rng.IntN(24*60)) * time.Minute)
			if tok.Kind() == domain.KindSession {
				_, err = tok.ExtendSession(at, 0, meta, at)
			} else {
				exp := at.Add(time.Duration(1+rng.IntN(90)) * 24 * time.Hour)
				err = tok.SetExpiry(policy, &exp, meta, at)
			}
			if err != nil {
				return err
			}
		}
		if rng.IntN(10) < 3 {
			if err := tok.Revoke("rotated by ci", meta, now.Add(48*time.Hour)); err != nil {
				return err
			}
		}
		events := tok.Changes()
		if rng.IntN(500) == 0 {
			if err := owner.RevokeTokens(nil, "offboarded", meta, now); err == nil {
				events = append(events, owner.Changes()...)
				// Stored: the next revocation starts from a clean owner.
				owners[oi] = domain.NewOwner(owner.ID())
			}
		}
		if len(batch)+len(events) > eventstore.MaxBatch {
			if err := flush(); err != nil {
				return err
			}
		}
		batch = append(batch, events...)
		appended += len(events)
	}
	return flush()
}

// BenchmarkRebuild1M measures `tokenledger rebuild` on a stream of a million
// lifecycle events: read and fold, load into the shadow tables, index,
// swap, with the garbage collector set as the command sets it. events/s is
// the whole rebuild's rate; the phases are reported in seconds, and
// B/token is the fold's live heap per token. The nats-server runs in a
// process of its own, as deployed: in the benchmark's process its caches
// would be marked by every collection of the rebuild.
func BenchmarkRebuild1M(b *testing.B) {
	ctx := context.Background()
	nc, err := nats.Connect(stacktest.NATSProcess(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	store, err := eventstore.Open(ctx, js, domain.NewDefaultRegistry(), eventstore.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = store.Close() })
	pool, _ := migratedPool(b)
	start := time.Now()
	n := appendBenchStream(b, store, 1_000_000)
	b.Logf("appended %d events in %v (%.0f events/s)", n, time.Since(start).Round(time.Millisecond), float64(n)/time.Since(start).Seconds())
	// The append leaves a gigabyte of dirty pages (the stream, PostgreSQL's
	// WAL) for the kernel to write back, which would slow the first
	// rebuilds down by half: measure the rebuild, not the append's
	// write-back.
	start = time.Now()
	syscall.Sync()
	b.Logf("synced in %v", time.Since(start).Round(time.Millisecond))
	perToken := foldBytesPerToken(b, store)

	defer debug.SetGCPercent(debug.SetGCPercent(rebuild.DefaultGCPercent))
	var res rebuild.Result
	for b.Loop() {
		var err error
		if res, err = rebuild.Run(ctx, store, pool, rebuild.DefaultOptions(), discard); err != nil {
			b.Fatal(err)
		}
		b.Logf("rebuilt %d events in %v (%.0f events/s): read %v, load %v, swap %v",
			res.Events, res.Elapsed.Round(time.Millisecond), res.Rate(), res.Read.Round(time.Millisecond),
			res.Load.Round(time.Millisecond), res.Swap.Round(time.Millisecond))
	}
	if res.Events != uint64(n) {
		b.Fatalf("rebuilt %d events, appended %d", res.Events, n)
	}
	b.ReportMetric(res.Rate(), "events/s")
	b.ReportMetric(res.Read.Seconds(), "read-s")
	b.ReportMetric(res.Load.Seconds(), "load-s")
	b.ReportMetric(res.Swap.Seconds(), "swap-s")
	b.ReportMetric(float64(res.Tokens), "tokens")
	b.ReportMetric(perToken, "B/token")
}

// foldBytesPerToken folds the whole stream as rebuild does and returns the
// heap it holds per token.
func foldBytesPerToken(b *testing.B, store *eventstore.Store) float64 {
	b.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	state := domain.NewState()
	if _, err := store.Read(context.Background(), 1, func(e domain.Envelope) error {
		state.Apply(e)
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perToken := float64(after.HeapAlloc-before.HeapAlloc) / float64(state.Len())
	runtime.KeepAlive(state)
	return perToken
}
