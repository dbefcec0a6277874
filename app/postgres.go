package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenledger/tokenledger/migrations"
)

// ErrSchemaOutdated is returned (wrapped) by StartProject and Rebuild when
// the database's schema is older than the one this binary needs: run
// `tokenledger migrate` first. They do not migrate by themselves, so that
// a schema change happens when the operator decides, once, and not as a
// side effect of whichever worker starts first.
var ErrSchemaOutdated = errors.New("database schema is outdated")

// MigrateResult tells what Migrate did.
type MigrateResult struct {
	// From is the schema version before, To the version after (the latest
	// this binary knows).
	From, To int32
}

// Migrate brings the database at postgresURL up to the latest schema (see
// package migrations; safe to run concurrently from several processes, and
// a no-op when it is up to date) and reports the versions before and
// after.
func Migrate(ctx context.Context, postgresURL string) (MigrateResult, error) {
	conn, err := pgx.Connect(ctx, postgresURL)
	if err != nil {
		return MigrateResult{}, fmt.Errorf("connect to postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return migrateConn(ctx, conn)
}

func migrateConn(ctx context.Context, conn *pgx.Conn) (MigrateResult, error) {
	var res MigrateResult
	var err error
	if res.From, _, err = migrations.Status(ctx, conn); err != nil {
		return MigrateResult{}, err
	}
	if err := migrations.Migrate(ctx, conn); err != nil {
		return MigrateResult{}, err
	}
	if res.To, _, err = migrations.Status(ctx, conn); err != nil {
		return MigrateResult{}, err
	}
	return res, nil
}

// openPool connects a pool of at most maxConns connections (pgx's default
// when zero) to url and checks that the schema is current.
func openPool(ctx context.Context, url string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres url: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	if err := requireSchema(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// requireSchema fails with ErrSchemaOutdated unless the database has the
// latest schema this binary knows.
func requireSchema(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	defer conn.Release()
	current, latest, err := migrations.Status(ctx, conn.Conn())
	if err != nil {
		return err
	}
	if current < latest {
		return fmt.Errorf("%w: version %d, this binary needs %d: run `tokenledger migrate`", ErrSchemaOutdated, current, latest)
	}
	return nil
}
