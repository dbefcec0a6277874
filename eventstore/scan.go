package eventstore

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tokenledger/tokenledger/domain"
)

// scanChunk is how many messages one decoding task holds: enough to make
// handing it between goroutines cheap, few enough to keep every core busy
// and memory small.
const scanChunk = 512

// A chunk's slices are used again once Next has moved past it, rather than
// left to the garbage collector: a chunk's events are 70-odd kB, as much
// garbage per event as decoding makes.

// chunk is a run of consecutive messages of a stream and, once decoded,
// their events.
type chunk struct {
	items  []stored
	events []domain.Envelope
	err    error
	done   chan struct{}

	// A chunk of a bulk read (see bulkRead) is the count messages from
	// sequence from, asked for by request number request at asked. When
	// its answer did not add up, slow is set and the decoder fetches it
	// again.
	from, count uint64
	request     uint64
	asked       time.Time
	slow        bool
}

// stored is a message as read: its sequence and subject, when known, and
// its body.
type stored struct {
	seq     uint64
	subject string
	data    []byte
}

// Scanner reads one stream in order, from its first message through a
// given sequence, decoding on every core: one goroutine reads the stream
// in chunks (the lifecycle stream with direct batch gets, several in
// flight, see bulkRead; the usage stream with an ordered consumer),
// GOMAXPROCS goroutines
// decode them, and Next hands the events out in stream order. Decoding is
// most of the work of reading a whole stream (replay, export), which is
// why it is spread. What a Scanner holds is bounded: a few chunks per core,
// whatever the stream's length. A Scanner is used by one goroutine; Close
// it when done.
type Scanner struct {
	name    string
	order   chan *chunk
	free    chan *chunk
	readErr chan error
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	cur     *chunk
	i       int
	done    bool
	scanned uint64
}

// Scan starts a Scanner of stream k through sequence through (0:
// nothing). Events that aged out of the usage stream are absent.
func (s *Store) Scan(ctx context.Context, k StreamKind, through uint64) (*Scanner, error) {
	stream, name, err := s.streamOfKind(k)
	if err != nil {
		return nil, err
	}
	return s.scan(ctx, stream, name, 1, through)
}

// scan starts a Scanner of stream (named name) from sequence from (at
// least 1) through sequence through. The lifecycle stream is read with
// direct batch gets (see bulkRead), the usage stream, whose oldest events
// age out while it is read, with an ordered consumer.
func (s *Store) scan(ctx context.Context, stream jetstream.Stream, name string, from, through uint64) (*Scanner, error) {
	sc := &Scanner{name: name}
	if through == 0 || from > through {
		sc.done = true
		return sc, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	sc.cancel = cancel
	workers := runtime.GOMAXPROCS(0)
	sc.order = make(chan *chunk, 2*workers)
	// work holds every chunk that can exist at once (see
	// bulkRead.done): those in order, the one Next holds, the one being
	// cut.
	work := make(chan *chunk, cap(sc.order)+bulkWindow+2)
	sc.free = make(chan *chunk, 2*workers+2)
	sc.readErr = make(chan error, 1)
	if stream == s.stream {
		sc.wg.Go(func() {
			sc.readErr <- s.directChunks(ctx, from, through, bulkWindow, sc.order, work, sc.free)
		})
	} else if err := s.consumeChunks(ctx, sc, stream, name, from, through, work); err != nil {
		cancel()
		return nil, err
	}
	for range workers {
		sc.wg.Go(func() {
			for c := range work {
				s.decodeChunk(ctx, name, c)
			}
		})
	}
	return sc, nil
}

// bulkWindow is how many direct batch gets of a bulk read are in flight
// at once.
const bulkWindow = 4

// consumeChunks starts reading stream (named name) from sequence from
// through sequence through with an ordered consumer, cutting it into
// chunks for sc (see cutChunks).
func (s *Store) consumeChunks(ctx context.Context, sc *Scanner, stream jetstream.Stream, name string, from, through uint64, work chan *chunk) error {
	cctx, ccancel := s.withTimeout(ctx)
	cfg := jetstream.OrderedConsumerConfig{
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: 30 * time.Second,
	}
	if from > 1 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from
	}
	cons, err := stream.OrderedConsumer(cctx, cfg)
	ccancel()
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(s.cfg.ReadBatch))
	if err != nil {
		s.deleteConsumer(name, cons)
		return fmt.Errorf("read %s: %w", name, err)
	}
	stopIt := context.AfterFunc(ctx, it.Stop)
	sc.wg.Go(func() {
		defer s.deleteConsumer(name, cons)
		defer stopIt()
		defer it.Stop()
		sc.readErr <- cutChunks(ctx, it, through, sc.order, work, sc.free)
	})
	return nil
}

// Next returns the next event, or nil after the last. The event is valid
// until the next call. A message that is not a valid event ends the scan
// with a *DecodeError, returned once the events before it were.
func (sc *Scanner) Next(ctx context.Context) (*domain.Envelope, error) {
	for !sc.done {
		if sc.cur != nil && sc.i < len(sc.cur.events) {
			e := &sc.cur.events[sc.i]
			sc.i++
			sc.scanned++
			return e, nil
		}
		if sc.cur != nil && sc.cur.err != nil {
			// The events decoded before the invalid message were handed
			// out first.
			return nil, sc.cur.err
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
				return nil, fmt.Errorf("read %s after %d events: %w", sc.name, sc.scanned, err)
			}
			break
		}
		select {
		case <-c.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		sc.recycle()
		sc.cur, sc.i = c, 0
	}
	return nil, nil
}

// recycle hands the chunk Next has moved past back to the reader. Its
// events are no longer valid (Next's contract), so it is cleared: it must
// not keep what they point to alive.
func (sc *Scanner) recycle() {
	c := sc.cur
	if c == nil {
		return
	}
	sc.cur = nil
	clear(c.events)
	c.events = c.events[:0]
	select {
	case sc.free <- c:
	default:
	}
}

// Scanned returns the number of events Next handed out.
func (sc *Scanner) Scanned() uint64 { return sc.scanned }

// Close stops the reading and waits for its goroutines.
func (sc *Scanner) Close() {
	if sc.cancel != nil {
		sc.cancel()
		sc.wg.Wait()
	}
}

// cutChunks reads messages through sequence end and hands them out in
// chunks, each first to order (so that they are used in stream order) and
// then to work (to be decoded). It closes both when it returns. It takes
// chunks from free when there are any.
func cutChunks(ctx context.Context, it jetstream.MessagesContext, end uint64, order, work chan<- *chunk, free <-chan *chunk) error {
	defer close(work)
	defer close(order)
	c := newChunk(free)
	for {
		msg, err := it.Next()
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
			return err
		}
		seq, _, pending, ok := parseAckReplyPending(msg.Reply())
		if !ok {
			md, err := msg.Metadata()
			if err != nil {
				return err
			}
			seq, pending = md.Sequence.Stream, md.NumPending
		}
		if seq <= end {
			c.items = append(c.items, stored{seq: seq, subject: msg.Subject(), data: msg.Data()})
		}
		// Nothing pending after this message means the stream holds
		// nothing more: messages up to end aged out meanwhile.
		last := seq >= end || pending == 0
		if !last && len(c.items) < scanChunk {
			continue
		}
		for _, ch := range []chan<- *chunk{order, work} {
			select {
			case ch <- c:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if last {
			return nil
		}
		c = newChunk(free)
	}
}

// newChunk returns an empty chunk, one from free if there is one.
func newChunk(free <-chan *chunk) *chunk {
	select {
	case c := <-free:
		c.items, c.err, c.done, c.slow = c.items[:0], nil, make(chan struct{}), false
		return c
	default:
		return &chunk{items: make([]stored, 0, max(scanChunk, bulkBatch)), done: make(chan struct{})}
	}
}

// decodeChunk decodes the messages of c, of stream name, stopping at the
// first that is not a valid event, and marks it done. A chunk of a bulk
// read is first fetched again with headers if its answer did not add up.
func (s *Store) decodeChunk(ctx context.Context, name string, c *chunk) {
	defer close(c.done)
	if c.slow {
		if c.err = s.fillSlow(ctx, c); c.err != nil {
			return
		}
	}
	if cap(c.events) < len(c.items) {
		c.events = make([]domain.Envelope, 0, len(c.items))
	}
	c.events = c.events[:0]
	for i, it := range c.items {
		seq := it.seq
		if seq == 0 {
			seq = c.from + uint64(i)
		}
		e, err := s.decode(name, it.subject, seq, it.data)
		if err != nil {
			c.err = s.nameSubject(ctx, err)
			return
		}
		c.events = append(c.events, e)
	}
	clear(c.items)
	c.items = c.items[:0]
}
