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

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/projections"
)

// usageAttemptTimeout bounds one attempt to write a batch.
const usageAttemptTimeout = 30 * time.Second

// UsageConsumer projects the usage stream (token.used events, coalesced
// per token by the validators) into the usage table of the read model, and
// slides the sessions that were used.
//
// # Batches
//
// It reads a durable JetStream pull consumer of its own on the usage
// stream (named UsageConfig.Name, acknowledgements "all": one
// acknowledgement covers every event up to it). Each round fetches up to
// BatchSize events, waiting at most MaxWait for the batch to fill, decodes
// them, and hands them to projections.Store.ApplyUsageBatch, which folds
// them per token and writes them with ONE statement (rows ≤ distinct
// tokens) in the transaction that advances the checkpoint. Only after the
// commit is the last applied event acknowledged. A failed write (PostgreSQL
// down) is retried with the same batch, with backoff from RetryInitial
// doubling to RetryMax, forever; nothing is fetched meanwhile.
//
// A Fetch per batch rather than a continuous subscription (Consume or
// Messages, which keep prefetching): one pull request is one batch and one
// transaction, the consumer is never delivered more than the batch it
// holds (so a stop can hand everything back), and MaxWait is the window
// in which uses coalesce into one statement. FetchNoWait would write a
// sliver of a batch per round under light load and need a pause of its
// own when idle.
//
// # Exactly once
//
// The checkpoint (the last usage-stream sequence applied) is the truth.
// ApplyUsageBatch skips events at or below it, so events delivered again
// after a crash (committed, not acknowledged) change nothing, and it
// applies only events that continue it without a gap: a batch that lacks
// checkpoint+1 — because a consumer that died held it unacknowledged, or
// another instance of this consumer holds it — is handed back to the
// server (negative acknowledgement, with a delay) and fetched again until
// the missing events are redelivered, at the latest AckWait after they
// were delivered. So no event is counted twice and none is passed over,
// however many instances run and whenever they crash. The one exception is
// retention: events the usage stream dropped (older than its maximum age)
// before they were projected are gone; the consumer then moves the
// checkpoint to the stream's first sequence, logs the number lost at error
// level and counts it in UsageStats.AgedOut.
//
// # Halting at a poison event
//
// An event that cannot be decoded halts the consumer just before it, as
// the lifecycle projector does: the events before it are applied, it and
// everything after it are handed back and delivered again and again, the
// halt is logged once at error level ("usage projection HALTED"), Status
// reports it in Halted and Ready fails with ErrHalted. It ends by itself if
// the checkpoint moves past the event (another instance skipped or applied
// it); UsageConfig.SkipSequence is the operator's explicit skip.
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

// Run consumes the usage stream until ctx ends, then returns nil. It first
// reads the checkpoint and creates or repositions the durable consumer,
// retrying while PostgreSQL or the server is unreachable. It returns an
// error if it was called before, if the usage stream does not exist or if
// the connection is closed; the process should then exit and be
// restarted. On return the events of the batch in hand that were not
// committed are handed back to the server, so the next consumer gets them
// at once.
func (c *UsageConsumer) Run(ctx context.Context) error {
	if !c.started.CompareAndSwap(false, true) {
		return fmt.Errorf("run usage projection %q: Run was already called", c.cfg.Name)
	}
	cons, err := c.prepare(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("run usage projection %q: %w", c.cfg.Name, err)
	}
	c.consuming.Store(true)
	defer c.consuming.Store(false)
	idle := usageBackoff{initial: c.cfg.RetryInitial, max: c.cfg.RetryMax}
	for ctx.Err() == nil {
		msgs, err := c.fetch(cons)
		if err != nil {
			if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, jetstream.ErrConnectionClosed) {
				return fmt.Errorf("run usage projection %q: %w", c.cfg.Name, err)
			}
			c.setLastError(err)
			c.log.Warn("fetching usage events failed; retrying", "error", err)
			if !usageSleep(ctx, idle.next()) {
				break
			}
			if lostConsumer(err) {
				if cons, err = c.prepare(ctx); err != nil {
					if ctx.Err() != nil {
						break
					}
					return fmt.Errorf("run usage projection %q: %w", c.cfg.Name, err)
				}
			}
			continue
		}
		if len(msgs) == 0 {
			idle.reset()
			continue
		}
		if c.handle(ctx, msgs) {
			idle.reset()
		} else if !usageSleep(ctx, idle.next()) {
			break
		}
	}
	c.log.Info("usage consumer stopped")
	return nil
}

// lostConsumer reports a fetch error that means the durable consumer is
// gone and must be created again.
func lostConsumer(err error) bool {
	return errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrBadRequest)
}

// fetch asks for up to BatchSize events, waiting up to MaxWait for them.
// The wait is not cut short by Run's context: a stop waits for it, so that
// every delivered event is in hand and can be handed back.
func (c *UsageConsumer) fetch(cons jetstream.Consumer) ([]jetstream.Msg, error) {
	batch, err := cons.Fetch(c.cfg.BatchSize, jetstream.FetchMaxWait(c.cfg.MaxWait))
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	msgs := make([]jetstream.Msg, 0, c.cfg.BatchSize)
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	c.stats.fetches.Add(1)
	if err := batch.Error(); err != nil && len(msgs) == 0 {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	return msgs, nil
}

// usageItem is one delivered message of a batch.
type usageItem struct {
	msg jetstream.Msg
	seq uint64
	ev  domain.Envelope
	err error // why it does not decode
}

// handle applies one fetched batch, acknowledges what is applied, hands
// back the rest and slides the sessions used. It reports whether the
// consumer advanced (or acknowledged redelivered events).
func (c *UsageConsumer) handle(ctx context.Context, msgs []jetstream.Msg) bool {
	items := c.decode(msgs)
	events, poison := c.eventsOf(items)
	res, ok := c.apply(ctx, events)
	if !ok {
		c.handBack(items, 0, 0)
		return false
	}
	if next, gap := nextAfter(items, res.Checkpoint); gap && next > res.Checkpoint+1 {
		if c.skipAgedOut(ctx, res.Checkpoint) {
			if res, ok = c.apply(ctx, events); !ok {
				c.handBack(items, 0, 0)
				return false
			}
		}
	}
	progressed := res.Applied > 0 || res.Skipped > 0
	c.handBack(items, res.Checkpoint, c.cfg.RetryInitial)
	c.record(items, res, poison)
	if len(res.Usage) > 0 {
		c.slide(ctx, res.Usage, res.Checkpoint)
	}
	if progressed {
		c.stats.slidThrough.Store(max(c.stats.slidThrough.Load(), res.Checkpoint))
	}
	return progressed
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
			// it is handed back with the events above the checkpoint.
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
	retry := usageBackoff{initial: c.cfg.RetryInitial, max: c.cfg.RetryMax}
	for {
		actx, cancel := context.WithTimeout(ctx, usageAttemptTimeout)
		res, err := c.proj.ApplyUsageBatch(actx, c.cfg.Name, events)
		cancel()
		if err == nil {
			return res, true
		}
		if ctx.Err() != nil {
			return projections.UsageResult{}, false
		}
		if permanentUsageError(err) && len(events) > 0 {
			first := events[0].Sequence
			c.halted(usageItem{seq: first}, fmt.Errorf("the batch from sequence %d cannot be written: %w", first, err))
		} else {
			c.setLastError(err)
			c.log.Warn("writing a usage batch failed; retrying", "error", err, "events", len(events))
		}
		if !usageSleep(ctx, retry.next()) {
			return projections.UsageResult{}, false
		}
	}
}

// permanentUsageError reports a write failure that retrying the same batch
// cannot fix.
func permanentUsageError(err error) bool {
	if errors.Is(err, projections.ErrOutOfOrder) || errors.Is(err, projections.ErrUsageEvent) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && len(pgErr.Code) >= 2 {
		switch pgErr.Code[:2] {
		case "22", "23": // data exception, integrity constraint violation
			return true
		}
	}
	return false
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
	actx, cancel := boundContext(ctx, usageAttemptTimeout)
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

// waitForGap notes that the consumer waits for sequence seq, delivered
// elsewhere, logging it once per sequence.
func (c *UsageConsumer) waitForGap(seq uint64) {
	c.mu.Lock()
	fresh := c.waitingFor != seq
	c.waitingFor = seq
	c.lastErr = fmt.Sprintf("waiting for usage event %d, delivered to another consumer and not acknowledged; it is redelivered within the ack wait", seq)
	c.mu.Unlock()
	if fresh {
		c.log.Info("usage events after a gap handed back: the missing ones were delivered to another consumer (one that stopped without acknowledging them, or a concurrent one) and are redelivered within the ack wait",
			"waiting_for", seq, "ack_wait", c.cfg.AckWait)
	}
}

// handBack acknowledges the events at or below checkpoint (one
// acknowledgement of the highest covers them all) and hands the others back
// to the server, redelivered after delay.
func (c *UsageConsumer) handBack(items []usageItem, checkpoint uint64, delay time.Duration) {
	var ack jetstream.Msg
	for _, it := range items {
		if it.seq != 0 && it.seq <= checkpoint {
			ack = it.msg
			continue
		}
		var err error
		if delay > 0 {
			err = it.msg.NakWithDelay(delay)
		} else {
			err = it.msg.Nak()
		}
		if err != nil {
			c.log.Debug("handing back a usage event", "sequence", it.seq, "error", err)
		}
	}
	if ack != nil {
		if err := ack.Ack(); err != nil {
			// The events are applied: delivered again, they are skipped.
			c.log.Debug("acknowledging usage events", "through", checkpoint, "error", err)
		}
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
			c.log.Warn("undecodable usage event is at or below the checkpoint (applied by another binary or skipped before); acknowledged",
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
		c.log.Error("usage projection HALTED: the event cannot be applied; it and every later usage event stay unacknowledged and unapplied until it is resolved (see the UsageConsumer documentation)",
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

// prepare reads the checkpoint and ensures the durable consumer, retrying
// every failure except a missing stream or a closed connection until ctx
// ends.
func (c *UsageConsumer) prepare(ctx context.Context) (jetstream.Consumer, error) {
	retry := usageBackoff{initial: c.cfg.RetryInitial, max: c.cfg.RetryMax}
	for {
		cons, err := c.prepareOnce(ctx)
		if err == nil {
			return cons, nil
		}
		if errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, nats.ErrConnectionClosed) || ctx.Err() != nil {
			return nil, err
		}
		c.setLastError(err)
		c.log.Error("usage consumer cannot start yet; retrying", "error", err)
		if !usageSleep(ctx, retry.next()) {
			return nil, ctx.Err()
		}
	}
}

func (c *UsageConsumer) prepareOnce(ctx context.Context) (jetstream.Consumer, error) {
	actx, cancel := boundContext(ctx, usageAttemptTimeout)
	defer cancel()
	cp, err := c.proj.Checkpoint(actx, c.cfg.Name)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.known = max(c.known, cp)
	c.mu.Unlock()
	cons, err := c.ensureConsumer(actx, cp)
	if err != nil {
		return nil, err
	}
	c.setLastError(nil)
	c.log.Info("usage consumer starting", "checkpoint", cp, "batch_size", c.cfg.BatchSize, "max_wait", c.cfg.MaxWait)
	return cons, nil
}

// consumerConfig is the durable consumer the usage stream is read through:
// acknowledgements "all" (one per batch), never given up on (MaxDeliver
// -1), never removed for inactivity. MaxAckPending leaves room for the
// batch in hand, one a stopped consumer left unacknowledged and the events
// handed back after a gap. A new consumer starts right after checkpoint.
func (c *UsageConsumer) consumerConfig(checkpoint uint64) jetstream.ConsumerConfig {
	cfg := jetstream.ConsumerConfig{
		Durable:        c.cfg.Name,
		Description:    "tokenledger usage projection " + c.cfg.Name,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckAllPolicy,
		AckWait:        c.cfg.AckWait,
		MaxDeliver:     -1,
		FilterSubjects: c.store.Subjects().Usage(),
		ReplayPolicy:   jetstream.ReplayInstantPolicy,
		MaxAckPending:  4 * c.cfg.BatchSize,
	}
	if checkpoint > 0 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = checkpoint + 1
	}
	return cfg
}

// ensureConsumer creates the durable consumer, or brings an existing one in
// line with the configuration, and returns it. A consumer whose
// acknowledged floor is past the checkpoint (the read model was restored
// or recreated) would never deliver the events in between: it is deleted
// and created again right after the checkpoint.
func (c *UsageConsumer) ensureConsumer(ctx context.Context, checkpoint uint64) (jetstream.Consumer, error) {
	stream := c.store.UsageStream()
	want := c.consumerConfig(checkpoint)
	cons, err := stream.Consumer(ctx, c.cfg.Name)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		return c.createConsumer(ctx, want)
	case err != nil:
		return nil, fmt.Errorf("look up consumer %s: %w", c.cfg.Name, err)
	}
	info := cons.CachedInfo()
	if floor := info.AckFloor.Stream; floor > checkpoint {
		c.log.Warn("durable usage consumer is ahead of the projection's checkpoint; recreating it at the checkpoint",
			"consumer_ack_floor", floor, "checkpoint", checkpoint)
		if err := stream.DeleteConsumer(ctx, c.cfg.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, fmt.Errorf("delete consumer %s: %w", c.cfg.Name, err)
		}
		return c.createConsumer(ctx, want)
	}
	got := info.Config
	if got.AckPolicy != want.AckPolicy || got.Durable != want.Durable {
		return nil, fmt.Errorf("consumer %s exists with another ack policy or without being durable: delete it, the usage consumer recreates it at its checkpoint", c.cfg.Name)
	}
	if got.AckWait == want.AckWait && got.MaxDeliver == want.MaxDeliver && got.MaxAckPending == want.MaxAckPending &&
		got.Description == want.Description && slices.Equal(got.FilterSubjects, want.FilterSubjects) && got.FilterSubject == "" {
		return cons, nil
	}
	// Where it starts cannot change on an existing consumer; the rest can.
	got.AckWait, got.MaxDeliver, got.MaxAckPending = want.AckWait, want.MaxDeliver, want.MaxAckPending
	got.Description, got.FilterSubject, got.FilterSubjects = want.Description, "", want.FilterSubjects
	cons, err = stream.UpdateConsumer(ctx, got)
	if err != nil {
		return nil, fmt.Errorf("update consumer %s: %w", c.cfg.Name, err)
	}
	c.log.Info("durable usage consumer updated")
	return cons, nil
}

func (c *UsageConsumer) createConsumer(ctx context.Context, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	cons, err := c.store.UsageStream().CreateConsumer(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("create consumer %s: %w", c.cfg.Name, err)
	}
	c.log.Info("durable usage consumer created", "start_sequence", max(cfg.OptStartSeq, 1))
	return cons, nil
}

// usageBackoff is a pause doubling from initial up to max.
type usageBackoff struct {
	initial, max, cur time.Duration
}

func (b *usageBackoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.initial
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	return b.cur
}

func (b *usageBackoff) reset() { b.cur = 0 }

// usageSleep pauses for d; false if ctx ended first.
func usageSleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
