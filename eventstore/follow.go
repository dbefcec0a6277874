package eventstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// FollowConfig is how a Follower reads.
type FollowConfig struct {
	// Conn is the connection to read on; nil reads on the store's.
	Conn *nats.Conn
	// Buffer is how many messages the server may send ahead of Next.
	Buffer int
	// Inactive is how long the server keeps the follower's consumer
	// after its process died.
	Inactive time.Duration
	// Remove deletes the consumer when the follower stops, rather than
	// leaving it to the server's inactivity cleanup.
	Remove bool
}

// Follower reads one stream live, in stream order, from a start sequence
// on, and goes on with what is appended: the tail of a validator and the
// workers' readers. It reads through an ordered consumer of its own
// (ephemeral, without acknowledgements, nothing remembered by the server):
// the client checks that every message arrives, and after a missed
// heartbeat, a reconnect or a lost server-side consumer it creates the
// consumer again right after the last message it passed on, once; a
// failing re-creation ends the read with an error, and the caller opens a
// new Follower from where it stands. Nothing is passed over and nothing is
// delivered twice by one Follower.
//
// The consumer has no subject filter: each stream holds only its own kind
// of event, and a filter would make the server match every message against
// the stream's subject tree, where every token has subjects of its own —
// that matching, not PostgreSQL, once capped a projector's catch-up at
// about 800 events/s.
//
// Next is called by one goroutine; Stop may be called from any.
type Follower struct {
	s      *Store
	js     jetstream.JetStream
	name   string
	cons   jetstream.Consumer
	it     jetstream.MessagesContext
	remove bool
	stop   sync.Once
}

// Follow starts reading stream k from sequence from (at least 1) on. A
// stream that does not exist fails with an error wrapping
// ErrStreamMissing.
func (s *Store) Follow(ctx context.Context, k StreamKind, from uint64, cfg FollowConfig) (*Follower, error) {
	_, name, err := s.streamOfKind(k)
	if err != nil {
		return nil, err
	}
	js := s.js
	if cfg.Conn != nil {
		if js, err = jetstream.New(cfg.Conn); err != nil {
			return nil, fmt.Errorf("follow %s: %w", name, err)
		}
	}
	cons, err := js.OrderedConsumer(ctx, name, jetstream.OrderedConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       max(from, 1),
		ReplayPolicy:      jetstream.ReplayInstantPolicy,
		InactiveThreshold: cfg.Inactive,
		MaxResetAttempts:  1,
	})
	if err != nil {
		return nil, fmt.Errorf("follow %s from %d: %w", name, from, followError(err))
	}
	f := &Follower{s: s, js: js, name: name, cons: cons, remove: cfg.Remove}
	var opts []jetstream.PullMessagesOpt
	if cfg.Buffer > 0 {
		opts = append(opts, jetstream.PullMaxMessages(cfg.Buffer))
	}
	if f.it, err = cons.Messages(opts...); err != nil {
		f.deleteConsumer()
		return nil, fmt.Errorf("follow %s from %d: %w", name, from, followError(err))
	}
	return f, nil
}

// Message is a message a Follower read: a stored event, decoded with
// Store.Decode.
type Message struct{ m jetstream.Msg }

// Subject returns the subject the message is stored on, "" for the zero
// Message.
func (m Message) Subject() string {
	if m.m == nil {
		return ""
	}
	return m.m.Subject()
}

// EventID returns the message's Nats-Msg-Id: the id of the event it holds.
func (m Message) EventID() string { return m.m.Headers().Get(jetstream.MsgIDHeader) }

// Sequence returns the message's stream sequence, 0 when it carries none.
func (m Message) Sequence() uint64 {
	if seq, _, ok := parseAckReply(m.m.Reply()); ok {
		return seq
	}
	if md, err := m.m.Metadata(); err == nil {
		return md.Sequence.Stream
	}
	return 0
}

// Next waits for the next message and returns it. After Stop, or when
// reading failed, it returns an error: errors.Is ErrStopped after Stop,
// nats.ErrConnectionClosed once the connection is closed, ErrStreamMissing
// when the stream is gone.
func (f *Follower) Next() (Message, error) {
	msg, err := f.it.Next()
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			err = ErrStopped
		}
		return Message{}, fmt.Errorf("follow %s: %w", f.name, followError(err))
	}
	return Message{msg}, nil
}

// followError makes the errors a caller acts on match nats.ErrConnectionClosed
// (the connection is closed for good) and ErrStreamMissing.
func followError(err error) error {
	if errors.Is(err, jetstream.ErrConnectionClosed) && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("%w: %w", nats.ErrConnectionClosed, err)
	}
	return missing(err)
}

// ErrStopped is the error of Follower.Next once the follower was stopped.
var ErrStopped = errors.New("follower stopped")

// Stop ends the read: a Next waiting returns ErrStopped. With
// FollowConfig.Remove it deletes the consumer, if the connection is up.
// Calls after the first do nothing.
func (f *Follower) Stop() {
	f.stop.Do(func() {
		f.it.Stop()
		if f.remove {
			f.deleteConsumer()
		}
	})
}

// deleteConsumer removes the follower's consumer right away.
func (f *Follower) deleteConsumer() {
	info := f.cons.CachedInfo()
	if info == nil || f.js.Conn().Status() != nats.CONNECTED {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = f.js.DeleteConsumer(ctx, f.name, info.Name)
}
