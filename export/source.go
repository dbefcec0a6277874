package export

import (
	"context"
	"fmt"

	"github.com/tokenledger/tokenledger/eventstore"
)

// streamEnd returns the stream's last sequence and the number of messages
// it holds (the usage stream ages out, and may hold none).
func streamEnd(ctx context.Context, store *eventstore.Store, kind Stream) (last, msgs uint64, err error) {
	st, err := store.State(ctx, storeKind(kind))
	if err != nil {
		return 0, 0, fmt.Errorf("stream info: %w", err)
	}
	return st.Last, st.Msgs, nil
}

// storeKind is the event store's name of stream kind.
func storeKind(kind Stream) eventstore.StreamKind {
	if kind == Usage {
		return eventstore.Usage
	}
	return eventstore.Lifecycle
}

// startScan starts reading stream kind of store through sequence through,
// decoding on every core (eventstore.Scanner). Close it when done.
func startScan(ctx context.Context, store *eventstore.Store, kind Stream, through uint64) (*eventstore.Scanner, error) {
	return store.Scan(ctx, storeKind(kind), through)
}
