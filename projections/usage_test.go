package projections_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/internal/testkit/projectionstest"
	"github.com/tokenledger/tokenledger/projections"
)

const usageName = "usage"

// usageStream builds token.used events of the usage stream, numbered from
// 1 in the order they are added.
type usageStream struct {
	events []domain.Envelope
}

func (u *usageStream) use(id domain.TokenID, count uint64, first, last time.Time, addr string) domain.Envelope {
	eid, err := domain.NewEventID(last, nil)
	if err != nil {
		panic(err)
	}
	e := domain.Envelope{
		ID: eid, Type: domain.TypeTokenUsed, AggregateKind: domain.AggregateToken, AggregateID: id.String(),
		Actor: "validator:1", Time: last, Schema: 1, Sequence: uint64(len(u.events) + 1),
		Data: domain.TokenUsed{Count: count, FirstAt: first, LastAt: last, ClientAddr: addr},
	}
	u.events = append(u.events, e)
	return e
}

// batch adds a usage batch of uses recorded at at.
func (u *usageStream) batch(at time.Time, uses ...domain.TokenUse) domain.Envelope {
	events, err := domain.RecordUsage(uses, domain.Meta{Actor: "validator:2"}, at, 0)
	if err != nil || len(events) != 1 {
		panic(fmt.Sprint(len(events), err))
	}
	e := events[0]
	e.Sequence = uint64(len(u.events) + 1)
	u.events = append(u.events, e)
	return e
}

// slice returns the events with sequences from..through.
func (u *usageStream) slice(from, through uint64) []domain.Envelope {
	return slices.Clone(u.events[from-1 : through])
}

// foldUsage is the expected content of the usage table after events: per
// token the summed count (saturating), the earliest first and latest last
// use, and the address of the latest use (a later event wins a tie).
func foldUsage(events []domain.Envelope) map[domain.TokenID]projections.Usage {
	out := make(map[domain.TokenID]projections.Usage)
	for _, e := range events {
		for id, d := range domain.Uses(e) {
			u, ok := out[id]
			if !ok {
				u = projections.Usage{TokenID: id, FirstAt: d.FirstAt, LastAt: d.LastAt}
			}
			u.Count = min(u.Count+d.Count, math.MaxInt64)
			if d.FirstAt.Before(u.FirstAt) {
				u.FirstAt = d.FirstAt
			}
			if !ok || !d.LastAt.Before(u.LastAt) {
				u.LastAt, u.ClientAddr = d.LastAt, d.ClientAddr
			}
			out[id] = u
		}
	}
	return out
}

// usageTable reads the whole usage table.
func usageTable(tb testing.TB, s *projections.ReadModel, ids []domain.TokenID) map[domain.TokenID]projections.Usage {
	tb.Helper()
	out := make(map[domain.TokenID]projections.Usage)
	for _, id := range ids {
		u, err := s.GetUsage(context.Background(), id)
		switch {
		case errors.Is(err, domain.ErrNotFound):
		case err != nil:
			tb.Fatalf("get usage: %v", err)
		default:
			out[id] = u
		}
	}
	return out
}

func requireUsage(tb testing.TB, s *projections.ReadModel, ids []domain.TokenID, want map[domain.TokenID]projections.Usage) {
	tb.Helper()
	got := usageTable(tb, s, ids)
	if len(got) != len(want) {
		tb.Errorf("usage rows: got %d, want %d", len(got), len(want))
	}
	for id, w := range want {
		g, ok := got[id]
		switch {
		case !ok:
			tb.Errorf("token %s: no usage row", id)
		case g.Count != w.Count || !g.FirstAt.Equal(w.FirstAt) || !g.LastAt.Equal(w.LastAt) || g.ClientAddr != w.ClientAddr:
			tb.Errorf("token %s: usage %+v, want %+v", id, g, w)
		}
	}
}

func applyUsage(tb testing.TB, s *projections.ReadModel, events []domain.Envelope) projections.UsageResult {
	tb.Helper()
	res, err := s.ApplyUsageBatch(context.Background(), usageName, events)
	if err != nil {
		tb.Fatalf("apply usage batch: %v", err)
	}
	return res
}

func checkpoint(tb testing.TB, s *projections.ReadModel, name string) uint64 {
	tb.Helper()
	cp, err := s.Checkpoint(context.Background(), name)
	if err != nil {
		tb.Fatalf("checkpoint: %v", err)
	}
	return cp
}

// TestApplyUsageBatchReadsBatches: usage batches and token.used events in
// one stream fold alike, per token, in one statement per call.
func TestApplyUsageBatchReadsBatches(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	a, b, c := newID(t), newID(t), newID(t)
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	var u usageStream
	u.use(a, 2, at, at.Add(time.Second), "192.0.2.1")
	u.batch(at.Add(2*time.Second),
		domain.TokenUse{Token: a, Count: 3, FirstAt: at.Add(time.Second), LastAt: at.Add(2 * time.Second), ClientAddr: "192.0.2.2"},
		domain.TokenUse{Token: b, Count: 1, FirstAt: at, LastAt: at})
	u.use(b, 4, at.Add(-time.Second), at.Add(3*time.Second), "")
	u.batch(at.Add(4*time.Second), domain.TokenUse{Token: c, Count: 9, FirstAt: at, LastAt: at.Add(4 * time.Second), ClientAddr: "192.0.2.3"})

	res := applyUsage(t, s, u.slice(1, 3))
	if res.Applied != 3 || res.Checkpoint != 3 || len(res.Usage) != 2 {
		t.Fatalf("first call: %+v", res)
	}
	if res = applyUsage(t, s, u.slice(3, 4)); res.Applied != 1 || res.Skipped != 1 || res.Checkpoint != 4 {
		t.Fatalf("second call: %+v", res)
	}
	want := foldUsage(u.events)
	if want[a].Count != 5 || want[b].Count != 5 || want[c].Count != 9 {
		t.Fatalf("the fold itself is wrong: %+v", want)
	}
	requireUsage(t, s, []domain.TokenID{a, b, c}, want)
}

// TestApplyUsageBatchFoldsPerToken checks the fold of one batch and how a
// second batch adds to the stored rows: counts add up, the first use is the
// earliest, the last the latest, the client address is the latest use's
// (the later event's on a tie, within a batch and across batches), and an
// address that cannot be stored is dropped without dropping the use.
func TestApplyUsageBatchFoldsPerToken(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	a, b, c := newID(t), newID(t), newID(t)
	at := func(m int) time.Time { return time.Date(2031, 5, 1, 12, m, 0, 0, time.UTC) }
	var u usageStream
	u.use(a, 2, at(1), at(2), "10.0.0.1")
	u.use(b, 1, at(3), at(3), "")
	u.use(a, 3, at(0), at(5), "10.0.0.2")
	u.use(c, 1, at(1), at(1), "bad\x00address")
	u.use(a, 1, at(4), at(4), "10.0.0.3")
	u.use(b, 5, at(2), at(6), "")

	res := applyUsage(t, s, u.events)
	if res.Applied != 6 || res.Skipped != 0 || res.Deferred != 0 || res.Checkpoint != 6 {
		t.Fatalf("result %+v, want 6 applied through checkpoint 6", res)
	}
	if len(res.Usage) != 3 || !slices.IsSortedFunc(res.Usage, func(x, y projections.Usage) int { return x.TokenID.Compare(y.TokenID) }) {
		t.Fatalf("folded usage %+v: want 3 rows in token id order", res.Usage)
	}
	want := map[domain.TokenID]projections.Usage{
		a: {TokenID: a, Count: 6, FirstAt: at(0), LastAt: at(5), ClientAddr: "10.0.0.2"},
		b: {TokenID: b, Count: 6, FirstAt: at(2), LastAt: at(6)},
		c: {TokenID: c, Count: 1, FirstAt: at(1), LastAt: at(1)},
	}
	for _, r := range res.Usage {
		if w := want[r.TokenID]; r != w {
			t.Errorf("folded usage of %s: %+v, want %+v", r.TokenID, r, w)
		}
	}
	requireUsage(t, s, []domain.TokenID{a, b, c}, want)

	u.use(a, 1, at(9), at(9), "")          // later, recorded no address
	u.use(b, 1, at(1), at(1), "192.0.2.9") // earlier than b's last use
	u.use(c, 2, at(0), at(7), "192.0.2.7") // later, with an address
	u.use(c, 1, at(7), at(7), "192.0.2.8") // the same instant, later event
	u.use(a, 1, at(5), at(5), "192.0.2.5") // earlier than the batch's last use of a
	res = applyUsage(t, s, u.slice(7, 11))
	if res.Applied != 5 || res.Checkpoint != 11 {
		t.Fatalf("second batch: %+v", res)
	}
	want[a] = projections.Usage{TokenID: a, Count: 8, FirstAt: at(0), LastAt: at(9)}
	want[b] = projections.Usage{TokenID: b, Count: 7, FirstAt: at(1), LastAt: at(6)}
	want[c] = projections.Usage{TokenID: c, Count: 4, FirstAt: at(0), LastAt: at(7), ClientAddr: "192.0.2.8"}
	requireUsage(t, s, []domain.TokenID{a, b, c}, want)

	u.use(c, 1, at(7), at(7), "192.0.2.9") // the same instant as the stored last use
	applyUsage(t, s, u.slice(12, 12))
	want[c] = projections.Usage{TokenID: c, Count: 5, FirstAt: at(0), LastAt: at(7), ClientAddr: "192.0.2.9"}
	requireUsage(t, s, []domain.TokenID{a, b, c}, want)
	if got := checkpoint(t, s, usageName); got != 12 {
		t.Errorf("checkpoint %d, want 12", got)
	}
}

// TestApplyUsageBatchAppliesEachEventOnce feeds batches that repeat,
// overlap and skip events, and checks what each call applies, skips and
// defers, and that the table holds exactly the fold of the events up to
// the checkpoint: nothing counted twice, nothing passed over.
func TestApplyUsageBatchAppliesEachEventOnce(t *testing.T) {
	t.Parallel()
	type call struct {
		seqs                       []uint64
		applied, skipped, deferred int
		checkpoint                 uint64
	}
	span := func(from, through uint64) []uint64 {
		var s []uint64
		for i := from; i <= through; i++ {
			s = append(s, i)
		}
		return s
	}
	cases := []struct {
		name  string
		calls []call
	}{
		{"a batch delivered again changes nothing", []call{
			{span(1, 10), 10, 0, 0, 10},
			{span(1, 10), 0, 10, 0, 10},
		}},
		{"an overlapping batch applies only the new events", []call{
			{span(1, 10), 10, 0, 0, 10},
			{span(5, 20), 10, 6, 0, 20},
		}},
		{"a batch after a gap waits for the missing events", []call{
			{span(1, 10), 10, 0, 0, 10},
			{span(12, 20), 0, 0, 9, 10},
			{span(11, 20), 10, 0, 0, 20},
		}},
		{"a gap inside a batch stops it there", []call{
			{append(span(1, 5), span(7, 10)...), 5, 0, 4, 5},
			{span(6, 12), 7, 0, 0, 12},
		}},
		{"the first batch must start at the first event", []call{
			{span(3, 10), 0, 0, 8, 0},
			{span(1, 10), 10, 0, 0, 10},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, _ := newStore(t)
			ids := []domain.TokenID{newID(t), newID(t), newID(t), newID(t)}
			rng := rand.New(rand.NewPCG(1, 2))
			var u usageStream
			base := time.Date(2031, 5, 1, 0, 0, 0, 0, time.UTC)
			for i := range 20 {
				last := base.Add(time.Duration(rng.IntN(3600)) * time.Second)
				u.use(ids[rng.IntN(len(ids))], uint64(1+rng.IntN(50)), last.Add(-time.Duration(rng.IntN(60))*time.Second), last, fmt.Sprintf("10.0.0.%d", i))
			}
			for i, c := range tc.calls {
				events := make([]domain.Envelope, len(c.seqs))
				for j, seq := range c.seqs {
					events[j] = u.events[seq-1]
				}
				res := applyUsage(t, s, events)
				if res.Applied != c.applied || res.Skipped != c.skipped || res.Deferred != c.deferred || res.Checkpoint != c.checkpoint {
					t.Fatalf("call %d: applied %d, skipped %d, deferred %d, checkpoint %d; want %d, %d, %d, %d",
						i, res.Applied, res.Skipped, res.Deferred, res.Checkpoint, c.applied, c.skipped, c.deferred, c.checkpoint)
				}
				requireUsage(t, s, ids, foldUsage(u.events[:c.checkpoint]))
				if got := checkpoint(t, s, usageName); got != c.checkpoint {
					t.Fatalf("call %d: stored checkpoint %d, want %d", i, got, c.checkpoint)
				}
			}
		})
	}
}

// TestConcurrentUsageAppliersCountEachEventOnce runs several appliers of
// one usage projection over random, overlapping windows of the same
// events, as concurrent consumers and redeliveries would: together they
// apply every event exactly once.
func TestConcurrentUsageAppliersCountEachEventOnce(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	const events, workers = 2000, 6
	ids := make([]domain.TokenID, 50)
	for i := range ids {
		ids[i] = newID(t)
	}
	var u usageStream
	base := time.Date(2031, 5, 1, 0, 0, 0, 0, time.UTC)
	for i := range events {
		at := base.Add(time.Duration(i) * time.Second)
		u.use(ids[i%len(ids)], uint64(1+i%7), at, at, "")
	}
	var wg sync.WaitGroup
	applied := make([]int, workers)
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for {
				cp, err := s.Checkpoint(context.Background(), usageName)
				if err != nil {
					errs <- err
					return
				}
				if cp >= events {
					return
				}
				// Windows start up to 20 events back (redelivered) or up to
				// 3 ahead (the events between held by another applier),
				// never past the last event.
				from := min(events, max(1, int(cp)+1+rng.IntN(24)-20))
				through := min(events, from+rng.IntN(150))
				res, err := s.ApplyUsageBatch(context.Background(), usageName, u.slice(uint64(from), uint64(through)))
				if err != nil {
					errs <- err
					return
				}
				applied[w] += res.Applied
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := 0
	for _, n := range applied {
		total += n
	}
	if total != events {
		t.Errorf("appliers applied %d events in all, want each of %d once", total, events)
	}
	requireUsage(t, s, ids, foldUsage(u.events))
}

// TestApplyUsageBatchRefusesInvalidBatches checks that a batch out of
// order or holding anything but usage events writes nothing.
func TestApplyUsageBatchRefusesInvalidBatches(t *testing.T) {
	t.Parallel()
	id := newID(t)
	at := time.Date(2031, 5, 1, 0, 0, 0, 0, time.UTC)
	var u usageStream
	u.use(id, 1, at, at, "")
	u.use(id, 1, at, at, "")
	issued := newStream().token(id, apiIssued("alice", 1, nil))
	issued.Sequence = 2
	zero := u.events[1]
	zero.Data = domain.TokenUsed{FirstAt: at, LastAt: at}
	cases := []struct {
		name   string
		events []domain.Envelope
		want   error
	}{
		{"out of order", []domain.Envelope{u.events[1], u.events[0]}, projections.ErrOutOfOrder},
		{"repeated sequence", []domain.Envelope{u.events[0], u.events[0]}, projections.ErrOutOfOrder},
		{"a lifecycle event", []domain.Envelope{u.events[0], issued}, projections.ErrUsageEvent},
		{"a use counting nothing", []domain.Envelope{u.events[0], zero}, projections.ErrUsageEvent},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, _ := newStore(t)
			_, err := s.ApplyUsageBatch(context.Background(), usageName, tc.events)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			requireUsage(t, s, []domain.TokenID{id}, nil)
			if cp := checkpoint(t, s, usageName); cp != 0 {
				t.Errorf("checkpoint %d after a refused batch", cp)
			}
		})
	}
}

// TestUsageCheckpointMovesWithoutUses checks the two ways the checkpoint
// passes events without applying uses: a placeholder (an operator's skip)
// and events aged out of the stream.
func TestUsageCheckpointMovesWithoutUses(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	id := newID(t)
	at := time.Date(2031, 5, 1, 0, 0, 0, 0, time.UTC)
	var u usageStream
	for range 12 {
		u.use(id, 1, at, at, "")
	}
	skipped, err := s.SkipAgedOutUsage(ctx, usageName, 6)
	if err != nil || skipped != 5 {
		t.Fatalf("skip aged out below 6: %d, %v; want 5", skipped, err)
	}
	if skipped, err := s.SkipAgedOutUsage(ctx, usageName, 3); err != nil || skipped != 0 {
		t.Fatalf("skip aged out below 3 at checkpoint 5: %d, %v; want 0", skipped, err)
	}
	batch := append(u.slice(6, 7), domain.Envelope{Sequence: 8}) // 8 is skipped by the operator
	batch = append(batch, u.slice(9, 10)...)
	res := applyUsage(t, s, batch)
	if res.Applied != 5 || res.Checkpoint != 10 {
		t.Fatalf("result %+v, want 5 applied through 10", res)
	}
	want := foldUsage(slices.Concat(u.slice(6, 7), u.slice(9, 10)))
	requireUsage(t, s, []domain.TokenID{id}, want)
}

// TestReadsCombineUsage checks that Get, List and Snapshot add the usage
// table to the token rows, that unused_for counts uses wherever they are
// recorded, and that usage recorded before the token's row exists shows
// once it does.
func TestReadsCombineUsage(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	now := time.Date(2031, 6, 1, 0, 0, 0, 0, time.UTC)
	recent, old := now.Add(-time.Hour), now.Add(-72*time.Hour)
	st := newStream()
	var u usageStream
	type token struct {
		name                 string
		lifecycleCount       uint64
		lifecycleLast        time.Time
		usageCount           uint64
		usageLast            time.Time
		wantCount            uint64
		wantLast             time.Time
		unusedForADay        bool
		notIssuedBeforeUsage bool
	}
	tokens := []token{
		{name: "never used", unusedForADay: true},
		{name: "used in both, usage later", lifecycleCount: 3, lifecycleLast: old, usageCount: 4, usageLast: recent, wantCount: 7, wantLast: recent},
		{name: "used in both, lifecycle later", lifecycleCount: 3, lifecycleLast: recent, usageCount: 4, usageLast: old, wantCount: 7, wantLast: recent},
		{name: "used long ago in both", lifecycleCount: 1, lifecycleLast: old, usageCount: 1, usageLast: old.Add(time.Hour), wantCount: 2, wantLast: old.Add(time.Hour), unusedForADay: true},
		{name: "used only in the usage stream", usageCount: 2, usageLast: recent, wantCount: 2, wantLast: recent},
		{name: "used long ago only in the usage stream", usageCount: 2, usageLast: old, wantCount: 2, wantLast: old, unusedForADay: true},
		{name: "used only in the lifecycle stream", lifecycleCount: 5, lifecycleLast: recent, wantCount: 5, wantLast: recent},
		{name: "counts saturate", lifecycleCount: 1 << 62, lifecycleLast: old, usageCount: 1<<63 - 1, usageLast: old, wantCount: 1<<63 - 1, wantLast: old, unusedForADay: true},
		{name: "usage projected before the token", usageCount: 9, usageLast: recent, wantCount: 9, wantLast: recent, notIssuedBeforeUsage: true},
	}
	ids := make([]domain.TokenID, len(tokens))
	var late []domain.Envelope
	for i, tk := range tokens {
		ids[i] = newID(t)
		issued := st.token(ids[i], apiIssued("alice", byte(i), nil))
		if tk.notIssuedBeforeUsage {
			st.events = st.events[:len(st.events)-1]
			late = append(late, issued)
		}
		if tk.lifecycleCount > 0 {
			st.token(ids[i], domain.TokenUsed{Count: tk.lifecycleCount, FirstAt: tk.lifecycleLast, LastAt: tk.lifecycleLast})
		}
		if tk.usageCount > 0 {
			u.use(ids[i], tk.usageCount, tk.usageLast, tk.usageLast, "")
		}
	}
	apply(t, s, st.events...)
	applyUsage(t, s, u.events)

	lateID := ids[len(ids)-1]
	if _, err := s.Get(ctx, lateID); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("get a token not issued yet: %v, want not found", err)
	}
	if got, err := s.GetUsage(ctx, lateID); err != nil || got.Count != 9 {
		t.Fatalf("usage of a token not issued yet: %+v, %v; want it kept", got, err)
	}
	for _, e := range late {
		e.Sequence = st.last() + 1
		st.events = append(st.events, e)
		apply(t, s, e)
	}

	listed := make(map[domain.TokenID]projections.TokenRow)
	page, err := s.List(ctx, projections.ListFilter{Now: now, Limit: projections.MaxListLimit})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	for _, r := range page.Items {
		listed[r.ID] = r
	}
	unused := make(map[domain.TokenID]bool)
	page, err = s.List(ctx, projections.ListFilter{Now: now, UnusedFor: 24 * time.Hour, Limit: projections.MaxListLimit})
	if err != nil {
		t.Fatalf("list unused for a day: %v", err)
	}
	for _, r := range page.Items {
		unused[r.ID] = true
	}
	snap := make(map[domain.TokenID]projections.TokenRow)
	if _, err := s.Snapshot(ctx, live, func(r projections.TokenRow) error { snap[r.ID] = r; return nil }); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	for i, tk := range tokens {
		t.Run(tk.name, func(t *testing.T) {
			id := ids[i]
			for how, r := range map[string]projections.TokenRow{"get": get(t, s, id), "list": listed[id], "snapshot": snap[id]} {
				if r.UseCount != tk.wantCount || !r.LastUsedAt.Equal(tk.wantLast) {
					t.Errorf("%s: use count %d, last used %s; want %d, %s", how, r.UseCount, r.LastUsedAt, tk.wantCount, tk.wantLast)
				}
			}
			if unused[id] != tk.unusedForADay {
				t.Errorf("listed as unused for a day: %v, want %v", unused[id], tk.unusedForADay)
			}
		})
	}
}

// TestRebuildSwapKeepsUsage rebuilds the tokens table from the lifecycle
// events and swaps it in: usage projected from the usage stream, which the
// lifecycle events do not hold, must survive.
func TestRebuildSwapKeepsUsage(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	st := newStream()
	id := newID(t)
	st.token(id, apiIssued("alice", 1, nil))
	apply(t, s, st.events...)
	var u usageStream
	at := time.Date(2031, 5, 1, 0, 0, 0, 0, time.UTC)
	u.use(id, 41, at, at, "")
	applyUsage(t, s, u.events)

	rb := s.NewRebuild(live)
	state := projectionstest.Fold(st.events)
	if _, err := rb.Load(ctx, st.last(), projections.StateTokenRows(state), projections.StateOwnerRows(state)); err != nil {
		t.Fatalf("load rebuild: %v", err)
	}
	if _, err := rb.Swap(ctx, nil); err != nil {
		t.Fatalf("swap: %v", err)
	}
	if r := get(t, s, id); r.UseCount != 41 || !r.LastUsedAt.Equal(at) {
		t.Errorf("after the swap: use count %d, last used %s; want 41, %s", r.UseCount, r.LastUsedAt, at)
	}
}

// TestTokenLifetimes checks what the read model tells about lifetimes, for
// deciding whether a use may slide a session.
func TestTokenLifetimes(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	st := newStream()
	exp := time.Date(2031, 7, 1, 0, 0, 0, 0, time.UTC)
	capAt := exp.Add(24 * time.Hour)
	session := func(owner domain.OwnerID, h byte) domain.TokenIssued {
		return domain.TokenIssued{Owner: owner, Scopes: []string{}, Kind: domain.KindSession, SecretHash: hash(h),
			ExpiresAt: ptr(exp), AbsoluteExpiresAt: ptr(capAt), IdleTimeout: domain.SecondsOf(30 * time.Minute)}
	}
	api, sess, ownerRevoked, rotated, absent := newID(t), newID(t), newID(t), newID(t), newID(t)
	st.token(api, apiIssued("alice", 1, ptr(exp)))
	st.token(sess, session("alice", 2))
	st.token(ownerRevoked, session("bob", 3))
	st.owner("bob", domain.OwnerTokensRevoked{})
	st.token(rotated, session("alice", 4))
	st.token(rotated, domain.TokenExpirySet{ExpiresAt: ptr(exp), Reason: domain.ExpiryRotated, RotatedTo: ptr(api)})
	apply(t, s, st.events...)
	lastSeq := make(map[domain.TokenID]uint64)
	for _, e := range st.events {
		if id, ok := e.TokenID(); ok {
			lastSeq[id] = e.Sequence
		}
	}

	got, err := s.TokenLifetimes(context.Background(), []domain.TokenID{api, sess, ownerRevoked, rotated, absent})
	if err != nil {
		t.Fatalf("token lifetimes: %v", err)
	}
	want := map[domain.TokenID]projections.TokenLifetime{
		api:          {Kind: domain.KindAPI, ExpiresAt: exp},
		sess:         {Kind: domain.KindSession, ExpiresAt: exp, AbsoluteExpiresAt: capAt, IdleTimeout: 30 * time.Minute},
		ownerRevoked: {Kind: domain.KindSession, ExpiresAt: exp, AbsoluteExpiresAt: capAt, IdleTimeout: 30 * time.Minute, Revoked: true},
		rotated:      {Kind: domain.KindSession, ExpiresAt: exp, AbsoluteExpiresAt: capAt, IdleTimeout: 30 * time.Minute, Rotated: true},
	}
	if len(got) != len(want) {
		t.Errorf("got %d lifetimes, want %d (the absent token has none)", len(got), len(want))
	}
	for id, w := range want {
		g := got[id]
		if g.Kind != w.Kind || !g.ExpiresAt.Equal(w.ExpiresAt) || !g.AbsoluteExpiresAt.Equal(w.AbsoluteExpiresAt) ||
			g.IdleTimeout != w.IdleTimeout || g.Revoked != w.Revoked || g.Rotated != w.Rotated || g.LastSeq != lastSeq[id] {
			t.Errorf("token %s: %+v, want %+v", id, g, w)
		}
	}
}
