package consumers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/projections"
)

// Errors Ready wraps; match them with errors.Is.
var (
	// ErrHalted: the projector met an event it cannot apply and stopped
	// advancing; see the package documentation for what to do. Ready's
	// error also wraps the cause (for example domain.ErrUnknownEventType).
	ErrHalted = errors.New("projection halted")
	// ErrLagging: the projection is further behind the stream than allowed.
	ErrLagging = errors.New("projection lagging")
	// ErrNotRunning: Run is not consuming (not started yet, starting, or
	// returned).
	ErrNotRunning = errors.New("projector not running")
)

// statusTimeout bounds each lookup of Progress when ctx has no earlier
// deadline, so that a readiness probe answers while a server hangs.
const statusTimeout = 2 * time.Second

// Progress reports the projection's checkpoint, the stream's end, the lag
// between them and the projector's own state. It works whether or not Run
// is running, using the event store's connection and the projections
// store. When PostgreSQL cannot be reached it still answers, with the last
// checkpoint the projector knows and LastError saying why; it fails only
// when the stream cannot be read. Safe for concurrent use.
func (p *LifecycleProjector) Progress(ctx context.Context) (projections.Progress, error) {
	ctx, cancel := boundContext(ctx, statusTimeout)
	defer cancel()
	last, err := p.store.StreamLastSequence(ctx)
	if err != nil {
		return projections.Progress{}, fmt.Errorf("status of projection %q: %w", p.cfg.Name, err)
	}
	w := p.snapshot(ctx, p.proj, p.cfg.Name)
	st := projections.Progress{
		Name:       p.cfg.Name,
		StreamLast: last,
		Checkpoint: w.checkpoint,
		Halted:     w.halted,
		Skipped:    w.skipped,
		LastError:  w.lastErr,
	}
	next, events, seconds, err := lag(ctx, st.Checkpoint, 0, last, func(ctx context.Context, seq uint64) (float64, error) {
		return eventAge(ctx, p.store, eventstore.Lifecycle, seq)
	})
	if err != nil {
		return projections.Progress{}, fmt.Errorf("status of projection %q: oldest unapplied event %d: %w", p.cfg.Name, next, err)
	}
	st.LagEvents, st.LagSeconds = events, seconds
	return st, nil
}

// Ready returns nil when Run is consuming, the projector is not halted and
// it is at most maxLag events behind the stream. Otherwise the error says
// why and wraps ErrNotRunning, ErrHalted (and the halt's cause) or
// ErrLagging, or the failure to read the status. Readiness endpoints call
// it; it is safe for concurrent use.
func (p *LifecycleProjector) Ready(ctx context.Context, maxLag uint64) error {
	return p.ready(fmt.Sprintf("projection %q", p.cfg.Name), "the stream", maxLag, func() (*projections.Halt, uint64, float64, error) {
		st, err := p.Progress(ctx)
		return st.Halted, st.LagEvents, st.LagSeconds, err
	})
}

// worker is what a projection worker (the lifecycle projector, the usage
// consumer) knows of its own progress: whether it consumes, the highest
// checkpoint it read or wrote, the event it halted at, the one it skipped
// and its last failure. Both embed it; its methods are their Progress and
// Ready, less what differs by stream. Safe for concurrent use.
type worker struct {
	consuming atomic.Bool

	mu sync.Mutex
	// known is the highest checkpoint the worker has read or written.
	known   uint64
	halt    *projections.Halt
	haltErr error
	skipped *projections.Halt
	lastErr string
}

// run is a worker's Run loop: it opens a reader right after the
// checkpoint (open) and follows it (follow), and does so again after any
// failure to read, waiting as retry says, until ctx ends (nil). An error
// fatal says the worker cannot recover from ends it (that error). what
// names the worker and stream its stream in the log.
func (w *worker) run(ctx context.Context, retry backoff, log *slog.Logger, what, stream string,
	open func(context.Context) (*reader, error), follow func(context.Context, *reader, *backoff) error, fatal func(error) bool) error {
	defer w.consuming.Store(false)
	for ctx.Err() == nil {
		r, err := open(ctx)
		if err == nil {
			w.consuming.Store(true)
			err = follow(ctx, r, &retry)
			r.close()
		}
		switch {
		case ctx.Err() != nil:
		case fatal(err):
			return err
		case err != nil:
			w.setLastError(err)
			log.Error(what+" cannot read "+stream+"; retrying", "error", err)
		}
		if !sleep(ctx, retry.next()) {
			break
		}
	}
	log.Info(what + " stopped")
	return nil
}

// workerSnapshot is a worker's part of its Progress.
type workerSnapshot struct {
	checkpoint      uint64
	halted, skipped *projections.Halt
	lastErr         string
}

// snapshot reads the worker's checkpoint (of projection name, from proj)
// and its state. When the checkpoint cannot be read it gives the last one
// the worker knows, and the failure as its last error.
func (w *worker) snapshot(ctx context.Context, proj *projections.ReadModel, name string) workerSnapshot {
	// The halt is recorded after the commit of the events before it, so
	// reading it before the checkpoint never shows a halt next to an older
	// checkpoint than the one it follows.
	w.mu.Lock()
	s := workerSnapshot{halted: cloneHalt(w.halt), skipped: cloneHalt(w.skipped), lastErr: w.lastErr}
	w.mu.Unlock()
	cp, err := proj.Checkpoint(ctx, name)
	w.mu.Lock()
	if err == nil {
		w.known = max(w.known, cp)
	}
	s.checkpoint = w.known
	w.mu.Unlock()
	if err == nil {
		s.checkpoint = cp
	} else {
		s.lastErr = err.Error()
	}
	return s
}

// lag returns how many events of a stream holding sequences first to last
// are after checkpoint, and how old the oldest of them is (age tells), and
// that oldest event's sequence, next.
func lag(ctx context.Context, checkpoint, first, last uint64, age func(context.Context, uint64) (float64, error)) (next, events uint64, seconds float64, err error) {
	next = max(checkpoint+1, first)
	if last < next || last == 0 {
		return next, 0, 0, nil
	}
	seconds, err = age(ctx, next)
	return next, last - next + 1, seconds, err
}

// ready is a worker's Ready: nil when it consumes, is not halted and at
// most maxLag events of stream are not applied, as progress tells; what
// names the worker in the error.
func (w *worker) ready(what, stream string, maxLag uint64, progress func() (halted *projections.Halt, lagEvents uint64, lagSeconds float64, err error)) error {
	if !w.consuming.Load() {
		return fmt.Errorf("%s: %w", what, ErrNotRunning)
	}
	halted, lagEvents, lagSeconds, err := progress()
	if err != nil {
		return err
	}
	w.mu.Lock()
	cause := w.haltErr
	w.mu.Unlock()
	return readiness(what, stream, halted, cause, lagEvents, maxLag, lagSeconds)
}

// isHalted reports whether the worker is halted at an event.
func (w *worker) isHalted() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.halt != nil
}

// noteCheckpoint records a checkpoint read or written; a halt at or below
// it is over, and noteCheckpoint reports whether it ended one.
func (w *worker) noteCheckpoint(cp uint64) (resolved bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.known = max(w.known, cp)
	resolved = w.halt != nil && cp >= w.halt.Sequence
	if resolved {
		w.halt, w.haltErr = nil, nil
	}
	return resolved
}

// recordHalt records that the worker stops at h for cause, and reports
// whether that is news (another event, or another reason).
func (w *worker) recordHalt(h projections.Halt, cause error) (fresh bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	fresh = w.halt == nil || w.halt.Sequence != h.Sequence || w.halt.Reason != h.Reason
	if fresh {
		w.halt, w.haltErr = &h, cause
	}
	w.lastErr = h.Reason
	return fresh
}

// recordSkip records the event the worker skipped by operator request.
func (w *worker) recordSkip(h projections.Halt) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.skipped = &h
}

// setLastError records the worker's last failure; nil clears it.
func (w *worker) setLastError(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil {
		w.lastErr = ""
		return
	}
	w.lastErr = err.Error()
}

// eventAge returns how long ago the stream stored the event at seq; zero
// when the event is gone.
func eventAge(ctx context.Context, store *eventstore.Store, k eventstore.StreamKind, seq uint64) (float64, error) {
	at, ok, err := store.StoredAt(ctx, k, seq)
	if err != nil || !ok {
		return 0, err
	}
	return max(0, time.Since(at).Seconds()), nil
}

// readiness is the verdict of a worker's Ready once it is consuming: an
// error wrapping ErrHalted and the halt's cause (or its recorded reason),
// or ErrLagging when more than maxLag events of stream are not applied;
// nil otherwise. what names the worker in the message.
func readiness(what, stream string, h *projections.Halt, cause error, lagEvents, maxLag uint64, lagSeconds float64) error {
	if h != nil {
		if cause == nil {
			cause = errors.New(h.Reason)
		}
		return fmt.Errorf("%s %w at sequence %d (subject %q) since %s: %w",
			what, ErrHalted, h.Sequence, h.Subject, h.Since.Format(time.RFC3339), cause)
	}
	if lagEvents > maxLag {
		return fmt.Errorf("%s: %w: %d events behind %s (at most %d allowed), the oldest %.1f s old",
			what, ErrLagging, lagEvents, stream, maxLag, lagSeconds)
	}
	return nil
}

func cloneHalt(h *projections.Halt) *projections.Halt {
	if h == nil {
		return nil
	}
	c := *h
	return &c
}

// boundContext limits ctx to d unless it already ends earlier.
// writeContext is the context of one batch write: it ends after
// attemptTimeout, and at most stopGrace after ctx ends, but not at once
// when ctx ends. A worker asked to stop thus finishes the transaction in
// flight (whose commit the server may already have made) instead of
// abandoning it with the outcome unknown to it.
func writeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), attemptTimeout)
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(stopGrace, cancel)
		context.AfterFunc(wctx, func() { t.Stop() })
	})
	return wctx, func() { stop(); cancel() }
}

// stopGrace is how long a batch write in flight may go on once its worker
// is asked to stop.
const stopGrace = 5 * time.Second

func boundContext(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= d {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}
