package stacktest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenledger/tokenledger/migrations"
)

// MigratedPool returns a pool of at most 8 connections on a new database of
// the test's own (see PostgresURL) with the current schema, and the
// database's URL. The pool is closed when the test ends.
func MigratedPool(tb testing.TB) (*pgxpool.Pool, string) {
	tb.Helper()
	ctx := context.Background()
	url := PostgresURL(tb)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		tb.Fatalf("stacktest: migrate: %v", err)
	}
	err = migrations.Migrate(ctx, conn)
	_ = conn.Close(ctx)
	if err != nil {
		tb.Fatalf("stacktest: migrate: %v", err)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		tb.Fatalf("stacktest: pool: %v", err)
	}
	tb.Cleanup(pool.Close)
	return pool, url
}
