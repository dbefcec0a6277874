package app_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tokenledger/tokenledger/app"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/ledger"
	"github.com/tokenledger/tokenledger/projections"
)

func TestMain(m *testing.M) { stacktest.Main(m) }

func startDev(t *testing.T) (*app.Dev, app.DevConfig) {
	t.Helper()
	cfg := app.DefaultDevConfig()
	cfg.DataDir = t.TempDir()
	cfg.NATSPort = 0
	cfg.PostgresURL = stacktest.PostgresURL(t)
	ctx := context.Background()
	dev, stop, err := app.StartDev(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("start dev: %v", err)
	}
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := stop(stopCtx); err != nil {
			t.Errorf("stop dev: %v", err)
		}
	})
	return dev, cfg
}

// The application's connection cannot delete or reconfigure the event
// streams; the operator can.
func TestDevStreamsAreProtectedFromTheApplicationUser(t *testing.T) {
	dev, cfg := startDev(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	nc, err := nats.Connect(dev.NATS.ClientURL())
	if err != nil {
		t.Fatalf("connect as the application: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for _, stream := range []string{cfg.Store.Stream, cfg.Store.UsageStream} {
		delCtx, cancelDel := context.WithTimeout(ctx, 2*time.Second)
		err := js.DeleteStream(delCtx, stream)
		cancelDel()
		if err == nil {
			t.Fatalf("the application user deleted stream %s", stream)
		}
		if _, err := js.Stream(ctx, stream); err != nil {
			t.Fatalf("stream %s is gone after a refused delete: %v", stream, err)
		}
	}

	// Nor can it delete consumers or create durable consumers under the
	// workers' names (the workers read through consumers of their own,
	// from their checkpoints).
	for _, c := range []struct{ stream, durable string }{
		{cfg.Store.Stream, projections.LifecycleName},
		{cfg.Store.UsageStream, projections.UsageName},
	} {
		short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
		err := js.DeleteConsumer(short, c.stream, c.durable)
		cancelShort()
		if err == nil {
			t.Fatalf("the application user deleted consumer %s of %s", c.durable, c.stream)
		}
		short, cancelShort = context.WithTimeout(ctx, 2*time.Second)
		_, err = js.CreateOrUpdateConsumer(short, c.stream, jetstream.ConsumerConfig{Durable: c.durable, AckPolicy: jetstream.AckNonePolicy})
		cancelShort()
		if err == nil {
			t.Fatalf("the application user reconfigured consumer %s of %s", c.durable, c.stream)
		}
	}
	// The projection still follows the stream.
	tok, _, err := domain.IssueToken(cfg.Policy, nil, domain.IssueRequest{Owner: "after"}, domain.Meta{Actor: "test"}, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dev.Store.Append(ctx, eventstore.ExpectOwner("after", 0), tok.Changes()...); err != nil {
		t.Fatal(err)
	}
	if err := stacktest.Poll(ctx, 10*time.Second, func() (bool, error) { return dev.Projector.Ready(ctx, 0) == nil, nil }); err != nil {
		t.Fatalf("the projection did not catch up after the refused attempts: %v", err)
	}

	password, err := os.ReadFile(filepath.Join(cfg.DataDir, "nats-operator-password"))
	if err != nil {
		t.Fatalf("operator password: %v", err)
	}
	info, err := os.Stat(filepath.Join(cfg.DataDir, "nats-operator-password"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("operator password file mode: %v %v", info.Mode(), err)
	}
	op, err := nats.Connect(dev.NATS.ClientURL(), nats.UserInfo("operator", strings.TrimSpace(string(password))))
	if err != nil {
		t.Fatalf("connect as operator: %v", err)
	}
	defer op.Close()
	opJS, err := jetstream.New(op)
	if err != nil {
		t.Fatal(err)
	}
	// The operator may reconfigure a stream (deleting one would stop the
	// running workers, rightly: they refuse to recreate it).
	usage, err := opJS.Stream(ctx, cfg.Store.UsageStream)
	if err != nil {
		t.Fatal(err)
	}
	changed := usage.CachedInfo().Config
	changed.MaxAge = 48 * time.Hour
	if _, err := opJS.UpdateStream(ctx, changed); err != nil {
		t.Fatalf("the operator could not reconfigure the usage stream: %v", err)
	}
	if s, err := js.Stream(ctx, cfg.Store.UsageStream); err != nil || s.CachedInfo().Config.MaxAge != 48*time.Hour {
		t.Fatalf("usage stream after the operator reconfigured it: %v", err)
	}
}

func TestDevBootstrapsOnce(t *testing.T) {
	dev, _ := startDev(t)
	if dev.Bootstrapped == nil {
		t.Fatal("a fresh ledger issued no admin token")
	}
	if !dev.Bootstrapped.Token.HasScope(ledger.ScopeAdmin) {
		t.Fatalf("bootstrap token scopes %v lack %s", dev.Bootstrapped.Token.Scopes(), ledger.ScopeAdmin)
	}
	events, err := dev.Store.LoadToken(context.Background(), dev.Bootstrapped.Token.ID())
	if err != nil || len(events) != 1 {
		t.Fatalf("bootstrap token history: %d events, %v", len(events), err)
	}
	if got := events[0].Data; got == nil {
		t.Fatal("bootstrap event has no payload")
	}
}
