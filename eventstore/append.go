package eventstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/tokenledger/tokenledger/domain"
)

// Change is one part of an atomic append: events and the expectation
// checked for them.
type Change struct {
	// Expect is checked before any event of the append is stored.
	Expect Expect
	// Events are stored in order; there must be at least one.
	Events []domain.Envelope
}

// Append stores events atomically (all or none), in order, after checking
// expect, and returns them with Sequence set to their stream sequences.
//
// One event is published on its own; several go in one atomic batch with
// the expectation on the first. Every event carries its id as the
// deduplication id, so the server stores an event id at most once within
// Config.DuplicateWindow.
//
// Errors:
//   - ErrConflict (errors.Is) when the expectation failed: nothing was
//     stored. Reload the aggregate and decide again.
//   - ErrOutcomeUnknown when the server did not answer before the
//     deadline (ctx's, or Config.AppendTimeout when ctx has none), however
//     often the append was sent again meanwhile (same ids, same
//     expectation each time), and the events were not found afterwards.
//     Re-sending the same events is safe.
//   - ErrEventIDReused when an event id is already stored for another
//     event.
//   - domain.ErrInvalidArgument for events that cannot be appended
//     (missing id, unregistered type, invalid aggregate, usage events —
//     see AppendUsage — or more than MaxBatch events).
//
// An acknowledgement that is lost does not turn into a failure: after a
// conflict, a duplicate answer or unanswered attempts, Append looks for
// its event ids in the events' aggregates and, if they are all stored,
// reports success with their sequences.
func (s *Store) Append(ctx context.Context, expect Expect, events ...domain.Envelope) ([]domain.Envelope, error) {
	return s.AppendAtomic(ctx, Change{Expect: expect, Events: events})
}

// AppendAtomic stores the events of every change in one atomic batch:
// either every change's expectation holds and all events are stored, in
// order, or nothing is stored. Each expectation must name a different
// aggregate. It returns the events of all changes, in order, with Sequence
// set. Errors are as for Append; a failed expectation of any change is
// ErrConflict.
//
// Rotation uses it: the new token's issue (expecting the owner) and the
// old token's new expiry (expecting the old token) are stored together or
// not at all.
func (s *Store) AppendAtomic(ctx context.Context, changes ...Change) ([]domain.Envelope, error) {
	b, err := s.prepare(changes)
	if err != nil {
		return nil, fmt.Errorf("append: %w", err)
	}
	ctx, span := s.startAppendSpan(ctx, b)
	stored, err := s.appendBatch(ctx, b)
	endAppendSpan(span, stored, err)
	if err != nil {
		return nil, fmt.Errorf("append %s: %w", b, err)
	}
	return stored, nil
}

// batch is an append ready to be sent.
type batch struct {
	changes []Change
	events  []domain.Envelope // copies of the changes' events, in order
	msgs    []*nats.Msg       // one per event
	// from is, per aggregate of the events, the lowest stream sequence
	// the events can be stored at if they were stored: one past the
	// expectation that guarded them, 1 when unguarded.
	from map[Aggregate]uint64
}

func (b *batch) String() string {
	var sb strings.Builder
	if len(b.events) == 1 {
		e := b.events[0]
		fmt.Fprintf(&sb, "%s %s %s", e.AggregateKind, e.AggregateID, e.Type)
	} else {
		fmt.Fprintf(&sb, "%d events", len(b.events))
	}
	for i, c := range b.changes {
		if c.Expect.Checked() {
			if i == 0 {
				sb.WriteString(", expecting ")
			} else {
				sb.WriteString(", ")
			}
			sb.WriteString(c.Expect.String())
		}
	}
	return sb.String()
}

// prepare validates and encodes an append.
func (s *Store) prepare(changes []Change) (*batch, error) {
	total := 0
	for i, c := range changes {
		if len(c.Events) == 0 {
			return nil, fmt.Errorf("%w: change %d has no events", domain.ErrInvalidArgument, i)
		}
		if err := c.Expect.validate(); err != nil {
			return nil, fmt.Errorf("%w: change %d: %v", domain.ErrInvalidArgument, i, err)
		}
		total += len(c.Events)
	}
	switch {
	case total == 0:
		return nil, fmt.Errorf("%w: no events", domain.ErrInvalidArgument)
	case total > MaxBatch:
		return nil, fmt.Errorf("%w: %d events, at most %d in one append", domain.ErrInvalidArgument, total, MaxBatch)
	}
	b := &batch{
		changes: changes,
		events:  make([]domain.Envelope, 0, total),
		msgs:    make([]*nats.Msg, 0, total),
		from:    make(map[Aggregate]uint64, len(changes)),
	}
	checked := make(map[Aggregate]bool, len(changes))
	ids := make(map[domain.EventID]bool, total)
	for _, c := range changes {
		if c.Expect.Checked() {
			if checked[c.Expect.agg] {
				return nil, fmt.Errorf("%w: two changes expect %s", domain.ErrInvalidArgument, c.Expect.agg)
			}
			checked[c.Expect.agg] = true
		}
		for j, e := range c.Events {
			msg, agg, err := s.encode(e)
			if err != nil {
				return nil, err
			}
			if ids[e.ID] {
				return nil, fmt.Errorf("%w: event id %s appears twice", domain.ErrInvalidArgument, e.ID)
			}
			ids[e.ID] = true
			if j == 0 && c.Expect.Checked() {
				msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(c.Expect.lastSeq, 10))
				msg.Header.Set(jetstream.ExpectedLastSubjSeqSubjHeader, s.subj.Filter(c.Expect.agg))
			}
			from := uint64(1)
			if c.Expect.Checked() {
				from = c.Expect.lastSeq + 1
			}
			if prev, ok := b.from[agg]; !ok || from < prev {
				b.from[agg] = from
			}
			e.Sequence = 0
			b.events = append(b.events, e)
			b.msgs = append(b.msgs, msg)
		}
	}
	return b, nil
}

// encode builds the message of a lifecycle event.
func (s *Store) encode(e domain.Envelope) (*nats.Msg, Aggregate, error) {
	if e.ID.IsZero() {
		return nil, Aggregate{}, fmt.Errorf("%w: event without id", domain.ErrInvalidArgument)
	}
	if e.Type == domain.TypeTokenUsed || e.Type == domain.TypeUsageBatch {
		return nil, Aggregate{}, fmt.Errorf("%w: event %s: usage events go to the usage stream (AppendUsage)", domain.ErrInvalidArgument, e.ID)
	}
	agg, err := AggregateOf(e)
	if err != nil {
		return nil, Aggregate{}, fmt.Errorf("%w: %v", domain.ErrInvalidArgument, err)
	}
	subject, err := s.subj.Subject(e)
	if err != nil {
		return nil, Aggregate{}, err
	}
	data, err := s.reg.Marshal(e)
	if err != nil {
		return nil, Aggregate{}, fmt.Errorf("%w: %v", domain.ErrInvalidArgument, err)
	}
	msg := nats.NewMsg(subject)
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, e.ID.String())
	return msg, agg, nil
}

// appendBatch sends b, again after every unanswered attempt until the
// deadline, and resolves ambiguous answers by looking for the events.
//
// An unanswered attempt is what a leader election looks like from here (no
// responders, then timeouts while the new leader catches up), so the
// pauses between attempts grow only to appendBackoffMax: the first attempt
// after the election should not wait long. Every attempt carries the same
// event ids, so the server stores the events at most once whichever
// attempts reached it.
func (s *Store) appendBatch(ctx context.Context, b *batch) ([]domain.Envelope, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.AppendTimeout)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	backoff, busyBackoff := appendBackoffMin, busyBackoffMin
	timeout := min(attemptTimeoutMin, s.cfg.RequestTimeout)
	for attempt := 1; ; attempt++ {
		first, dup, err := s.send(ctx, b, timeout)
		switch {
		case err == nil && !dup:
			for i := range b.events {
				b.events[i].Sequence = first + uint64(i)
			}
			return b.events, nil
		case err == nil && dup:
			// The server has seen the id before: our own earlier attempt
			// whose answer was lost, or a reused id.
			return s.resolve(ctx, b, fmt.Errorf("%w: server reports the event as a duplicate", ErrEventIDReused))
		case isBusy(err) && ctx.Err() == nil:
			// The leader could not check the expectation yet: another
			// append expecting the same subject is in process (as every
			// issue of one owner expects that owner). Nothing was stored.
			// Sent again once that append settled, the answer is the
			// expectation's own verdict: stored, or a conflict that names
			// the sequence. While a leader is stuck the subject stays
			// busy, so this waits like an unanswered attempt.
			pause := jitter(busyBackoff)
			if time.Until(deadline) < pause+appendAttemptMin {
				return s.resolve(ctx, b, fmt.Errorf("%w: %w", ErrConflict, err))
			}
			if werr := s.pause(ctx, attempt, pause, err); werr != nil {
				return nil, fmt.Errorf("%w: %w", ErrConflict, err)
			}
			busyBackoff = min(2*busyBackoff, appendBackoffMax)
		case isConflict(err):
			// A resend after a lost answer fails its expectation on a
			// single replica, because the first send moved the sequence.
			return s.resolve(ctx, b, fmt.Errorf("%w: %w", ErrConflict, err))
		case apiErrorCode(err) == codeBatchDuplicate:
			return s.resolve(ctx, b, fmt.Errorf("%w: %w", ErrEventIDReused, err))
		case isTransient(err) && ctx.Err() == nil:
			pause := jitter(backoff)
			if time.Until(deadline) < pause+appendAttemptMin {
				// No time for another attempt: settle what the ones
				// made so far did while there is time to look.
				return s.resolve(ctx, b, fmt.Errorf("%w: %d attempts: %w", ErrOutcomeUnknown, attempt, err))
			}
			if werr := s.pause(ctx, attempt, pause, err); werr != nil {
				return nil, fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
			}
			backoff = min(2*backoff, appendBackoffMax)
			timeout = min(2*timeout, attemptTimeoutMax, s.cfg.RequestTimeout)
		case isTransient(err):
			return nil, fmt.Errorf("%w: %d attempts: %w", ErrOutcomeUnknown, attempt, err)
		default:
			return nil, err
		}
	}
}

// pause records on ctx's span that attempt failed with err and another
// follows, and waits for d.
func (s *Store) pause(ctx context.Context, attempt int, d time.Duration, err error) error {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.AddEvent("retry", trace.WithAttributes(AttrAttempt.Int(attempt+1), attribute.String("error", err.Error())))
	}
	return wait(ctx, d)
}

// Pauses between the attempts of an append, and the least time worth
// making one more attempt in. A busy subject (isBusy) is normally free
// again after one replication round trip, so its pauses start shorter.
const (
	busyBackoffMin   = 2 * time.Millisecond
	appendBackoffMin = 25 * time.Millisecond
	appendBackoffMax = 500 * time.Millisecond
	appendAttemptMin = 50 * time.Millisecond
)

// jitter returns a duration between d/2 and d, so that writers that lost
// the same leader do not come back in step.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

// send publishes b once, waiting at most timeout for the answer, and
// returns the stream sequence of its first event; dup reports a single
// event the server already had.
func (s *Store) send(ctx context.Context, b *batch, timeout time.Duration) (first uint64, dup bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if len(b.msgs) == 1 {
		ack, err := s.js.PublishMsg(ctx, b.msgs[0])
		if err != nil {
			return 0, false, err
		}
		return ack.Sequence, ack.Duplicate, nil
	}
	// No flow-control ack on the first message: an atomic batch is
	// checked and stored as a whole at the commit, whose answer carries
	// any error, so waiting for the first message would only add a round
	// trip.
	ack, err := jetstreamext.PublishMsgBatch(ctx, s.js, b.msgs,
		jetstreamext.BatchFlowControl{AckFirst: false, AckTimeout: timeout})
	if err != nil {
		return 0, false, err
	}
	n := uint64(len(b.msgs))
	if ack.BatchSize != n || ack.Sequence < n {
		return 0, false, fmt.Errorf("batch acknowledged %d messages ending at %d, sent %d: %w",
			ack.BatchSize, ack.Sequence, n, jetstreamext.ErrInvalidBatchAck)
	}
	return ack.Sequence - n + 1, false, nil
}

// resolve decides an ambiguous outcome by looking for b's events in their
// aggregates: when all are stored (with the same content) the append
// succeeded and their sequences are returned; when none is, cause is
// returned; anything else means event ids were reused.
func (s *Store) resolve(ctx context.Context, b *batch, cause error) ([]domain.Envelope, error) {
	// Until the lookup succeeds the cause is only reported as text: a
	// caller must not take a conflict for certain while the events may
	// be stored.
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%w: %v (cannot check whether the events were stored: %w)", ErrOutcomeUnknown, cause, ctx.Err())
	}
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.AddEvent("look for the events", trace.WithAttributes(attribute.String("cause", cause.Error())))
	}
	found, mismatched, err := s.findStored(ctx, b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v (checking whether the events were stored failed: %w)", ErrOutcomeUnknown, cause, err)
	}
	switch {
	case mismatched > 0:
		return nil, fmt.Errorf("%w: %d event ids are stored with other content", ErrEventIDReused, mismatched)
	case found == len(b.events):
		return b.events, nil
	case found == 0:
		return nil, cause
	default:
		return nil, fmt.Errorf("%w: %d of %d event ids are already stored", ErrEventIDReused, found, len(b.events))
	}
}

// findStored looks up b's event ids in their aggregates, from the lowest
// sequence they can have been stored at, and sets the Sequence of every
// event found stored with the same subject and content.
func (s *Store) findStored(ctx context.Context, b *batch) (found, mismatched int, err error) {
	index := make(map[string]int, len(b.events))
	for i, e := range b.events {
		index[e.ID.String()] = i
	}
	for agg, from := range b.from {
		err := s.loadRaw(ctx, s.subj.Filter(agg), from, func(m *jetstream.RawStreamMsg) error {
			i, ok := index[m.Header.Get(jetstream.MsgIDHeader)]
			if !ok {
				return nil
			}
			if m.Subject != b.msgs[i].Subject || !bytes.Equal(m.Data, b.msgs[i].Data) {
				mismatched++
				return nil
			}
			if b.events[i].Sequence == 0 {
				b.events[i].Sequence = m.Sequence
				found++
			}
			return nil
		})
		if err != nil {
			return 0, 0, err
		}
	}
	return found, mismatched, nil
}

// AppendUsage stores usage events in the usage stream without any
// expectation, and returns them with Sequence set: usage batches
// (domain.UsageBatch, what validators record, one message per batch in
// its binary form, on UsageBatchSubject) and token.used events (one
// message each, on their tokens' usage subjects). Publishes are
// pipelined, up to MaxBatch awaiting their acknowledgements at a time,
// and the call returns once all are acknowledged. An event id already
// stored within the duplicate window is not stored again (and is returned
// with its original sequence), so a failed call may be repeated with the
// same events. A message larger than the server accepts fails the call;
// domain.RecordUsage keeps batches well under the default limit.
func (s *Store) AppendUsage(ctx context.Context, events ...domain.Envelope) ([]domain.Envelope, error) {
	msgs := make([]*nats.Msg, len(events))
	out := make([]domain.Envelope, len(events))
	for i, e := range events {
		if e.Type != domain.TypeTokenUsed && e.Type != domain.TypeUsageBatch {
			return nil, fmt.Errorf("append usage: %w: event %s is %s, not %s or %s", domain.ErrInvalidArgument, e.ID, e.Type, domain.TypeUsageBatch, domain.TypeTokenUsed)
		}
		if e.ID.IsZero() {
			return nil, fmt.Errorf("append usage: %w: event without id", domain.ErrInvalidArgument)
		}
		subject, err := s.subj.Subject(e)
		if err != nil {
			return nil, fmt.Errorf("append usage: %w", err)
		}
		var data []byte
		if e.Type == domain.TypeUsageBatch {
			data, err = s.reg.MarshalUsageBatch(e)
		} else {
			data, err = s.reg.Marshal(e)
		}
		if err != nil {
			return nil, fmt.Errorf("append usage: %w: %v", domain.ErrInvalidArgument, err)
		}
		msgs[i] = nats.NewMsg(subject)
		msgs[i].Data = data
		msgs[i].Header.Set(jetstream.MsgIDHeader, e.ID.String())
		e.Sequence = 0
		out[i] = e
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	for start := 0; start < len(msgs); start += MaxBatch {
		end := min(start+MaxBatch, len(msgs))
		if err := s.publishUsage(ctx, msgs[start:end], out[start:end]); err != nil {
			return nil, fmt.Errorf("append usage: %w", err)
		}
	}
	return out, nil
}

// publishUsage publishes msgs asynchronously and sets the sequences of
// their events from the acknowledgements.
func (s *Store) publishUsage(ctx context.Context, msgs []*nats.Msg, events []domain.Envelope) error {
	futures := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		f, err := s.js.PublishMsgAsync(m)
		if err != nil {
			return fmt.Errorf("event %s: %w", events[i].ID, err)
		}
		futures[i] = f
	}
	var errs []error
	for i, f := range futures {
		select {
		case ack := <-f.Ok():
			events[i].Sequence = ack.Sequence
		case err := <-f.Err():
			errs = append(errs, fmt.Errorf("event %s: %w", events[i].ID, err))
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrOutcomeUnknown, ctx.Err())
		}
	}
	return errors.Join(errs...)
}
