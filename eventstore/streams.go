package eventstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StreamKind names one of the store's two streams.
type StreamKind uint8

// The store's streams.
const (
	// Lifecycle is the lifecycle stream: every token and owner event,
	// kept forever (Config.Stream).
	Lifecycle StreamKind = iota + 1
	// Usage is the usage stream: usage batches and token.used events,
	// kept for Config.UsageMaxAge (Config.UsageStream).
	Usage
)

// String returns "lifecycle" or "usage".
func (k StreamKind) String() string {
	switch k {
	case Lifecycle:
		return "lifecycle"
	case Usage:
		return "usage"
	default:
		return fmt.Sprintf("stream kind %d", uint8(k))
	}
}

// streamOfKind returns the handle and name of stream kind k.
func (s *Store) streamOfKind(k StreamKind) (jetstream.Stream, string, error) {
	switch k {
	case Lifecycle:
		return s.stream, s.cfg.Stream, nil
	case Usage:
		return s.usage, s.cfg.UsageStream, nil
	default:
		return nil, "", fmt.Errorf("%s: unknown stream", k)
	}
}

// StreamState is what a stream holds: its first and last sequence and the
// number of messages. An empty stream has Msgs 0 and First = Last+1 (Last
// stays the sequence of the last message ever stored).
type StreamState struct {
	First, Last, Msgs uint64
}

// State returns the state of stream k, as known to the stream leader. A
// stream that does not exist (anymore) fails with an error wrapping
// ErrStreamMissing.
func (s *Store) State(ctx context.Context, k StreamKind) (StreamState, error) {
	stream, name, err := s.streamOfKind(k)
	if err != nil {
		return StreamState{}, err
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	info, err := stream.Info(ctx)
	if err != nil {
		return StreamState{}, fmt.Errorf("stream %s: %w", name, missing(err))
	}
	return StreamState{First: info.State.FirstSeq, Last: info.State.LastSeq, Msgs: info.State.Msgs}, nil
}

// StoredAt returns when stream k stored the message at sequence seq, by
// the stream's own clock; ok is false when the stream does not hold it
// (it aged out of the usage stream, or was never stored).
func (s *Store) StoredAt(ctx context.Context, k StreamKind, seq uint64) (at time.Time, ok bool, err error) {
	stream, name, err := s.streamOfKind(k)
	if err != nil {
		return time.Time{}, false, err
	}
	msg, err := stream.GetMsg(ctx, seq)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return time.Time{}, false, nil
	case err != nil:
		return time.Time{}, false, fmt.Errorf("stream %s sequence %d: %w", name, seq, missing(err))
	}
	return msg.Time, true, nil
}

// Leader returns the name of the server leading stream k ("" when the
// stream is not replicated or has no leader at the moment).
func (s *Store) Leader(ctx context.Context, k StreamKind) (string, error) {
	stream, name, err := s.streamOfKind(k)
	if err != nil {
		return "", err
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return "", fmt.Errorf("stream %s: %w", name, missing(err))
	}
	if info.Cluster == nil {
		return "", nil
	}
	return info.Cluster.Leader, nil
}

// missing wraps ErrStreamMissing into an error saying a stream does not
// exist.
func missing(err error) error {
	if errors.Is(err, jetstream.ErrStreamNotFound) && !errors.Is(err, ErrStreamMissing) {
		return fmt.Errorf("%w: %w", ErrStreamMissing, err)
	}
	return err
}

// Available returns nil once the JetStream service answers on nc (the
// account's JetStream information), and the reason otherwise: what a
// supervisor waits for before it creates the streams.
func Available(ctx context.Context, nc *nats.Conn) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	_, err = js.AccountInfo(ctx)
	return err
}
