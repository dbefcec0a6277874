package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tokenledger/tokenledger/domain"
)

// SnapshotInfo describes what a Snapshot read.
type SnapshotInfo struct {
	// Sequence is the checkpoint the rows reflect: every event up to it is
	// applied, none after it. A validator tails the stream from
	// Sequence + 1.
	Sequence uint64
	// Owners are all owner revocations, in owner order.
	Owners []OwnerRevocationRow
	// EstimatedTokens is PostgreSQL's estimate of the number of token rows
	// (its statistics, not a count; 0 when it has none), for a reader to
	// size what it loads them into.
	EstimatedTokens int64
}

// Snapshot reads the whole read model as projection name left it: it calls
// fn once per token row, in no particular order, with Status resolved at
// the ReadModel's clock and usage combined as Get combines it, and returns the
// owner revocations and the checkpoint the rows reflect (the lifecycle
// projection's; usage is as the usage projection left it at the same
// instant). Everything is read in one REPEATABLE READ, READ ONLY
// transaction, so rows and sequence are consistent while ApplyBatch keeps
// writing, and a Swap cannot replace the tables half-way (it waits for the
// snapshot to finish). Rows are streamed: memory does not grow with the
// number of tokens. Each row is fn's to keep (its Scopes slice is its
// own). An error from fn stops the read and is returned wrapped.
func (s *ReadModel) Snapshot(ctx context.Context, name string, fn func(r TokenRow) error) (SnapshotInfo, error) {
	info, err := s.snapshot(ctx, name, fn)
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("snapshot of projection %q: %w", name, err)
	}
	return info, nil
}

func (s *ReadModel) snapshot(ctx context.Context, name string, fn func(TokenRow) error) (SnapshotInfo, error) {
	var owners map[domain.OwnerID]*OwnerRevocationRow
	var now time.Time
	sc := newTokenScan(false)
	return s.readSnapshot(ctx, name, func(info *SnapshotInfo) {
		owners = make(map[domain.OwnerID]*OwnerRevocationRow, len(info.Owners))
		for i := range info.Owners {
			owners[info.Owners[i].Owner] = &info.Owners[i]
		}
		now = domain.NormalizeTime(s.clock.Now())
	}, s.live.allTokens, nil, func(rows pgx.Rows) error {
		if err := sc.scan(rows); err != nil {
			return fmt.Errorf("scan token: %w", err)
		}
		r := sc.row()
		r.resolveStatus(owners[r.Owner], now)
		if err := fn(r); err != nil {
			return fmt.Errorf("token %s: %w", r.ID, err)
		}
		return nil
	})
}

// readSnapshot reads the checkpoint and owner revocations of projection
// name, calls begin with them, then runs query (with args) and calls each
// for every row, all in one REPEATABLE READ, READ ONLY transaction.
func (s *ReadModel) readSnapshot(ctx context.Context, name string, begin func(*SnapshotInfo), query string, args []any, each func(pgx.Rows) error) (SnapshotInfo, error) {
	var info SnapshotInfo
	var seq int64
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	// The lock comes before the first query takes the snapshot: it waits
	// for a Swap in progress, and keeps the next one from renaming the
	// tables under this transaction.
	b.Queue(fmt.Sprintf(`LOCK TABLE %s, %s IN ACCESS SHARE MODE`, s.live.tokens.Sanitize(), s.live.owners.Sanitize()))
	b.Queue(`SELECT coalesce((SELECT last_seq FROM projection_checkpoints WHERE name = $1), 0)`, name).
		QueryRow(func(row pgx.Row) error { return row.Scan(&seq) })
	b.Queue(`SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = $1::regclass`, s.live.tokens.Sanitize()).
		QueryRow(func(row pgx.Row) error { return row.Scan(&info.EstimatedTokens) })
	b.Queue(s.live.allOwners).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			o, err := scanOwner(rows)
			if err != nil {
				return fmt.Errorf("scan owner revocation: %w", err)
			}
			info.Owners = append(info.Owners, o)
		}
		return rows.Err()
	})
	br := s.pool.SendBatch(ctx, b)
	tx := br.Tx()
	defer func() { _ = tx.Rollback(ctx) }()
	if err := br.Close(); err != nil {
		return SnapshotInfo{}, err
	}
	info.Sequence = uint64(seq)
	begin(&info)

	rows, err := tx.Query(ctx, query, args...)
	if err != nil {
		return SnapshotInfo{}, err
	}
	defer rows.Close()
	for rows.Next() {
		if err := each(rows); err != nil {
			return SnapshotInfo{}, err
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return SnapshotInfo{}, err
	}
	if err := tx.Commit(ctx); err != nil {
		return SnapshotInfo{}, fmt.Errorf("commit: %w", err)
	}
	return info, nil
}
