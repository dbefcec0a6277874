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
// wants it, in one statement; the message is acknowledged once they are
// stored. An event that can never be fanned out fails with errPoison and
// goes to the poison table.
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
	if err != nil {
		return err
	}
	if ok {
		if err := d.st.fanOut(m.Context(), []fanRow{row}, nil, d.cfg.Clock.Now()); err != nil {
			return err
		}
	}
	// Every event up to this one is fanned out: the consumer hands out
	// one unacknowledged event at a time.
	d.advanceFanned(seq)
	d.poke()
	return nil
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
