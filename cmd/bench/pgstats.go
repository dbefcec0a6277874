package main

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/projections"
)

// stmtStat is what pg_stat_statements holds for one normalised statement.
type stmtStat struct {
	calls, rows int64
}

// pgSnap is a snapshot of the read model database's statement statistics
// and of the usage stream's length.
type pgSnap struct {
	at        time.Time
	stmts     map[string]stmtStat
	usageLast uint64
	// usageApplied is the usage projection's checkpoint: the usage
	// stream sequence it has applied up to.
	usageApplied uint64
}

// snapshotTag marks the bench's own queries, which the counts leave out.
const snapshotTag = "bench:snapshot"

// enableStatements creates the pg_stat_statements extension in the read
// model's database (the dev cluster preloads the library).
func (d *devStack) enableStatements(ctx context.Context) error {
	if _, err := d.pool.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err != nil {
		return fmt.Errorf("pg_stat_statements (the dev cluster preloads it): %w", err)
	}
	return nil
}

// snapshot reads the statistics of every statement of the database,
// leaving out the statistics queries themselves.
func (d *devStack) snapshot(ctx context.Context) (pgSnap, error) {
	s := pgSnap{at: time.Now(), stmts: map[string]stmtStat{}}
	rows, err := d.pool.Query(ctx, `/* `+snapshotTag+` */
		SELECT query, sum(calls)::bigint, sum(rows)::bigint FROM pg_stat_statements
		WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND query NOT LIKE '%`+snapshotTag+`%'
		GROUP BY query`)
	if err != nil {
		return s, fmt.Errorf("read pg_stat_statements: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var q string
		var st stmtStat
		if err := rows.Scan(&q, &st.calls, &st.rows); err != nil {
			return s, fmt.Errorf("read pg_stat_statements: %w", err)
		}
		s.stmts[q] = st
	}
	if err := rows.Err(); err != nil {
		return s, fmt.Errorf("read pg_stat_statements: %w", err)
	}
	var applied int64
	err = d.pool.QueryRow(ctx, `/* `+snapshotTag+` */ SELECT coalesce(max(last_seq), 0) FROM projection_checkpoints WHERE name = $1`,
		projections.UsageName).Scan(&applied)
	if err != nil {
		return s, fmt.Errorf("read the usage checkpoint: %w", err)
	}
	s.usageApplied = uint64(applied)
	us, err := d.store.State(ctx, eventstore.Usage)
	if err != nil {
		return s, fmt.Errorf("usage stream info: %w", err)
	}
	s.usageLast = us.Last
	return s, nil
}

// pgLoad is what PostgreSQL executed between two snapshots taken around a
// measured load.
type pgLoad struct {
	// Seconds is the load's duration (the measured wrk run), which the
	// rates are per.
	Seconds float64
	// Requests is the number of requests of the load.
	Requests int64
	// Statements counts every statement, reads and transaction control
	// included.
	Statements int64
	// Writes counts INSERT, UPDATE, DELETE, MERGE and COPY statements;
	// RowsWritten the rows they wrote.
	Writes, RowsWritten int64
	// UsageUpserts and UsageRows are the usage consumer's one statement
	// per batch and the rows it wrote.
	UsageUpserts, UsageRows int64
	// Batches counts the checkpoint updates: one per usage batch written
	// (the lifecycle projector writes none while only validations run).
	Batches int64
	// CheckpointWrites are every write of projection checkpoints: the
	// update, and the insert that makes sure the row exists.
	CheckpointWrites int64
	// OtherWrites are every other write: the validation path's, which
	// should be none.
	OtherWrites int64
	// UsageEvents is the number of token.used events the validator
	// published meanwhile: one per token used, per flush.
	UsageEvents int64
	// UsageApplied is the number of usage events the usage consumer
	// applied meanwhile; UsageBehind how many it had not applied yet when
	// the second snapshot was taken.
	UsageApplied, UsageBehind int64
	// UsageBehindLater is how many usage events the usage consumer had
	// not applied 5 s after the load ended (usageLagAfter).
	UsageBehindLater int64
}

var writeStatement = regexp.MustCompile(`(?is)^\s*(INSERT|UPDATE|DELETE|MERGE|COPY)\b`)

// waitUsageApplied waits until the usage consumer has applied every event
// of the usage stream, so that a measured load starts without a backlog
// (and without one left by a restart: events the stopped consumer had
// fetched come back only after their ack wait).
func (d *devStack) waitUsageApplied(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		s, err := d.snapshot(ctx)
		if err != nil {
			return err
		}
		if s.usageApplied >= s.usageLast {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the usage consumer is %d events behind the usage stream after %s", s.usageLast-s.usageApplied, timeout)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// loadBetween computes the load between two snapshots.
func loadBetween(a, b pgSnap, seconds float64, requests int64) pgLoad {
	l := pgLoad{Seconds: seconds, Requests: requests, UsageEvents: int64(b.usageLast - min(a.usageLast, b.usageLast)),
		UsageApplied: int64(b.usageApplied - min(a.usageApplied, b.usageApplied)),
		UsageBehind:  int64(b.usageLast - min(b.usageApplied, b.usageLast))}
	for q, sb := range b.stmts {
		sa := a.stmts[q]
		calls, rows := sb.calls-sa.calls, sb.rows-sa.rows
		if calls <= 0 {
			continue
		}
		l.Statements += calls
		if !writeStatement.MatchString(q) {
			continue
		}
		l.Writes += calls
		l.RowsWritten += rows
		switch {
		case strings.HasPrefix(strings.TrimSpace(q), "INSERT INTO token_usage"):
			l.UsageUpserts += calls
			l.UsageRows += rows
		case strings.Contains(q, "projection_checkpoints"):
			l.CheckpointWrites += calls
			if strings.HasPrefix(strings.TrimSpace(q), "UPDATE") {
				l.Batches += calls
			}
		default:
			l.OtherWrites += calls
		}
	}
	return l
}

func (l pgLoad) rate(n int64) float64 {
	if l.Seconds <= 0 {
		return 0
	}
	return float64(n) / l.Seconds
}
