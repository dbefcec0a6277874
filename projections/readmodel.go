package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenledger/tokenledger/domain"
)

// ReadModel reads and writes the read model in the database a pool is
// connected to; the schema is the one package migrations creates. A ReadModel
// is safe for concurrent use. Several processes may share one database:
// ApplyBatch calls of one projection serialise on its checkpoint row.
type ReadModel struct {
	pool    *pgxpool.Pool
	clock   domain.Clock
	live    *tableSet
	rebuild *tableSet
	// rollupRetention is how long hourly usage rollups are kept; zero:
	// forever.
	rollupRetention time.Duration
}

// Option configures a ReadModel.
type Option func(*ReadModel)

// WithClock sets the clock that decides "now" for the status of rows read
// by Get and Snapshot and for a List without ListFilter.Now. The default is
// domain.SystemClock.
func WithClock(c domain.Clock) Option { return func(s *ReadModel) { s.clock = c } }

// WithRollupRetention sets how long the hourly usage rollups are kept:
// ApplyUsageBatch deletes the rollups of hours that ended more than d
// before now. Zero (the default) keeps them forever.
func WithRollupRetention(d time.Duration) Option {
	return func(s *ReadModel) { s.rollupRetention = max(d, 0) }
}

// New returns a ReadModel over pool.
func New(pool *pgxpool.Pool, opts ...Option) *ReadModel {
	s := &ReadModel{
		pool:    pool,
		clock:   domain.SystemClock{},
		live:    newTableSet(TokensTable, OwnerRevocationsTable, true),
		rebuild: newTableSet(TokensRebuildTable, OwnerRevocationsRebuildTable, false),
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Checkpoint returns the sequence of the last event projection name has
// applied; zero if it has applied none.
func (s *ReadModel) Checkpoint(ctx context.Context, name string) (uint64, error) {
	return readCheckpoint(ctx, s.pool, name)
}

type queryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func readCheckpoint(ctx context.Context, q queryRower, name string) (uint64, error) {
	var seq int64
	err := q.QueryRow(ctx, readCheckpointSQL, name).Scan(&seq)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("read checkpoint of projection %q: %w", name, err)
	}
	return uint64(seq), nil
}

// The projections' names: the keys of their checkpoint rows, and the names
// of the workers' consumers. The live projector, a rebuild and the
// validators' snapshot use LifecycleName unless configured otherwise; the
// usage consumer uses UsageName.
const (
	LifecycleName = "lifecycle"
	UsageName     = "usage"
)
