package consumers_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/projections"
)

type hourKey struct {
	id   domain.TokenID
	hour time.Time
}

// expectedRollups counts usage events per token and hour of last use.
func expectedRollups(events []domain.Envelope) map[hourKey]uint64 {
	out := make(map[hourKey]uint64)
	for _, e := range events {
		for id, d := range domain.Uses(e) {
			out[hourKey{id, d.LastAt.UTC().Truncate(time.Hour)}] += d.Count
		}
	}
	return out
}

// rollups reads the hourly rollup table.
func (e *usageEnv) rollups() map[hourKey]uint64 {
	e.t.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT token_id, hour, use_count FROM token_usage_hourly`)
	if err != nil {
		e.t.Fatalf("read rollups: %v", err)
	}
	defer rows.Close()
	out := make(map[hourKey]uint64)
	for rows.Next() {
		var (
			id   pgtype.UUID
			hour time.Time
			n    int64
		)
		if err := rows.Scan(&id, &hour, &n); err != nil {
			e.t.Fatal(err)
		}
		out[hourKey{domain.TokenID(id.Bytes), hour.UTC()}] = uint64(n)
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *usageEnv) requireRollupsMatch(what string) {
	e.t.Helper()
	want, got := expectedRollups(e.uses), e.rollups()
	if !maps.Equal(got, want) {
		e.t.Fatalf("%s: rollups hold %d rows, the usage stream counts %d (token-hour) buckets; they differ", what, len(got), len(want))
	}
}

// expectedRecent is the last MaxRecentAddrs distinct addresses of token
// id's uses, latest first.
func expectedRecent(events []domain.Envelope, id domain.TokenID) []projections.UsedAddr {
	last := map[string]time.Time{}
	for _, e := range events {
		for tid, d := range domain.Uses(e) {
			if tid == id && d.ClientAddr != "" && d.LastAt.After(last[d.ClientAddr]) {
				last[d.ClientAddr] = d.LastAt
			}
		}
	}
	var out []projections.UsedAddr
	for a, at := range last {
		out = append(out, projections.UsedAddr{Addr: a, At: at.UTC()})
	}
	slices.SortFunc(out, func(x, y projections.UsedAddr) int {
		if c := y.At.Compare(x.At); c != 0 {
			return c
		}
		if x.Addr < y.Addr {
			return -1
		}
		return 1
	})
	return out[:min(len(out), projections.MaxRecentAddrs)]
}

// TestUsageRollupsAndRecentAddressesFollowTheStream projects uses spread
// over two days and many addresses: the hourly rollups equal the counts
// of the usage stream per token and hour, the series by hour and by day
// sum them, each token keeps its last five distinct client addresses;
// after the rollups are damaged, a rebuild from the usage stream — run
// while uses keep coming — makes them equal to the stream's counts again.
func TestUsageRollupsAndRecentAddressesFollowTheStream(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newUsageEnv(t, nil)
	ids := make([]domain.TokenID, 12)
	for i := range ids {
		ids[i] = e.issue(domain.IssueRequest{Name: fmt.Sprint(i)}, true).ID()
	}
	rng := rand.New(rand.NewPCG(7, 7))
	base := e.clock.Now()
	uses := func(n int) []domain.Envelope {
		out := randomUses(t, rng, ids, n, base)
		more := randomUses(t, rng, ids, n, base.Add(24*time.Hour))
		return append(out, more...)
	}
	e.appendUses(uses(600)...)
	r := e.start(e.config())
	waitSlid(t, r.w, e.usageLast())
	e.requireRollupsMatch("after projection")

	for _, id := range ids {
		got, err := e.proj.GetRecentAddrs(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if want := expectedRecent(e.uses, id); !slices.Equal(got, want) {
			t.Errorf("recent addresses of %s:\n got %v\nwant %v", id, got, want)
		}
	}

	id := ids[0]
	want := expectedRollups(e.uses)
	var total uint64
	perDay := map[time.Time]uint64{}
	for k, n := range want {
		if k.id == id {
			total += n
			perDay[k.hour.Truncate(24*time.Hour)] += n
		}
	}
	for _, g := range []projections.Granularity{projections.Hourly, projections.Daily} {
		series, err := e.proj.UsageSeries(ctx, id, g, base.Add(-time.Hour), base.Add(72*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		var sum uint64
		for _, b := range series {
			sum += b.Count
			if g == projections.Daily && b.Count != perDay[b.Start] {
				t.Errorf("day %s: %d uses, want %d", b.Start, b.Count, perDay[b.Start])
			}
		}
		if sum != total {
			t.Errorf("%s series of %s sums to %d uses, the stream counts %d", g, id, sum, total)
		}
	}

	if _, err := e.pool.Exec(ctx, `DELETE FROM token_usage_hourly WHERE token_id = $1`, pgtype.UUID{Bytes: ids[1], Valid: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `UPDATE token_usage_hourly SET use_count = use_count + 1000`); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for range 10 {
			e.appendUses(uses(20)...)
		}
		done <- nil
	}()
	res, err := e.proj.RebuildRollups(ctx, "usage", e.store)
	if err != nil {
		t.Fatalf("rebuild rollups: %v", err)
	}
	if res.Checkpoint == 0 || res.Events == 0 {
		t.Errorf("rebuild read %d events up to checkpoint %d", res.Events, res.Checkpoint)
	}
	<-done
	waitSlid(t, r.w, e.usageLast())
	e.requireRollupsMatch("after the rebuild")
	e.requireUsageMatches()
}

// TestUsageRollupRetention: with a retention, a batch's statement deletes
// the rollups of the hours before it, and a rebuild leaves them out.
func TestUsageRollupRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newUsageEnv(t, nil)
	e.proj = projections.New(e.pool, projections.WithClock(e.clock), projections.WithRollupRetention(3*time.Hour))
	id := e.issue(domain.IssueRequest{Name: "r"}, true).ID()
	now := e.clock.Now()
	old := useEvent(t, id, 5, now.Add(-10*time.Hour), now.Add(-10*time.Hour), "")
	recent := useEvent(t, id, 7, now.Add(-time.Minute), now.Add(-time.Minute), "")
	r := e.start(e.config())
	waitSlid(t, r.w, e.appendUses(old))
	waitSlid(t, r.w, e.appendUses(recent))
	want := map[hourKey]uint64{{id, now.Add(-time.Minute).Truncate(time.Hour)}: 7}
	if got := e.rollups(); !maps.Equal(got, want) {
		t.Fatalf("rollups %v, want only the recent hour %v", got, want)
	}
	if _, err := e.proj.RebuildRollups(ctx, "usage", e.store); err != nil {
		t.Fatal(err)
	}
	if got := e.rollups(); !maps.Equal(got, want) {
		t.Fatalf("after a rebuild: rollups %v, want %v", got, want)
	}
}
