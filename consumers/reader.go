package consumers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// attemptTimeout bounds one attempt to write a batch, to read a checkpoint
// or to open a reader.
const attemptTimeout = 30 * time.Second

// readerInactive is how long the server keeps the ordered consumer of a
// reader whose process died before it removes it. The consumer holds no
// state anyone waits for (it acknowledges nothing), so this only bounds
// the litter.
const readerInactive = time.Minute

// reader follows one stream from a start sequence on, in stream order,
// through an ordered consumer of its own (ephemeral, no acknowledgements):
// the client checks that every message of the filter arrives, and after a
// missed heartbeat, a reconnect or a lost server-side consumer it creates
// the consumer again right after the last message it passed on. Nothing is
// passed over and nothing is delivered twice by one reader.
//
// Both workers read through it: their checkpoint in PostgreSQL is the
// truth, so a worker opens a reader at checkpoint+1 when it starts and
// after anything that makes it doubt where it stands, and the server keeps
// no delivery state that could hold a restarted worker back (a durable
// consumer would hold the deliveries of a killed process until its ack
// wait expired).
//
// A goroutine moves the messages from the client's buffer into a channel
// the worker takes batches from; the server sends no more than the two
// hold.
type reader struct {
	it     jetstream.MessagesContext
	msgs   chan jetstream.Msg
	failed chan error // the reason the goroutine stopped, sent once
	stop   chan struct{}
	done   chan struct{}
	err    error // the reason, once received from failed
}

// openReader starts reading the stream named stream from sequence from (at
// least 1) on, holding up to buffer messages ahead of the worker.
//
// The consumer has no subject filter: each stream holds only its own kind
// of event, and a filter would make the server match every next message
// against the subject tree of the stream, where every token has subjects
// of its own — that matching, not PostgreSQL, capped a projector's
// catch-up at about 800 events/s.
func openReader(ctx context.Context, js jetstream.JetStream, stream string, from uint64, buffer int) (*reader, error) {
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       max(from, 1),
		ReplayPolicy:      jetstream.ReplayInstantPolicy,
		InactiveThreshold: readerInactive,
		// A failed re-creation ends the read; the worker then reads the
		// checkpoint and starts again from it, with its own backoff.
		MaxResetAttempts: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("read stream %s from %d: %w", stream, from, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(buffer))
	if err != nil {
		return nil, fmt.Errorf("read stream %s from %d: %w", stream, from, err)
	}
	r := &reader{
		it:     it,
		msgs:   make(chan jetstream.Msg, buffer),
		failed: make(chan error, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go r.pump()
	return r, nil
}

func (r *reader) pump() {
	defer close(r.done)
	for {
		msg, err := r.it.Next()
		if err != nil {
			r.failed <- err
			return
		}
		select {
		case r.msgs <- msg:
		case <-r.stop:
			return
		}
	}
}

// next waits until a message arrives, then takes what follows it, up to
// limit messages in all, for at most linger after the first (with linger
// 0, only what has arrived already). It returns the messages in stream
// order, or, with none, ctx's error or the reason the reader stopped
// (errors.Is nats.ErrConnectionClosed when the connection is closed). A
// reader that failed stays failed: open another.
func (r *reader) next(ctx context.Context, limit int, linger time.Duration) ([]jetstream.Msg, error) {
	if r.err != nil {
		return nil, r.err
	}
	var batch []jetstream.Msg
	select {
	case m := <-r.msgs:
		batch = append(make([]jetstream.Msg, 0, min(limit, cap(r.msgs))), m)
	case err := <-r.failed:
		r.err = readerError(err)
		return nil, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var timeout <-chan time.Time
	if linger > 0 {
		t := time.NewTimer(linger)
		defer t.Stop()
		timeout = t.C
	}
	for len(batch) < limit {
		select {
		case m := <-r.msgs:
			batch = append(batch, m)
			continue
		default:
		}
		if timeout == nil {
			return batch, nil
		}
		select {
		case m := <-r.msgs:
			batch = append(batch, m)
		case <-timeout:
			return batch, nil
		case <-ctx.Done():
			return batch, nil
		case err := <-r.failed:
			// What arrived before the failure is good; the next call
			// reports it.
			r.failed <- err
			return batch, nil
		}
	}
	return batch, nil
}

// close stops the reader and waits for its goroutine. The server removes
// the consumer once it is inactive.
func (r *reader) close() {
	close(r.stop)
	r.it.Stop()
	<-r.done
}

// readerError says why a reader stopped.
func readerError(err error) error {
	if errors.Is(err, jetstream.ErrConnectionClosed) || errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("reader stopped: %w", nats.ErrConnectionClosed)
	}
	return fmt.Errorf("reader stopped: %w", err)
}

// fatal reports a failure a worker does not retry: the connection is
// closed for good, or the stream is missing and a fresh look-up confirms
// it (a server shutting down its JetStream answers "stream not found" for
// a moment too).
func fatal(ctx context.Context, js jetstream.JetStream, stream string, err error) bool {
	if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, jetstream.ErrConnectionClosed) {
		return true
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return false
	}
	lctx, cancel := boundContext(ctx, attemptTimeout)
	defer cancel()
	_, lerr := js.Stream(lctx, stream)
	return errors.Is(lerr, jetstream.ErrStreamNotFound)
}

// backoff is a pause doubling from initial up to max.
type backoff struct {
	initial, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.initial
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	return b.cur
}

func (b *backoff) reset() { b.cur = 0 }

// sleep pauses for d; false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
