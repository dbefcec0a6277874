package webhooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
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
	return &Dispatcher{
		cfg: cfg, st: store{pool}, es: es, nc: nc, log: log,
		client: newClient(cfg.Timeout, cfg.AllowPrivateTargets),
		wake:   make(chan struct{}, 1),
		owners: map[domain.TokenID]domain.OwnerID{},
	}, nil
}

// EnsureConsumer creates the dispatcher's durable consumer of the
// lifecycle stream if it does not exist, starting with the events
// appended from then on. It lets one event at a time be unacknowledged,
// so events are fanned out in stream order. Run creates it by itself when
// the first endpoint is registered; EnsureConsumer is for a deployment
// that wants it before.
func EnsureConsumer(ctx context.Context, es *eventstore.Store, name string, ackWait time.Duration) error {
	return ensureConsumer(ctx, es, name, ackWait, 0)
}

// ensureConsumer creates the consumer if it does not exist, starting at
// stream sequence from (0: with the events appended from then on).
func ensureConsumer(ctx context.Context, es *eventstore.Store, name string, ackWait time.Duration, from uint64) error {
	err := es.EnsureDurable(ctx, name, eventstore.DurableConfig{
		Description:   "tokenledger webhook dispatcher: fans lifecycle events out into deliveries",
		AckWait:       ackWait,
		MaxAckPending: 1,
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
		_, err := d.es.Durable(ctx, d.cfg.Consumer)
		switch {
		case err == nil:
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
func (d *Dispatcher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // before the Wait: the sender stops with ctx
	wg.Go(func() { d.send(ctx) })
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
	router.AddConsumerHandler("webhook_fan_out", d.es.Config().Stream, sub, d.fanOut)

	err = router.Run(ctx)
	cancel()
	_ = sub.Close()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// fanOut turns one lifecycle event into deliveries, one per endpoint that
// wants it; the message is acknowledged once they are stored.
func (d *Dispatcher) fanOut(m *message.Message) error {
	if reason := m.Metadata.Get(subscriber.MetadataError); reason != "" {
		return fmt.Errorf("%w: %s", errPoison, reason)
	}
	seq, err := strconv.ParseUint(m.Metadata.Get(subscriber.MetadataStreamSequence), 10, 64)
	if err != nil {
		return fmt.Errorf("%w: no stream sequence", errPoison)
	}
	e, err := d.es.Registry().Unmarshal(m.Payload)
	if err != nil {
		return fmt.Errorf("%w: sequence %d: %w", errPoison, seq, err)
	}
	e.Sequence = seq
	t, ok := typeOf(e)
	if !ok {
		return nil
	}
	ctx := m.Context()
	var owner domain.OwnerID
	var key string
	if id, ok := e.TokenID(); ok {
		key = "token:" + id.String()
		if issued, ok := e.Data.(domain.TokenIssued); ok {
			owner = issued.Owner
		} else if owner, err = d.ownerOf(ctx, id); err != nil {
			return err
		}
	} else {
		owner = domain.OwnerID(e.AggregateID)
		key = "owner:" + e.AggregateID
	}
	b, err := body(d.es.Registry(), e, t, owner)
	if err != nil {
		return fmt.Errorf("%w: sequence %d: %w", errPoison, seq, err)
	}
	n, err := d.st.fanOut(ctx, e.ID.String(), seq, key, t, b, d.cfg.Clock.Now(), owner)
	if err != nil {
		return err
	}
	if n > 0 {
		d.poke()
	}
	return nil
}

// maxOwners bounds the cache of token owners.
const maxOwners = 100_000

// ownerOf returns the owner of token id, from its history.
func (d *Dispatcher) ownerOf(ctx context.Context, id domain.TokenID) (domain.OwnerID, error) {
	d.mu.Lock()
	o, ok := d.owners[id]
	d.mu.Unlock()
	if ok {
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
	d.mu.Lock()
	if len(d.owners) >= maxOwners {
		clear(d.owners)
	}
	d.owners[id] = tok.Owner()
	d.mu.Unlock()
	return tok.Owner(), nil
}

func (d *Dispatcher) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// send attempts the deliveries due, each endpoint's deliveries of one
// token (or owner) one at a time in stream order, until ctx ends.
func (d *Dispatcher) send(ctx context.Context) {
	sem := make(chan struct{}, d.cfg.Concurrency)
	var mu sync.Mutex
	inflight := map[string]bool{}
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		case <-timer.C:
		}
		heads, err := d.st.heads(ctx, d.cfg.Clock.Now(), 4*d.cfg.Concurrency)
		if err != nil && ctx.Err() == nil {
			d.log.Warn("webhook deliveries: cannot read the deliveries due", "error", err)
		}
		for _, h := range heads {
			pair := h.endpointID + "\x00" + h.orderKey
			mu.Lock()
			busy := inflight[pair]
			if !busy {
				inflight[pair] = true
			}
			mu.Unlock()
			if busy {
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			wg.Go(func() {
				defer func() { <-sem }()
				d.deliver(ctx, h)
				mu.Lock()
				delete(inflight, pair)
				mu.Unlock()
				d.poke()
			})
		}
		timer.Reset(d.cfg.PollInterval)
	}
}

// deliver makes one attempt of delivery h and records it.
func (d *Dispatcher) deliver(ctx context.Context, h head) {
	now := d.cfg.Clock.Now()
	a := attempt{at: now}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(h.body))
	if err != nil {
		a.err = err.Error()
	} else {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "tokenledger-webhooks")
		req.Header.Set(HeaderID, h.eventID)
		req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
		req.Header.Set(HeaderSignature, h.secret.Sign(h.eventID, now, h.body))
		res, err := d.client.Do(req)
		if err != nil {
			a.err = err.Error()
		} else {
			_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, d.cfg.MaxResponseBytes))
			_ = res.Body.Close()
			a.status = res.StatusCode
			a.ok = res.StatusCode >= 200 && res.StatusCode < 300
			if !a.ok {
				a.err = "HTTP " + res.Status
			}
		}
	}
	if ctx.Err() != nil {
		// Stopping: the attempt is not recorded and the delivery stays
		// due, so it is made again after the restart, with the same
		// webhook-id.
		return
	}
	var reason string
	if !a.ok {
		first := h.firstAt
		if first.IsZero() {
			first = now
		}
		if now.Sub(first) >= d.cfg.RetryPeriod {
			reason = fmt.Sprintf("delivery of event %s failed for %s: %s", h.eventID, d.cfg.RetryPeriod, a.err)
			d.log.Warn("webhook endpoint disabled", "endpoint", h.endpointID, "reason", reason)
		} else {
			a.next = now.Add(d.cfg.backoff(h.attempts + 1))
		}
	}
	if err := d.st.record(ctx, h, a, reason); err != nil && ctx.Err() == nil {
		d.log.Warn("webhook deliveries: cannot record an attempt; it will be made again", "delivery", h.id, "error", err)
	}
}

// poisonPublisher keeps what the poison queue middleware publishes in
// the table webhook_poison.
type poisonPublisher struct{ st store }

func (p poisonPublisher) Publish(_ string, msgs ...*message.Message) error {
	for _, m := range msgs {
		if err := p.st.poison(context.Background(), m.UUID, m.Payload, m.Metadata); err != nil {
			return err
		}
	}
	return nil
}

func (poisonPublisher) Close() error { return nil }
