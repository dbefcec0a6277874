package app

import (
	"context"
	"fmt"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
)

// foldStream applies every lifecycle event from sequence 1 to end to
// state, in stream order, and returns the last sequence applied and the
// number of events. The stream is read with an eventstore.Scanner, which
// spreads the decoding (most of a replay's work) over all cores while the
// fold stays in order on this goroutine. progress is called with the last
// sequence folded every progressEvery events.
func foldStream(ctx context.Context, store *eventstore.Store, end uint64, state *domain.State, progress func(seq uint64)) (last, n uint64, err error) {
	if end == 0 {
		return 0, 0, nil
	}
	sc, err := store.ScanLifecycle(ctx, end)
	if err != nil {
		return 0, 0, fmt.Errorf("read the stream: %w", err)
	}
	defer sc.Close()
	for {
		e, err := sc.Next(ctx)
		if err != nil {
			return last, n, fmt.Errorf("read after %d: %w", last, err)
		}
		if e == nil {
			break
		}
		state.Apply(*e)
		n++
		last = e.Sequence
		if n%progressEvery == 0 {
			progress(last)
		}
	}
	if last != end {
		return last, n, fmt.Errorf("read the stream: ended at sequence %d, want %d", last, end)
	}
	return last, n, nil
}
