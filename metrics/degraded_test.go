package metrics

import (
	"context"
	"errors"
	"testing"
	"time"
)

// tokenledger_degraded{part} is 1 while the part's check fails or does not
// answer in time, 0 while it passes, and absent once the part is no longer
// watched.
func TestWatchDegraded(t *testing.T) {
	t.Parallel()
	m := New(nil)
	down := errors.New("connection refused")
	var postgresErr error
	m.WatchDegraded("postgres", func(context.Context) error { return postgresErr })
	m.WatchDegraded("projection", func(context.Context) error { return nil })
	m.WatchDegraded("stuck", func(ctx context.Context) error { <-ctx.Done(); return nil })

	start := time.Now()
	f := scrape(t, m)
	if d := time.Since(start); d > statusTimeout+time.Second {
		t.Errorf("scrape took %v with a stuck check, want about %v", d, statusTimeout)
	}
	f.wantValue(t, "tokenledger_degraded", labels{"part": "postgres"}, 0)
	f.wantValue(t, "tokenledger_degraded", labels{"part": "projection"}, 0)
	f.wantValue(t, "tokenledger_degraded", labels{"part": "stuck"}, 1)

	postgresErr = down
	m.WatchDegraded("stuck", nil)
	f = scrape(t, m)
	f.wantValue(t, "tokenledger_degraded", labels{"part": "postgres"}, 1)
	f.wantValue(t, "tokenledger_degraded", labels{"part": "projection"}, 0)
	if n := f.series("tokenledger_degraded"); n != 2 {
		t.Errorf("%d tokenledger_degraded series after unwatching one of three, want 2", n)
	}
}
