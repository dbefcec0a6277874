package app_test

import (
	"context"
	"errors"
	"testing"

	"github.com/tokenledger/tokenledger/app"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/ledger"
)

// Bootstrap issues the first admin token of an empty ledger, refuses a
// second one, and issues another only when forced.
func TestAdminBootstrap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := stacktest.NATS(t)
	cfg := app.BootstrapConfig{NATSURL: srv.ClientURL(), Store: eventstore.DefaultConfig(), Policy: domain.DefaultPolicy()}

	first, err := app.AdminBootstrap(ctx, cfg)
	if err != nil {
		t.Fatalf("bootstrap an empty ledger: %v", err)
	}
	if first.Token.Owner() != ledger.AdminOwner || !first.Token.HasScope(ledger.ScopeAdmin) {
		t.Errorf("bootstrap token: owner %s scopes %v", first.Token.Owner(), first.Token.Scopes())
	}
	if _, err := domain.ParseSecret(first.Secret.Reveal()); err != nil {
		t.Errorf("bootstrap secret does not parse: %v", err)
	}
	if _, err := app.AdminBootstrap(ctx, cfg); !errors.Is(err, app.ErrNotEmpty) {
		t.Fatalf("second bootstrap: %v, want ErrNotEmpty", err)
	}
	cfg.Force = true
	second, err := app.AdminBootstrap(ctx, cfg)
	if err != nil {
		t.Fatalf("forced bootstrap: %v", err)
	}
	if second.Token.ID() == first.Token.ID() || second.Secret.Reveal() == first.Secret.Reveal() {
		t.Error("the forced bootstrap reissued the first token")
	}
	nc := stacktest.Conn(t, srv)
	store, err := eventstore.Open(ctx, nc, domain.NewDefaultRegistry(), eventstore.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if n, err := store.StreamLastSequence(ctx); err != nil || n != 2 {
		t.Errorf("stream holds %d events (%v), want the two issues", n, err)
	}
}
