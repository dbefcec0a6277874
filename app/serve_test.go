package app_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/app"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
)

// A graceful stop of serve flushes the usage its validator counted: every
// forward-auth call before the stop is in the usage stream after it.
func TestServeStopFlushesUsage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := stacktest.NATS(t)
	pgURL := stacktest.PostgresURL(t)
	if _, err := app.Migrate(ctx, pgURL); err != nil {
		t.Fatal(err)
	}
	boot, err := app.AdminBootstrap(ctx, app.BootstrapConfig{NATSURL: srv.ClientURL(), Store: eventstore.DefaultConfig(), Policy: domain.DefaultPolicy()})
	if err != nil {
		t.Fatal(err)
	}
	cfg := app.DefaultServeConfig()
	cfg.NATSURL, cfg.PostgresURL, cfg.API.HTTPAddr = srv.ClientURL(), pgURL, "127.0.0.1:0"
	s, stop, err := app.StartServe(ctx, cfg, discard)
	if err != nil {
		t.Fatalf("start serve: %v", err)
	}
	// The validator starts from an empty read model and finds the admin
	// token by its young id in the event store.
	const uses = 7
	for i := range uses {
		r, _ := http.NewRequest("GET", s.URL()+"/v1/auth", nil)
		r.Header.Set("Authorization", "Bearer "+boot.Secret.Reveal())
		res, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("use %d: status %d", i, res.StatusCode)
		}
	}
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := stop(stopCtx); err != nil {
		t.Fatalf("stop: %v", err)
	}

	store, err := eventstore.Open(ctx, stacktest.Conn(t, srv), domain.NewDefaultRegistry(), eventstore.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	var counted uint64
	if _, err := store.ReadUsage(ctx, 1, func(e domain.Envelope) error {
		for id, used := range domain.Uses(e) {
			if id == boot.Token.ID() {
				counted += used.Count
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if counted != uses {
		t.Errorf("the usage stream counts %d uses of the admin token after the stop, want %d", counted, uses)
	}
}
