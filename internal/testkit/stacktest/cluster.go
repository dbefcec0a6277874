package stacktest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/stack"
)

// TraversableDir returns a fresh directory, removed when the test ends,
// that PostgreSQL's unprivileged user can traverse when the tests run as
// root (t.TempDir is mode 0700, which it cannot). Put data directories of
// clusters a test starts itself under it.
func TraversableDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "tokenledger-test-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// OwnPostgres starts a PostgreSQL cluster of the test's own, for tests
// that stop and restart it (the shared cluster of PostgresURL must never
// stop), and stops it when the test ends. cfg.DataDir should be under
// TraversableDir.
func OwnPostgres(tb testing.TB, cfg stack.PostgresConfig) *stack.Postgres {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := stack.StartPostgres(ctx, cfg)
	if err != nil {
		tb.Fatalf("start postgres: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Stop(ctx)
	})
	return p
}
