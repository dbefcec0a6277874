package consumers

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/projections"
)

type usageCounters struct {
	fetches, batches, events, rows, statements      atomic.Uint64
	redelivered, deferred, agedOut                  atomic.Uint64
	extensions, extensionConflicts, extensionErrors atomic.Uint64
	slidThrough                                     atomic.Uint64
}

// Stats returns the consumer's counters. Safe for concurrent use.
func (c *UsageConsumer) Stats() projections.UsageStats {
	s := &c.stats
	return projections.UsageStats{
		Fetches:            s.fetches.Load(),
		Batches:            s.batches.Load(),
		Events:             s.events.Load(),
		Rows:               s.rows.Load(),
		Statements:         s.statements.Load(),
		Redelivered:        s.redelivered.Load(),
		Deferred:           s.deferred.Load(),
		AgedOut:            s.agedOut.Load(),
		Extensions:         s.extensions.Load(),
		ExtensionConflicts: s.extensionConflicts.Load(),
		ExtensionErrors:    s.extensionErrors.Load(),
		SlidThrough:        s.slidThrough.Load(),
	}
}

// Status reports the projection's checkpoint, the usage stream's extent,
// the lag between them and the consumer's own state. It works whether or
// not Run is running. When PostgreSQL cannot be reached it still answers,
// with the last checkpoint the consumer knows and LastError saying why; it
// fails only when the stream cannot be read. Safe for concurrent use.
func (c *UsageConsumer) Progress(ctx context.Context) (projections.UsageProgress, error) {
	ctx, cancel := boundContext(ctx, statusTimeout)
	defer cancel()
	state, err := c.store.State(ctx, eventstore.Usage)
	if err != nil {
		return projections.UsageProgress{}, fmt.Errorf("status of usage projection %q: %w", c.cfg.Name, err)
	}
	// The halt is recorded after the commit of the events before it, so
	// reading it before the checkpoint never shows a halt next to an older
	// checkpoint than the one it follows.
	c.mu.Lock()
	st := projections.UsageProgress{
		Name:        c.cfg.Name,
		StreamFirst: state.First,
		StreamLast:  state.Last,
		Halted:      cloneHalt(c.halt),
		Skipped:     cloneHalt(c.skipped),
		LastError:   c.lastErr,
	}
	c.mu.Unlock()
	cp, cpErr := c.proj.Checkpoint(ctx, c.cfg.Name)
	c.mu.Lock()
	if cpErr == nil {
		c.known = max(c.known, cp)
	}
	st.Checkpoint = c.known
	c.mu.Unlock()
	st.Stats = c.Stats()
	if cpErr == nil {
		st.Checkpoint = cp
	} else {
		st.LastError = cpErr.Error()
	}
	next := max(st.Checkpoint+1, st.StreamFirst)
	if st.StreamLast >= next && st.StreamLast > 0 {
		st.LagEvents = st.StreamLast - next + 1
		age, err := eventAge(ctx, c.store, eventstore.Usage, next)
		if err != nil {
			return projections.UsageProgress{}, fmt.Errorf("status of usage projection %q: oldest unapplied event %d: %w", c.cfg.Name, next, err)
		}
		st.LagSeconds = age
	}
	return st, nil
}

// Ready returns nil when Run is consuming, the consumer is not halted and
// at most maxLag events of the usage stream are not applied yet. Otherwise
// the error says why and wraps ErrNotRunning, ErrHalted (and the halt's
// cause) or ErrLagging, or the failure to read the status. Safe for
// concurrent use.
func (c *UsageConsumer) Ready(ctx context.Context, maxLag uint64) error {
	if !c.consuming.Load() {
		return fmt.Errorf("usage projection %q: %w", c.cfg.Name, ErrNotRunning)
	}
	st, err := c.Progress(ctx)
	if err != nil {
		return err
	}
	c.mu.Lock()
	cause := c.haltErr
	c.mu.Unlock()
	return readiness(fmt.Sprintf("usage projection %q", c.cfg.Name), "the usage stream", st.Halted, cause, st.LagEvents, maxLag, st.LagSeconds)
}
