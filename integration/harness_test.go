package integration_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/migrations"
	"github.com/tokenledger/tokenledger/projections"
)

func TestMain(m *testing.M) { stacktest.Main(m) }

// harness is one ledger: a fresh JetStream server and a fresh, migrated
// database.
type harness struct {
	store *eventstore.Store
	pool  *pgxpool.Pool
	proj  *projections.ReadModel
	clock *domain.ManualClock
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	ctx := context.Background()
	store, err := eventstore.Open(ctx, stacktest.Conn(t, stacktest.NATS(t)), domain.NewDefaultRegistry(), eventstore.DefaultConfig())
	if err != nil {
		t.Fatalf("open event store: %v", err)
	}
	pool := stacktest.PostgresPool(t)
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = migrations.Migrate(ctx, conn.Conn())
	conn.Release()
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	clock := domain.NewManualClock(time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC))
	return &harness{
		store: store,
		pool:  pool,
		proj:  projections.New(pool, projections.WithClock(clock)),
		clock: clock,
	}
}

// issue issues n api tokens for owners "owner-0".."owner-9", appends them and
// projects them into the read model; it returns the secrets in issue order.
func (h *harness) issue(t *testing.T, n int) []string {
	t.Helper()
	ctx := context.Background()
	secrets := make([]string, 0, n)
	for i := range n {
		owner := domain.OwnerID("owner-" + string(rune('0'+i%10)))
		tok, secret, err := domain.IssueToken(domain.DefaultPolicy(), nil, domain.IssueRequest{
			Owner: owner, Name: "t", Scopes: []string{"read"},
		}, domain.Meta{Actor: "test"}, h.clock.Now(), nil)
		if err != nil {
			t.Fatalf("issue: %v", err)
		}
		if _, err := h.store.Append(ctx, eventstore.ExpectOwner(owner, 0), tok.Changes()...); err != nil {
			t.Fatalf("append issue: %v", err)
		}
		secrets = append(secrets, secret.Reveal())
	}
	var events []domain.Envelope
	if _, err := h.store.Read(ctx, 1, func(e domain.Envelope) error {
		events = append(events, e)
		return nil
	}); err != nil {
		t.Fatalf("read stream: %v", err)
	}
	if _, err := h.proj.ApplyBatch(ctx, "lifecycle", events); err != nil {
		t.Fatalf("project: %v", err)
	}
	return secrets
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
