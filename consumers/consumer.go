package consumers

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"
)

// consumerConfig is the durable consumer the projector reads the lifecycle
// stream through: explicit acks, one event in flight at a time so that
// events are applied in stream order, never given up on (MaxDeliver -1:
// an event is redelivered until it is applied), never removed for
// inactivity. A new consumer starts right after checkpoint.
func (p *LifecycleProjector) consumerConfig(checkpoint uint64) jetstream.ConsumerConfig {
	cfg := jetstream.ConsumerConfig{
		Durable:        p.cfg.Name,
		Description:    "tokenledger lifecycle projector " + p.cfg.Name,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        p.cfg.AckWait,
		MaxDeliver:     -1,
		FilterSubjects: p.store.Subjects().Lifecycle(),
		ReplayPolicy:   jetstream.ReplayInstantPolicy,
		MaxAckPending:  1,
	}
	if checkpoint > 0 {
		// Starting after the checkpoint spares re-reading (and skipping)
		// every event the projection already holds.
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = checkpoint + 1
	}
	return cfg
}

// ensureConsumer creates the durable consumer, or brings an existing one in
// line with the configuration, and returns its name.
//
// The checkpoint in PostgreSQL is the truth; the consumer's position only
// saves work. A consumer whose acknowledged floor is past the checkpoint
// (the read model was restored from a backup, or recreated empty, while
// the consumer lived on) would never deliver the events in between, so it
// is deleted and created again right after the checkpoint.
func (p *LifecycleProjector) ensureConsumer(ctx context.Context, checkpoint uint64) error {
	stream := p.store.Stream()
	want := p.consumerConfig(checkpoint)
	cons, err := stream.Consumer(ctx, p.cfg.Name)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		return p.createConsumer(ctx, want)
	case err != nil:
		return fmt.Errorf("look up consumer %s: %w", p.cfg.Name, err)
	}
	info := cons.CachedInfo()
	if floor := info.AckFloor.Stream; floor > checkpoint {
		p.log.Warn("durable consumer is ahead of the projection's checkpoint; recreating it at the checkpoint",
			"consumer_ack_floor", floor, "checkpoint", checkpoint)
		if err := stream.DeleteConsumer(ctx, p.cfg.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("delete consumer %s: %w", p.cfg.Name, err)
		}
		return p.createConsumer(ctx, want)
	}
	got := info.Config
	if got.AckPolicy != want.AckPolicy || got.Durable != want.Durable {
		return fmt.Errorf("consumer %s exists with another ack policy or without being durable: delete it, the projector recreates it at its checkpoint", p.cfg.Name)
	}
	if got.AckWait == want.AckWait && got.MaxDeliver == want.MaxDeliver && got.MaxAckPending == want.MaxAckPending &&
		got.Description == want.Description && slices.Equal(sortedCopy(got.FilterSubjects), sortedCopy(want.FilterSubjects)) &&
		got.FilterSubject == "" {
		return nil
	}
	// Where it starts cannot change on an existing consumer; the rest can.
	got.AckWait, got.MaxDeliver, got.MaxAckPending = want.AckWait, want.MaxDeliver, want.MaxAckPending
	got.Description, got.FilterSubject, got.FilterSubjects = want.Description, "", want.FilterSubjects
	if _, err := stream.UpdateConsumer(ctx, got); err != nil {
		return fmt.Errorf("update consumer %s: %w", p.cfg.Name, err)
	}
	p.log.Info("durable consumer updated")
	return nil
}

func (p *LifecycleProjector) createConsumer(ctx context.Context, cfg jetstream.ConsumerConfig) error {
	if _, err := p.store.Stream().CreateConsumer(ctx, cfg); err != nil {
		return fmt.Errorf("create consumer %s: %w", p.cfg.Name, err)
	}
	p.log.Info("durable consumer created", "start_sequence", max(cfg.OptStartSeq, 1))
	return nil
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
