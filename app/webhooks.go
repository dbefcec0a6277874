package app

import (
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/ledger"
	"github.com/tokenledger/tokenledger/natsconn"
	"github.com/tokenledger/tokenledger/projections"
	"github.com/tokenledger/tokenledger/webhooks"
)

// startWebhooks runs the webhook dispatcher (once gate, if not nil,
// leads) on a NATS connection of its own, until the returned run is
// stopped. A ledger of its own on store records the disabling of an
// endpoint as an event.
func startWebhooks(store *eventstore.Store, natsURL string, auth natsconn.Auth, pool *pgxpool.Pool, cfg webhooks.Config,
	gate *leader, log *slog.Logger, opts ...nats.Option) (*workerRun, error) {
	conn, err := natsconn.Connect(natsURL, auth, opts...)
	if err != nil {
		return nil, err
	}
	svc, err := ledger.New(ledger.Config{Store: store, Projections: projections.New(pool), Policy: domain.DefaultPolicy(), Clock: cfg.Clock})
	if err != nil {
		conn.Close()
		return nil, err
	}
	cfg.Logger, cfg.Disabled = log, svc
	d, err := webhooks.NewDispatcher(pool, store, conn, cfg)
	if err != nil {
		conn.Close()
		return nil, err
	}
	run := d.Run
	if gate != nil {
		run = gate.gated(run, func() error { conn.Close(); return nil })
	}
	return runWorker("webhook dispatcher", run, log), nil
}
