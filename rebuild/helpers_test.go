package rebuild_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/internal/testkit/projectionstest"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/migrations"
	"github.com/tokenledger/tokenledger/stack"
)

func TestMain(m *testing.M) { stacktest.Main(m) }

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
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		tb.Fatalf("migrate: %v", err)
	}
	defer conn.Close(context.Background())
	if err := migrations.Migrate(context.Background(), conn); err != nil {
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

// dump renders the read model of a database as text, row by row in key
// order, every column included, and the checkpoints.
func dump(tb testing.TB, pool *pgxpool.Pool) string {
	tb.Helper()
	var b strings.Builder
	for _, q := range []string{
		`SELECT row_to_json(t)::text FROM tokens t ORDER BY id`,
		`SELECT row_to_json(o)::text FROM owner_revocations o ORDER BY owner`,
		`SELECT name || ' ' || last_seq FROM projection_checkpoints ORDER BY name`,
	} {
		rows, err := pool.Query(context.Background(), q)
		if err != nil {
			tb.Fatalf("dump: %v", err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			tb.Fatalf("dump: %v", err)
		}
		for _, l := range lines {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	return b.String()
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

// firstDiff shows the first line where two dumps differ.
func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range min(len(g), len(w)) {
		if g[i] != w[i] {
			return "line " + strconv.Itoa(i+1) + ":\n got  " + g[i] + "\n want " + w[i]
		}
	}
	return fmt.Sprintf("one dump is a prefix of the other (%d and %d lines)", len(g), len(w))
}

// tableOID returns the oid of the live tokens table: a swap replaces it.
func tableOID(tb testing.TB, pool *pgxpool.Pool) uint32 {
	tb.Helper()
	var oid uint32
	if err := pool.QueryRow(context.Background(), `SELECT 'tokens'::regclass::oid`).Scan(&oid); err != nil {
		tb.Fatalf("oid of tokens: %v", err)
	}
	return oid
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
