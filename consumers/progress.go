package consumers

import (
	"context"
	"errors"
	"fmt"
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

// statusTimeout bounds each lookup of Status when ctx has no earlier
// deadline, so that a readiness probe answers while a server hangs.
const statusTimeout = 2 * time.Second

// Status reports the projection's checkpoint, the stream's end, the lag
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
	// The halt is recorded after the commit of the events before it, so
	// reading it before the checkpoint never shows a halt next to an older
	// checkpoint than the one it follows.
	p.mu.Lock()
	st := projections.Progress{
		Name:       p.cfg.Name,
		StreamLast: last,
		Halted:     cloneHalt(p.halt),
		Skipped:    cloneHalt(p.skipped),
		LastError:  p.lastErr,
	}
	p.mu.Unlock()
	cp, cpErr := p.proj.Checkpoint(ctx, p.cfg.Name)
	p.mu.Lock()
	if cpErr == nil {
		p.known = max(p.known, cp)
	}
	st.Checkpoint = p.known
	p.mu.Unlock()
	if cpErr == nil {
		st.Checkpoint = cp
	} else {
		st.LastError = cpErr.Error()
	}
	if last > st.Checkpoint {
		st.LagEvents = last - st.Checkpoint
		age, err := eventAge(ctx, p.store, eventstore.Lifecycle, st.Checkpoint+1)
		if err != nil {
			return projections.Progress{}, fmt.Errorf("status of projection %q: oldest unapplied event %d: %w", p.cfg.Name, st.Checkpoint+1, err)
		}
		st.LagSeconds = age
	}
	return st, nil
}

// Ready returns nil when Run is consuming, the projector is not halted and
// it is at most maxLag events behind the stream. Otherwise the error says
// why and wraps ErrNotRunning, ErrHalted (and the halt's cause) or
// ErrLagging, or the failure to read the status. Readiness endpoints call
// it; it is safe for concurrent use.
func (p *LifecycleProjector) Ready(ctx context.Context, maxLag uint64) error {
	if !p.consuming.Load() {
		return fmt.Errorf("projection %q: %w", p.cfg.Name, ErrNotRunning)
	}
	st, err := p.Progress(ctx)
	if err != nil {
		return err
	}
	p.mu.Lock()
	cause := p.haltErr
	p.mu.Unlock()
	return readiness(fmt.Sprintf("projection %q", p.cfg.Name), "the stream", st.Halted, cause, st.LagEvents, maxLag, st.LagSeconds)
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
