package rebuild_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/tokenledger/tokenledger/consumers"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/projections"
)

// startLive runs the lifecycle projector of projection name while the test
// needs it, on a NATS connection of its own, as `tokenledger project` does.
// It stops when the test ends; an error of its own fails the test then.
func startLive(t *testing.T, store *eventstore.Store, proj *projections.ReadModel, name string) *consumers.LifecycleProjector {
	t.Helper()
	conn, err := nats.Connect(store.JetStream().Conn().ConnectedUrl(), nats.Name("live-"+name))
	if err != nil {
		t.Fatalf("connect the projector: %v", err)
	}
	p, err := consumers.NewLifecycleProjector(store, conn, proj, consumers.LifecycleConfig{Name: name, Logger: discard})
	if err != nil {
		t.Fatalf("lifecycle projector: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("lifecycle projector: %v", err)
		}
	})
	return p
}
