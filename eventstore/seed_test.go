package eventstore_test

import (
	"context"
	"errors"
	"testing"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
)

// TestSeedStoresEventsOnce seeds more events than one acknowledgement
// window holds and requires each stored once, on its token's subject, in
// order: a second Seed of the same events stores nothing more, and usage
// events are refused.
func TestSeedStoresEventsOnce(t *testing.T) {
	t.Parallel()
	store := openUsageStore(t, eventstore.DefaultConfig())
	ctx := context.Background()
	var events []domain.Envelope
	var ids []domain.TokenID
	for i := range 2500 {
		tok := newTokenID(t)
		ids = append(ids, tok)
		events = append(events, issued(t, tok, domain.OwnerID("owner-"+string(rune('a'+i%26)))))
	}
	for range 2 {
		if err := store.Seed(ctx, events); err != nil {
			t.Fatalf("seed: %v", err)
		}
		if last, err := store.StreamLastSequence(ctx); err != nil || last != uint64(len(events)) {
			t.Fatalf("after seeding %d events: stream last sequence %d, %v", len(events), last, err)
		}
	}
	for _, i := range []int{0, 1234, len(ids) - 1} {
		got, err := store.LoadToken(ctx, ids[i])
		if err != nil || len(got) != 1 || got[0].ID != events[i].ID {
			t.Fatalf("token %d: loaded %d events, %v; want its token.issued", i, len(got), err)
		}
		issued, ok, err := store.LoadIssued(ctx, ids[i])
		if err != nil || !ok || issued.ID != events[i].ID {
			t.Fatalf("token %d: LoadIssued = %s, %v, %v; want %s", i, issued.ID, ok, err, events[i].ID)
		}
	}
	if err := store.Seed(ctx, usageEvents(t, 1)); !errors.Is(err, domain.ErrInvalidArgument) {
		t.Fatalf("seeding usage: got %v, want ErrInvalidArgument", err)
	}
}
