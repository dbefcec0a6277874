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

// Progress reports the projection's checkpoint, the usage stream's
// extent, the lag between them and the consumer's own state. It works
// whether or not Run is running. When PostgreSQL cannot be reached it still
// answers, with the last checkpoint the consumer knows and LastError saying
// why; it fails only when the stream cannot be read. Safe for concurrent
// use.
func (c *UsageConsumer) Progress(ctx context.Context) (projections.UsageProgress, error) {
	ctx, cancel := boundContext(ctx, statusTimeout)
	defer cancel()
	state, err := c.store.State(ctx, eventstore.Usage)
	if err != nil {
		return projections.UsageProgress{}, fmt.Errorf("status of usage projection %q: %w", c.cfg.Name, err)
	}
	w := c.snapshot(ctx, c.proj, c.cfg.Name)
	st := projections.UsageProgress{
		Name:        c.cfg.Name,
		StreamFirst: state.First,
		StreamLast:  state.Last,
		Checkpoint:  w.checkpoint,
		Halted:      w.halted,
		Skipped:     w.skipped,
		LastError:   w.lastErr,
		Stats:       c.Stats(),
	}
	next, events, seconds, err := lag(ctx, st.Checkpoint, st.StreamFirst, st.StreamLast, func(ctx context.Context, seq uint64) (float64, error) {
		return eventAge(ctx, c.store, eventstore.Usage, seq)
	})
	if err != nil {
		return projections.UsageProgress{}, fmt.Errorf("status of usage projection %q: oldest unapplied event %d: %w", c.cfg.Name, next, err)
	}
	st.LagEvents, st.LagSeconds = events, seconds
	return st, nil
}

// Ready returns nil when Run is consuming, the consumer is not halted and
// at most maxLag events of the usage stream are not applied yet. Otherwise
// the error says why and wraps ErrNotRunning, ErrHalted (and the halt's
// cause) or ErrLagging, or the failure to read the status. Safe for
// concurrent use.
func (c *UsageConsumer) Ready(ctx context.Context, maxLag uint64) error {
	return c.ready(fmt.Sprintf("usage projection %q", c.cfg.Name), "the usage stream", maxLag, func() (*projections.Halt, uint64, float64, error) {
		st, err := c.Progress(ctx)
		return st.Halted, st.LagEvents, st.LagSeconds, err
	})
}
