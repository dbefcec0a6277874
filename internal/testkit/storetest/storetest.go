// Package storetest opens tokenledger's event store on a test's
// nats-server and fills and reads it: imported only by tests.
package storetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/stack"
)

// Open opens an event store with the default configuration on srv; it
// is closed when the test ends.
func Open(tb testing.TB, srv *stack.NATS) *eventstore.Store {
	tb.Helper()
	nc := stacktest.Conn(tb, srv)
	store, err := eventstore.Open(context.Background(), nc, domain.NewDefaultRegistry(), eventstore.DefaultConfig())
	if err != nil {
		tb.Fatalf("open event store: %v", err)
	}
	tb.Cleanup(func() { _ = store.Close() })
	return store
}

// AppendAll appends events one by one, in order, without expectations (the
// history was decided already), and returns the last stream sequence.
func AppendAll(ctx context.Context, store *eventstore.Store, events []domain.Envelope) (uint64, error) {
	var last uint64
	for _, e := range events {
		stored, err := store.Append(ctx, eventstore.ExpectNothing(), e)
		if err != nil {
			return last, fmt.Errorf("append event %s: %w", e.ID, err)
		}
		last = stored[0].Sequence
	}
	return last, nil
}

// ReadAll reads the whole lifecycle stream.
func ReadAll(tb testing.TB, store *eventstore.Store) []domain.Envelope {
	tb.Helper()
	var events []domain.Envelope
	if _, err := store.Read(context.Background(), 1, func(e domain.Envelope) error {
		events = append(events, e)
		return nil
	}); err != nil {
		tb.Fatalf("read the stream: %v", err)
	}
	return events
}
