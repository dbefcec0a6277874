package rebuild_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/internal/testkit/projectionstest"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/projections"
	"github.com/tokenledger/tokenledger/rebuild"
)

// TestRebuildOnARunningSystem rebuilds the projection while the lifecycle
// projector keeps applying and events keep being appended, in every phase
// of the rebuild: during the read, before the load (so the catch-up has
// work), and right before the swap once the projector has applied them (so
// the swap must catch up under the live checkpoint's lock). Afterwards the
// projector continues on the swapped-in tables, which must end identical,
// row by row and index by index, to a projection of the same stream that
// was never rebuilt, and equal to the reference fold.
func TestRebuildOnARunningSystem(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	events, end := lifecycleHistory(31, 5200)
	clock := domain.NewManualClock(end)
	store := openStore(t, stacktest.NATS(t))
	pool, _ := migratedPool(t)
	proj := projections.New(pool, projections.WithClock(clock))
	name := projections.LifecycleName
	startLive(t, store, proj, name)

	// The history in five parts, appended in order. The parts appended
	// after the read are not multiples of the batch size, so that the
	// catch-up and the swap end with a partial batch.
	before, during, atLoad, atSwap, after := events[:3000], events[3000:4200], events[4200:4533], events[4533:4783], events[4783:]
	if _, err := appendAll(ctx, store, before); err != nil {
		t.Fatal(err)
	}
	oid := tableOID(t, pool)

	duringDone := make(chan error, 1)
	go func() {
		_, err := appendAll(ctx, store, during)
		duringDone <- err
	}()
	var (
		mu          sync.Mutex
		callbackErr error
		phases      []rebuild.Phase
		swapFrom    uint64
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		callbackErr = errors.Join(callbackErr, err)
	}
	opts := rebuild.DefaultOptions()
	opts.Batch = 100
	opts.Progress = func(p rebuild.Progress) {
		if len(phases) > 0 && phases[len(phases)-1] == p.Phase {
			return
		}
		phases = append(phases, p.Phase)
		switch p.Phase {
		case rebuild.PhaseLoad:
			// More than a batch appended after the read: the catch-up
			// has to apply them.
			if err := <-duringDone; err != nil {
				fail(err)
				return
			}
			if _, err := appendAll(ctx, store, atLoad); err != nil {
				fail(err)
			}
		case rebuild.PhaseSwap:
			// Appended and applied by the live side after the catch-up:
			// the swap has to apply them under the lock.
			last, err := appendAll(ctx, store, atSwap)
			if err != nil {
				fail(err)
				return
			}
			swapFrom = p.Done
			fail(poll(ctx, time.Minute, func() (bool, error) {
				cp, err := proj.Checkpoint(ctx, name)
				return cp >= last, err
			}))
		}
	}
	res, err := rebuild.Run(ctx, store, pool, opts, discard)
	if err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	if callbackErr != nil {
		t.Fatalf("appending during the rebuild: %v", callbackErr)
	}
	if want := []rebuild.Phase{rebuild.PhaseRead, rebuild.PhaseLoad, rebuild.PhaseCatchUp, rebuild.PhaseSwap}; !equalPhases(phases, want) {
		t.Errorf("phases %v, want %v", phases, want)
	}
	streamAtSwap := uint64(len(before) + len(during) + len(atLoad) + len(atSwap))
	switch {
	case res.Folded < uint64(len(before)) || res.Loaded != res.Folded:
		t.Errorf("folded %d events, loaded at %d: want at least the %d appended before", res.Folded, res.Loaded, len(before))
	case res.CaughtUp < uint64(len(atLoad)+len(atSwap)):
		t.Errorf("caught up %d events, want at least the %d appended after the read", res.CaughtUp, len(atLoad)+len(atSwap))
	case res.UnderLock < uint64(len(atSwap)) || swapFrom+res.UnderLock != streamAtSwap:
		t.Errorf("the swap applied %d events under the lock from %d, want the last %d up to %d",
			res.UnderLock, swapFrom, streamAtSwap-swapFrom, streamAtSwap)
	case res.Sequence != streamAtSwap:
		t.Errorf("live checkpoint after the swap %d, want %d", res.Sequence, streamAtSwap)
	case res.Events != res.Folded+res.CaughtUp || res.Tokens == 0 || res.SwapAttempts != 1:
		t.Errorf("result %+v is inconsistent", res)
	}
	if tableOID(t, pool) == oid {
		t.Fatal("the live tokens table is the same table after the rebuild: nothing was swapped in")
	}

	last, err := appendAll(ctx, store, after)
	if err != nil {
		t.Fatal(err)
	}
	stacktest.Eventually(t, time.Minute, func() bool {
		cp, err := proj.Checkpoint(ctx, name)
		return err == nil && cp == last
	}, "the live side applies the events appended after the rebuild")

	// The reference is what applying the stream alone gives: the same
	// ApplyBatch the projector calls, in batches for speed.
	reference, _ := migratedPool(t)
	refProj := projections.New(reference)
	stream := readAll(t, store)
	for i := 0; i < len(stream); i += 100 {
		if _, err := refProj.ApplyBatch(ctx, name, stream[i:min(i+100, len(stream))]); err != nil {
			t.Fatalf("reference projection: %v", err)
		}
	}

	if got, want := dump(t, pool), dump(t, reference); got != want {
		t.Errorf("rebuilt projection differs from the live-only one:\n%s", firstDiff(got, want))
	}
	if got, want := schema(t, pool), schema(t, reference); got != want {
		t.Errorf("schema after the rebuild:\n%s\nwant:\n%s", got, want)
	}
	projectionstest.RequireMatchesState(t, proj, name, projectionstest.Fold(stream), last, clock.Now())
}

func equalPhases(a, b []rebuild.Phase) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A rebuild with nothing live to catch up with: an empty stream gives empty
// tables at checkpoint 0, and a stream nobody projected yet is loaded and
// swapped in whole, the checkpoint moving to its end.
func TestRebuildWithoutLiveProjection(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		events int
	}{
		{"empty stream", 0},
		{"stream never projected", 600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			events, end := lifecycleHistory(32, tc.events)
			events = events[:tc.events]
			store := openStore(t, stacktest.NATS(t))
			pool, _ := migratedPool(t)
			last, err := appendAll(ctx, store, events)
			if err != nil {
				t.Fatal(err)
			}
			res, err := rebuild.Run(ctx, store, pool, rebuild.DefaultOptions(), discard)
			if err != nil {
				t.Fatalf("rebuild: %v", err)
			}
			if res.Sequence != last || res.Folded != uint64(len(events)) || res.CaughtUp != 0 {
				t.Errorf("result %+v: want %d events folded, checkpoint %d, nothing caught up", res, len(events), last)
			}
			proj := projections.New(pool, projections.WithClock(domain.NewManualClock(end)))
			projectionstest.RequireMatchesState(t, proj, projections.LifecycleName, projectionstest.Fold(readAll(t, store)), last, end)
			if s := schema(t, pool); strings.Contains(s, "table ") {
				t.Errorf("tables left from the rebuild:\n%s", s)
			}
		})
	}
}

// A rebuild that fails or is interrupted leaves the live tables as they
// were and no shadow tables behind, whatever its phase; a second rebuild
// started while one runs is refused.
func TestRebuildInterruptedLeavesTheLiveTables(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	events, _ := lifecycleHistory(33, 1600)
	store := openStore(t, stacktest.NATS(t))
	pool, _ := migratedPool(t)
	proj := projections.New(pool)
	if _, err := appendAll(ctx, store, events[:1000]); err != nil {
		t.Fatal(err)
	}
	stored := readAll(t, store)
	for i := 0; i < len(stored); i += 100 {
		if _, err := proj.ApplyBatch(ctx, projections.LifecycleName, stored[i:min(i+100, len(stored))]); err != nil {
			t.Fatal(err)
		}
	}
	before, oid := dump(t, pool), tableOID(t, pool)

	next := 1000
	for _, phase := range []rebuild.Phase{rebuild.PhaseRead, rebuild.PhaseLoad, rebuild.PhaseCatchUp, rebuild.PhaseSwap} {
		t.Run("at "+string(phase), func(t *testing.T) {
			rctx, cancel := context.WithCancel(ctx)
			defer cancel()
			var second error
			seen := map[rebuild.Phase]bool{}
			opts := rebuild.DefaultOptions()
			opts.Batch = 100
			opts.Progress = func(p rebuild.Progress) {
				if p.Phase == rebuild.PhaseLoad && !seen[rebuild.PhaseLoad] {
					_, second = rebuild.Run(ctx, store, pool, rebuild.DefaultOptions(), discard)
					// Appended after the read, so that there is a
					// catch-up.
					if _, err := appendAll(ctx, store, events[next:next+200]); err != nil {
						t.Error(err)
					}
					next += 200
				}
				seen[p.Phase] = true
				if p.Phase == phase {
					cancel()
				}
			}
			_, err := rebuild.Run(rctx, store, pool, opts, discard)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("interrupted rebuild returned %v, want context.Canceled", err)
			}
			if !seen[phase] {
				t.Fatalf("the rebuild never reached phase %s", phase)
			}
			if phase != rebuild.PhaseRead && !errors.Is(second, rebuild.ErrRunning) {
				t.Errorf("a rebuild started during another returned %v, want ErrRunning", second)
			}
			if got := dump(t, pool); got != before {
				t.Errorf("live tables changed:\n%s", firstDiff(got, before))
			}
			if tableOID(t, pool) != oid {
				t.Error("the live tokens table was replaced")
			}
			if s := schema(t, pool); strings.Contains(s, "table ") {
				t.Errorf("tables left from the interrupted rebuild:\n%s", s)
			}
		})
	}
	// And the lock is free again: a rebuild runs to the end.
	if _, err := rebuild.Run(ctx, store, pool, rebuild.DefaultOptions(), discard); err != nil {
		t.Fatalf("rebuild after the interrupted ones: %v", err)
	}
	last, err := store.StreamLastSequence(ctx)
	if err != nil {
		t.Fatal(err)
	}
	projectionstest.RequireMatchesState(t, proj, projections.LifecycleName, projectionstest.Fold(readAll(t, store)), last, time.Time{})
}
