package rebuild

import (
	"context"
	"errors"
	"fmt"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
)

// foldStream applies every lifecycle event from sequence 1 to end to
// state, in stream order, and returns the last sequence applied and the
// number of events. The stream is read with an eventstore.Scanner, which
// spreads the decoding (most of a rebuild's work) over all cores while the
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

// errRangeEnd stops a read at the end of the requested range.
var errRangeEnd = errors.New("end of range")

// readRange passes the events with after < Sequence <= through (through 0:
// up to the stream's last sequence when the read starts) to fn, in stream
// order, in batches of at most batch events. fn must not keep the slice.
// It returns the sequence of the last event read. With a through, it
// fails unless every event up to through was delivered.
func readRange(ctx context.Context, store *eventstore.Store, after, through uint64, batch int, fn func([]domain.Envelope) error) (uint64, error) {
	buf := make([]domain.Envelope, 0, batch)
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		err := fn(buf)
		clear(buf)
		buf = buf[:0]
		return err
	}
	last := after
	_, err := store.Read(ctx, after+1, func(e domain.Envelope) error {
		if through > 0 && e.Sequence > through {
			return errRangeEnd
		}
		buf = append(buf, e)
		last = e.Sequence
		if len(buf) == batch {
			return flush()
		}
		return nil
	})
	if err != nil && !errors.Is(err, errRangeEnd) {
		return last, err
	}
	if err := flush(); err != nil {
		return last, err
	}
	if through > 0 && last < through {
		return last, fmt.Errorf("stream ends at sequence %d, before %d", last, through)
	}
	return last, nil
}
