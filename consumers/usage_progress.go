package consumers

import (
	"context"
	"fmt"
	"sync/atomic"
)

// UsageStats are the counters of a UsageConsumer since it was created.
type UsageStats struct {
	// Fetches is the number of batches read from the usage stream.
	Fetches uint64
	// Batches is the number of committed transactions that applied events.
	Batches uint64
	// Events is the number of events applied.
	Events uint64
	// Rows is the number of usage rows written: at most the distinct
	// tokens of each batch, summed.
	Rows uint64
	// Statements is the number of usage write statements executed: one
	// per batch that wrote rows.
	Statements uint64
	// Redelivered is the number of events delivered again after they were
	// applied, and skipped.
	Redelivered uint64
	// Deferred is the number of events read after a gap and not applied
	// (see the UsageConsumer documentation); they are read again.
	Deferred uint64
	// AgedOut is the number of events the usage stream dropped before they
	// were projected.
	AgedOut uint64
	// Extensions is the number of session extensions appended.
	Extensions uint64
	// ExtensionConflicts is the number of extensions decided again because
	// the token changed meanwhile.
	ExtensionConflicts uint64
	// ExtensionErrors is the number of sessions not slid because of a
	// failure; their next use tries again.
	ExtensionErrors uint64
	// SlidThrough is the usage-stream sequence through which batches are
	// applied and their sessions slid (or given up on, see
	// ExtensionErrors).
	SlidThrough uint64
}

type usageCounters struct {
	fetches, batches, events, rows, statements      atomic.Uint64
	redelivered, deferred, agedOut                  atomic.Uint64
	extensions, extensionConflicts, extensionErrors atomic.Uint64
	slidThrough                                     atomic.Uint64
}

// Stats returns the consumer's counters. Safe for concurrent use.
func (c *UsageConsumer) Stats() UsageStats {
	s := &c.stats
	return UsageStats{
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

// UsageProgress is where the usage projection stands.
type UsageProgress struct {
	// Name is the projection's name.
	Name string
	// Checkpoint is the usage-stream sequence of the last event applied:
	// from PostgreSQL, or, while PostgreSQL cannot be reached, the last one
	// this consumer committed or read.
	Checkpoint uint64
	// StreamFirst and StreamLast are the usage stream's first and last
	// sequences (events before StreamFirst aged out).
	StreamFirst, StreamLast uint64
	// LagEvents is the number of events in the stream not applied yet.
	LagEvents uint64
	// LagSeconds is the age of the oldest of them, by the stream's storage
	// time; 0 when caught up.
	LagSeconds float64
	// Halted is set while the consumer is stopped at an event it cannot
	// apply.
	Halted *Halt
	// Skipped is the event this consumer skipped because SkipSequence
	// named it, if it did.
	Skipped *Halt
	// LastError is the last failure, or the gap the consumer waits on,
	// cleared when it advances; "" when there is none.
	LastError string
	// Stats are the consumer's counters.
	Stats UsageStats
}

// Status reports the projection's checkpoint, the usage stream's extent,
// the lag between them and the consumer's own state. It works whether or
// not Run is running. When PostgreSQL cannot be reached it still answers,
// with the last checkpoint the consumer knows and LastError saying why; it
// fails only when the stream cannot be read. Safe for concurrent use.
func (c *UsageConsumer) Progress(ctx context.Context) (UsageProgress, error) {
	ctx, cancel := boundContext(ctx, statusTimeout)
	defer cancel()
	info, err := c.store.UsageStream().Info(ctx)
	if err != nil {
		return UsageProgress{}, fmt.Errorf("status of usage projection %q: %w", c.cfg.Name, err)
	}
	// The halt is recorded after the commit of the events before it, so
	// reading it before the checkpoint never shows a halt next to an older
	// checkpoint than the one it follows.
	c.mu.Lock()
	st := UsageProgress{
		Name:        c.cfg.Name,
		StreamFirst: info.State.FirstSeq,
		StreamLast:  info.State.LastSeq,
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
		age, err := eventAge(ctx, c.store.UsageStream(), next)
		if err != nil {
			return UsageProgress{}, fmt.Errorf("status of usage projection %q: oldest unapplied event %d: %w", c.cfg.Name, next, err)
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
