package projections_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/internal/testkit/projectionstest"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/projections"
)

// sliceSource serves the events of a history to Swap.
func sliceSource(events []domain.Envelope, before func()) projections.EventSource {
	return func(ctx context.Context, after, through uint64, fn func([]domain.Envelope) error) error {
		if before != nil {
			before()
		}
		var batch []domain.Envelope
		for _, e := range events {
			if e.Sequence > after && e.Sequence <= through {
				batch = append(batch, e)
			}
			if len(batch) == 50 {
				if err := fn(batch); err != nil {
					return err
				}
				batch = nil
			}
		}
		if len(batch) == 0 {
			return nil
		}
		return fn(batch)
	}
}

// schema describes the live tables' indexes and constraints, names
// included.
func schema(tb testing.TB, pool *pgxpool.Pool) string {
	tb.Helper()
	rows, err := pool.Query(context.Background(), `
SELECT 'index ' || indexdef FROM pg_indexes WHERE tablename IN ('tokens', 'owner_revocations')
UNION ALL
SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
FROM pg_constraint WHERE conrelid IN ('tokens'::regclass, 'owner_revocations'::regclass)
UNION ALL
SELECT 'table ' || relname || ' ' || coalesce(reloptions::text, '') FROM pg_class
WHERE relkind = 'r' AND relname IN ('tokens', 'owner_revocations', 'projection_checkpoints') OR relname LIKE '%rebuild%'
ORDER BY 1`)
	if err != nil {
		tb.Fatalf("schema: %v", err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		tb.Fatalf("schema: %v", err)
	}
	return strings.Join(lines, "\n")
}

// waitingForLock reports whether a session of the database is waiting for
// a lock on the checkpoint row.
func waitingForLock(tb testing.TB, pool *pgxpool.Pool) bool {
	tb.Helper()
	var n int
	err := pool.QueryRow(context.Background(), `
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%projection_checkpoints%'`).Scan(&n)
	if err != nil {
		tb.Fatalf("pg_stat_activity: %v", err)
	}
	return n > 0
}

// TestRebuildSwapEqualsLiveWhileApplying rebuilds the projection from a
// fold while the live projection keeps applying and being snapshotted. The
// swap catches up with the events the live projection applied meanwhile,
// with a live ApplyBatch blocked on it; afterwards the live projection
// continues on the swapped-in tables, and ends identical, row by row and
// index by index, to a projection that never was rebuilt. A second rebuild
// of the rebuilt tables works the same.
func TestRebuildSwapEqualsLiveWhileApplying(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := projectionstest.RandomHistory(21, projectionstest.HistoryConfig{Tokens: 400, Owners: 10, Events: 3000, Odd: true})
	ev := h.Events
	clock := domain.NewManualClock(h.End)

	reference, refPool := newStore(t, projections.WithClock(clock))
	apply(t, reference, ev...)

	s, pool := newStore(t, projections.WithClock(clock))
	apply(t, s, ev[:1000]...)
	checker := startSnapshotChecker(s, ev, clock.Now())

	rb := s.NewRebuild(live)
	stats, err := rb.Load(ctx, 1000, projections.StateTokenRows(projectionstest.Fold(ev[:1000])), projections.StateOwnerRows(projectionstest.Fold(ev[:1000])))
	if err != nil {
		t.Fatal(err)
	}
	if stats.Tokens == 0 {
		t.Fatal("load copied no tokens")
	}
	apply(t, s, ev[1000:1200]...)
	if n, err := rb.ApplyBatch(ctx, ev[1000:1100]); err != nil || n != 100 {
		t.Fatalf("catch up the rebuild: %d, %v", n, err)
	}
	if seq, err := rb.Checkpoint(ctx); err != nil || seq != 1100 {
		t.Fatalf("rebuild checkpoint %d (%v), want 1100", seq, err)
	}

	// The live applier starts when the swap is under way, so its first
	// batch waits for the swap.
	start := make(chan struct{})
	var startOnce sync.Once
	begin := func() { startOnce.Do(func() { close(start) }) }
	applierDone := make(chan error, 1)
	go func() {
		<-start
		for i := 1200; i < len(ev); i += 7 {
			if _, err := s.ApplyBatch(ctx, live, ev[i:min(i+7, len(ev))]); err != nil {
				applierDone <- err
				return
			}
		}
		applierDone <- nil
	}()
	sourceCalled := false
	res, err := rb.Swap(ctx, sliceSource(ev, func() {
		sourceCalled = true
		begin()
		stacktest.Eventually(t, 10*time.Second, func() bool { return waitingForLock(t, pool) }, "the live ApplyBatch waits for the swap")
	}))
	begin()
	if !sourceCalled {
		t.Error("the swap did not read the events it had to catch up with")
	}
	if err != nil {
		t.Fatalf("swap: %v", err)
	}
	if res.Sequence != 1200 || res.CaughtUp != 100 {
		t.Errorf("swap result %+v, want sequence 1200 after catching up 100 events", res)
	}
	if err := <-applierDone; err != nil {
		t.Fatalf("live applier: %v", err)
	}
	checker.finish(t)

	if got, want := dump(t, pool), dump(t, refPool); got != want {
		t.Errorf("rebuilt projection differs from the reference:\n%s", firstDiff(got, want))
	}
	if got, want := schema(t, pool), schema(t, refPool); got != want {
		t.Errorf("schema after the swap:\n%s\nwant:\n%s", got, want)
	}
	projectionstest.RequireMatchesState(t, s, live, projectionstest.Fold(ev), uint64(len(ev)), clock.Now())

	// Rebuild the rebuilt tables, already caught up: no source needed.
	rb2 := s.NewRebuild(live)
	full := projectionstest.Fold(ev)
	if _, err := rb2.Load(ctx, uint64(len(ev)), projections.StateTokenRows(full), projections.StateOwnerRows(full)); err != nil {
		t.Fatal(err)
	}
	if res, err := rb2.Swap(ctx, nil); err != nil || res.Sequence != uint64(len(ev)) || res.CaughtUp != 0 {
		t.Fatalf("second swap: %+v, %v", res, err)
	}
	if got, want := dump(t, pool), dump(t, refPool); got != want {
		t.Errorf("twice rebuilt projection differs from the reference:\n%s", firstDiff(got, want))
	}
	if got, want := schema(t, pool), schema(t, refPool); got != want {
		t.Errorf("schema after the second swap:\n%s\nwant:\n%s", got, want)
	}
}

// firstDiff shows the first line where two dumps differ.
func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range min(len(g), len(w)) {
		if g[i] != w[i] {
			return "line " + strconv.Itoa(i) + ":\n got  " + g[i] + "\n want " + w[i]
		}
	}
	return "one dump is a prefix of the other"
}

// TestRebuildAheadOfLive swaps in a rebuild that has applied more events
// than the live projection: the live checkpoint jumps to the rebuild's, and
// the live projection skips the events the rebuild already holds.
func TestRebuildAheadOfLive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := projectionstest.RandomHistory(22, projectionstest.HistoryConfig{Tokens: 50, Owners: 5, Events: 400})
	ev := h.Events
	s, _ := newStore(t)
	apply(t, s, ev[:100]...)
	rb := s.NewRebuild(live)
	if _, err := rb.Load(ctx, 300, projections.StateTokenRows(projectionstest.Fold(ev[:300])), projections.StateOwnerRows(projectionstest.Fold(ev[:300]))); err != nil {
		t.Fatal(err)
	}
	res, err := rb.Swap(ctx, nil)
	if err != nil || res.Sequence != 300 {
		t.Fatalf("swap: %+v, %v; want sequence 300", res, err)
	}
	if n := apply(t, s, ev[100:350]...); n != 50 {
		t.Errorf("live applied %d events after the swap, want the 50 after 300", n)
	}
	projectionstest.RequireMatchesState(t, s, live, projectionstest.Fold(ev[:350]), 350, time.Time{})
}

// TestRebuildSwapErrors checks the swaps that must fail and change nothing.
func TestRebuildSwapErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := projectionstest.RandomHistory(23, projectionstest.HistoryConfig{Tokens: 30, Owners: 3, Events: 200})
	ev := h.Events
	failing := func(context.Context, uint64, uint64, func([]domain.Envelope) error) error {
		return errors.New("stream unavailable")
	}
	cases := []struct {
		name    string
		prepare func(t *testing.T, rb *projections.Rebuild)
		source  projections.EventSource
		wantErr error
	}{
		{"nothing loaded", func(*testing.T, *projections.Rebuild) {}, nil, projections.ErrNoRebuild},
		{"dropped", func(t *testing.T, rb *projections.Rebuild) {
			load(t, rb, ev, 200)
			if err := rb.Drop(ctx); err != nil {
				t.Fatal(err)
			}
		}, nil, projections.ErrNoRebuild},
		{"behind without a source", func(t *testing.T, rb *projections.Rebuild) { load(t, rb, ev, 100) }, nil, nil},
		{"the source fails", func(t *testing.T, rb *projections.Rebuild) { load(t, rb, ev, 100) }, failing, nil},
		{"the source stops short", func(t *testing.T, rb *projections.Rebuild) { load(t, rb, ev, 100) }, sliceSource(ev[:150], nil), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, pool := newStore(t)
			apply(t, s, ev...)
			rb := s.NewRebuild(live)
			tc.prepare(t, rb)
			before, beforeSchema := dump(t, pool), schema(t, pool)
			_, err := rb.Swap(ctx, tc.source)
			if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
				t.Fatalf("swap: %v, want an error (%v)", err, tc.wantErr)
			}
			if dump(t, pool) != before || schema(t, pool) != beforeSchema {
				t.Error("a failed swap changed the database")
			}
			projectionstest.RequireMatchesState(t, s, live, projectionstest.Fold(ev), uint64(len(ev)), time.Time{})
		})
	}
}

// TestRebuildLoadFailureLeavesNothing loads rows that break a constraint
// (two tokens with one secret hash): the load fails as a whole.
func TestRebuildLoadFailureLeavesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, pool := newStore(t)
	before := schema(t, pool)
	rows := func(yield func(projections.TokenRow) bool) {
		for i := range 2 {
			r := projections.TokenRow{ID: newID(t), Owner: "alice", Kind: domain.KindAPI, SecretHash: hash(9), CreatedAt: time.Now(), IssuedSeq: uint64(i + 1), LastSeq: uint64(i + 1)}
			if !yield(r) {
				return
			}
		}
	}
	rb := s.NewRebuild(live)
	if _, err := rb.Load(ctx, 2, rows, nil); err == nil {
		t.Fatal("a load breaking the unique secret hash succeeded")
	}
	if seq, err := rb.Checkpoint(ctx); err != nil || seq != 0 {
		t.Errorf("rebuild checkpoint %d (%v) after a failed load", seq, err)
	}
	if got := schema(t, pool); got != before {
		t.Errorf("a failed load left:\n%s", got)
	}
}

func load(tb testing.TB, rb *projections.Rebuild, ev []domain.Envelope, seq int) {
	tb.Helper()
	st := projectionstest.Fold(ev[:seq])
	if _, err := rb.Load(context.Background(), uint64(seq), projections.StateTokenRows(st), projections.StateOwnerRows(st)); err != nil {
		tb.Fatal(err)
	}
}

// TestRebuildApplyBatchNeedsALoad checks that the shadow tables refuse
// events before a Load, instead of starting a rebuild from nothing.
func TestRebuildApplyBatchNeedsALoad(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	st := newStream()
	st.token(newID(t), apiIssued("alice", 1, nil))
	rb := s.NewRebuild(live)
	if _, err := rb.ApplyBatch(context.Background(), st.events); !errors.Is(err, projections.ErrNoRebuild) {
		t.Errorf("apply to the shadow tables before a load: %v, want %v", err, projections.ErrNoRebuild)
	}
	if seq, err := rb.Checkpoint(context.Background()); err != nil || seq != 0 {
		t.Errorf("rebuild checkpoint %d (%v), want none", seq, err)
	}
}
