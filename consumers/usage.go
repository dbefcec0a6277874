package consumers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/ledger"
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
// fill, decodes them, and hands them to projections.ReadModel.ApplyUsageBatch,
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
// (projections.ReadModel.TokenLifetimes, one query per batch) and the
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
	store *eventstore.Store
	// sessions slides the sessions a batch used.
	sessions ledger.SessionSlider
	proj     *projections.ReadModel
	cfg      UsageConfig
	log      *slog.Logger
	tokens   *tokenCache

	started atomic.Bool
	stats   usageCounters
	worker
	// waitingFor is the sequence a gap is waiting for, to log the wait
	// once; guarded by mu.
	waitingFor uint64
}

// NewUsageConsumer returns a consumer of store's usage stream that writes
// into proj, configured by cfg (defaults for zero fields). It uses the
// store's JetStream connection.
func NewUsageConsumer(store *eventstore.Store, proj *projections.ReadModel, cfg UsageConfig) (*UsageConsumer, error) {
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
	c := &UsageConsumer{
		store:  store,
		proj:   proj,
		cfg:    cfg,
		log:    cfg.Logger.With("projection", cfg.Name),
		tokens: newTokenCache(tokenCacheSize),
	}
	c.sessions = ledger.SessionSlider{
		Store:       store,
		Step:        cfg.Policy.SessionExtendStep,
		Clock:       cfg.Clock,
		MaxAttempts: slideAttempts,
		OnConflict:  func() { c.stats.extensionConflicts.Add(1) },
	}
	return c, nil
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
	err := c.run(ctx, backoff{initial: c.cfg.RetryInitial, max: c.cfg.RetryMax}, c.log, "usage consumer", "the usage stream",
		c.open, c.follow, func(err error) bool { return fatal(ctx, c.store, eventstore.Usage, err) })
	if err != nil {
		return fmt.Errorf("run usage projection %q: %w", c.cfg.Name, err)
	}
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
	r, err := openReader(actx, c.store, nil, eventstore.Usage, cp+1, c.cfg.BatchSize)
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
