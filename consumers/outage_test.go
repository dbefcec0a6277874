package consumers_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenledger/tokenledger/consumers"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/stack"
)

// outage is how long PostgreSQL is down in TestLifecycleProjectorRidesOutPostgresOutage.
const outage = 30 * time.Second

// TestLifecycleProjectorRidesOutPostgresOutage stops the projector's
// PostgreSQL for 30 seconds while events keep being appended (the event
// store is JetStream, so appends succeed). Status and Ready report the
// growing lag meanwhile; once PostgreSQL is back the projector catches up,
// having lost nothing.
func TestLifecycleProjectorRidesOutPostgresOutage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dataDir := filepath.Join(stacktest.TraversableDir(t), "data")
	pg := stacktest.OwnPostgres(t, stack.PostgresConfig{DataDir: dataDir})
	if err := pg.CreateDatabase(ctx, "ledger"); err != nil {
		t.Fatal(err)
	}
	poolCfg, err := pgxpool.ParseConfig(pg.URL("ledger") + "&connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	e := newEnv(t, pool, 4)
	r := e.start(e.testConfig())
	e.w.appendEvents(500, 100)
	e.waitCaughtUp("lifecycle", e.last(), time.Minute)
	before := e.last()

	if err := pg.Stop(ctx); err != nil {
		t.Fatalf("stop postgres: %v", err)
	}
	// The scenario: an event about every 25 ms for the length of the
	// outage, and the projector's status sampled about once a second.
	var lags []uint64
	var lastErr string
	var readyErr error
	tick := time.NewTicker(25 * time.Millisecond)
	stopAt := time.Now().Add(outage)
	for i := 0; time.Now().Before(stopAt); i++ {
		<-tick.C
		e.w.step(e.w.lifecycle+1, 150)
		if i%40 != 0 {
			continue
		}
		st, err := r.w.Progress(ctx)
		if err != nil {
			t.Fatalf("Status during the outage: %v", err)
		}
		if st.Checkpoint != before {
			t.Fatalf("checkpoint %d during the outage, want %d", st.Checkpoint, before)
		}
		lags = append(lags, st.LagEvents)
		if st.LastError != "" {
			lastErr = st.LastError
		}
		readyErr = r.w.Ready(ctx, 10)
	}
	tick.Stop()
	during := e.last()
	t.Logf("%d events appended during the %v outage; lag samples %v", during-before, outage, lags)
	if len(lags) < 10 || lags[len(lags)-1] <= lags[0] {
		t.Errorf("lag samples %v: want them to grow during the outage", lags)
	}
	for i := 1; i < len(lags); i++ {
		if lags[i] < lags[i-1] {
			t.Errorf("lag fell from %d to %d during the outage", lags[i-1], lags[i])
		}
	}
	if lastErr == "" {
		t.Error("Status reported no error while PostgreSQL was down")
	}
	if !errors.Is(readyErr, consumers.ErrLagging) {
		t.Errorf("Ready(10) at the end of the outage = %v, want ErrLagging", readyErr)
	}

	// PostgreSQL comes back on the same data directory and port.
	restarted := stacktest.OwnPostgres(t, stack.PostgresConfig{DataDir: dataDir, Port: pg.Port()})
	if restarted.Port() != pg.Port() {
		t.Fatalf("postgres came back on port %d, not %d", restarted.Port(), pg.Port())
	}
	begin := time.Now()
	e.waitCaughtUp("lifecycle", during, time.Minute)
	t.Logf("caught up with %d events in %v after PostgreSQL came back", during-before, time.Since(begin).Round(time.Millisecond))
	e.requireMatchesFold("lifecycle")
	if err := r.w.Ready(ctx, 0); err != nil {
		t.Errorf("Ready after catching up: %v", err)
	}
	if st, err := r.w.Progress(ctx); err != nil || st.LastError != "" || st.LagEvents != 0 {
		t.Errorf("Status after catching up = %+v, %v; want no lag and no error", st, err)
	}
}
