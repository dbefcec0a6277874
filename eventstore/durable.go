package eventstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrConsumerMissing is the error of Durable for a durable consumer that
// does not exist.
var ErrConsumerMissing = errors.New("consumer does not exist")

// DurableConfig is a durable consumer of the lifecycle stream, for work
// that is per message and must be acknowledged (delivering events
// elsewhere), read with package eventstore/subscriber.
type DurableConfig struct {
	// Description says what the consumer is for.
	Description string
	// AckWait is how long a delivered message may stay unacknowledged
	// before the server delivers it again.
	AckWait time.Duration
	// MaxAckPending is how many messages may be unacknowledged at once;
	// 1 delivers them strictly in stream order.
	MaxAckPending int
	// From is the stream sequence the consumer starts at; 0 starts with
	// the events appended after it is created.
	From uint64
}

// DurableState is what the server knows of a durable consumer.
type DurableState struct {
	// AckFloor is the stream sequence below which (inclusive) every
	// message is acknowledged.
	AckFloor uint64
}

// EnsureDurable creates the durable consumer name of the lifecycle stream,
// over every lifecycle subject, with cfg, unless it exists already: an
// existing consumer is left as it is.
func (s *Store) EnsureDurable(ctx context.Context, name string, cfg DurableConfig) error {
	if _, err := s.Durable(ctx, name); err == nil {
		return nil
	} else if !errors.Is(err, ErrConsumerMissing) {
		return err
	}
	cc := jetstream.ConsumerConfig{
		Durable:        name,
		Description:    cfg.Description,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        cfg.AckWait,
		MaxAckPending:  cfg.MaxAckPending,
		DeliverPolicy:  jetstream.DeliverNewPolicy,
		FilterSubjects: s.subj.Lifecycle(),
	}
	if cfg.From > 0 {
		cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, cfg.From
	}
	_, err := s.stream.CreateConsumer(ctx, cc)
	if err != nil && !errors.Is(err, jetstream.ErrConsumerExists) {
		return fmt.Errorf("create consumer %s: %w", name, err)
	}
	return nil
}

// Durable returns the state of the durable consumer name of the lifecycle
// stream, or an error wrapping ErrConsumerMissing when there is none.
func (s *Store) Durable(ctx context.Context, name string) (DurableState, error) {
	c, err := s.stream.Consumer(ctx, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return DurableState{}, fmt.Errorf("consumer %s: %w", name, ErrConsumerMissing)
	}
	if err != nil {
		return DurableState{}, fmt.Errorf("consumer %s: %w", name, err)
	}
	info := c.CachedInfo()
	return DurableState{AckFloor: info.AckFloor.Stream}, nil
}
