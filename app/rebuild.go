package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/natsconn"
	"github.com/tokenledger/tokenledger/projections"
	"github.com/tokenledger/tokenledger/rebuild"
)

// RebuildConfig configures `tokenledger rebuild`. Start from
// DefaultRebuildConfig.
type RebuildConfig struct {
	// NATSURL is the NATS server (or comma-separated servers) holding the
	// event streams.
	NATSURL string
	// NATSAuth holds the credentials and TLS settings of the NATS
	// connections.
	NATSAuth natsconn.Auth
	// PostgresURL is the database holding the read model; its schema must
	// be current (see Migrate).
	PostgresURL string
	// Store names the streams and their subjects. It must match the
	// deployment's: opening the store updates a stream whose settings
	// differ.
	Store eventstore.Config
	// Rebuild tunes the rebuild itself.
	Rebuild rebuild.Options
	// UsageRollups also rebuilds the hourly usage rollups of usage
	// projection UsageName from the usage stream, after the lifecycle
	// projection (projections.ReadModel.RebuildRollups): the usage
	// consumer waits meanwhile. RollupRetention is the usage consumer's.
	UsageRollups    bool
	UsageName       string
	RollupRetention time.Duration
}

// rebuildPostgresConns is the size of the rebuild's PostgreSQL pool.
const rebuildPostgresConns = 8

// DefaultRebuildConfig returns the defaults of `tokenledger rebuild`.
func DefaultRebuildConfig() RebuildConfig {
	return RebuildConfig{
		NATSURL: DefaultNATSURL,
		Store:   eventstore.DefaultConfig(),
		Rebuild: rebuild.DefaultOptions(),

		UsageName:       projections.UsageName,
		RollupRetention: DefaultRollupRetention,
	}
}

// Validate reports every problem with c at once.
func (c RebuildConfig) Validate() error {
	errs := connectionErrors(c.NATSURL, c.NATSAuth, c.PostgresURL, c.Store)
	if err := c.Rebuild.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.UsageRollups && c.UsageName == "" {
		errs = append(errs, errors.New("usage rollups: no usage projection name"))
	}
	if c.RollupRetention < 0 {
		errs = append(errs, fmt.Errorf("usage rollup retention %s is negative", c.RollupRetention))
	}
	return errors.Join(errs...)
}

// Rebuild connects to NATS and PostgreSQL as cfg says and rebuilds the
// projection there with rebuild.Run. It needs the current schema
// (ErrSchemaOutdated otherwise).
func Rebuild(ctx context.Context, cfg RebuildConfig, log *slog.Logger) (rebuild.Result, error) {
	if err := cfg.Validate(); err != nil {
		return rebuild.Result{}, err
	}
	nc, store, err := connectStore(ctx, eventstore.OpenExisting, cfg.NATSURL, cfg.NATSAuth, "tokenledger-rebuild", cfg.Store)
	if err != nil {
		return rebuild.Result{}, err
	}
	defer nc.Close()
	defer store.Close()
	pool, err := openPool(ctx, cfg.PostgresURL, rebuildPostgresConns)
	if err != nil {
		return rebuild.Result{}, err
	}
	defer pool.Close()
	res, err := rebuild.Run(ctx, store, pool, cfg.Rebuild, log)
	if err != nil || !cfg.UsageRollups {
		return res, err
	}
	rm := projections.New(pool, projections.WithRollupRetention(cfg.RollupRetention))
	rr, err := rm.RebuildRollups(ctx, cfg.UsageName, store)
	if err != nil {
		return res, err
	}
	log.Info("usage rollups rebuilt", "usage_projection", cfg.UsageName, "checkpoint", rr.Checkpoint, "events", rr.Events, "rows", rr.Rows)
	return res, nil
}
