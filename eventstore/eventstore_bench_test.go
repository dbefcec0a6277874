package eventstore_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
)

// benchStore opens a store with fresh streams on srv.
func benchStore(b *testing.B, srv stacktest.Connector, replicas int) *eventstore.Store {
	b.Helper()
	store, _ := benchStoreConfig(b, srv, replicas)
	return store
}

// benchStoreConfig is benchStore that also returns the store's
// configuration (its stream and subject prefix).
func benchStoreConfig(b *testing.B, srv stacktest.Connector, replicas int) (*eventstore.Store, eventstore.Config) {
	b.Helper()
	n := storeSeq.Add(1)
	cfg := eventstore.DefaultConfig()
	cfg.Stream = fmt.Sprintf("BENCH%d", n)
	cfg.UsageStream = fmt.Sprintf("BENCHU%d", n)
	cfg.SubjectPrefix = fmt.Sprintf("b%d", n)
	cfg.Replicas = replicas
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := eventstore.Open(ctx, stacktest.Conn(b, srv), domain.NewDefaultRegistry(), cfg)
	if err != nil {
		b.Fatalf("open: %v", err)
	}
	return store, cfg
}

// benchIssue builds the issue event of a fresh token, as an issue call
// would: it is what each benchmarked append stores.
func benchIssue(b *testing.B) (domain.TokenID, domain.Envelope) {
	now := time.Now()
	tok, err := domain.NewTokenID(now, nil)
	if err != nil {
		b.Fatal(err)
	}
	id, err := domain.NewEventID(now, nil)
	if err != nil {
		b.Fatal(err)
	}
	exp := domain.NormalizeTime(now.Add(24 * time.Hour))
	return tok, domain.Envelope{
		ID: id, Type: domain.TypeTokenIssued, AggregateKind: domain.AggregateToken, AggregateID: tok.String(),
		Actor: "bench", Time: domain.NormalizeTime(now), Schema: 1, CorrelationID: "bench",
		Data: domain.TokenIssued{
			Owner: "bench-owner", Name: "bench token", Scopes: []string{"read"}, Kind: domain.KindAPI,
			SecretHash: sha256.Sum256(id[:]), ExpiresAt: &exp,
		},
	}
}

type benchServer struct {
	name     string
	replicas int
	start    func(b *testing.B) stacktest.Connector
}

var benchServers = []benchServer{
	{"R1", 1, func(b *testing.B) stacktest.Connector { return stacktest.NATS(b) }},
	{"R3", 3, func(b *testing.B) stacktest.Connector { return stacktest.NATSCluster(b, 3) }},
}

// BenchmarkAppend measures appends of one issue event each, with a
// concurrency check ("no event yet" on a fresh token), from one goroutine
// (the latency of an append) and from many at once (the throughput of a
// loaded API node). Reports events/s and the p50/p99 latency of one append.
func BenchmarkAppend(b *testing.B) {
	for _, bs := range benchServers {
		b.Run(bs.name, func(b *testing.B) {
			srv := bs.start(b)
			for _, writers := range []int{1, 16, 64} {
				name := "sequential"
				if writers > 1 {
					name = fmt.Sprintf("concurrent-%d", writers)
				}
				b.Run(name, func(b *testing.B) {
					store := benchStore(b, srv, bs.replicas)
					ctx := context.Background()
					lat := make([]time.Duration, b.N)
					var next atomic.Int64
					var failed atomic.Value
					b.ResetTimer()
					var wg sync.WaitGroup
					for range writers {
						wg.Go(func() {
							for {
								i := next.Add(1) - 1
								if i >= int64(b.N) {
									return
								}
								tok, e := benchIssue(b)
								start := time.Now()
								if _, err := store.Append(ctx, eventstore.ExpectToken(tok, 0), e); err != nil {
									failed.Store(err)
									return
								}
								lat[i] = time.Since(start)
							}
						})
					}
					wg.Wait()
					b.StopTimer()
					if err := failed.Load(); err != nil {
						b.Fatalf("append: %v", err)
					}
					reportRate(b, b.N)
					reportLatency(b, lat)
				})
			}
			// The floor an append is compared with: the same encoded
			// event published synchronously to the same kind of
			// stream, one at a time, with no expectation and no
			// message id.
			b.Run("raw-publish", func(b *testing.B) {
				_, cfg := benchStoreConfig(b, srv, bs.replicas)
				js, err := jetstream.New(stacktest.Conn(b, srv))
				if err != nil {
					b.Fatal(err)
				}
				subjects := eventstore.NewSubjects(cfg.SubjectPrefix)
				reg := domain.NewDefaultRegistry()
				ctx := context.Background()
				lat := make([]time.Duration, b.N)
				b.ResetTimer()
				for i := range b.N {
					_, e := benchIssue(b)
					subject, err := subjects.Subject(e)
					if err != nil {
						b.Fatal(err)
					}
					data, err := reg.Marshal(e)
					if err != nil {
						b.Fatal(err)
					}
					start := time.Now()
					if _, err := js.Publish(ctx, subject, data); err != nil {
						b.Fatalf("publish: %v", err)
					}
					lat[i] = time.Since(start)
				}
				b.StopTimer()
				reportRate(b, b.N)
				reportLatency(b, lat)
			})
		})
	}
}

// BenchmarkAppendAtomic measures sequential two-event atomic appends on two
// aggregates, as a rotation makes: the issue of a fresh token expecting its
// owner, and a new expiry of an existing token expecting that token.
func BenchmarkAppendAtomic(b *testing.B) {
	for _, bs := range benchServers {
		b.Run(bs.name, func(b *testing.B) {
			srv := bs.start(b)
			store := benchStore(b, srv, bs.replicas)
			ctx := context.Background()
			old, issue := benchIssue(b)
			stored, err := store.Append(ctx, eventstore.ExpectToken(old, 0), issue)
			if err != nil {
				b.Fatal(err)
			}
			oldSeq := stored[0].Sequence
			owner := issue.Data.(domain.TokenIssued).Owner
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for b.Loop() {
				tok, next := benchIssue(b)
				expiry := next
				expiry.AggregateID = old.String()
				id, err := domain.NewEventID(time.Now(), nil)
				if err != nil {
					b.Fatal(err)
				}
				exp := domain.NormalizeTime(time.Now().Add(time.Hour))
				expiry.ID, expiry.Type = id, domain.TypeTokenExpirySet
				expiry.Data = domain.TokenExpirySet{ExpiresAt: &exp, Reason: domain.ExpiryRotated, RotatedTo: &tok}
				start := time.Now()
				stored, err := store.AppendAtomic(ctx,
					eventstore.Change{Expect: eventstore.ExpectOwner(owner, 0), Events: []domain.Envelope{next}},
					eventstore.Change{Expect: eventstore.ExpectToken(old, oldSeq), Events: []domain.Envelope{expiry}},
				)
				if err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
				oldSeq = stored[1].Sequence
			}
			b.StopTimer()
			reportRate(b, 2*b.N)
			reportLatency(b, lat)
		})
	}
}

// BenchmarkRead measures a full replay of a stream of readEvents events, as
// a projection rebuild does.
func BenchmarkRead(b *testing.B) {
	const readEvents = 100_000
	for _, bs := range benchServers {
		b.Run(bs.name, func(b *testing.B) {
			srv := bs.start(b)
			store := benchStore(b, srv, bs.replicas)
			fill(b, store, readEvents)
			ctx := context.Background()
			b.ResetTimer()
			for b.Loop() {
				n := 0
				last, err := store.Read(ctx, 1, func(domain.Envelope) error { n++; return nil })
				if err != nil || n != readEvents || last != readEvents {
					b.Fatalf("read %d events up to %d: %v", n, last, err)
				}
			}
			reportRate(b, b.N*readEvents)
		})
	}
}

// BenchmarkLoadToken measures loading one token's history of five events,
// as a command or a validator's unknown-token lookup does, from streams of
// different lengths (tokens picked across the whole stream).
func BenchmarkLoadToken(b *testing.B) {
	for _, bs := range benchServers {
		b.Run(bs.name, func(b *testing.B) {
			srv := bs.start(b)
			for _, size := range []int{5_000, 100_000} {
				b.Run(fmt.Sprintf("stream-%d", size), func(b *testing.B) {
					store := benchStore(b, srv, bs.replicas)
					fill(b, store, size)
					var tokens []domain.TokenID
					if _, err := store.Read(context.Background(), 1, func(e domain.Envelope) error {
						if id, ok := e.TokenID(); ok && e.Type == domain.TypeTokenIssued && len(tokens) < size {
							tokens = append(tokens, id)
						}
						return nil
					}); err != nil {
						b.Fatal(err)
					}
					ctx := context.Background()
					i := 0
					b.ResetTimer()
					for b.Loop() {
						events, err := store.LoadToken(ctx, tokens[(i*7919)%len(tokens)])
						if err != nil || len(events) != 5 {
							b.Fatalf("load: %d events, %v", len(events), err)
						}
						i++
					}
				})
			}
		})
	}
}

// fill appends n events: tokens of five events each, in atomic batches.
func fill(b *testing.B, store *eventstore.Store, n int) {
	b.Helper()
	ctx := context.Background()
	const perToken, perBatch = 5, 1000
	var changes []eventstore.Change
	flush := func() {
		if _, err := store.AppendAtomic(ctx, changes...); err != nil {
			b.Fatalf("fill: %v", err)
		}
		changes = changes[:0]
	}
	for i := 0; i < n/perToken; i++ {
		tok, issue := benchIssue(b)
		events := []domain.Envelope{issue}
		for len(events) < perToken {
			e := issue
			id, err := domain.NewEventID(time.Now(), nil)
			if err != nil {
				b.Fatal(err)
			}
			exp := domain.NormalizeTime(time.Now().Add(time.Hour))
			e.ID, e.Type, e.Data = id, domain.TypeTokenExpirySet, domain.TokenExpirySet{ExpiresAt: &exp, Reason: domain.ExpirySetByCaller}
			events = append(events, e)
		}
		changes = append(changes, eventstore.Change{Expect: eventstore.ExpectToken(tok, 0), Events: events})
		if len(changes)*perToken >= perBatch {
			flush()
		}
	}
	if len(changes) > 0 {
		flush()
	}
}

func reportRate(b *testing.B, events int) {
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	q := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds())
	}
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
}
