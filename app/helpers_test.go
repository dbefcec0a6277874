package app_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenledger/tokenledger/app"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/internal/testkit/projectionstest"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/stack"
)

// discard is a logger that drops everything.
var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// openStore opens an event store with the default configuration on srv.
func openStore(tb testing.TB, srv *stack.NATS) *eventstore.Store {
	tb.Helper()
	js := stacktest.JetStream(tb, srv)
	store, err := eventstore.Open(context.Background(), js, domain.NewDefaultRegistry(), eventstore.DefaultConfig())
	if err != nil {
		tb.Fatalf("open event store: %v", err)
	}
	tb.Cleanup(func() { _ = store.Close() })
	return store
}

// migratedPool returns a pool on a fresh, migrated database, and its URL.
func migratedPool(tb testing.TB) (*pgxpool.Pool, string) {
	tb.Helper()
	url := stacktest.PostgresURL(tb)
	if _, err := app.Migrate(context.Background(), url); err != nil {
		tb.Fatalf("migrate: %v", err)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("pool: %v", err)
	}
	tb.Cleanup(pool.Close)
	return pool, url
}

// lifecycleHistory is a random history of lifecycle events made by domain
// commands over a manual clock (projectionstest.RandomHistory), without the
// token.used events, which belong to the usage stream. It has at least n
// events, and ends at the returned instant.
func lifecycleHistory(seed uint64, n int) ([]domain.Envelope, time.Time) {
	for total := 3 * n; ; total *= 2 {
		h := projectionstest.RandomHistory(seed, projectionstest.HistoryConfig{
			Tokens: n / 5, Owners: max(n/400, 2), Events: total, Odd: true,
		})
		out := make([]domain.Envelope, 0, n)
		for _, e := range h.Events {
			if e.Type != domain.TypeTokenUsed {
				out = append(out, e)
			}
		}
		if len(out) >= n {
			return out, h.End
		}
	}
}

// appendAll appends events one by one, in order, without expectations (the
// history was decided already), and returns the last stream sequence.
func appendAll(ctx context.Context, store *eventstore.Store, events []domain.Envelope) (uint64, error) {
	var last uint64
	for _, e := range events {
		stored, err := store.Append(ctx, eventstore.ExpectNothing(), e)
		if err != nil {
			return last, fmt.Errorf("append event %s: %w", e.ID, err)
		}
		last = stored[0].Sequence
	}
	return last, nil
}

// readAll reads the whole lifecycle stream.
func readAll(tb testing.TB, store *eventstore.Store) []domain.Envelope {
	tb.Helper()
	var events []domain.Envelope
	if _, err := store.Read(context.Background(), 1, func(e domain.Envelope) error {
		events = append(events, e)
		return nil
	}); err != nil {
		tb.Fatalf("read the stream: %v", err)
	}
	return events
}

// schema describes the read model's tables, indexes and constraints,
// names included, and lists any table left from a rebuild.
func schema(tb testing.TB, pool *pgxpool.Pool) string {
	tb.Helper()
	rows, err := pool.Query(context.Background(), `
SELECT 'index ' || indexdef FROM pg_indexes WHERE tablename IN ('tokens', 'owner_revocations')
UNION ALL
SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
FROM pg_constraint WHERE conrelid IN ('tokens'::regclass, 'owner_revocations'::regclass)
UNION ALL
SELECT 'table ' || relname FROM pg_class WHERE relname LIKE '%rebuild%'
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

// poll calls cond until it is true, ctx ends or timeout passes; for
// goroutines other than the test's, where stacktest.Eventually cannot
// fail the test.
func poll(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("condition not met within %v: %w", timeout, ctx.Err())
		case <-tick.C:
		}
	}
}

// checkValidateError checks a config's Validate result: nil when want is
// empty, otherwise an error mentioning every string of want, and never the
// password of a URL ("secret" in the tests' URLs).
func checkValidateError(t *testing.T, err error, want []string) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("Validate: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatal("Validate accepted an invalid configuration")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error %q shows the password", err)
	}
}
