package consumers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/projections"
)

// UsageConsumer projects the usage stream (usage batches, one per
// validator flush holding every token used in it, and the token.used
// events validators wrote before, one per token and flush) into the usage
// table of the read model, and slides the sessions that were used.
//
// # Batches
//
// It reads the usage stream from its checkpoint on through a reader of its
// own (an ordered consumer: no acknowledgements, no delivery state on the
// server; see the package documentation). It takes up to BatchSize events
// at a time, waiting at most MaxWait after the first for the batch to
// fill, decodes them, and hands them to projections.Store.ApplyUsageBatch,
// which folds them per token and writes them with ONE statement (rows ≤
// distinct tokens) in the transaction that advances the checkpoint. A
// failed write (PostgreSQL down) is retried with the same batch, with
// backoff from RetryInitial doubling to RetryMax, forever; nothing more is
// read meanwhile. MaxWait is the window in which uses coalesce into one
// statement.
//
// # Exactly once
//
// The checkpoint (the last usage-stream sequence applied) is the truth.
// The consumer reads from checkpoint+1 whenever it starts, so a restart
// after a crash or a stop resumes at once. ApplyUsageBatch skips events at
// or below the checkpoint (another instance applied them) and applies only
// events that continue it without a gap; a batch that does not continue it
// (the read model was rewound under a running consumer) is written no
// further than the checkpoint, and the consumer reads again from the
// checkpoint. So no event is counted twice and none is passed over,
// however many instances run and whenever they crash. The one exception is
// retention: events the usage stream dropped (older than its maximum age)
// before they were projected are gone; the consumer then moves the
// checkpoint to the stream's first sequence, logs the number lost at error
// level and counts it in UsageStats.AgedOut.
//
// # Halting at a poison event
//
// An event that cannot be decoded halts the consumer just before it, as
// the lifecycle projector does: the events before it are applied, nothing
// from it on is; the consumer reads it again and again (after a pause
// doubling from RetryInitial to RetryMax), the halt is logged once at
// error level ("usage projection HALTED"), Status reports it in Halted and
// Ready fails with ErrHalted. It ends by itself if the checkpoint moves
// past the event (another instance skipped or applied it);
// UsageConfig.SkipSequence is the operator's explicit skip.
//
// # Sessions
//
// After a batch commits, every session among the tokens it used is slid
// with domain.Token.ExtendSession to its last use plus its idle timeout,
// capped by its absolute expiry and debounced by Policy.SessionExtendStep
// (by half the idle timeout for a session whose idle timeout is not more
// than twice the step, see domain.SessionSlideStep): the token's history is loaded from the event store and the extension
// (token.expiry_set, reason session_extended, actor
// "system:session-slide", correlation id "<name>:<last sequence of the
// batch>") is appended under the token's concurrency check, reloading and
// deciding again on a conflict up to four times. api tokens are never
// extended: their kind is cached (tokens never change kind). A session's
// history is loaded only if the newer of the read model's row
// (projections.Store.TokenLifetimes, one query per batch) and the
// consumer's last load of it says the use may move it. A session whose
// expiry has passed is never revived.
//
// A failed extension does not stop the projection: it is logged, counted
// in UsageStats.ExtensionErrors and not retried, and neither is one lost
// to a crash between the commit of its batch and the extension. The
// session's next use, a flush interval later if it is in use, slides it
// again. Until then it keeps its earlier expiry: a failure can only end a
// session sooner, never keep it alive longer.
//
// The methods are safe for concurrent use; Run may be called once.
type UsageConsumer struct {
	store  *eventstore.Store
	proj   *projections.Store
	cfg    UsageConfig
	log    *slog.Logger
	tokens *tokenCache

	started   atomic.Bool
	consuming atomic.Bool
	stats     usageCounters

	mu sync.Mutex
	// known is the highest checkpoint this consumer has read or written.
	known   uint64
	halt    *Halt
	haltErr error
	skipped *Halt
	lastErr string
	// waitingFor is the sequence a gap is waiting for, to log the wait
	// once.
	waitingFor uint64
}

// NewUsageConsumer returns a consumer of store's usage stream that writes
// into proj, configured by cfg (defaults for zero fields). It uses the
// store's JetStream connection.
func NewUsageConsumer(store *eventstore.Store, proj *projections.Store, cfg UsageConfig) (*UsageConsumer, error) {
	var errs []error
	if store == nil {
		errs = append(errs, errors.New("event store is required"))
	}
	if proj == nil {
		errs = append(errs, errors.New("projections store is required"))
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("new usage consumer: %w", err)
	}
	cfg = cfg.withDefaults()
	return &UsageConsumer{
		store:  store,
		proj:   proj,
		cfg:    cfg,
		log:    cfg.Logger.With("projection", cfg.Name),
		tokens: newTokenCache(tokenCacheSize),
	}, nil
}

// Name returns the projection's name.
func (c *UsageConsumer) Name() string { return c.cfg.Name }

// Run consumes the usage stream until ctx ends, then returns nil. It reads
// the checkpoint and starts reading the usage stream right after it, and
// does so again after any failure to read (retrying while PostgreSQL or
// the server is unreachable), after a halt and after a batch that did not
// continue the checkpoint. It returns an error if it was called before, if
// the usage stream does not exist or if the connection is closed; the
// process should then exit and be restarted. A stop (or a crash) leaves
// nothing behind that the next consumer waits for: it reads from the
// checkpoint at once.
func (c *UsageConsumer) Run(ctx context.Context) error {
	if !c.started.CompareAndSwap(false, true) {
		return fmt.Errorf("run usage projection %q: Run was already called", c.cfg.Name)
	}
	defer c.consuming.Store(false)
	retry := backoff{initial: c.cfg.RetryInitial, max: c.cfg.RetryMax}
	for ctx.Err() == nil {
		r, err := c.open(ctx)
		if err == nil {
			c.consuming.Store(true)
			err = c.follow(ctx, r, &retry)
			r.close()
		}
		switch {
		case ctx.Err() != nil:
		case fatal(ctx, c.store.JetStream(), c.store.Config().UsageStream, err):
			return fmt.Errorf("run usage projection %q: %w", c.cfg.Name, err)
		case err != nil:
			c.setLastError(err)
			c.log.Error("usage consumer cannot read the usage stream; retrying", "error", err)
		}
		if !sleep(ctx, retry.next()) {
			break
		}
	}
	c.log.Info("usage consumer stopped")
	return nil
}

// open reads the checkpoint and starts a reader right after it.
func (c *UsageConsumer) open(ctx context.Context) (*reader, error) {
	actx, cancel := boundContext(ctx, attemptTimeout)
	defer cancel()
	cp, err := c.proj.Checkpoint(actx, c.cfg.Name)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.known = max(c.known, cp)
	halted := c.halt != nil
	c.mu.Unlock()
	r, err := openReader(actx, c.store.JetStream(), c.store.Config().UsageStream, cp+1, c.cfg.BatchSize)
	if err != nil {
		return nil, err
	}
	if halted {
		c.log.Debug("usage consumer reading the usage stream again", "from_sequence", cp+1)
	} else {
		c.log.Info("usage consumer reading the usage stream", "from_sequence", cp+1, "batch_size", c.cfg.BatchSize, "max_wait", c.cfg.MaxWait)
	}
	return r, nil
}

// follow writes the batches r reads until ctx ends (nil), the reader
// fails (its error), or a batch ends the read: a halt, a gap (nil).
func (c *UsageConsumer) follow(ctx context.Context, r *reader, retry *backoff) error {
	for {
		msgs, err := r.next(ctx, c.cfg.BatchSize, c.cfg.MaxWait)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		c.stats.fetches.Add(1)
		progressed, goOn := c.handle(ctx, msgs)
		if progressed {
			retry.reset()
		}
		if !goOn {
			return nil
		}
	}
}

// usageItem is one delivered message of a batch.
type usageItem struct {
	msg jetstream.Msg
	seq uint64
	ev  domain.Envelope
	err error // why it does not decode
}

// handle applies one batch read and slides the sessions used. It reports
// whether the consumer advanced, and whether the reader may go on (false
// after a halt or a gap, or when ctx ended).
func (c *UsageConsumer) handle(ctx context.Context, msgs []jetstream.Msg) (progressed, goOn bool) {
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
func (c *UsageConsumer) decode(msgs []jetstream.Msg) []usageItem {
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
			if md, err := m.Metadata(); err == nil {
				it.seq = md.Sequence.Stream
			}
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
	info, err := c.store.UsageStream().Info(actx)
	if err != nil {
		c.setLastError(fmt.Errorf("usage stream info: %w", err))
		return false
	}
	first := info.State.FirstSeq
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
				c.mu.Lock()
				c.skipped = &Halt{Sequence: s, Subject: it.msg.Subject(), Reason: it.err.Error(), Since: time.Now().UTC()}
				c.mu.Unlock()
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
	c.mu.Lock()
	c.known = max(c.known, res.Checkpoint)
	resolved := !halting && c.halt != nil && c.halt.Sequence <= res.Checkpoint
	if resolved {
		c.halt, c.haltErr = nil, nil
	}
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
	subject := ""
	if it.msg != nil {
		subject = it.msg.Subject()
	}
	c.mu.Lock()
	fresh := c.halt == nil || c.halt.Sequence != it.seq || c.halt.Reason != reason
	if fresh {
		c.halt = &Halt{Sequence: it.seq, Subject: subject, Reason: reason, Since: time.Now().UTC()}
		c.haltErr = cause
	}
	c.lastErr = reason
	c.mu.Unlock()
	if fresh {
		c.log.Error("usage projection HALTED: the event cannot be applied; it and every later usage event stay unapplied until it is resolved (see the UsageConsumer documentation)",
			"sequence", it.seq, "subject", subject, "reason", reason)
	} else {
		c.log.Debug("usage projection still halted", "sequence", it.seq)
	}
}

func (c *UsageConsumer) setLastError(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		c.lastErr = ""
		return
	}
	c.lastErr = err.Error()
}
