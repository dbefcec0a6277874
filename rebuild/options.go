package rebuild

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tokenledger/tokenledger/consumers"
	"github.com/tokenledger/tokenledger/projections"
)

// ErrRunning is returned (wrapped) by Run when another rebuild holds the
// database's rebuild lock: all rebuilds share the shadow tables, so only
// one may run at a time.
var ErrRunning = errors.New("another rebuild is running on this database")

// Options tunes Run. Start from DefaultOptions.
type Options struct {
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
	Progress func(Progress)
}

// Defaults of Options.
const (
	DefaultBatch           = 1000
	DefaultSwapLockTimeout = 5 * time.Second
	DefaultSwapAttempts    = 5
	// maxBatch bounds Options.Batch: a transaction's events are held in
	// memory, and one very large transaction only delays the swap.
	maxBatch = 100_000
	// progressEvery is how often, in events, Progress is called while
	// reading.
	progressEvery = 4096
	// maxCatchUpRounds bounds the catch-up before the swap when appends
	// keep pace with it; Swap catches up whatever is left.
	maxCatchUpRounds = 10
)

// DefaultGCPercent is the garbage collector's target (GOGC) that
// `tokenledger rebuild` runs with: every collection marks the whole fold,
// which keeps growing, so collecting half as often as Go's default of 100
// saves about a tenth of a rebuild's time (BenchmarkRebuild1M: 125-132 k
// against 141-150 k events/s) for a peak heap of three times the fold
// instead of two.
const DefaultGCPercent = 200

// DefaultOptions returns the defaults of Options.
func DefaultOptions() Options {
	return Options{
		Name:         projections.LifecycleName,
		Batch:        DefaultBatch,
		LockTimeout:  DefaultSwapLockTimeout,
		SwapAttempts: DefaultSwapAttempts,
	}
}

// Validate reports every problem with o at once.
func (o Options) Validate() error {
	var errs []error
	if err := ValidateName(o.Name); err != nil {
		errs = append(errs, err)
	}
	if o.Batch < 1 || o.Batch > maxBatch {
		errs = append(errs, fmt.Errorf("batch %d outside 1..%d", o.Batch, maxBatch))
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

// ValidateName checks the name of a projection: it names the checkpoint
// row, and the name with "_rebuild" appended is the checkpoint of its
// rebuild, so no projection's name may end in "_rebuild".
func ValidateName(name string) error {
	switch {
	case name == "":
		return errors.New("projection name must be set")
	case strings.HasSuffix(name, "_rebuild"):
		return fmt.Errorf("projection name %q ends in _rebuild, which names a rebuild's checkpoint", name)
	}
	if err := (consumers.LifecycleConfig{Name: name}).Validate(); err != nil {
		return fmt.Errorf("projection %w", err)
	}
	return nil
}

// Phase names a step of a rebuild.
type Phase string

// The phases of a rebuild, in order.
const (
	// PhaseRead reads the stream from sequence 1 and folds it in memory.
	PhaseRead Phase = "read"
	// PhaseLoad copies the folded rows into the shadow tables and indexes
	// them.
	PhaseLoad Phase = "load"
	// PhaseCatchUp applies the events appended since the read to the
	// shadow tables.
	PhaseCatchUp Phase = "catch-up"
	// PhaseSwap swaps the shadow tables in.
	PhaseSwap Phase = "swap"
)

// Progress is where a rebuild is: in phase Phase, at stream sequence Done
// of Total (the stream's last sequence when the phase started; it may be
// passed while appends continue).
type Progress struct {
	Phase       Phase
	Done, Total uint64
}

// Result tells what a rebuild did.
type Result struct {
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
func (r Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Events) / r.Elapsed.Seconds()
}
