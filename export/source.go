package export

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
)

// chunkSize is how many messages one decoding task holds: enough to
// make handing it between goroutines cheap, few enough to keep every core
// busy and memory small.
const chunkSize = 512

// chunk is a run of consecutive messages of a stream and, once decoded,
// their events.
type chunk struct {
	msgs   []jetstream.Msg
	events []domain.Envelope
	err    error
	done   chan struct{}
}

// scan reads one stream in order, from its first message through a given
// sequence, with an ordered consumer, decoding on every core. What it
// holds is bounded: a few chunks per core, whatever the stream's length.
type scan struct {
	stream  Stream
	through uint64
	order   chan *chunk
	readErr chan error
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	cur     *chunk
	i       int
	done    bool
	// scanned counts the events handed out.
	scanned uint64
}

// streamEnd returns the stream's last sequence and the number of messages
// it holds (the usage stream ages out, and may hold none).
func streamEnd(ctx context.Context, store *eventstore.Store, s jetstream.Stream) (last, msgs uint64, err error) {
	ctx, cancel := context.WithTimeout(ctx, store.Config().RequestTimeout)
	defer cancel()
	info, err := s.Info(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("stream info: %w", err)
	}
	return info.State.LastSeq, info.State.Msgs, nil
}

// startScan starts reading stream s (named kind) through sequence
// through. Call close when done.
func startScan(ctx context.Context, store *eventstore.Store, s jetstream.Stream, kind Stream, through uint64) (*scan, error) {
	sc := &scan{stream: kind, through: through}
	if through == 0 {
		sc.done = true
		return sc, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	sc.cancel = cancel
	cctx, ccancel := context.WithTimeout(ctx, store.Config().RequestTimeout)
	cons, err := s.OrderedConsumer(cctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: 30 * time.Second,
	})
	ccancel()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("read the %s stream: %w", kind, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(store.Config().ReadBatch))
	if err != nil {
		cancel()
		deleteConsumer(store, s, cons)
		return nil, fmt.Errorf("read the %s stream: %w", kind, err)
	}
	workers := runtime.GOMAXPROCS(0)
	work := make(chan *chunk, 2*workers)
	sc.order = make(chan *chunk, 2*workers)
	sc.readErr = make(chan error, 1)
	stopIt := context.AfterFunc(ctx, it.Stop)
	sc.wg.Go(func() {
		defer deleteConsumer(store, s, cons)
		defer stopIt()
		defer it.Stop()
		sc.readErr <- cutChunks(ctx, it, through, sc.order, work)
	})
	for range workers {
		sc.wg.Go(func() {
			for c := range work {
				decodeEvents(store, c)
			}
		})
	}
	return sc, nil
}

// next returns the next event, or nil after the last. The event is valid
// until the next call.
func (sc *scan) next(ctx context.Context) (*domain.Envelope, error) {
	for !sc.done {
		if sc.cur != nil && sc.i < len(sc.cur.events) {
			e := &sc.cur.events[sc.i]
			sc.i++
			sc.scanned++
			return e, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var c *chunk
		var ok bool
		select {
		case c, ok = <-sc.order:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if !ok {
			sc.done = true
			if err := <-sc.readErr; err != nil {
				return nil, fmt.Errorf("read the %s stream after %d events: %w", sc.stream, sc.scanned, err)
			}
			break
		}
		select {
		case <-c.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if c.err != nil {
			return nil, c.err
		}
		sc.cur, sc.i = c, 0
	}
	return nil, nil
}

// close stops the reading and waits for its goroutines.
func (sc *scan) close() {
	if sc.cancel != nil {
		sc.cancel()
		sc.wg.Wait()
	}
}

// cutChunks reads messages through sequence end and hands them out in
// chunks, each first to order (so that they are used in stream order)
// and then to work (to be decoded). It closes both when it returns.
func cutChunks(ctx context.Context, it jetstream.MessagesContext, end uint64, order, work chan<- *chunk) error {
	defer close(work)
	defer close(order)
	c := &chunk{msgs: make([]jetstream.Msg, 0, chunkSize), done: make(chan struct{})}
	for {
		msg, err := it.Next()
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
			return err
		}
		md, err := msg.Metadata()
		if err != nil {
			return err
		}
		seq := md.Sequence.Stream
		if seq <= end {
			c.msgs = append(c.msgs, msg)
		}
		if seq < end && len(c.msgs) < chunkSize {
			continue
		}
		for _, ch := range []chan<- *chunk{order, work} {
			select {
			case ch <- c:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if seq >= end {
			return nil
		}
		c = &chunk{msgs: make([]jetstream.Msg, 0, chunkSize), done: make(chan struct{})}
	}
}

// decodeEvents decodes the messages of c, stopping at the first that is
// not a valid event, and marks it done.
func decodeEvents(store *eventstore.Store, c *chunk) {
	defer close(c.done)
	c.events = make([]domain.Envelope, 0, len(c.msgs))
	for _, msg := range c.msgs {
		e, err := store.Decode(msg)
		if err != nil {
			c.err = err
			return
		}
		c.events = append(c.events, e)
	}
	c.msgs = nil
}

// deleteConsumer removes a read's ordered consumer at once instead of
// leaving it to the server's inactivity clean-up.
func deleteConsumer(store *eventstore.Store, s jetstream.Stream, cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), store.Config().RequestTimeout)
	defer cancel()
	// A consumer that cannot be deleted now is removed by the server
	// after its inactivity threshold.
	_ = s.DeleteConsumer(ctx, info.Name)
}
