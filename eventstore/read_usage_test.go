package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
)

// usageEvents records n uses of fresh tokens, ready for AppendUsage.
func usageEvents(t *testing.T, n int) []domain.Envelope {
	t.Helper()
	now := time.Now().UTC()
	var out []domain.Envelope
	for i := range n {
		tok, _, err := domain.IssueToken(domain.DefaultPolicy(), nil, domain.IssueRequest{Owner: "alice"}, domain.Meta{Actor: "test"}, now, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := tok.MarkStored(1); err != nil {
			t.Fatal(err)
		}
		if err := tok.RecordUse(uint64(i+1), now, now, "10.0.0.1", domain.Meta{Actor: "test"}, now); err != nil {
			t.Fatal(err)
		}
		out = append(out, tok.Changes()...)
	}
	return out
}

func openUsageStore(t *testing.T, cfg eventstore.Config) *eventstore.Store {
	t.Helper()
	nc := stacktest.Conn(t, stacktest.NATS(t))
	store, err := eventstore.Open(context.Background(), nc, domain.NewDefaultRegistry(), cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = store.Close() })
	return store
}

// readUsage collects what ReadUsage passes from sequence from.
func readUsage(t *testing.T, store *eventstore.Store, from uint64) ([]uint64, uint64) {
	t.Helper()
	var seqs []uint64
	last, err := store.ReadUsage(context.Background(), from, func(e domain.Envelope) error {
		if e.Type != domain.TypeTokenUsed {
			return fmt.Errorf("event %s of type %s", e.ID, e.Type)
		}
		seqs = append(seqs, e.Sequence)
		return nil
	})
	if err != nil {
		t.Fatalf("read usage from %d: %v", from, err)
	}
	return seqs, last
}

// TestReadUsage reads the usage stream in stream order, from any sequence,
// stops at fn's error, and answers at once for an empty stream.
func TestReadUsage(t *testing.T) {
	t.Parallel()
	store := openUsageStore(t, eventstore.DefaultConfig())
	if seqs, last := readUsage(t, store, 0); len(seqs) != 0 || last != 0 {
		t.Fatalf("empty stream: %v up to %d, want nothing up to 0", seqs, last)
	}
	stored, err := store.AppendUsage(context.Background(), usageEvents(t, 7)...)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		from uint64
		want []uint64
		last uint64
	}{
		{"from the start", 0, []uint64{1, 2, 3, 4, 5, 6, 7}, 7},
		{"from 1", 1, []uint64{1, 2, 3, 4, 5, 6, 7}, 7},
		{"from the middle", 5, []uint64{5, 6, 7}, 7},
		{"from the last", 7, []uint64{7}, 7},
		{"past the end", 9, nil, 8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			seqs, last := readUsage(t, store, tc.from)
			if !slices.Equal(seqs, tc.want) || last != tc.last {
				t.Errorf("read %v up to %d, want %v up to %d", seqs, last, tc.want, tc.last)
			}
		})
	}
	t.Run("decoded as stored", func(t *testing.T) {
		t.Parallel()
		var got []domain.Envelope
		if _, err := store.ReadUsage(context.Background(), 0, func(e domain.Envelope) error { got = append(got, e); return nil }); err != nil {
			t.Fatal(err)
		}
		for i, e := range got {
			d, _ := e.Data.(domain.TokenUsed)
			if e.ID != stored[i].ID || e.Sequence != stored[i].Sequence || d.Count != uint64(i+1) {
				t.Errorf("event %d: %s at %d (count %d), want %s at %d (count %d)", i, e.ID, e.Sequence, d.Count, stored[i].ID, stored[i].Sequence, i+1)
			}
		}
	})
	t.Run("stops at fn's error", func(t *testing.T) {
		t.Parallel()
		stop := errors.New("enough")
		n := 0
		last, err := store.ReadUsage(context.Background(), 0, func(domain.Envelope) error {
			if n++; n == 3 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || last != 2 {
			t.Errorf("ReadUsage = %d, %v; want 2 and the fn's error", last, err)
		}
	})
}

// TestReadUsageAfterAgeOut: events that outlived the usage retention are
// absent, and a stream whose events all aged out is read at once instead
// of waiting for messages that will never come.
func TestReadUsageAfterAgeOut(t *testing.T) {
	t.Parallel()
	cfg := eventstore.DefaultConfig()
	cfg.UsageMaxAge, cfg.DuplicateWindow = 3*time.Second, time.Second
	store := openUsageStore(t, cfg)
	ctx := context.Background()
	if _, err := store.AppendUsage(ctx, usageEvents(t, 3)...); err != nil {
		t.Fatal(err)
	}
	aged := func() bool {
		info, err := store.State(ctx, eventstore.Usage)
		return err == nil && info.Msgs == 0 && info.Last == 3
	}
	stacktest.Eventually(t, 30*time.Second, aged, "the usage events did not age out")
	if seqs, last := readUsage(t, store, 0); len(seqs) != 0 || last != 0 {
		t.Errorf("all aged out: read %v up to %d, want nothing up to 0", seqs, last)
	}
	if _, err := store.AppendUsage(ctx, usageEvents(t, 2)...); err != nil {
		t.Fatal(err)
	}
	if seqs, last := readUsage(t, store, 0); !slices.Equal(seqs, []uint64{4, 5}) || last != 5 {
		t.Errorf("after new events: read %v up to %d, want [4 5] up to 5", seqs, last)
	}
}
