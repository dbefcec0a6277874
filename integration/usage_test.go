package integration_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/consumers"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/validator"
)

// statementsIn counts the statements PostgreSQL executed in the test's
// database since the last reset, leaving out the statistics queries
// themselves.
func (h *harness) statementsIn(t *testing.T) int64 {
	t.Helper()
	var n int64
	err := h.pool.QueryRow(context.Background(), `
		SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements
		WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND query NOT ILIKE '%pg_stat_statements%'`).Scan(&n)
	if err != nil {
		t.Fatalf("read pg_stat_statements: %v", err)
	}
	return n
}

// One million validations across 1,000 tokens from many goroutines cause no
// PostgreSQL statement; after the validator flushes and the usage consumer
// catches up, every token's use_count equals its successful validations and
// its last_used_at is the time of its last one.
func TestValidationsWriteNothingAndUsageIsExact(t *testing.T) {
	const (
		tokens      = 1_000
		validations = 1_000_000
		workers     = 8
	)
	h := newHarness(t)
	ctx := context.Background()
	secrets := h.issue(t, tokens)
	ids := make([]domain.TokenID, tokens)
	for i, s := range secrets {
		id, err := domain.ParseSecret(s)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}

	if _, err := h.pool.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err != nil {
		t.Fatalf("pg_stat_statements: %v", err)
	}
	v, err := validator.New(validator.Config{Store: h.store, Projections: h.proj, Clock: h.clock, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Start(ctx); err != nil {
		t.Fatalf("start validator: %v", err)
	}
	if _, err := h.pool.Exec(ctx, `SELECT pg_stat_statements_reset()`); err != nil {
		t.Fatal(err)
	}

	// Two phases at two instants: the last use of every token used in the
	// second phase is the second instant.
	counts := make([]atomic.Int64, tokens)
	validate := func(n int) {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for k := range n / workers {
					i := (w*7919 + k*31) % tokens
					if _, err := v.Validate(ctx, secrets[i]); err != nil {
						t.Errorf("validate token %d: %v", i, err)
						return
					}
					counts[i].Add(1)
				}
			})
		}
		wg.Wait()
	}
	start := time.Now()
	validate(validations / 2)
	secondInstant := h.clock.Advance(time.Minute)
	validate(validations / 2)
	elapsed := time.Since(start)

	if n := h.statementsIn(t); n != 0 {
		t.Fatalf("%d validations caused %d PostgreSQL statements, want 0", validations, n)
	}

	closeCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := v.Close(closeCtx); err != nil {
		t.Fatalf("close validator (flushes usage): %v", err)
	}
	if dropped := v.Stats().UsageEventsDropped; dropped != 0 {
		t.Fatalf("%d usage events dropped", dropped)
	}

	uc, err := consumers.NewUsageConsumer(h.store, h.proj, consumers.UsageConfig{Clock: h.clock, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	projectStart := time.Now()
	go func() { done <- uc.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("usage consumer: %v", err)
		}
	}()
	stacktest.Eventually(t, time.Minute, func() bool {
		st, err := uc.Progress(ctx)
		return err == nil && st.StreamLast > 0 && st.Checkpoint == st.StreamLast
	}, "usage consumer did not catch up")
	projectElapsed := time.Since(projectStart)

	var total int64
	for i, id := range ids {
		row, err := h.proj.Get(ctx, id)
		if err != nil {
			t.Fatalf("get token %d: %v", i, err)
		}
		want := counts[i].Load()
		total += want
		if int64(row.UseCount) != want {
			t.Errorf("token %d: use_count %d, want %d successful validations", i, row.UseCount, want)
		}
		if !row.LastUsedAt.Equal(secondInstant) {
			t.Errorf("token %d: last_used_at %v, want %v", i, row.LastUsedAt, secondInstant)
		}
	}
	if total != validations {
		t.Fatalf("counted %d successful validations, want %d", total, validations)
	}

	// The counter that read zero during the validations sees the usage
	// writes, so the zero above is a measurement, not a blind spot.
	if n := h.statementsIn(t); n == 0 {
		t.Fatal("pg_stat_statements saw no statement from the usage consumer either")
	}

	stats := uc.Stats()
	t.Logf("%d validations in %v (%.0f/s) caused 0 PostgreSQL statements", validations, elapsed, validations/elapsed.Seconds())
	t.Logf("usage: %d events published; the consumer wrote %d rows in %d statements (%d batches) in %v",
		v.Stats().UsageEventsPublished, stats.Rows, stats.Statements, stats.Batches, projectElapsed)
}
