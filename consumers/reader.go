package consumers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tokenledger/tokenledger/eventstore"
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
// through an eventstore.Follower (an ordered consumer of its own:
// ephemeral, no acknowledgements). Nothing is passed over and nothing is
// delivered twice by one reader.
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
	f      *eventstore.Follower
	msgs   chan eventstore.Message
	failed chan error // the reason the goroutine stopped, sent once
	stop   chan struct{}
	done   chan struct{}
	err    error // the reason, once received from failed
}

// openReader starts reading stream k of store from sequence from (at
// least 1) on, on conn (nil: the store's connection), holding up to buffer
// messages ahead of the worker. A failed re-creation of the consumer ends
// the read; the worker then reads the checkpoint and starts again from
// it, with its own backoff.
func openReader(ctx context.Context, store *eventstore.Store, conn *nats.Conn, k eventstore.StreamKind, from uint64, buffer int) (*reader, error) {
	f, err := store.Follow(ctx, k, from, eventstore.FollowConfig{Conn: conn, Buffer: buffer, Inactive: readerInactive})
	if err != nil {
		return nil, err
	}
	r := &reader{
		f:      f,
		msgs:   make(chan eventstore.Message, buffer),
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
		msg, err := r.f.Next()
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
func (r *reader) next(ctx context.Context, limit int, linger time.Duration) ([]eventstore.Message, error) {
	if r.err != nil {
		return nil, r.err
	}
	var batch []eventstore.Message
	select {
	case m := <-r.msgs:
		batch = append(make([]eventstore.Message, 0, min(limit, cap(r.msgs))), m)
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
	r.f.Stop()
	<-r.done
}

// readerError says why a reader stopped.
func readerError(err error) error {
	return fmt.Errorf("reader stopped: %w", err)
}

// fatal reports a failure a worker does not retry: the connection is
// closed for good, or stream k is missing and a fresh look-up confirms
// it (a server shutting down its JetStream answers "stream not found" for
// a moment too).
func fatal(ctx context.Context, store *eventstore.Store, k eventstore.StreamKind, err error) bool {
	if errors.Is(err, nats.ErrConnectionClosed) {
		return true
	}
	if !errors.Is(err, eventstore.ErrStreamMissing) {
		return false
	}
	lctx, cancel := boundContext(ctx, attemptTimeout)
	defer cancel()
	_, lerr := store.State(lctx, k)
	return errors.Is(lerr, eventstore.ErrStreamMissing)
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
