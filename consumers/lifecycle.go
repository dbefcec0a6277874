package consumers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/nats-io/nats.go"

	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/projections"
)

// errPanicked marks a batch whose application panicked; the projector
// halts on it like on a permanent failure.
var errPanicked = errors.New("applying the batch panicked")

// LifecycleProjector projects the lifecycle stream into the read model in
// PostgreSQL, in stream order, a batch of events per transaction, exactly
// once: it reads the stream from its checkpoint on (see reader) and applies
// each batch with projections.ReadModel.ApplyNext, which commits the rows and
// the checkpoint together, skips events at or below the checkpoint and
// refuses a batch that does not continue it.
//
// Transient failures (PostgreSQL down) are retried forever with capped
// exponential backoff. An event that cannot be decoded halts the
// projector just before it: it is never skipped unless the operator names
// it in LifecycleConfig.SkipSequence. Status and Ready report all of it.
// The methods are safe for concurrent use; Run may be called once.
type LifecycleProjector struct {
	store *eventstore.Store
	conn  *nats.Conn
	proj  *projections.ReadModel
	cfg   LifecycleConfig
	log   *slog.Logger

	started atomic.Bool
	worker
}

// NewLifecycleProjector returns a projector of store's lifecycle stream
// into proj, configured by cfg (defaults for zero fields). conn is the
// connection the projector reads the stream on, its own: from this call
// on the projector owns it, and Run closes it when it returns (Close does,
// for a projector that never runs; so does a failing
// NewLifecycleProjector). Status uses the store's own connection.
func NewLifecycleProjector(store *eventstore.Store, conn *nats.Conn, proj *projections.ReadModel, cfg LifecycleConfig) (*LifecycleProjector, error) {
	var errs []error
	if store == nil {
		errs = append(errs, errors.New("event store is required"))
	}
	if conn == nil {
		errs = append(errs, errors.New("NATS connection is required"))
	} else if conn.IsClosed() {
		errs = append(errs, errors.New("NATS connection is closed"))
	}
	if proj == nil {
		errs = append(errs, errors.New("projections store is required"))
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		if conn != nil {
			conn.Close()
		}
		return nil, fmt.Errorf("new lifecycle projector: %w", err)
	}
	cfg = cfg.withDefaults()
	return &LifecycleProjector{
		store: store,
		conn:  conn,
		proj:  proj,
		cfg:   cfg,
		log:   cfg.Logger.With("projection", cfg.Name),
	}, nil
}

// Name returns the projection's name.
func (p *LifecycleProjector) Name() string { return p.cfg.Name }

// Close closes the connection of a projector that was never run; once Run
// was called it does nothing (Run closes it).
func (p *LifecycleProjector) Close() error {
	if p.started.CompareAndSwap(false, true) {
		p.conn.Close()
	}
	return nil
}

// Run reads the lifecycle stream and applies its events until ctx ends,
// then stops and returns nil. It reads the checkpoint and starts reading
// the stream right after it, and does so again after any failure to read
// (retrying while PostgreSQL or the server is unreachable), after a halt
// and after a batch that did not continue the checkpoint. It returns an
// error if it was called before, if the lifecycle stream does not exist,
// or if the connection is closed; the process should then exit and be
// restarted.
//
// On return the connection is closed. A stop (or a crash) loses nothing
// and leaves nothing behind that a successor waits for: the transaction in
// flight commits or rolls back with its checkpoint, and the next
// projector reads from the checkpoint at once.
func (p *LifecycleProjector) Run(ctx context.Context) error {
	if !p.started.CompareAndSwap(false, true) {
		return fmt.Errorf("run projection %q: Run was already called or the projector was closed", p.cfg.Name)
	}
	defer p.conn.Close()
	err := p.run(ctx, backoff{initial: p.cfg.RetryInitial, max: p.cfg.RetryMax}, p.log, "lifecycle projector", "the stream",
		p.open, p.follow, func(err error) bool { return fatal(ctx, p.store, eventstore.Lifecycle, err) })
	if err != nil {
		return fmt.Errorf("run projection %q: %w", p.cfg.Name, err)
	}
	return nil
}

// open reads the checkpoint and starts a reader right after it.
func (p *LifecycleProjector) open(ctx context.Context) (*reader, error) {
	actx, cancel := boundContext(ctx, attemptTimeout)
	defer cancel()
	cp, err := p.proj.Checkpoint(actx, p.cfg.Name)
	if err != nil {
		return nil, err
	}
	p.noteCheckpoint(cp)
	r, err := openReader(actx, p.store, p.conn, eventstore.Lifecycle, cp+1, 2*lifecycleBatchSize)
	if err != nil {
		return nil, err
	}
	if p.isHalted() {
		p.log.Debug("lifecycle projector reading the stream again", "from_sequence", cp+1)
	} else {
		p.log.Info("lifecycle projector reading the stream", "from_sequence", cp+1, "skip_sequence", p.cfg.SkipSequence)
	}
	return r, nil
}

// follow applies the batches r reads until ctx ends (nil), the reader
// fails (its error), or a batch ends the read: a halt, a gap (nil).
func (p *LifecycleProjector) follow(ctx context.Context, r *reader, retry *backoff) error {
	for {
		msgs, err := r.next(ctx, lifecycleBatchSize, 0)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if !p.handle(ctx, msgs, retry) {
			return nil
		}
	}
}

// noteCheckpoint records a checkpoint read or committed; a halt at or
// below it is over.
func (p *LifecycleProjector) noteCheckpoint(cp uint64) {
	if p.worker.noteCheckpoint(cp) {
		p.log.Info("lifecycle projection resumed", "checkpoint", cp)
	}
}
