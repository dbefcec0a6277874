package app

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

// decodeChunk is how many messages one decoding task holds: enough to make
// handing it between goroutines cheap, few enough to keep every core busy.
const decodeChunk = 512

// chunk is a run of consecutive messages of the stream and, once decoded,
// their events.
type chunk struct {
	msgs   []jetstream.Msg
	events []domain.Envelope
	err    error
	done   chan struct{}
}

// foldStream applies every lifecycle event from sequence 1 to end to
// state, in stream order, and returns the last sequence applied and the
// number of events. It is eventstore.Read with the decoding spread over
// all cores: decoding is most of a replay's work, and folding must stay in
// order and on one goroutine. One goroutine reads the stream with an
// ordered consumer and cuts it into chunks, GOMAXPROCS goroutines decode
// chunks, and the calling goroutine folds them in order. progress is
// called with the last sequence folded every progressEvery events.
func foldStream(ctx context.Context, store *eventstore.Store, end uint64, state *domain.State, progress func(seq uint64)) (last, n uint64, err error) {
	if end == 0 {
		return 0, 0, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cctx, ccancel := context.WithTimeout(ctx, store.Config().RequestTimeout)
	cons, err := store.Stream().OrderedConsumer(cctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: 30 * time.Second,
	})
	ccancel()
	if err != nil {
		return 0, 0, fmt.Errorf("read the stream: %w", err)
	}
	defer deleteConsumer(store, cons)
	it, err := cons.Messages(jetstream.PullMaxMessages(store.Config().ReadBatch))
	if err != nil {
		return 0, 0, fmt.Errorf("read the stream: %w", err)
	}
	defer it.Stop()
	stopIt := context.AfterFunc(ctx, it.Stop)
	defer stopIt()

	workers := runtime.GOMAXPROCS(0)
	work := make(chan *chunk, 2*workers)
	order := make(chan *chunk, 2*workers)
	readErr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() { readErr <- cutChunks(ctx, it, end, order, work) })
	for range workers {
		wg.Go(func() {
			for c := range work {
				decodeChunkEvents(store, c)
			}
		})
	}
	defer func() {
		cancel()
		wg.Wait()
	}()

	for c := range order {
		select {
		case <-c.done:
		case <-ctx.Done():
			return last, n, fmt.Errorf("read after %d: %w", last, ctx.Err())
		}
		if c.err != nil {
			return last, n, c.err
		}
		for _, e := range c.events {
			state.Apply(e)
			n++
			last = e.Sequence
			if n%progressEvery == 0 {
				progress(last)
			}
		}
	}
	if err := <-readErr; err != nil {
		return last, n, fmt.Errorf("read after %d: %w", last, err)
	}
	if last != end {
		return last, n, fmt.Errorf("read the stream: ended at sequence %d, want %d", last, end)
	}
	return last, n, nil
}

// cutChunks reads messages up to sequence end and hands them out in chunks,
// each first to order (so that they are folded in stream order) and then
// to work (to be decoded). It closes both when it returns.
func cutChunks(ctx context.Context, it jetstream.MessagesContext, end uint64, order, work chan<- *chunk) error {
	defer close(work)
	defer close(order)
	c := &chunk{msgs: make([]jetstream.Msg, 0, decodeChunk), done: make(chan struct{})}
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
		c.msgs = append(c.msgs, msg)
		seq := md.Sequence.Stream
		if seq < end && len(c.msgs) < decodeChunk {
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
		c = &chunk{msgs: make([]jetstream.Msg, 0, decodeChunk), done: make(chan struct{})}
	}
}

// decodeChunkEvents decodes the messages of c, stopping at the first that
// is not a valid event, and marks it done.
func decodeChunkEvents(store *eventstore.Store, c *chunk) {
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
func deleteConsumer(store *eventstore.Store, cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), store.Config().RequestTimeout)
	defer cancel()
	// A consumer that cannot be deleted now is removed by the server after
	// its inactivity threshold.
	_ = store.JetStream().DeleteConsumer(ctx, store.Config().Stream, info.Name)
}
