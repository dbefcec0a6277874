package projections_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/internal/testkit/projectionstest"
	"github.com/tokenledger/tokenledger/projections"
)

// snapshotChecker takes snapshots in a loop, until stopped, and checks that
// each equals the fold of the events up to the sequence it reports.
type snapshotChecker struct {
	store  *projections.ReadModel
	events []domain.Envelope
	now    time.Time

	stop chan struct{}
	done chan struct{}
	// taken receives the sequence of every snapshot checked.
	taken chan uint64

	mu    sync.Mutex
	diffs []string
}

func startSnapshotChecker(s *projections.ReadModel, events []domain.Envelope, now time.Time) *snapshotChecker {
	c := &snapshotChecker{store: s, events: events, now: now, stop: make(chan struct{}), done: make(chan struct{}), taken: make(chan uint64, 1024)}
	go c.run()
	return c
}

func (c *snapshotChecker) run() {
	defer close(c.done)
	// Closing taken ends the wait of a test for the next snapshot, also
	// when a snapshot failed.
	defer close(c.taken)
	for {
		select {
		case <-c.stop:
			return
		default:
		}
		contents, err := projectionstest.Read(context.Background(), c.store, live)
		if err != nil {
			c.fail("snapshot: " + err.Error())
			return
		}
		state := domain.NewState()
		for _, e := range c.events {
			if e.Sequence > contents.Sequence {
				break
			}
			state.Apply(e)
		}
		if diffs := projectionstest.CompareState(state, contents, c.now); len(diffs) > 0 {
			c.fail("snapshot at sequence " + strconv.FormatUint(contents.Sequence, 10) + " differs from the fold up to it:\n" + strings.Join(diffs[:min(len(diffs), 10)], "\n"))
			return
		}
		select {
		case c.taken <- contents.Sequence:
		default:
		}
	}
}

func (c *snapshotChecker) fail(msg string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.diffs = append(c.diffs, msg)
}

// finish stops the checker and fails tb if any snapshot was inconsistent.
func (c *snapshotChecker) finish(tb testing.TB) {
	tb.Helper()
	close(c.stop)
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range c.diffs {
		tb.Error(d)
	}
}

// TestSnapshotIsConsistentWithConcurrentApply takes snapshots while
// batches are applied: every snapshot equals the fold of exactly the
// events up to its sequence. The applier waits for a snapshot after every
// tenth batch, so snapshots are taken at many points of the history.
func TestSnapshotIsConsistentWithConcurrentApply(t *testing.T) {
	t.Parallel()
	h := projectionstest.RandomHistory(5, projectionstest.HistoryConfig{Tokens: 300, Owners: 10, Events: 3000, Odd: true})
	clock := domain.NewManualClock(h.End)
	s, _ := newStore(t, projections.WithClock(clock))
	checker := startSnapshotChecker(s, h.Events, clock.Now())

	const size = 13
	intermediate := map[uint64]bool{}
	for i, batch := 0, 0; i < len(h.Events); i, batch = i+size, batch+1 {
		apply(t, s, h.Events[i:min(i+size, len(h.Events))]...)
		if batch%10 != 9 {
			continue
		}
		// Wait for a snapshot taken after this batch; the channel is
		// closed if the checker failed.
		for seq := range checker.taken {
			if seq >= uint64(i+size) {
				intermediate[seq] = true
				break
			}
		}
	}
	checker.finish(t)
	if len(intermediate) < 10 {
		t.Errorf("only %d snapshots were taken in the middle of the history", len(intermediate))
	}
}

// TestSnapshotCallbackErrorStopsTheRead checks that an error from fn ends
// the snapshot with that error.
func TestSnapshotCallbackErrorStopsTheRead(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	h := projectionstest.RandomHistory(9, projectionstest.HistoryConfig{Tokens: 20, Owners: 2, Events: 40})
	apply(t, s, h.Events...)
	stopErr := errors.New("enough")
	calls := 0
	_, err := s.Snapshot(context.Background(), live, func(projections.TokenRow) error {
		calls++
		return stopErr
	})
	if !errors.Is(err, stopErr) || calls != 1 {
		t.Errorf("snapshot: %v after %d calls, want %v after 1", err, calls, stopErr)
	}
}
