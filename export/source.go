package export

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tokenledger/tokenledger/eventstore"
)

// streamEnd returns the stream's last sequence and the number of messages
// it holds (the usage stream ages out, and may hold none).
func streamEnd(ctx context.Context, store *eventstore.Store, s jetstream.Stream) (last, msgs uint64, err error) {
	ctx, cancel := context.WithTimeout(ctx, store.Config().RequestTimeout)
	defer cancel()
	info, err := s.Info(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("stream info: %w", err)
	}
	return info.State.LastSeq, info.State.Msgs, nil
}

// startScan starts reading stream kind of store through sequence through,
// decoding on every core (eventstore.Scanner). Close it when done.
func startScan(ctx context.Context, store *eventstore.Store, kind Stream, through uint64) (*eventstore.Scanner, error) {
	if kind == Usage {
		return store.ScanUsage(ctx, through)
	}
	return store.ScanLifecycle(ctx, through)
}
