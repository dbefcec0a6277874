package webhooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/eventstore/subscriber"
)

// errPoison marks a message that can never be fanned out: it goes to the
// poison queue instead of being retried.
var errPoison = errors.New("unreadable lifecycle event")

// Dispatcher delivers lifecycle events to the registered endpoints; see
// the package documentation. Run it in one process at a time (the one
// that leads the projection): a second one running at once only causes
// duplicate deliveries, which receivers must accept anyway.
type Dispatcher struct {
	cfg    Config
	st     store
	es     *eventstore.Store
	nc     *nats.Conn
	client *http.Client
	log    *slog.Logger
	wake   chan struct{}

	// fanned is the stream sequence up to which every event is fanned
	// out (the consumer's acknowledgement floor when the fan-out starts,
	// then each event fanned out): only deliveries of events up to it are
	// sent.
	fanned atomic.Uint64

	// committed is the highest stream sequence whose rows are stored;
	// storedBeyond wakes followFloor.
	committed    atomic.Uint64
	storedBeyond chan struct{}
	commits      *committer

	mu     sync.Mutex
	owners map[domain.TokenID]domain.OwnerID
}

// NewDispatcher returns a dispatcher reading the lifecycle stream of es
// through nc, a connection of its own (closed when Run returns), with the
// endpoints and deliveries in pool's database.
func NewDispatcher(pool *pgxpool.Pool, es *eventstore.Store, nc *nats.Conn, cfg Config) (*Dispatcher, error) {
	if pool == nil || es == nil || nc == nil {
		return nil, errors.New("webhooks: pool, store and connection are required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = domain.SystemClock{}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Dispatcher{
		cfg: cfg, st: store{pool}, es: es, nc: nc, log: log,
		client:       newClient(cfg.Timeout, cfg.AllowPrivateTargets, cfg.Concurrency),
		wake:         make(chan struct{}, 1),
		storedBeyond: make(chan struct{}, 1),
		owners:       map[domain.TokenID]domain.OwnerID{},
	}
	d.commits = &committer{st: d.st, now: cfg.Clock.Now, queue: make(chan commitReq, fanOutBatch), stored: d.noteStored}
	return d, nil
}

// EnsureConsumer creates the dispatcher's durable consumer of the
// lifecycle stream if it does not exist, starting with the events
// appended from then on. Run creates it by itself when
// the first endpoint is registered; EnsureConsumer is for a deployment
// that wants it before.
func EnsureConsumer(ctx context.Context, es *eventstore.Store, name string, ackWait time.Duration) error {
	return ensureConsumer(ctx, es, name, ackWait, 0)
}

// ensureConsumer creates the consumer if it does not exist, starting at
// stream sequence from (0: with the events appended from then on). It
// hands out maxAckPending unacknowledged events at once, to the router's
// fanOutHandlers.
func ensureConsumer(ctx context.Context, es *eventstore.Store, name string, ackWait time.Duration, from uint64) error {
	err := es.EnsureDurable(ctx, name, eventstore.DurableConfig{
		Description:   "tokenledger webhook dispatcher: fans lifecycle events out into deliveries",
		AckWait:       ackWait,
		MaxAckPending: maxAckPending,
		From:          from,
	})
	if err != nil {
		return fmt.Errorf("webhook consumer %s: %w", name, err)
	}
	return nil
}

// awaitConsumer returns once the dispatcher's consumer exists: at once if
// it does, else when the first endpoint is registered, creating it to
// start right after the stream sequence that endpoint was registered at
// (so a deployment without endpoints spends nothing on fan-out, and the
// first endpoint misses nothing).
func (d *Dispatcher) awaitConsumer(ctx context.Context) error {
	t := time.NewTicker(d.cfg.PollInterval)
	defer t.Stop()
	for {
		state, err := d.es.Durable(ctx, d.cfg.Consumer)
		switch {
		case err == nil:
			d.advanceFanned(state.AckFloor)
			return nil
		case !errors.Is(err, eventstore.ErrConsumerMissing):
			if ctx.Err() == nil {
				d.log.Warn("webhook consumer: cannot look it up; trying again", "error", err)
			}
		default:
			first, ok, err := d.st.firstEndpointSeq(ctx)
			switch {
			case err != nil && ctx.Err() == nil:
				d.log.Warn("webhook endpoints: cannot read them; trying again", "error", err)
			case ok:
				return ensureConsumer(ctx, d.es, d.cfg.Consumer, d.cfg.AckWait, first+1)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Run fans events out and sends deliveries until ctx ends, then closes
// the dispatcher's connection. It returns nil when ctx ends, or the error
// that stopped the fan-out.
//
// The fan-out is watermill's router over the dispatcher's durable
// consumer (package eventstore/subscriber): fanOutHandlers events at once,
// each acknowledged once its deliveries are stored (their rows stored
// together, see committer), retried on transient failures, and an
// unreadable event kept in the poison table. The deliveries are sent
// meanwhile by the sender, many at once.
func (d *Dispatcher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // before the Wait: the sender stops with ctx
	wg.Go(func() { d.send(ctx) })
	wg.Go(func() { d.followFloor(ctx) })
	wg.Go(func() { d.commits.run(ctx) })
	if err := d.awaitConsumer(ctx); err != nil {
		d.nc.Close()
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	wlog := watermill.NewSlogLoggerWithLevelMapping(d.log, map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug})
	// The acknowledgement is not waited for: one that is lost only makes
	// the server deliver the event again, and the fan-out skips the
	// deliveries it made already.
	sub, err := subscriber.New(subscriber.Config{Conn: d.nc, Durable: d.cfg.Consumer, AckWait: d.cfg.AckWait, Logger: wlog})
	if err != nil {
		d.nc.Close()
		return fmt.Errorf("webhook subscriber: %w", err)
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, wlog)
	if err != nil {
		_ = sub.Close()
		return err
	}
	poison, err := middleware.PoisonQueueWithFilter(poisonPublisher{d.st}, "webhook_poison", func(err error) bool { return errors.Is(err, errPoison) })
	if err != nil {
		_ = sub.Close()
		return err
	}
	router.AddMiddleware(
		poison,
		middleware.Retry{
			MaxRetries:      8,
			InitialInterval: 100 * time.Millisecond,
			MaxInterval:     5 * time.Second,
			Multiplier:      2,
			Logger:          wlog,
			ShouldRetry:     func(p middleware.RetryParams) bool { return !errors.Is(p.Err, errPoison) },
		}.Middleware,
		middleware.Recoverer,
	)
	// Each handler is a subscription of its own to the consumer, holding
	// one event at a time.
	for i := range fanOutHandlers {
		router.AddConsumerHandler(fmt.Sprintf("webhook_fan_out_%d", i), d.es.Config().Stream, sub, d.fanOut)
	}

	err = router.Run(ctx)
	cancel()
	_ = sub.Close()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// advanceFanned moves the fan-out's progress to seq unless it is there
// already.
func (d *Dispatcher) advanceFanned(seq uint64) {
	for {
		cur := d.fanned.Load()
		if seq <= cur || d.fanned.CompareAndSwap(cur, seq) {
			return
		}
	}
}

// maxOwners bounds the cache of token owners.
const maxOwners = 100_000

// knownOwner returns the owner of token id if the cache holds it.
func (d *Dispatcher) knownOwner(id domain.TokenID) (domain.OwnerID, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	o, ok := d.owners[id]
	return o, ok
}

// rememberOwner caches the owner of token id.
func (d *Dispatcher) rememberOwner(id domain.TokenID, o domain.OwnerID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.owners) >= maxOwners {
		clear(d.owners)
	}
	d.owners[id] = o
}

// ownerOf returns the owner of token id, from the cache or its history.
func (d *Dispatcher) ownerOf(ctx context.Context, id domain.TokenID) (domain.OwnerID, error) {
	if o, ok := d.knownOwner(id); ok {
		return o, nil
	}
	events, err := d.es.LoadToken(ctx, id)
	if err != nil {
		return "", fmt.Errorf("owner of token %s: %w", id, err)
	}
	tok, err := domain.TokenFromHistory(events)
	if err != nil {
		return "", fmt.Errorf("%w: owner of token %s: %w", errPoison, id, err)
	}
	d.rememberOwner(id, tok.Owner())
	return tok.Owner(), nil
}

func (d *Dispatcher) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}
