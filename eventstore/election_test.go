package eventstore_test

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/stack"
)

// TestAppendsWaitOutALeaderElection issues tokens the way the ledger does
// (load the owner's last sequence, append expecting it, load the token
// back) under a steady load on an R3 stream of an in-process cluster, and
// shuts the stream's leader down mid-load: every call within its 10 s
// deadline succeeds, none is lost, none is stored twice.
func TestAppendsWaitOutALeaderElection(t *testing.T) {
	t.Parallel()
	c, err := stack.StartNATSCluster(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Shutdown)
	nc, err := nats.Connect(stringsJoin(c.ClientURLs()), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := eventstore.DefaultConfig()
	cfg.Replicas = 3
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	store, err := eventstore.Open(ctx, nc, domain.NewDefaultRegistry(), cfg)
	if err != nil {
		t.Fatal(err)
	}

	var (
		mu        sync.Mutex
		acked     []domain.TokenID
		failures  []string
		latencies []time.Duration
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			tick := time.NewTicker(40 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				tok := newTokenID(t)
				actx, acancel := context.WithTimeout(ctx, 10*time.Second)
				start := time.Now()
				owner := domain.OwnerID("o-" + tok.String())
				seq, err := store.LastSequence(actx, eventstore.Owner(owner))
				if err == nil {
					_, err = store.Append(actx, eventstore.ExpectOwner(owner, seq), issued(t, tok, owner))
				}
				if err == nil {
					_, err = store.LoadToken(actx, tok)
				}
				took := time.Since(start)
				acancel()
				mu.Lock()
				latencies = append(latencies, took)
				if err != nil {
					failures = append(failures, took.Round(time.Millisecond).String()+": "+err.Error())
				} else {
					acked = append(acked, tok)
				}
				mu.Unlock()
			}
		})
	}
	ackedCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	// Steady load first: the writers are appending before the leader goes.
	stacktest.Eventually(t, time.Minute, func() bool { return ackedCount() >= 100 }, "100 appends acknowledged before the election")
	s, err := js.Stream(ctx, cfg.Stream)
	if err != nil {
		t.Fatal(err)
	}
	leader := s.CachedInfo().Cluster.Leader
	for _, srv := range c.Servers() {
		if srv.Server().Name() == leader {
			t.Logf("shutting the stream leader %s down", leader)
			srv.Shutdown()
		}
	}
	// The writers keep going through the election: a new leader is
	// elected and the appends after it are acknowledged too.
	before := ackedCount()
	stacktest.Eventually(t, time.Minute, func() bool {
		ictx, icancel := context.WithTimeout(ctx, 2*time.Second)
		defer icancel()
		info, err := s.Info(ictx)
		if err != nil || info.Cluster == nil || info.Cluster.Leader == "" || info.Cluster.Leader == leader {
			t.Logf("stream info: %v, acked %d (before %d)", err, ackedCount(), before)
			return false
		}
		return ackedCount() >= before+200
	}, "a new stream leader and 200 more appends acknowledged after %s went", leader)
	close(stop)
	wg.Wait()
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	t.Logf("%d appends acknowledged, %d failed, max latency %v", len(acked), len(failures), latencies[len(latencies)-1])
	for _, f := range failures {
		t.Errorf("append failed after %s", f)
	}
	for _, tok := range acked {
		events, err := store.LoadToken(ctx, tok)
		if err != nil || len(events) != 1 {
			t.Fatalf("token %s: %d events, %v", tok, len(events), err)
		}
	}
}

func stringsJoin(urls []string) string {
	out := ""
	for i, u := range urls {
		if i > 0 {
			out += ","
		}
		out += u
	}
	return out
}
