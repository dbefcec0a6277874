// Package subscriber is the watermill side of the event store: it reads a
// durable consumer of the lifecycle stream (created with
// eventstore.Store.EnsureDurable) as a watermill message.Subscriber, for
// work that is per message and acknowledged one by one (delivering events
// elsewhere) on watermill's Router with its retry and poison-queue
// middleware. Projections that must keep pace with the stream read with
// an eventstore.Follower instead.
//
// It is the one package besides eventstore that knows JetStream: a
// watermill-nats Unmarshaler is given JetStream messages.
package subscriber

import (
	"errors"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmjs "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/jetstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config is a subscriber of one durable consumer.
type Config struct {
	// Conn is the subscriber's own connection: closing the subscriber
	// drains it.
	Conn *nats.Conn
	// Durable names the durable consumer to read; it must exist.
	Durable string
	// AckWait is the consumer's acknowledgement wait.
	AckWait time.Duration
	// Logger receives watermill's log; nil discards it.
	Logger watermill.LoggerAdapter
}

// New returns a subscriber reading the existing durable consumer
// cfg.Durable, whatever topic it is subscribed with (the stream's name
// reads well in watermill's logs). Messages are turned into watermill
// messages by Unmarshaler; acknowledgements are not waited for: one that
// is lost only makes the server deliver the message again, which a
// per-message handler must accept anyway.
func New(cfg Config) (message.Subscriber, error) {
	if cfg.Conn == nil || cfg.Durable == "" {
		return nil, errors.New("subscriber: connection and durable consumer name are required")
	}
	durable := cfg.Durable
	return wmjs.NewSubscriber(wmjs.SubscriberConfig{
		Conn:           cfg.Conn,
		Logger:         cfg.Logger,
		AckWaitTimeout: cfg.AckWait,
		AckAsync:       true,
		Unmarshaler:    Unmarshaler{},
		ResourceInitializer: wmjs.ExistingConsumer(func(string, string) jetstream.ConsumerConfig {
			return jetstream.ConsumerConfig{Name: durable}
		}, ""),
	})
}
