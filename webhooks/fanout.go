package webhooks

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/tokenledger/tokenledger/consumers"
	"github.com/tokenledger/tokenledger/domain"
)

// fanOutBatch is the most events one fan-out statement covers. The
// consumer lets twice as many be unacknowledged, so that the next batch
// is already on its way while one is stored.
const fanOutBatch = 512

// maxAckPending is the consumer's limit of unacknowledged events.
const maxAckPending = 2 * fanOutBatch

// ownerLookups is how many token histories the fan-out of one batch
// reads at once to learn owners it does not know yet.
const ownerLookups = 8

// fanOut reads the dispatcher's consumer and turns the events into
// deliveries, a batch at a time (what has arrived, up to fanOutBatch):
// one statement stores the batch's deliveries, then its messages are
// acknowledged. A batch that cannot be stored is tried again, never
// skipped, so the events of one process are fanned out in stream order.
// It returns when ctx ends (nil) or the consumer cannot be read.
func (d *Dispatcher) fanOut(ctx context.Context) error {
	js, err := njs.New(d.nc)
	if err != nil {
		return fmt.Errorf("webhook consumer: %w", err)
	}
	cons, err := js.Consumer(ctx, d.es.Config().Stream, d.cfg.Consumer)
	if err != nil {
		return fmt.Errorf("webhook consumer %s: %w", d.cfg.Consumer, err)
	}
	d.setConsumer(cons)
	d.refreshFanned(ctx)
	ch := make(chan njs.Msg, 2*fanOutBatch)
	cc, err := cons.Consume(func(m njs.Msg) {
		select {
		case ch <- m:
		case <-ctx.Done():
		}
	}, njs.PullMaxMessages(fanOutBatch), njs.ConsumeErrHandler(func(_ njs.ConsumeContext, err error) {
		if ctx.Err() == nil {
			d.log.Debug("webhook consumer", "error", err)
		}
	}))
	if err != nil {
		return fmt.Errorf("webhook consumer %s: %w", d.cfg.Consumer, err)
	}
	defer cc.Stop()
	for {
		var batch []njs.Msg
		select {
		case <-ctx.Done():
			return nil
		case m := <-ch:
			batch = append(batch, m)
		}
	drain:
		for len(batch) < fanOutBatch {
			select {
			case m := <-ch:
				batch = append(batch, m)
			default:
				break drain
			}
		}
		if !d.storeBatch(ctx, batch) {
			return nil
		}
		// The messages are acknowledged only now that their deliveries
		// are stored: a crash before makes the server deliver them again
		// (after Config.AckWait), and the insert skips what it stored.
		for _, m := range batch[:len(batch)-1] {
			_ = m.Ack()
		}
		// The last one waits for the server: acknowledgements are handled
		// in order, so the consumer's acknowledgement floor has passed the
		// batch when it answers.
		if err := batch[len(batch)-1].DoubleAck(ctx); err != nil && ctx.Err() == nil {
			d.log.Debug("webhook consumer: acknowledgement not confirmed", "error", err)
		}
		d.refreshFanned(ctx)
		d.poke()
	}
}

// storeBatch stores the deliveries of batch, trying again with growing
// pauses until it succeeds (true) or ctx ends (false).
func (d *Dispatcher) storeBatch(ctx context.Context, batch []njs.Msg) bool {
	pause := 100 * time.Millisecond
	for {
		err := d.fanOutBatch(ctx, batch)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		d.log.Warn("webhook fan-out: cannot store deliveries; trying again", "events", len(batch), "error", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(pause):
		}
		pause = min(2*pause, 5*time.Second)
	}
}

// fanRow is one event to fan out: the deliveries of every endpoint that
// wants it.
type fanRow struct {
	eventID  string
	seq      uint64
	orderKey string
	typ      EventType
	body     []byte
	owner    domain.OwnerID
}

// poisonRow is a message that can never be fanned out, kept in
// webhook_poison instead.
type poisonRow struct {
	msgID    string
	payload  []byte
	metadata map[string]string
}

// pending is an event of a batch while its owner is looked up.
type pending struct {
	msg   njs.Msg
	env   domain.Envelope
	typ   EventType
	token domain.TokenID
}

// fanOutBatch stores the deliveries of a batch of lifecycle messages in
// one statement (with the unreadable ones in the poison table, in the
// same transaction).
func (d *Dispatcher) fanOutBatch(ctx context.Context, batch []njs.Msg) error {
	var poison []poisonRow
	toPoison := func(m njs.Msg, err error) {
		wm, _ := consumers.Unmarshaler{}.Unmarshal(m)
		md := map[string]string(wm.Metadata)
		md["reason"] = err.Error()
		poison = append(poison, poisonRow{msgID: wm.UUID, payload: m.Data(), metadata: md})
	}
	var events []pending
	unknown := map[domain.TokenID]bool{}
	for _, m := range batch {
		meta, err := m.Metadata()
		if err != nil {
			toPoison(m, fmt.Errorf("%w: %w", errPoison, err))
			continue
		}
		e, err := d.es.Registry().Unmarshal(m.Data())
		if err != nil {
			toPoison(m, fmt.Errorf("%w: sequence %d: %w", errPoison, meta.Sequence.Stream, err))
			continue
		}
		e.Sequence = meta.Sequence.Stream
		t, ok := typeOf(e)
		if !ok {
			continue
		}
		p := pending{msg: m, env: e, typ: t}
		if id, ok := e.TokenID(); ok {
			p.token = id
			if issued, ok := e.Data.(domain.TokenIssued); ok {
				d.rememberOwner(id, issued.Owner)
			} else if _, ok := d.knownOwner(id); !ok {
				unknown[id] = true
			}
		}
		events = append(events, p)
	}
	bad, err := d.lookUpOwners(ctx, unknown)
	if err != nil {
		return err
	}
	rows := make([]fanRow, 0, len(events))
	for _, p := range events {
		e := p.env
		var owner domain.OwnerID
		var key string
		if !p.token.IsZero() {
			key = "token:" + p.token.String()
			if err, ok := bad[p.token]; ok {
				toPoison(p.msg, err)
				continue
			}
			owner, _ = d.knownOwner(p.token)
		} else {
			owner = domain.OwnerID(e.AggregateID)
			key = "owner:" + e.AggregateID
		}
		b, err := body(d.es.Registry(), e, p.typ, owner)
		if err != nil {
			return fmt.Errorf("delivery body of sequence %d: %w", e.Sequence, err)
		}
		rows = append(rows, fanRow{eventID: e.ID.String(), seq: e.Sequence, orderKey: key, typ: p.typ, body: b, owner: owner})
	}
	if len(rows) == 0 && len(poison) == 0 {
		return nil
	}
	return d.st.fanOut(ctx, rows, poison, d.cfg.Clock.Now())
}

// lookUpOwners reads the owners of the given tokens from their histories,
// a few at a time. A token whose history names no owner is returned in
// bad (its events go to the poison table); any other failure is returned.
func (d *Dispatcher) lookUpOwners(ctx context.Context, ids map[domain.TokenID]bool) (bad map[domain.TokenID]error, err error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var mu sync.Mutex
	var errs []error
	bad = map[domain.TokenID]error{}
	sem := make(chan struct{}, ownerLookups)
	var wg sync.WaitGroup
	for id := range ids {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_, err := d.ownerOf(ctx, id)
			if err == nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if errors.Is(err, errPoison) {
				bad[id] = err
			} else {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	return bad, errors.Join(errs...)
}

// refreshFanned reads how far the fan-out has come: the consumer's
// acknowledgement floor, below which every event is fanned out. Only
// deliveries of events up to it are sent, so that an event redelivered
// after a crash (fanned out late) still goes before its token's later
// events.
func (d *Dispatcher) refreshFanned(ctx context.Context) {
	d.mu.Lock()
	cons := d.cons
	d.mu.Unlock()
	if cons == nil {
		return
	}
	info, err := cons.Info(ctx)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Debug("webhook consumer: cannot read its acknowledgement floor", "error", err)
		}
		return
	}
	if floor := info.AckFloor.Stream; floor > d.fanned.Load() {
		d.fanned.Store(floor)
	}
}

func (d *Dispatcher) setConsumer(c njs.Consumer) {
	d.mu.Lock()
	d.cons = c
	d.mu.Unlock()
}
