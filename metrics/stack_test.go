package metrics

import (
	"context"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/consumers"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/migrations"
	"github.com/tokenledger/tokenledger/projections"
	"github.com/tokenledger/tokenledger/validator"
)

// TestWatchRealComponents watches a real validator, lifecycle projector and
// usage consumer on an embedded NATS server and PostgreSQL, and checks the
// scrape reflects what they did.
func TestWatchRealComponents(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	srv := stacktest.NATS(t)
	store, err := eventstore.Open(ctx, stacktest.Conn(t, srv), domain.NewDefaultRegistry(), eventstore.DefaultConfig())
	if err != nil {
		t.Fatalf("open event store: %v", err)
	}
	t.Cleanup(func() { _ = store.Close() })
	pool := stacktest.PostgresPool(t)
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	err = migrations.Migrate(ctx, conn.Conn())
	conn.Release()
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	read := projections.New(pool)

	tok, secret, err := domain.IssueToken(domain.DefaultPolicy(), nil,
		domain.IssueRequest{Owner: "alice", Name: "metrics", Scopes: []string{"read"}},
		domain.Meta{Actor: "test"}, time.Now(), nil)
	if err != nil {
		t.Fatalf("issue: %v", err)
	}
	stored, err := store.Append(ctx, eventstore.ExpectToken(tok.ID(), 0), tok.Changes()...)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	issuedSeq := stored[len(stored)-1].Sequence

	v, err := validator.New(validator.Config{Store: store, Projections: read, Logger: discardLogger()})
	if err != nil {
		t.Fatalf("new validator: %v", err)
	}
	t.Cleanup(func() { _ = v.Close(context.Background()) })
	if err := v.Start(ctx); err != nil {
		t.Fatalf("start validator: %v", err)
	}
	lc, err := consumers.NewLifecycleProjector(store, stacktest.Conn(t, srv), read, consumers.LifecycleConfig{Logger: discardLogger()})
	if err != nil {
		t.Fatalf("new lifecycle projector: %v", err)
	}
	t.Cleanup(func() { _ = lc.Close() })
	uc, err := consumers.NewUsageConsumer(store, read, consumers.UsageConfig{Logger: discardLogger()})
	if err != nil {
		t.Fatalf("new usage consumer: %v", err)
	}

	m := New(discardLogger())
	m.WatchValidator(v)
	m.WatchLifecycle(lc)
	m.WatchUsage(uc)

	if _, err := v.Validate(ctx, secret.Reveal()); err != nil {
		t.Fatalf("validate the issued secret: %v", err)
	}
	if _, err := v.Validate(ctx, "not a secret"); ValidationResult(err) != ResultMalformed {
		t.Fatalf("validate a malformed secret: %v, want a malformed refusal", err)
	}

	f := scrape(t, m)
	f.wantValue(t, "tokenledger_validator_running", labels{}, 1)
	f.wantValue(t, "tokenledger_validator_tokens", labels{}, 1)
	f.wantValue(t, "tokenledger_validator_owners", labels{}, 1)
	f.wantValue(t, "tokenledger_validator_applied_sequence", labels{}, float64(issuedSeq))
	f.wantValue(t, "tokenledger_validator_events_applied_total", labels{}, float64(len(stored)))
	f.wantValue(t, "tokenledger_validator_stale", labels{}, 0)
	f.wantValue(t, "tokenledger_validations_total", labels{"result": ResultMalformed}, 1)
	// Nothing has run the lifecycle projector: its checkpoint is 0 and the
	// issue is not applied.
	lcl := pk(lc.Name(), KindLifecycle)
	f.wantValue(t, "tokenledger_projection_up", lcl, 1)
	f.wantValue(t, "tokenledger_projection_checkpoint", lcl, 0)
	f.wantValue(t, "tokenledger_projection_lag_events", lcl, float64(issuedSeq))
	f.wantValue(t, "tokenledger_projection_halted", lcl, 0)

	// Closing the validator flushes the use to the usage stream, where the
	// usage consumer, not running either, lags by it.
	closeCtx, closeCancel := context.WithTimeout(ctx, 30*time.Second)
	defer closeCancel()
	if err := v.Close(closeCtx); err != nil {
		t.Fatalf("close validator: %v", err)
	}
	f = scrape(t, m)
	f.wantValue(t, "tokenledger_validator_running", labels{}, 0)
	f.wantValue(t, "tokenledger_validations_total", labels{"result": ResultValid}, 1)
	f.wantValue(t, "tokenledger_usage_events_published_total", labels{}, 1)
	f.wantValue(t, "tokenledger_usage_uses_published_total", labels{}, 1)
	f.wantValue(t, "tokenledger_usage_events_dropped_total", labels{}, 0)
	ucl := pk(uc.Name(), KindUsage)
	f.wantValue(t, "tokenledger_projection_up", ucl, 1)
	f.wantValue(t, "tokenledger_projection_checkpoint", ucl, 0)
	f.wantValue(t, "tokenledger_projection_lag_events", ucl, 1)
	f.wantValue(t, "tokenledger_usage_projection_events_total", labels{"projection": uc.Name()}, 0)
}
