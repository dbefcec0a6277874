// Package rebuild rebuilds a projection of the lifecycle stream from
// sequence 1 into fresh tables and swaps them in, while the live projector
// keeps applying events and readers keep reading: `tokenledger rebuild`.
// The rebuild's SQL (shadow tables, load, swap) is package projections';
// this package reads and folds the stream, drives the phases and holds the
// database's rebuild lock.
package rebuild

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/projections"
)

// Run rebuilds projection opts.Name from stream sequence 1 into fresh
// tables and swaps them in once they have caught up, while the live
// projector keeps applying events and readers keep reading:
//
//  1. read: every event of the lifecycle stream, up to its last sequence
//     when the read starts, is read with an ordered consumer and folded in
//     memory with domain.State;
//  2. load: the folded rows are copied into the shadow tables, which are
//     then indexed (projections.Rebuild.Load);
//  3. catch-up: the events appended meanwhile are applied to the shadow
//     tables in batches of opts.Batch, until at most a batch is left;
//  4. swap: under the live checkpoint's lock, the last events up to the
//     live checkpoint are applied and the shadow tables replace the live
//     ones in one transaction (projections.Rebuild.Swap). A swap that
//     cannot get its locks within opts.LockTimeout is retried, after
//     another catch-up, up to opts.SwapAttempts times.
//
// The result equals what the live projector would have built from the same
// events. On error the live tables are untouched and the shadow tables are
// dropped. Only one rebuild runs per database at a time: a second one
// fails with ErrRunning.
//
// Memory: the fold holds the state of every token and owner of the
// ledger at once, about 620 bytes of live heap per token (measured by
// BenchmarkRebuild1M: 355,000 tokens of three scopes and short names;
// longer names and more scopes add their length), so a million tokens
// take about 0.6 GB. Nothing else grows with the stream: events are
// decoded in bounded chunks, folded and dropped. The heap peaks at about
// (1 + GOGC/100) times that, because the collector lets garbage grow in
// proportion to the live heap: 1.9 GB per million tokens with
// DefaultGCPercent.
func Run(ctx context.Context, store *eventstore.Store, pool *pgxpool.Pool, opts Options, log *slog.Logger) (Result, error) {
	if err := opts.Validate(); err != nil {
		return Result{}, err
	}
	if opts.Progress == nil {
		opts.Progress = func(Progress) {}
	}
	unlock, err := lockRebuild(ctx, pool)
	if err != nil {
		return Result{}, err
	}
	defer unlock()

	r := &rebuilder{store: store, opts: opts, log: log, rebuild: projections.New(pool).NewRebuild(opts.Name)}
	r.rebuild.LockTimeout = opts.LockTimeout
	r.rebuild.IndexWorkers = opts.IndexWorkers
	start := time.Now()
	err = r.run(ctx)
	r.res.Elapsed = time.Since(start)
	r.res.Events = r.res.Folded + r.res.CaughtUp
	if err != nil {
		if r.loaded {
			dropCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if dropErr := r.rebuild.Drop(dropCtx); dropErr != nil {
				err = errors.Join(err, dropErr)
			}
		}
		return r.res, fmt.Errorf("rebuild projection %q: %w", opts.Name, err)
	}
	return r.res, nil
}

// rebuildLockKey is the PostgreSQL advisory lock a rebuild holds: one per
// database, because all rebuilds share the shadow tables.
const rebuildLockKey int64 = 0x746c5f7265627569 // "tl_rebui"

// lockRebuild takes the database's rebuild lock on a connection of its
// own, held until the returned function is called (or the process dies,
// which ends the session and frees the lock).
func lockRebuild(ctx context.Context, pool *pgxpool.Pool) (func(), error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, rebuildLockKey).Scan(&ok); err != nil {
		conn.Release()
		return nil, fmt.Errorf("take the rebuild lock: %w", err)
	}
	if !ok {
		conn.Release()
		return nil, ErrRunning
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, rebuildLockKey); err != nil {
			// A session whose unlock failed must not return to the pool
			// still holding the lock.
			_ = conn.Conn().Close(ctx)
		}
		conn.Release()
	}, nil
}

type rebuilder struct {
	store   *eventstore.Store
	opts    Options
	log     *slog.Logger
	rebuild *projections.Rebuild
	res     Result
	loaded  bool
	// seq is the sequence the shadow tables reflect.
	seq uint64
}

func (r *rebuilder) run(ctx context.Context) error {
	state, err := r.read(ctx)
	if err != nil {
		return err
	}
	if err := r.load(ctx, state); err != nil {
		return err
	}
	start := time.Now()
	if err := r.catchUp(ctx); err != nil {
		return err
	}
	r.res.CatchUp = time.Since(start)
	return r.swap(ctx)
}

// read folds the whole stream in memory.
func (r *rebuilder) read(ctx context.Context) (*domain.State, error) {
	start := time.Now()
	end, err := r.store.StreamLastSequence(ctx)
	if err != nil {
		return nil, err
	}
	r.log.Info("rebuild: reading the stream", "stream", r.store.Config().Stream, "events", end)
	r.opts.Progress(Progress{Phase: PhaseRead, Total: end})
	state := domain.NewState()
	last, n, err := foldStream(ctx, r.store, end, state, func(seq uint64) {
		r.opts.Progress(Progress{Phase: PhaseRead, Done: seq, Total: end})
	})
	if err != nil {
		return nil, err
	}
	r.opts.Progress(Progress{Phase: PhaseRead, Done: last, Total: max(end, last)})
	r.res.Folded, r.seq = n, last
	r.res.Read = time.Since(start)
	r.log.Info("rebuild: stream folded", "events", n, "sequence", last, "tokens", state.Len(),
		"seconds", seconds(r.res.Read))
	return state, nil
}

// load copies the fold into the shadow tables.
func (r *rebuilder) load(ctx context.Context, state *domain.State) error {
	start := time.Now()
	r.opts.Progress(Progress{Phase: PhaseLoad, Done: r.seq, Total: r.seq})
	r.log.Info("rebuild: loading the shadow tables", "tokens", state.Len())
	stats, err := r.rebuild.Load(ctx, r.seq, projections.StateTokenRows(state), projections.StateOwnerRows(state))
	if err != nil {
		return err
	}
	r.loaded = true
	r.res.Loaded = r.seq
	r.res.Tokens, r.res.Owners = stats.Tokens, stats.Owners
	r.res.Load = time.Since(start)
	r.log.Info("rebuild: shadow tables loaded", "tokens", stats.Tokens, "owner_revocations", stats.Owners,
		"copy_seconds", seconds(stats.Copy), "index_seconds", seconds(stats.Index))
	return nil
}

// catchUp applies the events appended since the shadow tables' sequence
// until at most a batch is left.
func (r *rebuilder) catchUp(ctx context.Context) error {
	for range maxCatchUpRounds {
		end, err := r.store.StreamLastSequence(ctx)
		if err != nil {
			return err
		}
		if end <= r.seq+uint64(r.opts.Batch) {
			return nil
		}
		r.opts.Progress(Progress{Phase: PhaseCatchUp, Done: r.seq, Total: end})
		last, err := readRange(ctx, r.store, r.seq, 0, r.opts.Batch, func(events []domain.Envelope) error {
			n, err := r.rebuild.ApplyBatch(ctx, events)
			r.res.CaughtUp += uint64(n)
			r.opts.Progress(Progress{Phase: PhaseCatchUp, Done: events[len(events)-1].Sequence, Total: end})
			return err
		})
		if err != nil {
			return fmt.Errorf("catch up from %d: %w", r.seq, err)
		}
		r.log.Info("rebuild: caught up", "from", r.seq, "to", last)
		r.seq = last
	}
	return nil
}

// swap swaps the shadow tables in, retrying when it cannot get its locks
// in time.
func (r *rebuilder) swap(ctx context.Context) error {
	start := time.Now()
	defer func() { r.res.Swap = time.Since(start) }()
	source := func(ctx context.Context, after, through uint64, fn func([]domain.Envelope) error) error {
		_, err := readRange(ctx, r.store, after, through, r.opts.Batch, fn)
		return err
	}
	for {
		r.res.SwapAttempts++
		r.opts.Progress(Progress{Phase: PhaseSwap, Done: r.seq, Total: r.seq})
		res, err := r.rebuild.Swap(ctx, source)
		if err == nil {
			r.res.CaughtUp += uint64(res.CaughtUp)
			r.res.UnderLock = uint64(res.CaughtUp)
			r.res.Sequence = res.Sequence
			r.log.Info("rebuild: swapped in", "projection", r.opts.Name, "sequence", res.Sequence,
				"caught_up_under_lock", res.CaughtUp)
			return nil
		}
		if !isLockTimeout(err) || r.res.SwapAttempts >= r.opts.SwapAttempts || ctx.Err() != nil {
			return err
		}
		r.log.Warn("rebuild: swap did not get its locks in time; catching up and trying again",
			"attempt", r.res.SwapAttempts, "lock_timeout", r.opts.LockTimeout, "err", err)
		if r.seq, err = r.rebuild.Checkpoint(ctx); err != nil {
			return err
		}
		if err := r.catchUp(ctx); err != nil {
			return err
		}
	}
}

// isLockTimeout reports whether err is PostgreSQL's lock_not_available,
// which a statement that waited lock_timeout fails with.
func isLockTimeout(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "55P03"
}

// seconds renders d in seconds with millisecond precision, for logs.
func seconds(d time.Duration) float64 { return d.Round(time.Millisecond).Seconds() }
