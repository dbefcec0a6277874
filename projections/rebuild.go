package projections

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tokenledger/tokenledger/domain"
)

// ErrNoRebuild is returned (wrapped) by Rebuild.Swap and Rebuild.ApplyBatch
// when nothing was loaded into the shadow tables.
var ErrNoRebuild = errors.New("no rebuild loaded")

// shadowSuffix names the shadow copy of a live index: the index
// tokens_owner_id_idx of tokens is tokens_owner_id_idx_rebuild on
// tokens_rebuild until the swap renames it back.
const shadowSuffix = "_rebuild"

// Rebuild re-creates projection name's tables from scratch in the shadow
// tables tokens_rebuild and owner_revocations_rebuild, while the live
// projection keeps serving and applying, then swaps them in:
//
//  1. Load writes a folded state (for example domain.State's, through
//     StateTokenRows and StateOwnerRows) with COPY and records the
//     sequence it reflects as the rebuild's checkpoint.
//  2. ApplyBatch catches the shadow tables up with the events after it,
//     exactly as the live projection applies them (optional, but it keeps
//     the work Swap does under its lock small).
//  3. Swap locks the live checkpoint, applies the remaining events up to
//     it to the shadow tables, drops the live tables and renames the shadow
//     ones (and their indexes) to the live names, in one transaction.
//
// Only one rebuild may run at a time per database: they share the shadow
// tables. A Rebuild is safe for concurrent use, but its steps are meant to
// run in order.
type Rebuild struct {
	store *ReadModel
	name  string
	// LockTimeout bounds how long Swap waits for each lock it needs (the
	// live checkpoint row, held by a running ApplyBatch, and the live
	// tables, held by running reads such as a Snapshot); it fails instead,
	// and may be retried. Zero waits as long as the context allows. While
	// Swap waits for a table lock, new reads of that table queue behind it.
	LockTimeout time.Duration
	// IndexWorkers is how many indexes Load builds at once, each on a
	// connection of its own; zero means DefaultIndexWorkers.
	IndexWorkers int
}

// NewRebuild returns a Rebuild of projection name (the name its live
// ApplyBatch calls use).
func (s *ReadModel) NewRebuild(name string) *Rebuild { return &Rebuild{store: s, name: name} }

// CheckpointName is the name of the shadow tables' checkpoint row.
func (r *Rebuild) CheckpointName() string { return r.name + shadowSuffix }

// Checkpoint returns the sequence the shadow tables reflect; zero if
// nothing is loaded.
func (r *Rebuild) Checkpoint(ctx context.Context) (uint64, error) {
	return readCheckpoint(ctx, r.store.pool, r.CheckpointName())
}

// Load (re)creates the shadow tables with the live tables' columns,
// constraints and indexes, fills them with tokens and owners (rows whose
// Status fields are ignored) and records seq, the stream sequence of the
// last event the rows reflect, as the rebuild's checkpoint. A previous,
// unswapped rebuild is discarded first.
//
// Rows are copied with COPY (FREEZE) into tables without indexes, then the
// indexes are built, IndexWorkers at a time, and the tables analysed: much
// faster than maintaining indexes row by row. The rebuild's checkpoint is
// written last, so until Load succeeds Swap refuses the shadow tables; on
// error they are dropped.
func (r *Rebuild) Load(ctx context.Context, seq uint64, tokens iter.Seq[TokenRow], owners iter.Seq[OwnerRevocationRow]) (LoadStats, error) {
	stats, err := r.load(ctx, seq, tokens, owners)
	if err != nil {
		dropCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dropTimeout)
		defer cancel()
		if dropErr := r.Drop(dropCtx); dropErr != nil {
			err = errors.Join(err, dropErr)
		}
		return LoadStats{}, fmt.Errorf("load rebuild of projection %q at sequence %d: %w", r.name, seq, err)
	}
	return stats, nil
}

// dropTimeout bounds the clean-up of a failed Load.
const dropTimeout = 30 * time.Second

// DefaultIndexWorkers is how many indexes Load builds at once unless
// Rebuild.IndexWorkers says otherwise.
const DefaultIndexWorkers = 2

// LoadStats tells what Load wrote and how long its phases took.
type LoadStats struct {
	Tokens, Owners int64
	// Copy is the time spent creating the tables and copying the rows,
	// Index the time spent building indexes and analysing the tables.
	Copy, Index time.Duration
}

func (r *Rebuild) load(ctx context.Context, seq uint64, tokens iter.Seq[TokenRow], owners iter.Seq[OwnerRevocationRow]) (LoadStats, error) {
	var stats LoadStats
	start := time.Now()
	plan, err := r.createAndCopy(ctx, tokens, owners, &stats)
	if err != nil {
		return stats, err
	}
	stats.Copy = time.Since(start)

	start = time.Now()
	if err := r.buildIndexes(ctx, plan); err != nil {
		return stats, err
	}
	shadow := r.store.rebuild
	b := &pgx.Batch{}
	b.Queue(fmt.Sprintf(`ANALYZE %s, %s`, shadow.tokens.Sanitize(), shadow.owners.Sanitize()))
	b.Queue(`INSERT INTO projection_checkpoints (name, last_seq) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET last_seq = excluded.last_seq, updated_at = now()`, r.CheckpointName(), int64(seq))
	if err := r.store.pool.SendBatch(ctx, b).Close(); err != nil {
		return stats, fmt.Errorf("analyze and save the rebuild checkpoint: %w", err)
	}
	stats.Index = time.Since(start)
	return stats, nil
}

// createAndCopy creates the shadow tables without indexes and copies the
// rows into them, in one transaction, and returns the statements that
// build their indexes.
func (r *Rebuild) createAndCopy(ctx context.Context, tokens iter.Seq[TokenRow], owners iter.Seq[OwnerRevocationRow], stats *LoadStats) (indexPlan, error) {
	live, shadow := r.store.live, r.store.rebuild
	tx, err := r.store.pool.Begin(ctx)
	if err != nil {
		return indexPlan{}, err
	}
	defer func() { _ = tx.Rollback(ctx) }()

	if _, err := tx.Exec(ctx, deleteCheckpointSQL, r.CheckpointName()); err != nil {
		return indexPlan{}, fmt.Errorf("delete rebuild checkpoint: %w", err)
	}
	ddl := fmt.Sprintf(`DROP TABLE IF EXISTS %[1]s, %[2]s;
CREATE TABLE %[1]s (LIKE %[3]s INCLUDING ALL EXCLUDING INDEXES);
CREATE TABLE %[2]s (LIKE %[4]s INCLUDING ALL EXCLUDING INDEXES)`,
		shadow.tokens.Sanitize(), shadow.owners.Sanitize(), live.tokens.Sanitize(), live.owners.Sanitize())
	if _, err := tx.Exec(ctx, ddl, pgx.QueryExecModeSimpleProtocol); err != nil {
		return indexPlan{}, fmt.Errorf("create shadow tables: %w", err)
	}
	// LIKE copies no storage parameters; the fillfactor must be set before
	// the rows are copied, which lay out the pages by it.
	for _, pair := range [][2]pgx.Identifier{{live.tokens, shadow.tokens}, {live.owners, shadow.owners}} {
		if err := copyStorageParameters(ctx, tx, pair[0], pair[1]); err != nil {
			return indexPlan{}, err
		}
	}
	if tokens != nil {
		if stats.Tokens, err = copyTokens(ctx, tx, shadow.tokens, rowPointers(tokens), true); err != nil {
			return indexPlan{}, fmt.Errorf("copy tokens: %w", err)
		}
	}
	if owners != nil {
		next, stop := iter.Pull(owners)
		defer stop()
		vals := make([]any, 0, len(ownerColumns))
		stats.Owners, err = tx.CopyFrom(ctx, shadow.owners, ownerColumns, pgx.CopyFromFunc(func() ([]any, error) {
			o, ok := next()
			if !ok {
				return nil, nil
			}
			vals = ownerValues(vals, &o)
			return vals, nil
		}))
		if err != nil {
			return indexPlan{}, fmt.Errorf("copy owner revocations: %w", err)
		}
	}
	var plan indexPlan
	for _, pair := range [][2]pgx.Identifier{{live.tokens, shadow.tokens}, {live.owners, shadow.owners}} {
		indexes, err := tableIndexes(ctx, tx, pair[0])
		if err != nil {
			return indexPlan{}, err
		}
		if err := plan.add(indexes, pair[1]); err != nil {
			return indexPlan{}, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return indexPlan{}, fmt.Errorf("commit shadow tables: %w", err)
	}
	return plan, nil
}

// copyStorageParameters gives table shadow the storage parameters (such as
// fillfactor) of table live.
func copyStorageParameters(ctx context.Context, tx pgx.Tx, live, shadow pgx.Identifier) error {
	var opts []string
	err := tx.QueryRow(ctx, `SELECT coalesce(reloptions, '{}') FROM pg_class WHERE oid = $1::regclass`, live.Sanitize()).Scan(&opts)
	if err != nil {
		return fmt.Errorf("storage parameters of %s: %w", live.Sanitize(), err)
	}
	if len(opts) == 0 {
		return nil
	}
	set := make([]string, len(opts))
	for i, o := range opts {
		name, value, ok := strings.Cut(o, "=")
		if !ok {
			return fmt.Errorf("storage parameter %q of %s", o, live.Sanitize())
		}
		set[i] = pgx.Identifier{name}.Sanitize() + " = '" + strings.ReplaceAll(value, "'", "''") + "'"
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf("ALTER TABLE %s SET (%s)", shadow.Sanitize(), strings.Join(set, ", "))); err != nil {
		return fmt.Errorf("set storage parameters of %s: %w", shadow.Sanitize(), err)
	}
	return nil
}

func rowPointers(rows iter.Seq[TokenRow]) iter.Seq[*TokenRow] {
	return func(yield func(*TokenRow) bool) {
		for r := range rows {
			if !yield(&r) {
				return
			}
		}
	}
}

// liveIndex is an index of a live table, as the catalog describes it.
type liveIndex struct {
	name string
	def  string // pg_get_indexdef
	// contype is the kind of constraint the index backs ('p' primary key,
	// 'u' unique, 'x' exclusion), or empty.
	contype       string
	constraintDef string // pg_get_constraintdef
	deferrable    bool
}

const indexesSQL = `SELECT c.relname, pg_get_indexdef(i.indexrelid), coalesce(con.contype::text, ''),
	coalesce(pg_get_constraintdef(con.oid), ''), coalesce(con.condeferrable, false)
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u', 'x')
WHERE i.indrelid = $1::regclass
ORDER BY c.relname`

func tableIndexes(ctx context.Context, tx pgx.Tx, table pgx.Identifier) ([]liveIndex, error) {
	rows, err := tx.Query(ctx, indexesSQL, table.Sanitize())
	if err != nil {
		return nil, fmt.Errorf("list indexes of %s: %w", table.Sanitize(), err)
	}
	idx, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (liveIndex, error) {
		var li liveIndex
		err := row.Scan(&li.name, &li.def, &li.contype, &li.constraintDef, &li.deferrable)
		return li, err
	})
	if err != nil {
		return nil, fmt.Errorf("list indexes of %s: %w", table.Sanitize(), err)
	}
	return idx, nil
}

// indexPlan holds the statements that give the shadow tables the live
// tables' indexes, each named after its live index with shadowSuffix.
// Index builds can run in parallel; constraints are then attached to their
// indexes one by one (a quick catalog change).
type indexPlan struct {
	builds      []string
	constraints []string
}

func (p *indexPlan) add(indexes []liveIndex, shadow pgx.Identifier) error {
	for _, li := range indexes {
		name, err := shadowIndexName(li.name)
		if err != nil {
			return err
		}
		ident := pgx.Identifier{name}.Sanitize()
		switch {
		case li.contype == "":
			stmt, err := shadowIndexSQL(li, ident, shadow)
			if err != nil {
				return err
			}
			p.builds = append(p.builds, stmt)
		case (li.contype == "p" || li.contype == "u") && !li.deferrable:
			stmt, err := shadowIndexSQL(li, ident, shadow)
			if err != nil {
				return err
			}
			kind := "UNIQUE"
			if li.contype == "p" {
				kind = "PRIMARY KEY"
			}
			p.builds = append(p.builds, stmt)
			p.constraints = append(p.constraints, fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s USING INDEX %s", shadow.Sanitize(), ident, kind, ident))
		default:
			p.constraints = append(p.constraints, fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s", shadow.Sanitize(), ident, li.constraintDef))
		}
	}
	return nil
}

func shadowIndexName(live string) (string, error) {
	name := live + shadowSuffix
	if len(name) > 63 {
		return "", fmt.Errorf("index name %q is too long for a shadow copy", live)
	}
	return name, nil
}

// shadowIndexSQL returns the statement creating li, named ident, on table
// shadow.
func shadowIndexSQL(li liveIndex, ident string, shadow pgx.Identifier) (string, error) {
	// pg_get_indexdef is "CREATE [UNIQUE] INDEX name ON table USING ...";
	// everything from USING on describes the index itself.
	var prefix string
	switch {
	case strings.HasPrefix(li.def, "CREATE INDEX "):
		prefix = "CREATE INDEX "
	case strings.HasPrefix(li.def, "CREATE UNIQUE INDEX "):
		prefix = "CREATE UNIQUE INDEX "
	default:
		return "", fmt.Errorf("unexpected definition of index %s: %q", li.name, li.def)
	}
	using := strings.Index(li.def, " USING ")
	if using < 0 {
		return "", fmt.Errorf("unexpected definition of index %s: %q", li.name, li.def)
	}
	return prefix + ident + " ON " + shadow.Sanitize() + li.def[using:], nil
}

// buildIndexes runs the index builds of plan on up to IndexWorkers
// connections at once, then attaches the constraints.
func (r *Rebuild) buildIndexes(ctx context.Context, plan indexPlan) error {
	workers := r.IndexWorkers
	if workers <= 0 {
		workers = DefaultIndexWorkers
	}
	workers = min(workers, len(plan.builds))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan string)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for stmt := range work {
				if err := r.buildIndex(ctx, stmt); err != nil {
					errs <- fmt.Errorf("%s: %w", stmt, err)
					cancel()
					return
				}
			}
		})
	}
feed:
	for _, stmt := range plan.builds {
		select {
		case work <- stmt:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	if len(all) > 0 {
		return fmt.Errorf("build indexes: %w", errors.Join(all...))
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("build indexes: %w", err)
	}
	for _, stmt := range plan.constraints {
		if _, err := r.store.pool.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", stmt, err)
		}
	}
	return nil
}

// indexBuildMemory is the maintenance_work_mem, in kB, an index build of
// Load runs with at least: the sort of a million rows' keys then fits in
// memory (PostgreSQL's default of 64 MB spills the larger ones to disk).
// A larger setting of the server's is kept.
const indexBuildMemory = 256 << 10

// buildIndex runs one index build in a transaction of its own, with
// maintenance_work_mem raised to indexBuildMemory for it.
func (r *Rebuild) buildIndex(ctx context.Context, stmt string) error {
	tx, err := r.store.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT set_config('maintenance_work_mem', $1, true)
WHERE (SELECT setting::bigint FROM pg_settings WHERE name = 'maintenance_work_mem') < $2`,
		fmt.Sprintf("%dkB", indexBuildMemory), int64(indexBuildMemory)); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, stmt); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// ApplyBatch applies events to the shadow tables, exactly as
// ReadModel.ApplyBatch applies them to the live ones, against the rebuild's
// checkpoint. Before a successful Load the error wraps ErrNoRebuild.
func (r *Rebuild) ApplyBatch(ctx context.Context, events []domain.Envelope) (applied int, err error) {
	n, err := r.store.apply(ctx, nil, r.store.rebuild, r.CheckpointName(), events)
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == undefinedTable {
		return 0, fmt.Errorf("%w: %w", ErrNoRebuild, err)
	}
	return n, err
}

// undefinedTable is PostgreSQL's SQLSTATE for a missing table.
const undefinedTable = "42P01"

// EventSource reads the lifecycle events with after < Sequence <= through,
// in stream order, and passes them to fn in batches of any size, stopping
// at fn's first error. Swap calls it while the live projection waits, so
// it should be quick.
type EventSource func(ctx context.Context, after, through uint64, fn func([]domain.Envelope) error) error

// SwapResult tells what Swap did.
type SwapResult struct {
	// Sequence is the checkpoint of the live projection after the swap.
	Sequence uint64
	// CaughtUp is how many events Swap applied to the shadow tables.
	CaughtUp int
}

// Swap makes the shadow tables the live ones, in one transaction:
//
//   - it locks the live checkpoint row, so the live projection's ApplyBatch
//     waits from now until the commit (and then continues, from the new
//     checkpoint, on the new tables);
//   - if the live checkpoint L is ahead of the rebuild's R, it reads the
//     events in (R, L] from source and applies them to the shadow tables
//     (source may be nil when the caller knows there are none);
//   - it drops the live tables, renames the shadow tables and their
//     indexes to the live names, and sets the live checkpoint to the later
//     of L and the rebuild's;
//   - readers (Get, List, Snapshot) are blocked only while the tables are
//     renamed; one already running delays the swap until it ends (see
//     LockTimeout) and a Snapshot always reads either the old tables or
//     the new ones, each with its own checkpoint.
//
// After Swap the shadow tables no longer exist. The error wraps
// ErrNoRebuild if nothing was loaded; on any error nothing changed.
func (r *Rebuild) Swap(ctx context.Context, source EventSource) (SwapResult, error) {
	res, err := r.swap(ctx, source)
	if err != nil {
		return SwapResult{}, fmt.Errorf("swap rebuild of projection %q: %w", r.name, err)
	}
	return res, nil
}

func (r *Rebuild) swap(ctx context.Context, source EventSource) (SwapResult, error) {
	var res SwapResult
	live, shadow := r.store.live, r.store.rebuild
	tx, err := r.store.pool.Begin(ctx)
	if err != nil {
		return res, err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if r.LockTimeout > 0 {
		ms := max(r.LockTimeout.Milliseconds(), 1)
		if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", ms)); err != nil {
			return res, fmt.Errorf("set lock timeout: %w", err)
		}
	}

	var liveSeq int64
	b := &pgx.Batch{}
	b.Queue(insertCheckpointSQL, r.name)
	b.Queue(lockCheckpointSQL, r.name).QueryRow(func(row pgx.Row) error { return row.Scan(&liveSeq) })
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return res, fmt.Errorf("lock live checkpoint: %w", err)
	}
	var rebuildSeq int64
	err = tx.QueryRow(ctx, lockCheckpointSQL, r.CheckpointName()).Scan(&rebuildSeq)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return res, ErrNoRebuild
	case err != nil:
		return res, fmt.Errorf("lock rebuild checkpoint: %w", err)
	}

	if rebuildSeq < liveSeq && source != nil {
		err := source(ctx, uint64(rebuildSeq), uint64(liveSeq), func(events []domain.Envelope) error {
			n, err := r.store.apply(ctx, tx, shadow, r.CheckpointName(), events)
			res.CaughtUp += n
			return err
		})
		if err != nil {
			return res, fmt.Errorf("catch up from %d to %d: %w", rebuildSeq, liveSeq, err)
		}
		if rebuildSeq, err = readCheckpointInt(ctx, tx, r.CheckpointName()); err != nil {
			return res, err
		}
		// The live checkpoint is the sequence of an event the live
		// projection applied: a source that stops short of it missed
		// events.
		if rebuildSeq < liveSeq {
			return res, fmt.Errorf("the event source delivered events up to sequence %d, the live projection is at %d", rebuildSeq, liveSeq)
		}
	}
	if rebuildSeq < liveSeq {
		return res, fmt.Errorf("rebuild is at sequence %d, live at %d, and no event source to catch up", rebuildSeq, liveSeq)
	}
	res.Sequence = uint64(max(liveSeq, rebuildSeq))

	var shadowIndexes []liveIndex
	for _, t := range []pgx.Identifier{shadow.tokens, shadow.owners} {
		idx, err := tableIndexes(ctx, tx, t)
		if err != nil {
			return res, err
		}
		shadowIndexes = append(shadowIndexes, idx...)
	}
	var stmts []string
	stmts = append(stmts,
		fmt.Sprintf("LOCK TABLE %s, %s IN ACCESS EXCLUSIVE MODE", live.tokens.Sanitize(), live.owners.Sanitize()),
		fmt.Sprintf("DROP TABLE %s, %s", live.tokens.Sanitize(), live.owners.Sanitize()),
		fmt.Sprintf("ALTER TABLE %s RENAME TO %s", shadow.tokens.Sanitize(), live.tokens.Sanitize()),
		fmt.Sprintf("ALTER TABLE %s RENAME TO %s", shadow.owners.Sanitize(), live.owners.Sanitize()),
	)
	for _, si := range shadowIndexes {
		liveName, ok := strings.CutSuffix(si.name, shadowSuffix)
		if !ok {
			return res, fmt.Errorf("shadow index %s is not named as a shadow", si.name)
		}
		stmts = append(stmts, fmt.Sprintf("ALTER INDEX %s RENAME TO %s", pgx.Identifier{si.name}.Sanitize(), pgx.Identifier{liveName}.Sanitize()))
	}
	// From the lock on, readers wait: everything up to the commit is sent
	// at once.
	if _, err := tx.Exec(ctx, strings.Join(stmts, ";\n"), pgx.QueryExecModeSimpleProtocol); err != nil {
		return res, fmt.Errorf("swap tables: %w", err)
	}
	b = &pgx.Batch{}
	b.Queue(saveCheckpointSQL, r.name, int64(res.Sequence))
	b.Queue(deleteCheckpointSQL, r.CheckpointName())
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return res, fmt.Errorf("save live checkpoint: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return res, fmt.Errorf("commit: %w", err)
	}
	return res, nil
}

func readCheckpointInt(ctx context.Context, tx pgx.Tx, name string) (int64, error) {
	seq, err := readCheckpoint(ctx, tx, name)
	return int64(seq), err
}

// Drop discards a rebuild that will not be swapped in: the shadow tables
// and the rebuild's checkpoint.
func (r *Rebuild) Drop(ctx context.Context) error {
	shadow := r.store.rebuild
	tx, err := r.store.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("drop rebuild of projection %q: %w", r.name, err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, fmt.Sprintf("DROP TABLE IF EXISTS %s, %s", shadow.tokens.Sanitize(), shadow.owners.Sanitize())); err != nil {
		return fmt.Errorf("drop rebuild of projection %q: %w", r.name, err)
	}
	if _, err := tx.Exec(ctx, deleteCheckpointSQL, r.CheckpointName()); err != nil {
		return fmt.Errorf("drop rebuild of projection %q: %w", r.name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("drop rebuild of projection %q: %w", r.name, err)
	}
	return nil
}
