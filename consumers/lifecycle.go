package consumers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmjs "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/jetstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/projections"
)

// errConsumerLost is the cause Run reports when the server stops serving
// the durable consumer (deleted by an operator, or the connection closed).
var errConsumerLost = errors.New("durable consumer lost")

// closeTimeout bounds the router's wait for a handler and the drain of the
// watermill connection when Run stops.
const closeTimeout = 10 * time.Second

// LifecycleProjector projects the lifecycle stream into the read model in
// PostgreSQL, one event per transaction, in stream order, exactly once: a
// watermill router consumes a durable JetStream consumer (at-least-once
// delivery), and projections.Store.ApplyBatch applies each event together
// with the checkpoint, skipping events at or below it (idempotent apply).
//
// Transient failures (PostgreSQL down) are retried forever with capped
// exponential backoff. An event that cannot be decoded halts the
// projector at that event: it is never acknowledged nor skipped unless the
// operator names it in LifecycleConfig.SkipSequence. Status and Ready
// report all of it. The methods are safe for concurrent use; Run may be
// called once.
type LifecycleProjector struct {
	store *eventstore.Store
	conn  *nats.Conn
	proj  *projections.Store
	cfg   LifecycleConfig
	log   *slog.Logger

	// connClosed is closed once conn is closed, after Subscriber.Close
	// drained it.
	connClosed chan struct{}

	started   atomic.Bool
	consuming atomic.Bool

	mu sync.Mutex
	// known is the highest checkpoint this projector has read or
	// committed.
	known   uint64
	halt    *Halt
	haltErr error
	skipped *Halt
	lastErr string
	// consumeCtx is the consumption watermill started.
	consumeCtx jetstream.ConsumeContext
	// handBack lists the acknowledgement subjects of the deliveries that
	// may be unacknowledged when Run stops.
	handBack []string

	// callbacksClosed makes callbacks note their delivery without handling
	// it, once Run stops.
	callbacksClosed bool

	// callbackMu is held while watermill's consume callback runs.
	callbackMu sync.Mutex
}

// NewLifecycleProjector returns a projector of store's lifecycle stream
// into proj, configured by cfg (defaults for zero fields). conn is a
// connection for watermill's subscriber alone: from this call on the
// projector owns it, and Run drains and closes it when it returns (Close
// does, for a projector that never runs; so does a failing
// NewLifecycleProjector). Status and the final acknowledgements use the
// store's own connection.
func NewLifecycleProjector(store *eventstore.Store, conn *nats.Conn, proj *projections.Store, cfg LifecycleConfig) (*LifecycleProjector, error) {
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
	p := &LifecycleProjector{
		store:      store,
		conn:       conn,
		proj:       proj,
		cfg:        cfg,
		log:        cfg.Logger.With("projection", cfg.Name),
		connClosed: make(chan struct{}),
	}
	prev := conn.Opts.ClosedCB
	var once sync.Once
	conn.SetClosedHandler(func(c *nats.Conn) {
		once.Do(func() { close(p.connClosed) })
		if prev != nil {
			prev(c)
		}
	})
	if conn.IsClosed() {
		once.Do(func() { close(p.connClosed) })
	}
	return p, nil
}

// Name returns the projection's name.
func (p *LifecycleProjector) Name() string { return p.cfg.Name }

// Close closes the watermill connection of a projector that was never run;
// once Run was called it does nothing (Run closes it).
func (p *LifecycleProjector) Close() error {
	if p.started.CompareAndSwap(false, true) {
		p.conn.Close()
	}
	return nil
}

// Run consumes the lifecycle stream and applies its events until ctx ends,
// then stops cleanly and returns nil. It first reads the checkpoint and
// creates or repositions the durable consumer, retrying while PostgreSQL or
// the server is unreachable. It returns an error if it was called before,
// if the lifecycle stream does not exist, or if the server stops serving
// the durable consumer while running (the error wraps the cause); the
// process should then exit and be restarted.
//
// On return the watermill connection is drained and closed; the delivery
// that was in flight, if any, is handed back to the server at once (a
// negative acknowledgement), so the next projector does not wait AckWait
// for it. An event whose transaction committed but whose acknowledgement
// was lost is delivered again and skipped by the checkpoint.
func (p *LifecycleProjector) Run(ctx context.Context) error {
	if !p.started.CompareAndSwap(false, true) {
		return fmt.Errorf("run projection %q: Run was already called or the projector was closed", p.cfg.Name)
	}
	defer p.conn.Close()
	if err := p.prepare(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("run projection %q: %w", p.cfg.Name, err)
	}
	err := p.consume(ctx)
	p.consuming.Store(false)
	p.nakInFlight()
	if err != nil {
		return fmt.Errorf("run projection %q: %w", p.cfg.Name, err)
	}
	p.log.Info("lifecycle projector stopped")
	return nil
}

// prepare reads the checkpoint and ensures the durable consumer, retrying
// every failure except a missing stream until ctx ends.
func (p *LifecycleProjector) prepare(ctx context.Context) error {
	delay := p.cfg.RetryInitial
	for {
		err := p.prepareOnce(ctx)
		if err == nil || errors.Is(err, jetstream.ErrStreamNotFound) || ctx.Err() != nil {
			return err
		}
		p.setLastError(err)
		p.log.Error("lifecycle projector cannot start yet; retrying", "error", err, "retry_in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, p.cfg.RetryMax)
	}
}

func (p *LifecycleProjector) prepareOnce(ctx context.Context) error {
	actx, cancel := boundContext(ctx, p.attemptTimeout())
	defer cancel()
	cp, err := p.proj.Checkpoint(actx, p.cfg.Name)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.known = max(p.known, cp)
	p.mu.Unlock()
	if err := p.ensureConsumer(actx, cp); err != nil {
		return err
	}
	p.setLastError(nil)
	p.log.Info("lifecycle projector starting", "checkpoint", cp, "skip_sequence", p.cfg.SkipSequence)
	return nil
}

// consume runs the router until ctx ends or the consumer is lost, then
// stops it in an order that watermill-nats does not provide by itself:
// its subscriber closes the channel it hands messages to the router on
// while its consume callback may still be sending on it (a send on a closed
// channel, which the race detector reports and which can panic). So the
// projector first quiesces the consumption (see quiesce), and only then
// lets the router and the subscriber close.
func (p *LifecycleProjector) consume(ctx context.Context) error {
	runCtx, cancelRun := context.WithCancel(context.Background())
	defer cancelRun()
	stopCtx, stopHandlers := context.WithCancel(context.Background())
	defer stopHandlers()
	lost := make(chan error, 1)

	wmLog := watermill.NewSlogLoggerWithLevelMapping(p.log, map[slog.Level]slog.Level{
		// Watermill logs every message at info and every handler error
		// at error; the projector logs what matters itself.
		slog.LevelError: slog.LevelWarn,
		slog.LevelInfo:  slog.LevelDebug,
		slog.LevelDebug: watermill.LevelTrace,
	})
	sub, err := wmjs.NewSubscriber(wmjs.SubscriberConfig{
		Conn:   p.conn,
		Logger: wmLog,
		// The subscriber abandons a message its handler has not finished
		// within this time, unacknowledged; the handler retries for as long
		// as PostgreSQL is down, telling the server it is alive, so the
		// subscriber must never give up on it.
		AckWaitTimeout:      math.MaxInt64,
		ResourceInitializer: p.bindConsumer,
		NakDelay:            nakDelay{initial: p.cfg.RetryInitial, max: p.cfg.RetryMax},
		Unmarshaler:         Unmarshaler{},
		ConsumeOptions: []jetstream.PullConsumeOpt{
			jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
				if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConnectionClosed) ||
					errors.Is(err, jetstream.ErrBadRequest) {
					select {
					case lost <- fmt.Errorf("%w: %w", errConsumerLost, err):
					default:
					}
					return
				}
				p.log.Debug("consume", "error", err)
			}),
		},
	})
	if err != nil {
		return fmt.Errorf("watermill subscriber: %w", err)
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: closeTimeout}, wmLog)
	if err != nil {
		_ = sub.Close()
		return fmt.Errorf("watermill router: %w", err)
	}
	router.AddMiddleware(
		stopMiddleware(stopCtx),
		middleware.Retry{
			// Forever: the two limits are effectively off.
			MaxRetries:     math.MaxInt - 1,
			MaxElapsedTime: 0,
			// The middleware draws a backoff step for ShouldRetry and
			// another one for the wait, so each retry moves the interval
			// twice: √2 per step doubles the pause per retry.
			InitialInterval:     p.cfg.RetryInitial,
			MaxInterval:         p.cfg.RetryMax,
			Multiplier:          math.Sqrt2,
			RandomizationFactor: 0.2,
			ShouldRetry: func(params middleware.RetryParams) bool {
				return !errors.Is(params.Err, errHalt)
			},
		}.Middleware,
		p.attemptMiddleware,
		middleware.Recoverer,
	)
	router.AddConsumerHandler(p.cfg.Name, p.store.Config().Stream, sub, p.handle)

	runErr := make(chan error, 1)
	go func() { runErr <- router.Run(runCtx) }()
	select {
	case <-router.Running():
		p.consuming.Store(true)
	case err := <-runErr:
		_ = sub.Close()
		return fmt.Errorf("watermill router: %w", err)
	}

	var cause error
	routerDone := false
	select {
	case <-ctx.Done():
	case cause = <-lost:
	case err := <-runErr:
		routerDone = true
		cause = fmt.Errorf("watermill router stopped by itself: %v", err)
	}
	p.consuming.Store(false)
	p.quiesce(stopHandlers)
	cancelRun()
	if !routerDone {
		if err := <-runErr; err != nil {
			p.log.Warn("watermill router", "error", err)
		}
	}
	if err := sub.Close(); err != nil {
		p.log.Warn("closing the watermill subscriber", "error", err)
	}
	timer := time.NewTimer(closeTimeout)
	defer timer.Stop()
	select {
	case <-p.connClosed:
	case <-timer.C:
		p.log.Warn("watermill connection not closed in time after its drain")
	}
	return cause
}

// quiesce stops consuming without dropping a delivery on the floor: from
// now on callbacks only note their delivery for nakInFlight; the handler
// in flight is ended (stopHandlers), which answers its delivery; then the
// consumption is drained, so that every message the server sent before it
// saw the unsubscription reaches a callback and is noted (the server sends
// none after it, and none while the noted ones are unacknowledged); last
// it waits for the callback to have returned.
func (p *LifecycleProjector) quiesce(stopHandlers context.CancelFunc) {
	p.mu.Lock()
	p.callbacksClosed = true
	cc := p.consumeCtx
	p.mu.Unlock()
	stopHandlers()
	timer := time.NewTimer(closeTimeout)
	defer timer.Stop()
	if cc != nil {
		cc.Drain()
		select {
		case <-cc.Closed():
		case <-timer.C:
			p.log.Warn("the consumption did not drain in time; closing anyway")
			return
		}
	}
	idle := make(chan struct{})
	go func() {
		p.callbackMu.Lock()
		p.callbackMu.Unlock()
		close(idle)
	}()
	select {
	case <-idle:
	case <-timer.C:
		p.log.Warn("the consume callback did not return in time; closing anyway")
	}
}

// stopMiddleware cancels the context of a message being handled when stop
// ends, which ends the Retry middleware's loop and the attempt in flight.
func stopMiddleware(stop context.Context) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			ctx, cancel := context.WithCancel(msg.Context())
			defer cancel()
			release := context.AfterFunc(stop, cancel)
			defer release()
			msg.SetContext(ctx)
			return h(msg)
		}
	}
}

// bindConsumer gives watermill's subscriber the durable consumer, bound to
// watermill's own connection, and no cleanup: the consumer must outlive
// the subscriber.
func (p *LifecycleProjector) bindConsumer(ctx context.Context, js jetstream.JetStream, _ string) (jetstream.Consumer, func(context.Context, watermill.LoggerAdapter), error) {
	cons, err := js.Consumer(ctx, p.store.Config().Stream, p.cfg.Name)
	if err != nil {
		return nil, nil, fmt.Errorf("bind consumer %s: %w", p.cfg.Name, err)
	}
	return trackedConsumer{Consumer: cons, p: p}, nil, nil
}

// trackedConsumer is the durable consumer as watermill's subscriber sees
// it: Consume hands the projector the consume context, and runs every
// callback through the projector's callback.
type trackedConsumer struct {
	jetstream.Consumer
	p *LifecycleProjector
}

// Consume implements jetstream.Consumer.
func (c trackedConsumer) Consume(h jetstream.MessageHandler, opts ...jetstream.PullConsumeOpt) (jetstream.ConsumeContext, error) {
	cc, err := c.Consumer.Consume(func(msg jetstream.Msg) { c.p.callback(msg, h) }, opts...)
	if err == nil {
		c.p.mu.Lock()
		c.p.consumeCtx = cc
		c.p.mu.Unlock()
	}
	return cc, err
}

// callback runs watermill's consume callback for one delivery, unless the
// projector is stopping; either way it remembers the delivery for
// nakInFlight.
func (p *LifecycleProjector) callback(msg jetstream.Msg, h jetstream.MessageHandler) {
	p.callbackMu.Lock()
	defer p.callbackMu.Unlock()
	p.mu.Lock()
	closed := p.callbacksClosed
	if closed {
		p.handBack = append(p.handBack, msg.Reply())
	} else {
		p.handBack = append(p.handBack[:0], msg.Reply())
	}
	p.mu.Unlock()
	if !closed {
		h(msg)
	}
}

// nakInFlight hands the deliveries that may still be unacknowledged back
// to the server, so that they are redelivered at once rather than after
// AckWait: the latest delivery the handler saw, and any that arrived while
// stopping. A delivery that was acknowledged is not pending any more and
// the server ignores the negative acknowledgement. It goes through the
// store's connection: the watermill one is closed by now.
func (p *LifecycleProjector) nakInFlight() {
	p.mu.Lock()
	replies := p.handBack
	p.handBack = nil
	p.mu.Unlock()
	if len(replies) == 0 {
		return
	}
	nc := p.store.JetStream().Conn()
	for _, reply := range replies {
		// "-NAK" is the JetStream acknowledgement protocol's negative
		// acknowledgement (jetstream.Msg.Nak sends the same).
		if err := nc.Publish(reply, []byte("-NAK")); err != nil {
			p.log.Warn("handing back an unacknowledged delivery", "error", err)
			return
		}
	}
	if err := nc.FlushTimeout(closeTimeout); err != nil {
		p.log.Warn("handing back an unacknowledged delivery", "error", err)
	}
}

// attemptTimeout bounds one attempt to apply an event (or to prepare), so
// that the next progress signal reaches the server before AckWait ends.
func (p *LifecycleProjector) attemptTimeout() time.Duration { return p.cfg.AckWait / 3 }

func (p *LifecycleProjector) setLastError(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil {
		p.lastErr = ""
		return
	}
	p.lastErr = err.Error()
}

// nakDelay spaces the redeliveries of an event that was handed back (one
// that halted the projector): RetryInitial doubled per delivery, at most
// RetryMax.
type nakDelay struct{ initial, max time.Duration }

func (d nakDelay) WaitTime(delivered uint64) time.Duration {
	w := d.initial
	for i := uint64(1); i < delivered && w < d.max; i++ {
		w *= 2
	}
	return min(w, d.max)
}
