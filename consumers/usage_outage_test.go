package consumers_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenledger/tokenledger/consumers"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/projections"
	"github.com/tokenledger/tokenledger/stack"
)

// TestUsageConsumerRidesOutPostgresOutage stops the consumer's PostgreSQL
// while uses keep arriving (the usage stream is JetStream, so they are
// stored). Meanwhile the consumer retries the batch it holds, projections.Progress
// reports the error and the growing lag, and the checkpoint does not
// move; once PostgreSQL is back it catches up, every use counted exactly
// once.
func TestUsageConsumerRidesOutPostgresOutage(t *testing.T) {
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

	e := newUsageEnv(t, pool)
	rng := rand.New(rand.NewPCG(8, 8))
	ids := []domain.TokenID{newUsageTokenID(t), newUsageTokenID(t), newUsageTokenID(t), newUsageTokenID(t)}
	r := e.start(e.config())
	before := e.appendUses(randomUses(t, rng, ids, 200, e.clock.Now())...)
	waitSlid(t, r.w, before)

	if err := pg.Stop(ctx); err != nil {
		t.Fatalf("stop postgres: %v", err)
	}
	during := e.appendUses(randomUses(t, rng, ids, 300, e.clock.Now())...)
	var st projections.UsageProgress
	stacktest.Eventually(t, time.Minute, func() bool {
		st, err = r.w.Progress(ctx)
		return err == nil && st.LastError != "" && st.LagEvents == during-before
	}, "status reports the outage and a lag of %d events", during-before)
	if st.Checkpoint != before {
		t.Errorf("checkpoint %d during the outage, want %d", st.Checkpoint, before)
	}
	if err := r.w.Ready(ctx, 10); !errors.Is(err, consumers.ErrLagging) {
		t.Errorf("Ready(10) during the outage = %v, want ErrLagging", err)
	}
	// The consumer keeps retrying the batch it holds: it fetches nothing
	// new meanwhile.
	const failed = "writing a usage batch failed; retrying"
	stacktest.Eventually(t, time.Minute, func() bool { return e.logs.count(failed) >= 1 }, "a failed write")
	fetches, failures := r.w.Stats().Fetches, e.logs.count(failed)
	stacktest.Eventually(t, time.Minute, func() bool { return e.logs.count(failed) >= failures+3 }, "three more failed attempts")
	if got := r.w.Stats().Fetches; got != fetches {
		t.Errorf("%d fetches while the write of the batch in hand failed", got-fetches)
	}

	restarted := stacktest.OwnPostgres(t, stack.PostgresConfig{DataDir: dataDir, Port: pg.Port()})
	if restarted.Port() != pg.Port() {
		t.Fatalf("postgres came back on port %d, not %d", restarted.Port(), pg.Port())
	}
	waitSlid(t, r.w, during)
	e.requireUsageMatches()
	if st := r.w.Stats(); st.Events != during || st.Redelivered != 0 {
		t.Errorf("stats %+v: want %d events applied once each", st, during)
	}
	if err := r.w.Ready(ctx, 0); err != nil {
		t.Errorf("Ready after catching up: %v", err)
	}
}
