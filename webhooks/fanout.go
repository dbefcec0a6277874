package webhooks

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore/subscriber"
)

// fanOut turns one lifecycle event into deliveries, one per endpoint that
// wants it; the message is acknowledged once they are stored. The router
// runs fanOutHandlers of it at once, and the rows of the events they hold
// meanwhile are stored together, in one statement (committer). An event
// that can never be fanned out fails with errPoison and goes to the poison
// table.
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
	row, ok, err := d.fanRowOf(m.Context(), e)
	if err != nil || !ok {
		return err
	}
	return d.commits.store(m.Context(), row)
}

// Fan-out parallelism: how many events the router's handlers hold at
// once, and so how many unacknowledged events the consumer hands out.
// Their order does not matter for delivery: only deliveries of events up
// to the consumer's acknowledgement floor are sent (refreshFanned), so a
// token's events still go in stream order.
const (
	fanOutHandlers = 32
	maxAckPending  = 4 * fanOutHandlers
)

// committer stores the fan-out rows handed to it by concurrent handlers,
// all that arrived while the previous statement ran in one statement
// (a group commit), and tells each handler how its statement ended.
type committer struct {
	st     store
	now    func() time.Time
	queue  chan commitReq
	stored func(uint64) // after a statement, the highest sequence it stored
}

type commitReq struct {
	row  fanRow
	done chan error
}

// store hands row to the committer and waits until it is stored.
func (c *committer) store(ctx context.Context, row fanRow) error {
	req := commitReq{row: row, done: make(chan error, 1)}
	select {
	case c.queue <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run stores what is queued, a statement at a time, until ctx ends.
func (c *committer) run(ctx context.Context) {
	for {
		var req commitReq
		select {
		case <-ctx.Done():
			return
		case req = <-c.queue:
		}
		batch := []commitReq{req}
	drain:
		for len(batch) < fanOutBatch {
			select {
			case r := <-c.queue:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		rows := make([]fanRow, len(batch))
		var top uint64
		for i, r := range batch {
			rows[i] = r.row
			top = max(top, r.row.seq)
		}
		err := c.st.fanOut(ctx, rows, nil, c.now())
		for _, r := range batch {
			r.done <- err
		}
		if err == nil {
			c.stored(top)
		}
	}
}

// fanOutBatch is the most rows one statement stores.
const fanOutBatch = 512

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

// fanRowOf returns the fan-out of event e; ok is false for an event no
// endpoint can subscribe to.
func (d *Dispatcher) fanRowOf(ctx context.Context, e domain.Envelope) (row fanRow, ok bool, err error) {
	t, ok := typeOf(e)
	if !ok {
		return fanRow{}, false, nil
	}
	var owner domain.OwnerID
	var key string
	if id, ok := e.TokenID(); ok {
		key = "token:" + id.String()
		if issued, ok := e.Data.(domain.TokenIssued); ok {
			owner = issued.Owner
			d.rememberOwner(id, owner)
		} else if owner, err = d.ownerOf(ctx, id); err != nil {
			return fanRow{}, false, err
		}
	} else {
		owner = domain.OwnerID(e.AggregateID)
		key = "owner:" + e.AggregateID
	}
	b, err := body(d.es.Registry(), e, t, owner)
	if err != nil {
		return fanRow{}, false, fmt.Errorf("%w: sequence %d: %w", errPoison, e.Sequence, err)
	}
	return fanRow{eventID: e.ID.String(), seq: e.Sequence, orderKey: key, typ: t, body: b, owner: owner}, true, nil
}

// poisonPublisher keeps what the poison queue middleware publishes in
// the table webhook_poison.
type poisonPublisher struct{ st store }

// Publish implements message.Publisher.
func (p poisonPublisher) Publish(_ string, msgs ...*message.Message) error {
	rows := make([]poisonRow, 0, len(msgs))
	for _, m := range msgs {
		rows = append(rows, poisonRow{msgID: m.UUID, payload: m.Payload, metadata: m.Metadata})
	}
	return p.st.fanOut(context.Background(), nil, rows, time.Now())
}

// Close implements message.Publisher.
func (poisonPublisher) Close() error { return nil }

// followFloor advances the fan-out's progress to the consumer's
// acknowledgement floor (every event up to it is fanned out) whenever rows
// were stored beyond it, and wakes the sender when it moved. The handlers
// acknowledge after their rows are stored, so the floor is read a moment
// later.
func (d *Dispatcher) followFloor(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.storedBeyond:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(floorDelay):
		}
		before := d.fanned.Load()
		d.refreshFanned(ctx)
		if d.fanned.Load() > before {
			d.poke()
		}
		if d.committed.Load() > d.fanned.Load() {
			d.noteStored(0) // not there yet: look again
		}
	}
}

// floorDelay is how long after a statement the floor is read: about the
// time the handlers' acknowledgements take to reach the server.
const floorDelay = 5 * time.Millisecond

// noteStored records that rows up to seq are stored and asks followFloor
// to look at the floor.
func (d *Dispatcher) noteStored(seq uint64) {
	for {
		cur := d.committed.Load()
		if seq <= cur || d.committed.CompareAndSwap(cur, seq) {
			break
		}
	}
	select {
	case d.storedBeyond <- struct{}{}:
	default:
	}
}

// refreshFanned advances the fan-out's progress to the consumer's
// acknowledgement floor (every event up to it is fanned out), for a
// dispatcher whose fan-out runs in another process or has not seen an
// event since it started.
func (d *Dispatcher) refreshFanned(ctx context.Context) {
	state, err := d.es.Durable(ctx, d.cfg.Consumer)
	if err != nil {
		return // no consumer yet, or not readable now: the next look tries again
	}
	d.advanceFanned(state.AckFloor)
}
