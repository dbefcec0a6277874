package consumers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"go.opentelemetry.io/otel/trace"
	"slices"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/projections"
)

// usageItem is one delivered message of a batch.
type usageItem struct {
	msg eventstore.Message
	seq uint64
	ev  domain.Envelope
	err error // why it does not decode
}

// handle applies one batch read and slides the sessions used. It reports
// whether the consumer advanced, and whether the reader may go on (false
// after a halt or a gap, or when ctx ended).
func (c *UsageConsumer) handle(ctx context.Context, msgs []eventstore.Message) (progressed, goOn bool) {
	items := c.decode(msgs)
	events, poison := c.eventsOf(items)
	if len(events) > 0 {
		// The span covers the write and the session extensions it causes.
		var span trace.Span
		ctx, span = startBatchSpan(ctx, SpanUsageBatch, c.cfg.Name, events)
		defer span.End()
	}
	res, ok := c.apply(ctx, events)
	if !ok {
		return false, false
	}
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(AttrApplied.Int(res.Applied), AttrCheckpoint.Int64(int64(res.Checkpoint)))
	}
	gap := false
	if next, above := nextAfter(items, res.Checkpoint); above && next > res.Checkpoint+1 {
		gap = true
		if c.skipAgedOut(ctx, res.Checkpoint) {
			if res, ok = c.apply(ctx, events); !ok {
				return false, false
			}
			gap = res.Deferred > 0
		}
	}
	progressed = res.Applied > 0 || res.Skipped > 0
	c.record(items, res, poison)
	if len(res.Usage) > 0 {
		c.slide(ctx, res.Usage, res.Checkpoint)
	}
	if progressed {
		c.stats.slidThrough.Store(max(c.stats.slidThrough.Load(), res.Checkpoint))
	}
	halted := poison != nil && poison.seq > res.Checkpoint
	return progressed, !gap && !halted && res.Deferred == 0
}

// decode decodes every message and sorts them by stream sequence; a
// message delivered twice in the batch is kept once.
func (c *UsageConsumer) decode(msgs []eventstore.Message) []usageItem {
	items := make([]usageItem, 0, len(msgs))
	for _, m := range msgs {
		it := usageItem{msg: m}
		it.ev, it.err = c.store.Decode(m)
		var de *eventstore.DecodeError
		switch {
		case it.err == nil:
			it.seq = it.ev.Sequence
		case errors.As(it.err, &de):
			it.seq = de.Sequence
		default:
			it.seq = m.Sequence()
		}
		items = append(items, it)
	}
	slices.SortStableFunc(items, func(a, b usageItem) int { return cmp.Compare(a.seq, b.seq) })
	return slices.CompactFunc(items, func(a, b usageItem) bool { return a.seq == b.seq })
}

// eventsOf returns the events to apply: those before the first event that
// does not decode, which it returns as poison. The event the operator named
// in SkipSequence becomes a placeholder instead, which only occupies its
// sequence.
func (c *UsageConsumer) eventsOf(items []usageItem) (events []domain.Envelope, poison *usageItem) {
	events = make([]domain.Envelope, 0, len(items))
	for i := range items {
		it := &items[i]
		switch {
		case it.seq == 0:
			// Without a stream sequence it has no place in the stream;
			// it is read again with the events above the checkpoint.
			continue
		case it.err == nil:
			events = append(events, it.ev)
		case it.seq == c.cfg.SkipSequence:
			events = append(events, domain.Envelope{Sequence: it.seq})
		default:
			return events, it
		}
	}
	return events, nil
}

// apply writes events with ApplyUsageBatch, retrying failures until it
// succeeds or ctx ends (ok false).
func (c *UsageConsumer) apply(ctx context.Context, events []domain.Envelope) (projections.UsageResult, bool) {
	retry := backoff{initial: c.cfg.RetryInitial, max: c.cfg.RetryMax}
	for {
		actx, cancel := writeContext(ctx)
		res, err := c.proj.ApplyUsageBatch(actx, c.cfg.Name, events)
		cancel()
		if err == nil {
			return res, true
		}
		if ctx.Err() != nil {
			return projections.UsageResult{}, false
		}
		if projections.Permanent(err) && len(events) > 0 {
			first := events[0].Sequence
			batchFailed(trace.SpanFromContext(ctx), err)
			c.halted(usageItem{seq: first}, fmt.Errorf("the batch from sequence %d cannot be written: %w", first, err))
		} else {
			batchRetry(trace.SpanFromContext(ctx), err)
			c.setLastError(err)
			c.log.Warn("writing a usage batch failed; retrying", "error", err, "events", len(events))
		}
		if !sleep(ctx, retry.next()) {
			return projections.UsageResult{}, false
		}
	}
}

// nextAfter returns the lowest sequence in items above checkpoint; gap is
// false when there is none.
func nextAfter(items []usageItem, checkpoint uint64) (next uint64, gap bool) {
	for _, it := range items {
		if it.seq > checkpoint {
			return it.seq, true
		}
	}
	return 0, false
}

// skipAgedOut gives up the events between checkpoint and the usage
// stream's first sequence if the stream no longer holds them, and reports
// whether it did.
func (c *UsageConsumer) skipAgedOut(ctx context.Context, checkpoint uint64) bool {
	actx, cancel := boundContext(ctx, attemptTimeout)
	defer cancel()
	st, err := c.store.State(actx, eventstore.Usage)
	if err != nil {
		c.setLastError(fmt.Errorf("usage stream info: %w", err))
		return false
	}
	first := st.First
	if first <= checkpoint+1 {
		c.waitForGap(checkpoint + 1)
		return false
	}
	lost, err := c.proj.SkipAgedOutUsage(actx, c.cfg.Name, first)
	if err != nil {
		c.setLastError(err)
		return false
	}
	if lost > 0 {
		c.stats.agedOut.Add(lost)
		c.log.Error("usage events aged out of the usage stream before they were projected: their uses are lost to the read model",
			"from_sequence", checkpoint+1, "to_sequence", first-1, "events", lost)
	}
	return true
}

// waitForGap notes that the batch read does not continue the checkpoint,
// logging it once per sequence; the consumer reads again from the
// checkpoint.
func (c *UsageConsumer) waitForGap(seq uint64) {
	c.mu.Lock()
	fresh := c.waitingFor != seq
	c.waitingFor = seq
	c.lastErr = fmt.Sprintf("usage event %d missing from the batch read; reading again from the checkpoint", seq)
	c.mu.Unlock()
	if fresh {
		c.log.Warn("the usage events read do not continue the checkpoint (the read model was rewound under the consumer?); reading again from the checkpoint",
			"checkpoint", seq-1)
	}
}

// record updates the counters and the halt state after a batch was
// written.
func (c *UsageConsumer) record(items []usageItem, res projections.UsageResult, poison *usageItem) {
	if res.Applied > 0 {
		c.stats.batches.Add(1)
		c.stats.events.Add(uint64(res.Applied))
		if n := len(res.Usage); n > 0 {
			c.stats.rows.Add(uint64(n))
			c.stats.statements.Add(1)
		}
	}
	c.stats.redelivered.Add(uint64(res.Skipped))
	c.stats.deferred.Add(uint64(res.Deferred))

	before := res.Checkpoint - uint64(res.Applied)
	if s := c.cfg.SkipSequence; s > before && s <= res.Checkpoint {
		for _, it := range items {
			if it.seq == s && it.err != nil {
				c.log.Error("SKIPPED an undecodable usage event by operator request (skip sequence): its uses will never be projected",
					"sequence", s, "subject", it.msg.Subject(), "reason", it.err.Error())
				c.recordSkip(projections.Halt{Sequence: s, Subject: it.msg.Subject(), Reason: it.err.Error(), Since: time.Now().UTC()})
			}
		}
	}

	halting := false
	if poison != nil {
		switch {
		case poison.seq <= res.Checkpoint:
			c.log.Warn("undecodable usage event is at or below the checkpoint (applied by another binary or skipped before); passing over it",
				"sequence", poison.seq, "subject", poison.msg.Subject(), "reason", poison.err.Error())
		case poison.seq == res.Checkpoint+1:
			halting = true
			c.halted(*poison, poison.err)
		}
	}
	// A halt recorded just now is at the event after the checkpoint: it
	// stays.
	resolved := c.noteCheckpoint(res.Checkpoint)
	c.mu.Lock()
	if res.Applied > 0 || res.Skipped > 0 {
		c.waitingFor = 0
		if !halting && res.Deferred == 0 {
			c.lastErr = ""
		}
	}
	c.mu.Unlock()
	if resolved {
		c.log.Info("usage projection resumed", "checkpoint", res.Checkpoint)
	}
}

// halted records that the consumer stops at it for cause, logging it at
// error level the first time.
func (c *UsageConsumer) halted(it usageItem, cause error) {
	reason := cause.Error()
	subject := it.msg.Subject()
	if c.recordHalt(projections.Halt{Sequence: it.seq, Subject: subject, Reason: reason, Since: time.Now().UTC()}, cause) {
		c.log.Error("usage projection HALTED: the event cannot be applied; it and every later usage event stay unapplied until it is resolved (see the UsageConsumer documentation)",
			"sequence", it.seq, "subject", subject, "reason", reason)
	} else {
		c.log.Debug("usage projection still halted", "sequence", it.seq)
	}
}
