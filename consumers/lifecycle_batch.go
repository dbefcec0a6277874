package consumers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/projections"
)

// delivery is what the projector knows of a message it read.
type delivery struct {
	seq     uint64
	subject string
	msgID   string
}

func deliveryOf(msg eventstore.Message, decodeErr error) delivery {
	d := delivery{subject: msg.Subject(), msgID: msg.EventID()}
	var de *eventstore.DecodeError
	if errors.As(decodeErr, &de) && de.Sequence != 0 {
		d.seq = de.Sequence
	} else {
		d.seq = msg.Sequence()
	}
	return d
}

// pending is a batch being gathered: the events to apply and the messages
// they came from, in the same order.
type pending struct {
	events []domain.Envelope
	from   []eventstore.Message
	// skip is the undecodable event the operator named in SkipSequence,
	// if the batch holds it (as a placeholder event).
	skip *projections.Halt
}

func (b *pending) add(e domain.Envelope, m eventstore.Message) {
	b.events = append(b.events, e)
	b.from = append(b.from, m)
}

func (b *pending) reset() {
	b.events, b.from, b.skip = b.events[:0], b.from[:0], nil
}

// handle applies the messages of one read, in order: a batch per
// transaction of every event before the first one that cannot be decoded
// and, if that one is not to be passed over, the halt at it. It reports
// whether the reader may go on (false after a halt, a gap, or when ctx
// ended).
func (p *LifecycleProjector) handle(ctx context.Context, msgs []eventstore.Message, retry *backoff) bool {
	b := pending{events: make([]domain.Envelope, 0, len(msgs)), from: make([]eventstore.Message, 0, len(msgs))}
	for _, m := range msgs {
		e, err := p.store.Decode(m)
		if err == nil {
			b.add(e, m)
			continue
		}
		d := deliveryOf(m, err)
		if d.seq != 0 && d.seq == p.cfg.SkipSequence {
			// A placeholder at the skipped sequence belongs to no
			// aggregate: it changes no row but advances the checkpoint
			// past the event, in the batch's transaction, so the skip is
			// as durable as an applied event. ApplyNext applies it only
			// if it is the next event to apply.
			b.add(domain.Envelope{Sequence: d.seq}, m)
			b.skip = &projections.Halt{Sequence: d.seq, Subject: d.subject, Reason: err.Error()}
			continue
		}
		// The events before it are applied first.
		res, ok := p.apply(ctx, &b, retry)
		if !ok {
			return false
		}
		b.reset()
		if d.seq != 0 && d.seq <= res.Checkpoint {
			p.log.Warn("undecodable event is at or below the checkpoint (applied by another binary or skipped before); passing over it",
				"sequence", d.seq, "subject", d.subject, "checkpoint", res.Checkpoint, "reason", err.Error())
			continue
		}
		p.halted(d, err)
		return false
	}
	_, ok := p.apply(ctx, &b, retry)
	return ok
}

// apply applies b's events in one transaction, retrying transient failures
// until it succeeds or ctx ends. It reports false when the reader must
// stop: ctx ended, the batch does not continue the checkpoint, or an event
// of it cannot be applied (the projector halts at it; the events before it
// are applied).
func (p *LifecycleProjector) apply(ctx context.Context, b *pending, retry *backoff) (projections.ApplyResult, bool) {
	if len(b.events) == 0 {
		p.mu.Lock()
		defer p.mu.Unlock()
		return projections.ApplyResult{Checkpoint: p.known}, true
	}
	ctx, span := startBatchSpan(ctx, SpanLifecycleBatch, p.cfg.Name, b.events)
	defer span.End()
	failures := backoff{initial: p.cfg.RetryInitial, max: p.cfg.RetryMax}
	for {
		res, err := p.applyOnce(ctx, b.events)
		switch {
		case err == nil:
			span.SetAttributes(AttrApplied.Int(res.Applied), AttrCheckpoint.Int64(int64(res.Checkpoint)))
			p.applied(res, b)
			if res.Applied > 0 {
				retry.reset()
			}
			return res, true
		case ctx.Err() != nil:
			return res, false
		case errors.Is(err, projections.ErrGap):
			p.log.Warn("the batch read does not continue the checkpoint (the read model was rewound under the projector?); reading again from the checkpoint",
				"first_sequence", b.events[0].Sequence, "checkpoint", res.Checkpoint)
			p.noteCheckpoint(res.Checkpoint)
			return res, false
		case projections.Permanent(err) || errors.Is(err, errPanicked):
			batchFailed(span, err)
			if len(b.events) == 1 {
				p.halted(deliveryOf(b.from[0], nil), err)
				return res, false
			}
			// Find the event PostgreSQL refuses: apply one at a time.
			for i := range b.events {
				one := pending{events: b.events[i : i+1], from: b.from[i : i+1]}
				if b.skip != nil && b.skip.Sequence == b.events[i].Sequence {
					one.skip = b.skip
				}
				if res, ok := p.apply(ctx, &one, retry); !ok {
					return res, false
				}
			}
			p.mu.Lock()
			defer p.mu.Unlock()
			return projections.ApplyResult{Checkpoint: p.known}, true
		}
		p.setLastError(err)
		batchRetry(span, err)
		wait := failures.next()
		p.log.Warn("applying a batch failed; retrying", "first_sequence", b.events[0].Sequence, "events", len(b.events), "error", err, "retry_in", wait)
		if !sleep(ctx, wait) {
			return res, false
		}
	}
}

// applyOnce is one attempt of ApplyNext; a panic becomes an error wrapping
// errPanicked.
func (p *LifecycleProjector) applyOnce(ctx context.Context, events []domain.Envelope) (res projections.ApplyResult, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%w: %v", errPanicked, v)
		}
	}()
	actx, cancel := writeContext(ctx)
	defer cancel()
	return p.proj.ApplyNext(actx, p.cfg.Name, events)
}

// applied records a committed (or, with nothing new in it, rolled back)
// batch.
func (p *LifecycleProjector) applied(res projections.ApplyResult, b *pending) {
	if s := b.skip; s != nil && s.Sequence > res.Checkpoint-uint64(res.Applied) && s.Sequence <= res.Checkpoint {
		p.log.Error("SKIPPED an undecodable event by operator request (skip sequence): the projection will never contain it",
			"sequence", s.Sequence, "subject", s.Subject, "reason", s.Reason)
		skipped := *s
		skipped.Since = time.Now().UTC()
		p.recordSkip(skipped)
	}
	p.noteCheckpoint(res.Checkpoint)
	p.setLastError(nil)
}

// halted records that the projector stops at d for cause, and logs it at
// error level the first time.
func (p *LifecycleProjector) halted(d delivery, cause error) {
	reason := cause.Error()
	fresh := p.recordHalt(projections.Halt{Sequence: d.seq, Subject: d.subject, Reason: reason, Since: time.Now().UTC()}, cause)
	if !fresh {
		p.log.Debug("lifecycle projection still halted", "sequence", d.seq)
		return
	}
	attrs := []any{"sequence", d.seq, "subject", d.subject, "msg_id", d.msgID, "reason", reason}
	if p.cfg.SkipSequence != 0 {
		attrs = append(attrs, "skip_sequence", p.cfg.SkipSequence)
	}
	p.log.Error("lifecycle projection HALTED: the event cannot be applied; nothing after it is applied until it is resolved (see the consumers package documentation)", attrs...)
}
