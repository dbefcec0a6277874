package metrics

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/projections"
)

// fixedStatus returns a status func answering st.
func fixedStatus(st projections.Progress) func(context.Context) (projections.Progress, error) {
	return func(context.Context) (projections.Progress, error) { return st, nil }
}

// failingStatus returns a status func that always fails.
func failingStatus() func(context.Context) (projections.Progress, error) {
	return func(context.Context) (projections.Progress, error) {
		return projections.Progress{}, errors.New("stream unreachable")
	}
}

func pk(name, kind string) labels { return labels{"projection": name, "kind": kind} }

func TestWatchProjection(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		status func(context.Context) (projections.Progress, error)
		up     float64
		gauges map[string]float64 // nil: the status gauges are absent
	}{
		{
			name:   "a projection catching up exports its lag and checkpoint",
			status: fixedStatus(projections.Progress{Name: "lifecycle", Checkpoint: 90, StreamLast: 100, LagEvents: 10, LagSeconds: 1.5}),
			up:     1,
			gauges: map[string]float64{
				"tokenledger_projection_lag_events":  10,
				"tokenledger_projection_lag_seconds": 1.5,
				"tokenledger_projection_checkpoint":  90,
				"tokenledger_projection_halted":      0,
			},
		},
		{
			name: "a halted projection exports halted 1",
			status: fixedStatus(projections.Progress{Name: "lifecycle", Checkpoint: 90, StreamLast: 91, LagEvents: 1,
				Halted: &projections.Halt{Sequence: 91, Reason: "unknown event type"}}),
			up: 1,
			gauges: map[string]float64{
				"tokenledger_projection_halted":     1,
				"tokenledger_projection_lag_events": 1,
			},
		},
		{
			name:   "a failing status call sets up 0 and leaves the gauges out",
			status: failingStatus(),
			up:     0,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := New(discardLogger())
			m.WatchProjection(KindLifecycle, "lifecycle", tc.status)
			f := scrape(t, m)
			l := pk("lifecycle", KindLifecycle)
			f.wantValue(t, "tokenledger_projection_up", l, tc.up)
			f.wantValue(t, "tokenledger_projection_status_errors_total", l, 1-tc.up)
			for name, want := range tc.gauges {
				f.wantValue(t, name, l, want)
			}
			if tc.gauges == nil {
				for _, name := range []string{
					"tokenledger_projection_lag_events", "tokenledger_projection_lag_seconds",
					"tokenledger_projection_checkpoint", "tokenledger_projection_halted",
				} {
					if f.series(name) != 0 {
						t.Errorf("%s exported for a projection whose status failed", name)
					}
				}
			}
		})
	}
}

func TestWatchProjectionSeveral(t *testing.T) {
	t.Parallel()
	m := New(discardLogger())
	m.WatchProjection(KindLifecycle, "lifecycle", fixedStatus(projections.Progress{Checkpoint: 5}))
	m.WatchProjection(KindLifecycle, "lifecycle-v2", fixedStatus(projections.Progress{Checkpoint: 3, LagEvents: 2}))
	m.WatchProjection(KindLifecycle, "broken", failingStatus())
	m.WatchProjection(KindUsage, "usage", fixedStatus(projections.Progress{Checkpoint: 70}))

	// The failing projection neither fails the scrape nor hides the others,
	// and its errors add up scrape after scrape.
	scrape(t, m)
	f := scrape(t, m)
	f.wantValue(t, "tokenledger_projection_checkpoint", pk("lifecycle", KindLifecycle), 5)
	f.wantValue(t, "tokenledger_projection_checkpoint", pk("lifecycle-v2", KindLifecycle), 3)
	f.wantValue(t, "tokenledger_projection_lag_events", pk("lifecycle-v2", KindLifecycle), 2)
	f.wantValue(t, "tokenledger_projection_checkpoint", pk("usage", KindUsage), 70)
	f.wantValue(t, "tokenledger_projection_up", pk("broken", KindLifecycle), 0)
	f.wantValue(t, "tokenledger_projection_status_errors_total", pk("broken", KindLifecycle), 2)
	f.wantValue(t, "tokenledger_projection_status_errors_total", pk("lifecycle", KindLifecycle), 0)
	if n := f.series("tokenledger_projection_up"); n != 4 {
		t.Errorf("tokenledger_projection_up has %d series, want 4", n)
	}

	// Watching the same projection again replaces it; its errors carry over.
	m.WatchProjection(KindLifecycle, "broken", fixedStatus(projections.Progress{Checkpoint: 9}))
	f = scrape(t, m)
	f.wantValue(t, "tokenledger_projection_up", pk("broken", KindLifecycle), 1)
	f.wantValue(t, "tokenledger_projection_checkpoint", pk("broken", KindLifecycle), 9)
	f.wantValue(t, "tokenledger_projection_status_errors_total", pk("broken", KindLifecycle), 2)
	if n := f.series("tokenledger_projection_up"); n != 4 {
		t.Errorf("after watching a projection again, tokenledger_projection_up has %d series, want 4", n)
	}

	// A nil status stops watching.
	m.WatchProjection(KindLifecycle, "broken", nil)
	f = scrape(t, m)
	if _, ok := f.find("tokenledger_projection_up", pk("broken", KindLifecycle)); ok {
		t.Error("a projection watched with a nil status is still exported")
	}
}

func TestWatchProjectionHungStatus(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	m := New(slog.New(slog.NewTextHandler(&logs, nil)))
	m.projections.timeout = 50 * time.Millisecond
	release := make(chan struct{})
	var calls, returned atomic.Int32
	// The status ignores its context, as a hung call would.
	m.WatchProjection(KindLifecycle, "lifecycle", func(context.Context) (projections.Progress, error) {
		calls.Add(1)
		defer returned.Add(1)
		<-release
		return projections.Progress{Checkpoint: 12}, nil
	})
	l := pk("lifecycle", KindLifecycle)

	start := time.Now()
	f := scrape(t, m)
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("a scrape with a hung status took %s", d)
	}
	f.wantValue(t, "tokenledger_projection_up", l, 0)

	// While the first call hangs, scrapes do not pile up more of them.
	f = scrape(t, m)
	f.wantValue(t, "tokenledger_projection_up", l, 0)
	f.wantValue(t, "tokenledger_projection_status_errors_total", l, 2)
	if n := calls.Load(); n != 1 {
		t.Errorf("status called %d times while the first call hung, want 1", n)
	}
	if n := strings.Count(logs.String(), "projection status unavailable"); n != 1 {
		t.Errorf("the failure is logged %d times over two failing scrapes, want once:\n%s", n, logs.String())
	}

	close(release)
	stacktest.Eventually(t, 10*time.Second, func() bool { return returned.Load() == 1 }, "the hung status call returning")
	// busy is cleared right after the call returns; poll the scrape.
	stacktest.Eventually(t, 10*time.Second, func() bool {
		_, ok := scrape(t, m).find("tokenledger_projection_checkpoint", l)
		return ok
	}, "the projection up again")
	f = scrape(t, m)
	f.wantValue(t, "tokenledger_projection_up", l, 1)
	f.wantValue(t, "tokenledger_projection_checkpoint", l, 12)
	if !strings.Contains(logs.String(), "projection status available for metrics again") {
		t.Errorf("the recovery is not logged:\n%s", logs.String())
	}
}

// usageProjection is a UsageProjection answering fixed values.
type usageProjection struct {
	name   string
	status projections.UsageProgress
	err    error
	stats  projections.UsageStats
}

func (u *usageProjection) Name() string { return u.name }
func (u *usageProjection) Progress(context.Context) (projections.UsageProgress, error) {
	return u.status, u.err
}
func (u *usageProjection) Stats() projections.UsageStats { return u.stats }

func TestWatchUsage(t *testing.T) {
	t.Parallel()
	stats := projections.UsageStats{
		Events: 11, Batches: 12, Rows: 13, Redelivered: 14, Deferred: 15, AgedOut: 16,
		Extensions: 17, ExtensionConflicts: 18, ExtensionErrors: 19,
	}
	cases := []struct {
		name string
		u    *usageProjection
		up   float64
	}{
		{
			name: "a readable usage projection exports its status and counters",
			u: &usageProjection{name: "usage", stats: stats,
				status: projections.UsageProgress{Name: "usage", Checkpoint: 40, LagEvents: 4, LagSeconds: 0.5}},
			up: 1,
		},
		{
			name: "the counters are exported even when the status fails",
			u:    &usageProjection{name: "usage", stats: stats, err: errors.New("stream unreachable")},
			up:   0,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := New(discardLogger())
			m.WatchUsage(tc.u)
			f := scrape(t, m)
			l := pk("usage", KindUsage)
			f.wantValue(t, "tokenledger_projection_up", l, tc.up)
			if tc.up == 1 {
				f.wantValue(t, "tokenledger_projection_checkpoint", l, 40)
				f.wantValue(t, "tokenledger_projection_lag_events", l, 4)
				f.wantValue(t, "tokenledger_projection_lag_seconds", l, 0.5)
			}
			for name, want := range map[string]float64{
				"tokenledger_usage_projection_events_total":      11,
				"tokenledger_usage_projection_batches_total":     12,
				"tokenledger_usage_projection_rows_total":        13,
				"tokenledger_usage_projection_redelivered_total": 14,
				"tokenledger_usage_projection_deferred_total":    15,
				"tokenledger_usage_projection_aged_out_total":    16,
				"tokenledger_session_extensions_total":           17,
				"tokenledger_session_extension_conflicts_total":  18,
				"tokenledger_session_extension_errors_total":     19,
			} {
				f.wantValue(t, name, labels{"projection": "usage"}, want)
			}
		})
	}
}
