package app

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
	"github.com/tokenledger/tokenledger/natsconn"
	"github.com/tokenledger/tokenledger/projections"
)

// ErrReplayRunning is returned (wrapped) by Replay and RebuildProjection
// when another replay holds the database's rebuild lock: all replays share
// the shadow tables, so only one may run at a time.
var ErrReplayRunning = errors.New("another replay is running on this database")

// ReplayConfig configures `tokenledger replay`. Start from
// DefaultReplayConfig.
type ReplayConfig struct {
	// NATSURL is the NATS server (or comma-separated servers) holding the
	// event streams.
	NATSURL string
	// NATSAuth holds the credentials and TLS settings of the NATS
	// connections.
	NATSAuth natsconn.Auth
	// PostgresURL is the database holding the read model; its schema must
	// be current (see Migrate).
	PostgresURL string
	// Store names the streams and their subjects. It must match the
	// deployment's: opening the store updates a stream whose settings
	// differ.
	Store eventstore.Config
	// Rebuild tunes the rebuild itself.
	Rebuild RebuildOptions
}

// RebuildOptions tunes RebuildProjection.
type RebuildOptions struct {
	// Name is the projection rebuilt: the checkpoint name its live
	// projector uses.
	Name string
	// Batch is how many events go in one transaction while the rebuild
	// catches up with the stream. The catch-up stops, and Swap takes over,
	// once at most Batch events are left.
	Batch int
	// LockTimeout bounds each wait of Swap for a lock (the live
	// projector's checkpoint row, the live tables held by readers); zero
	// waits as long as the context allows. While Swap waits, the live
	// projector and new readers wait behind it, so keep it short.
	LockTimeout time.Duration
	// SwapAttempts is how many times a swap that could not get its locks
	// in time is tried, catching up again in between.
	SwapAttempts int
	// IndexWorkers is how many indexes are built at once, each on a
	// connection of its own (projections.DefaultIndexWorkers when zero).
	IndexWorkers int
	// Progress, if set, is called at the start of every phase and every
	// few thousand events while reading, on the rebuilding goroutine. It
	// must be quick.
	Progress func(ReplayProgress)
}

// Defaults of ReplayConfig and RebuildOptions.
const (
	DefaultReplayBatch        = 1000
	DefaultSwapLockTimeout    = 5 * time.Second
	DefaultSwapAttempts       = 5
	replayPostgresConnections = 8
	// maxReplayBatch bounds RebuildOptions.Batch: a transaction's events
	// are held in memory, and one very large transaction only delays the
	// swap.
	maxReplayBatch = 100_000
	// progressEvery is how often, in events, Progress is called while
	// reading.
	progressEvery = 4096
	// maxCatchUpRounds bounds the catch-up before the swap when appends
	// keep pace with it; Swap catches up whatever is left.
	maxCatchUpRounds = 10
)

// DefaultReplayGCPercent is the garbage collector's target (GOGC) that
// `tokenledger replay` runs with: every collection marks the whole fold,
// which keeps growing, so collecting half as often as Go's default of 100
// saves about a tenth of a replay's time (BenchmarkReplay1M: 125-132 k
// against 141-150 k events/s) for a peak heap of three times the fold
// instead of two.
const DefaultReplayGCPercent = 200

// DefaultReplayConfig returns the defaults of `tokenledger replay`.
func DefaultReplayConfig() ReplayConfig {
	return ReplayConfig{
		NATSURL: DefaultNATSURL,
		Store:   eventstore.DefaultConfig(),
		Rebuild: DefaultRebuildOptions(),
	}
}

// DefaultRebuildOptions returns the defaults of RebuildOptions.
func DefaultRebuildOptions() RebuildOptions {
	return RebuildOptions{
		Name:         projections.LifecycleName,
		Batch:        DefaultReplayBatch,
		LockTimeout:  DefaultSwapLockTimeout,
		SwapAttempts: DefaultSwapAttempts,
	}
}

// Validate reports every problem with c at once.
func (c ReplayConfig) Validate() error {
	var errs []error
	if err := validateNATSURL(c.NATSURL); err != nil {
		errs = append(errs, err)
	}
	if err := c.NATSAuth.Validate(c.NATSURL); err != nil {
		errs = append(errs, err)
	}
	if err := validatePostgresURL(c.PostgresURL); err != nil {
		errs = append(errs, err)
	}
	if err := c.Store.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("store: %w", err))
	}
	if err := c.Rebuild.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Validate reports every problem with o at once.
func (o RebuildOptions) Validate() error {
	var errs []error
	if err := validateProjectionName(o.Name); err != nil {
		errs = append(errs, err)
	}
	if o.Batch < 1 || o.Batch > maxReplayBatch {
		errs = append(errs, fmt.Errorf("batch %d outside 1..%d", o.Batch, maxReplayBatch))
	}
	if o.LockTimeout < 0 {
		errs = append(errs, fmt.Errorf("lock timeout %s is negative", o.LockTimeout))
	}
	if o.SwapAttempts < 1 {
		errs = append(errs, fmt.Errorf("swap attempts %d must be at least 1", o.SwapAttempts))
	}
	if o.IndexWorkers < 0 {
		errs = append(errs, fmt.Errorf("index workers %d is negative", o.IndexWorkers))
	}
	return errors.Join(errs...)
}

// ReplayPhase names a step of a rebuild.
type ReplayPhase string

// The phases of a rebuild, in order.
const (
	// PhaseRead reads the stream from sequence 1 and folds it in memory.
	PhaseRead ReplayPhase = "read"
	// PhaseLoad copies the folded rows into the shadow tables and indexes
	// them.
	PhaseLoad ReplayPhase = "load"
	// PhaseCatchUp applies the events appended since the read to the
	// shadow tables.
	PhaseCatchUp ReplayPhase = "catch-up"
	// PhaseSwap swaps the shadow tables in.
	PhaseSwap ReplayPhase = "swap"
)

// ReplayProgress is where a rebuild is: in phase Phase, at stream
// sequence Done of Total (the stream's last sequence when the phase
// started; it may be passed while appends continue).
type ReplayProgress struct {
	Phase       ReplayPhase
	Done, Total uint64
}

// ReplayResult tells what a rebuild did.
type ReplayResult struct {
	// Events is the number of events read and applied: Folded + CaughtUp.
	Events uint64
	// Folded is the number of events read and folded in memory.
	Folded uint64
	// CaughtUp is the number of events applied to the shadow tables after
	// the load, before and during the swap.
	CaughtUp uint64
	// UnderLock is the part of CaughtUp the swap applied while holding the
	// live checkpoint's lock, with the live projector waiting.
	UnderLock uint64
	// Tokens and Owners are the rows loaded.
	Tokens, Owners int64
	// Loaded is the stream sequence the loaded rows reflect; Sequence is
	// the live checkpoint after the swap.
	Loaded, Sequence uint64
	// SwapAttempts is the number of swaps tried.
	SwapAttempts int
	// Read, Load, CatchUp and Swap are the times the phases took; Elapsed
	// is the whole rebuild.
	Read, Load, CatchUp, Swap, Elapsed time.Duration
}

// Rate returns the events applied per second of the whole rebuild.
func (r ReplayResult) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Events) / r.Elapsed.Seconds()
}

// Replay connects to NATS and PostgreSQL as cfg says and rebuilds the
// projection there with RebuildProjection. It needs the current schema
// (ErrSchemaOutdated otherwise).
func Replay(ctx context.Context, cfg ReplayConfig, log *slog.Logger) (ReplayResult, error) {
	if err := cfg.Validate(); err != nil {
		return ReplayResult{}, err
	}
	nc, store, err := connectStore(ctx, eventstore.OpenExisting, cfg.NATSURL, cfg.NATSAuth, "tokenledger-replay", cfg.Store)
	if err != nil {
		return ReplayResult{}, err
	}
	defer nc.Close()
	defer store.Close()
	pool, err := openPool(ctx, cfg.PostgresURL, replayPostgresConnections)
	if err != nil {
		return ReplayResult{}, err
	}
	defer pool.Close()
	return RebuildProjection(ctx, store, pool, cfg.Rebuild, log)
}

// RebuildProjection rebuilds projection opts.Name from stream sequence 1
// into fresh tables and swaps them in once they have caught up, while the
// live projector keeps applying events and readers keep reading:
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
// fails with ErrReplayRunning.
//
// Memory: the fold holds the state of every token and owner of the
// ledger at once, about 620 bytes of live heap per token (measured by
// BenchmarkReplay1M: 355,000 tokens of three scopes and short names;
// longer names and more scopes add their length), so a million tokens
// take about 0.6 GB. Nothing else grows with the stream: events are
// decoded in bounded chunks, folded and dropped. The heap peaks at about
// (1 + GOGC/100) times that, because the collector lets garbage grow in
// proportion to the live heap: 1.9 GB per million tokens with
// DefaultReplayGCPercent.
func RebuildProjection(ctx context.Context, store *eventstore.Store, pool *pgxpool.Pool, opts RebuildOptions, log *slog.Logger) (ReplayResult, error) {
	if err := opts.Validate(); err != nil {
		return ReplayResult{}, err
	}
	if opts.Progress == nil {
		opts.Progress = func(ReplayProgress) {}
	}
	unlock, err := lockRebuild(ctx, pool)
	if err != nil {
		return ReplayResult{}, err
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
		return r.res, fmt.Errorf("replay projection %q: %w", opts.Name, err)
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
		return nil, ErrReplayRunning
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
	opts    RebuildOptions
	log     *slog.Logger
	rebuild *projections.Rebuild
	res     ReplayResult
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
	r.log.Info("replay: reading the stream", "stream", r.store.Config().Stream, "events", end)
	r.opts.Progress(ReplayProgress{Phase: PhaseRead, Total: end})
	state := domain.NewState()
	last, n, err := foldStream(ctx, r.store, end, state, func(seq uint64) {
		r.opts.Progress(ReplayProgress{Phase: PhaseRead, Done: seq, Total: end})
	})
	if err != nil {
		return nil, err
	}
	r.opts.Progress(ReplayProgress{Phase: PhaseRead, Done: last, Total: max(end, last)})
	r.res.Folded, r.seq = n, last
	r.res.Read = time.Since(start)
	r.log.Info("replay: stream folded", "events", n, "sequence", last, "tokens", state.Len(),
		"seconds", seconds(r.res.Read))
	return state, nil
}

// load copies the fold into the shadow tables.
func (r *rebuilder) load(ctx context.Context, state *domain.State) error {
	start := time.Now()
	r.opts.Progress(ReplayProgress{Phase: PhaseLoad, Done: r.seq, Total: r.seq})
	r.log.Info("replay: loading the shadow tables", "tokens", state.Len())
	stats, err := r.rebuild.Load(ctx, r.seq, projections.StateTokenRows(state), projections.StateOwnerRows(state))
	if err != nil {
		return err
	}
	r.loaded = true
	r.res.Loaded = r.seq
	r.res.Tokens, r.res.Owners = stats.Tokens, stats.Owners
	r.res.Load = time.Since(start)
	r.log.Info("replay: shadow tables loaded", "tokens", stats.Tokens, "owner_revocations", stats.Owners,
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
		r.opts.Progress(ReplayProgress{Phase: PhaseCatchUp, Done: r.seq, Total: end})
		last, err := readRange(ctx, r.store, r.seq, 0, r.opts.Batch, func(events []domain.Envelope) error {
			n, err := r.rebuild.ApplyBatch(ctx, events)
			r.res.CaughtUp += uint64(n)
			r.opts.Progress(ReplayProgress{Phase: PhaseCatchUp, Done: events[len(events)-1].Sequence, Total: end})
			return err
		})
		if err != nil {
			return fmt.Errorf("catch up from %d: %w", r.seq, err)
		}
		r.log.Info("replay: caught up", "from", r.seq, "to", last)
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
		r.opts.Progress(ReplayProgress{Phase: PhaseSwap, Done: r.seq, Total: r.seq})
		res, err := r.rebuild.Swap(ctx, source)
		if err == nil {
			r.res.CaughtUp += uint64(res.CaughtUp)
			r.res.UnderLock = uint64(res.CaughtUp)
			r.res.Sequence = res.Sequence
			r.log.Info("replay: swapped in", "projection", r.opts.Name, "sequence", res.Sequence,
				"caught_up_under_lock", res.CaughtUp)
			return nil
		}
		if !isLockTimeout(err) || r.res.SwapAttempts >= r.opts.SwapAttempts || ctx.Err() != nil {
			return err
		}
		r.log.Warn("replay: swap did not get its locks in time; catching up and trying again",
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

// errRangeEnd stops a read at the end of the requested range.
var errRangeEnd = errors.New("end of range")

// readRange passes the events with after < Sequence <= through (through 0:
// up to the stream's last sequence when the read starts) to fn, in stream
// order, in batches of at most batch events. fn must not keep the slice.
// It returns the sequence of the last event read. With a through, it
// fails unless every event up to through was delivered.
func readRange(ctx context.Context, store *eventstore.Store, after, through uint64, batch int, fn func([]domain.Envelope) error) (uint64, error) {
	buf := make([]domain.Envelope, 0, batch)
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		err := fn(buf)
		clear(buf)
		buf = buf[:0]
		return err
	}
	last := after
	_, err := store.Read(ctx, after+1, func(e domain.Envelope) error {
		if through > 0 && e.Sequence > through {
			return errRangeEnd
		}
		buf = append(buf, e)
		last = e.Sequence
		if len(buf) == batch {
			return flush()
		}
		return nil
	})
	if err != nil && !errors.Is(err, errRangeEnd) {
		return last, err
	}
	if err := flush(); err != nil {
		return last, err
	}
	if through > 0 && last < through {
		return last, fmt.Errorf("stream ends at sequence %d, before %d", last, through)
	}
	return last, nil
}

// seconds renders d in seconds with millisecond precision, for logs.
func seconds(d time.Duration) float64 { return d.Round(time.Millisecond).Seconds() }
