package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tokenledger/tokenledger/domain"
)

// HourlyUsageTable holds the uses of each token per hour (UTC), written by
// ApplyUsageBatch with the usage table.
const HourlyUsageTable = "token_usage_hourly"

// Granularity is the width of the buckets of a usage series.
type Granularity string

// The granularities of UsageSeries.
const (
	Hourly Granularity = "hour"
	Daily  Granularity = "day"
)

// Valid reports whether g is a known granularity.
func (g Granularity) Valid() bool { return g == Hourly || g == Daily }

// Width returns the duration of one bucket.
func (g Granularity) Width() time.Duration {
	if g == Daily {
		return 24 * time.Hour
	}
	return time.Hour
}

// UsageBucket is the number of uses of a token from Start (UTC) for one
// bucket of a series.
type UsageBucket struct {
	Start time.Time
	Count uint64
}

// UsageSeries returns the uses of token id per hour or per day (UTC) in
// the buckets that start in [from, to), from the hourly rollups, oldest
// first. Buckets without uses are absent. from and to are truncated to
// the granularity first.
func (s *ReadModel) UsageSeries(ctx context.Context, id domain.TokenID, g Granularity, from, to time.Time) ([]UsageBucket, error) {
	if !g.Valid() {
		return nil, fmt.Errorf("usage series of token %s: %w: granularity %q", id, domain.ErrInvalidArgument, g)
	}
	from, to = from.UTC().Truncate(g.Width()), to.UTC().Truncate(g.Width())
	rows, err := s.pool.Query(ctx, `SELECT date_trunc($2, hour, 'UTC') AS b, LEAST(sum(use_count), 9223372036854775807)::bigint
FROM `+HourlyUsageTable+` WHERE token_id = $1 AND hour >= $3 AND hour < $4
GROUP BY b ORDER BY b`, uuidArg(id), string(g), from, to)
	if err != nil {
		return nil, fmt.Errorf("usage series of token %s: %w", id, err)
	}
	defer rows.Close()
	var out []UsageBucket
	for rows.Next() {
		var (
			b UsageBucket
			n int64
		)
		if err := rows.Scan(&b.Start, &n); err != nil {
			return nil, fmt.Errorf("usage series of token %s: %w", id, err)
		}
		b.Start, b.Count = b.Start.UTC(), uint64(n)
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("usage series of token %s: %w", id, err)
	}
	return out, nil
}

// rollupCutoff is the first hour whose rollups are kept, nil without a
// retention.
func (s *ReadModel) rollupCutoff() *time.Time {
	if s.rollupRetention <= 0 {
		return nil
	}
	t := s.clock.Now().Add(-s.rollupRetention).UTC().Truncate(time.Hour)
	return &t
}

// GetRecentAddrs returns the last distinct client addresses token id was
// used from (at most MaxRecentAddrs, latest first); none if it recorded
// none.
func (s *ReadModel) GetRecentAddrs(ctx context.Context, id domain.TokenID) ([]UsedAddr, error) {
	var raw []byte
	err := s.pool.QueryRow(ctx, `SELECT recent_addrs FROM `+UsageTable+` WHERE token_id = $1`, uuidArg(id)).Scan(&raw)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("recent addresses of token %s: %w", id, err)
	}
	return decodeRecentAddrs(raw)
}

func decodeRecentAddrs(raw []byte) ([]UsedAddr, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var out []UsedAddr
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("decode recent addresses: %w", err)
	}
	for i := range out {
		out[i].At = out[i].At.UTC()
	}
	return out, nil
}

// UsageReader reads the usage stream, as eventstore.Store.ReadUsage does:
// every event from sequence from on, in stream order, to fn.
type UsageReader interface {
	ReadUsage(ctx context.Context, from uint64, fn func(domain.Envelope) error) (last uint64, err error)
}

// RollupRebuild tells what RebuildRollups did.
type RollupRebuild struct {
	// Checkpoint is the usage projection's checkpoint the rollups were
	// rebuilt up to.
	Checkpoint uint64
	// Events is the number of usage events read; Rows the hourly rows
	// written.
	Events int
	Rows   int
}

var errPastCheckpoint = errors.New("past the checkpoint")

// RebuildRollups rebuilds the hourly usage rollups from the usage stream:
// in one transaction, holding the checkpoint row of usage projection name
// (so its consumer waits), it reads every event the stream holds up to that
// checkpoint, folds the counts per token and hour, and replaces the rollup
// table with them. Afterwards the rollups equal the counts of the usage
// stream's events up to the checkpoint; hours whose events aged out of the
// stream have none (and a retention set with WithRollupRetention still
// applies).
func (s *ReadModel) RebuildRollups(ctx context.Context, name string, usage UsageReader) (RollupRebuild, error) {
	var out RollupRebuild
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return out, fmt.Errorf("rebuild usage rollups: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	var cp int64
	b := &pgx.Batch{}
	b.Queue(insertCheckpointSQL, name)
	b.Queue(lockCheckpointSQL, name).QueryRow(func(row pgx.Row) error { return row.Scan(&cp) })
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return out, fmt.Errorf("rebuild usage rollups: lock checkpoint: %w", err)
	}
	out.Checkpoint = uint64(cp)
	var f usageFold
	if cp > 0 {
		_, err = usage.ReadUsage(ctx, 1, func(e domain.Envelope) error {
			if e.Sequence > out.Checkpoint {
				return errPastCheckpoint
			}
			in, err := usageOf(e)
			if err != nil {
				return err
			}
			out.Events++
			for _, u := range in.uses {
				f.add(u)
			}
			return nil
		})
		if err != nil && !errors.Is(err, errPastCheckpoint) {
			return out, fmt.Errorf("rebuild usage rollups: read the usage stream: %w", err)
		}
	}
	hours := f.hourRows()
	if cut := s.rollupCutoff(); cut != nil {
		kept := hours[:0]
		for _, h := range hours {
			if !h.Hour.Before(*cut) {
				kept = append(kept, h)
			}
		}
		hours = kept
	}
	out.Rows = len(hours)
	if _, err := tx.Exec(ctx, `DELETE FROM `+HourlyUsageTable); err != nil {
		return out, fmt.Errorf("rebuild usage rollups: %w", err)
	}
	cols := hourColumns(hours)
	if _, err := tx.Exec(ctx, `INSERT INTO `+HourlyUsageTable+` (token_id, hour, use_count)
SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::bigint[])`, cols.ids, cols.hours, cols.count); err != nil {
		return out, fmt.Errorf("rebuild usage rollups: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return out, fmt.Errorf("rebuild usage rollups: commit: %w", err)
	}
	return out, nil
}
