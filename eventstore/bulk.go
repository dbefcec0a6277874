package eventstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// bulkBatch is how many messages one direct batch get of a bulk read asks
// for: one chunk of the Scanner.
const bulkBatch = 1024

// A full read of the lifecycle stream (replay, export, state at an
// instant) is served by direct batch gets rather than by a consumer:
// several requests of bulkBatch consecutive sequences are in flight at
// once, and the decoders work on one batch while the next arrive. A
// consumer delivers one message at a time, with an acknowledgement state
// and a heartbeat timer per message.
//
// Every message of an answer names its sequence and subject in its
// headers, and the server's end-of-batch answer names the last sequence it
// sent. The lifecycle stream denies deletes and has no limits, so its
// sequences are consecutive: a batch must hold exactly the sequences asked
// for, in order. A batch that does not add up (a message missing or out of
// place, a replica behind the leader, no answer in time) is fetched again
// by the decoder, one page at a time. The subjects are kept so that a full
// read refuses an event stored on another aggregate's subject exactly as
// the live projector and Load do: a rebuild must fold what the projector
// applies, no more.
//
// Asking the server to leave the headers out ("no_hdr") would save the
// client about half of its CPU per message, but a header-less message
// carries no subject, and that check would be lost.

// bulkRead is one bulk read of the lifecycle stream from sequence from
// through sequence through: the requests in flight and the subscription
// their answers arrive on.
type bulkRead struct {
	s       *Store
	nc      *nats.Conn
	subject string // the direct get API subject
	prefix  string // reply subjects are prefix + request number
	window  int
	work    chan<- *chunk
	slots   chan struct{}

	mu      sync.Mutex
	pending []*chunk // by request number modulo window
	next    uint64   // the next request number
	closed  bool     // work is closed: late answers are dropped
}

// directChunks reads the lifecycle stream from sequence from through
// sequence through with direct batch gets, as cutChunks reads it with a
// consumer: each chunk goes to order first, in stream order, and to work
// once its messages arrived, to be decoded. It closes order and work when
// it returns.
func (s *Store) directChunks(ctx context.Context, from, through uint64, window int, order, work chan<- *chunk, free <-chan *chunk) error {
	defer close(work)
	defer close(order)
	b := &bulkRead{
		s:       s,
		nc:      s.js.Conn(),
		subject: s.direct.subject,
		prefix:  s.js.Conn().NewInbox() + ".",
		window:  window,
		work:    work,
		slots:   make(chan struct{}, window),
		pending: make([]*chunk, window),
	}
	sub, err := b.nc.Subscribe(b.prefix+"*", b.receive)
	if err != nil {
		return fmt.Errorf("bulk read subscription: %w", err)
	}
	// The answers of a whole window may wait in the subscription while
	// the decoders are busy.
	_ = sub.SetPendingLimits(-1, -1)
	defer func() {
		_ = sub.Unsubscribe()
		// A handler already running must not hand a chunk to the closed
		// work channel.
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
	}()

	tick := time.NewTicker(b.s.cfg.RequestTimeout / 4)
	defer tick.Stop()
	for next := from; next <= through; {
		select {
		case b.slots <- struct{}{}:
		case <-tick.C:
			b.expire(time.Now().Add(-b.s.cfg.RequestTimeout))
			continue
		case <-ctx.Done():
			return ctx.Err()
		}
		c := newChunk(free)
		c.from, c.count = next, min(bulkBatch, through-next+1)
		next += c.count
		if err := b.request(c); err != nil {
			return fmt.Errorf("bulk read from %d: %w", c.from, err)
		}
		select {
		case order <- c:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// Wait for the last answers before closing work.
	for range window {
		for {
			select {
			case b.slots <- struct{}{}:
			case <-tick.C:
				b.expire(time.Now().Add(-b.s.cfg.RequestTimeout))
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
			break
		}
	}
	return nil
}

// request asks for chunk c's messages.
func (b *bulkRead) request(c *chunk) error {
	b.mu.Lock()
	id := b.next
	b.next++
	slot := int(id % uint64(b.window))
	c.request, c.asked = id, time.Now()
	b.pending[slot] = c
	b.mu.Unlock()
	reply := b.prefix + strconv.FormatUint(id, 36)
	req := fmt.Appendf(nil, `{"seq":%d,"batch":%d}`, c.from, c.count)
	return b.nc.PublishRequest(b.subject, reply, req)
}

// receive is the subscription's handler: it adds a message to its chunk
// and, at the end-of-batch answer, hands the chunk to the decoders.
func (b *bulkRead) receive(m *nats.Msg) {
	i := strings.LastIndexByte(m.Subject, '.')
	id, err := strconv.ParseUint(m.Subject[i+1:], 36, 64)
	if err != nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	slot := int(id % uint64(b.window))
	c := b.pending[slot]
	if b.closed || c == nil || c.request != id {
		// An answer to a request that was given up.
		return
	}
	if len(m.Data) > 0 || m.Header.Get(statusHeader) == "" {
		// A message of the batch: it must be the next sequence asked
		// for, and name its subject.
		seq, ok := parseUint(m.Header.Get(jetstream.SequenceHeader))
		subject := m.Header.Get(jetstream.SubjectHeader)
		if !ok || subject == "" || seq != c.from+uint64(len(c.items)) {
			c.slow = true
		}
		c.items = append(c.items, stored{seq: seq, subject: subject, data: m.Data})
		return
	}
	b.pending[slot] = nil
	last, ok := parseUint(m.Header.Get(lastSequenceHeader))
	n := uint64(len(c.items))
	if m.Header.Get(statusHeader) != "204" || !ok || n != c.count || last != c.from+n-1 {
		c.slow = true
	}
	b.done(c)
}

// expire gives up the requests asked before cutoff: their chunks are
// fetched again by the decoders.
func (b *bulkRead) expire(cutoff time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, c := range b.pending {
		if c != nil && c.asked.Before(cutoff) {
			b.pending[i] = nil
			c.slow = true
			b.done(c)
		}
	}
}

// done hands a chunk whose answer is complete (or given up) to the
// decoders and frees its request's place in the window; b.mu is held.
// Neither channel blocks: work holds more chunks than can exist at once,
// and the request took its place in slots.
func (b *bulkRead) done(c *chunk) {
	if c.slow {
		clear(c.items)
		c.items = c.items[:0]
	}
	b.work <- c
	<-b.slots
}

// lastSequenceHeader names the last sequence of a batch in its
// end-of-batch answer.
const lastSequenceHeader = "Nats-Last-Sequence"

// fillSlow fetches chunk c's range again, page by page, waiting for a
// replica that is behind.
func (s *Store) fillSlow(ctx context.Context, c *chunk) error {
	ctx, cancel := context.WithTimeout(ctx, 4*s.cfg.RequestTimeout)
	defer cancel()
	end := c.from + c.count - 1
	next := c.from
	backoff := time.Millisecond
	for next <= end {
		page, _, err := s.direct.get(ctx, "", next, int(end-next+1))
		if err != nil {
			return fmt.Errorf("read %s from sequence %d: %w", s.cfg.Stream, next, err)
		}
		got := false
		for _, m := range page {
			if m.Sequence < next || m.Sequence > end {
				continue
			}
			c.items = append(c.items, stored{seq: m.Sequence, subject: m.Subject, data: m.Data})
			next, got = m.Sequence+1, true
		}
		if got {
			continue
		}
		if err := wait(ctx, backoff); err != nil {
			return fmt.Errorf("read %s: sequences %d to %d not found: %w", s.cfg.Stream, next, end, err)
		}
		backoff = min(2*backoff, 50*time.Millisecond)
	}
	return nil
}
