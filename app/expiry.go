package app

import (
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/expiry"
	"github.com/tokenledger/tokenledger/ledger"
	"github.com/tokenledger/tokenledger/projections"
)

// startExpiry runs the expiry scheduler (once gate, if not nil, leads)
// with a ledger of its own on store, until the returned run is stopped.
func startExpiry(store *eventstore.Store, pool *pgxpool.Pool, proj *projections.ReadModel, policy domain.Policy,
	clock domain.Clock, cfg expiry.Config, gate *leader, log *slog.Logger) (*workerRun, error) {
	svc, err := ledger.New(ledger.Config{Store: store, Projections: proj, Policy: policy, Clock: clock})
	if err != nil {
		return nil, err
	}
	cfg.Clock, cfg.Logger = clock, log
	s, err := expiry.New(pool, svc, cfg)
	if err != nil {
		return nil, err
	}
	run := s.Run
	if gate != nil {
		run = gate.gated(run, nil)
	}
	return runWorker("expiry scheduler", run, log), nil
}
