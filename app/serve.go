package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/tokenledger/tokenledger/api"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/metrics"
	"github.com/tokenledger/tokenledger/natsconn"
	"github.com/tokenledger/tokenledger/projections"
	"github.com/tokenledger/tokenledger/webhooks"
)

// DefaultServePostgresConns bounds the API node's PostgreSQL pool: reads
// of the read model (lists, usage, the validator's snapshot at start).
const DefaultServePostgresConns = 8

// ServeConfig configures `tokenledger serve`: an API node (validator,
// ledger, HTTP API) against a deployment's NATS and PostgreSQL. Start from
// DefaultServeConfig.
type ServeConfig struct {
	// NATSURL is the NATS server (or comma-separated servers) holding the
	// event streams.
	NATSURL string
	// NATSAuth holds the credentials and TLS settings of the NATS
	// connections.
	NATSAuth natsconn.Auth
	// PostgresURL is the database holding the read model, kept by
	// `tokenledger project`.
	PostgresURL string
	// PostgresMaxConns bounds the connection pool.
	PostgresMaxConns int32
	// Store names the streams; it must match the deployment's.
	Store eventstore.Config
	// API configures the validator, the ledger and the HTTP server.
	API APIConfig
}

// DefaultServeConfig returns the defaults of `tokenledger serve`.
func DefaultServeConfig() ServeConfig {
	return ServeConfig{
		NATSURL:          DefaultNATSURL,
		PostgresMaxConns: DefaultServePostgresConns,
		Store:            eventstore.DefaultConfig(),
		API:              DefaultAPIConfig(),
	}
}

// Validate reports every problem with c at once.
func (c ServeConfig) Validate() error {
	errs := connectionErrors(c.NATSURL, c.NATSAuth, c.PostgresURL, c.Store)
	if c.PostgresMaxConns < 2 {
		errs = append(errs, fmt.Errorf("postgres max conns %d must be at least 2", c.PostgresMaxConns))
	}
	if err := c.API.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Serve is a running `tokenledger serve`.
type Serve struct {
	*API
	Store       *eventstore.Store
	Projections *projections.ReadModel
}

// StartServe connects to NATS and PostgreSQL, checks the schema, and starts
// the API node. The returned stop shuts down the HTTP server (requests in
// flight finish), closes the validator (flushing the usage it counted), then
// the connections.
func StartServe(ctx context.Context, cfg ServeConfig, log *slog.Logger) (_ *Serve, _ func(context.Context) error, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	var cleanups stopStack
	defer func() {
		if err != nil {
			_ = cleanups.stop(context.WithoutCancel(ctx))
		}
	}()
	store, pool, err := connectBoth(ctx, &cleanups, "tokenledger-serve", cfg.NATSURL, cfg.NATSAuth, cfg.Store, cfg.PostgresURL, cfg.PostgresMaxConns)
	if err != nil {
		return nil, nil, err
	}
	s := &Serve{Store: store, Projections: projections.New(pool, projections.WithClock(cfg.API.clock()))}
	var stopAPI func(context.Context) error
	cfg.API.Webhooks = webhooks.NewManager(pool, store, cfg.API.WebhookAllowPrivate, cfg.API.Clock)
	s.API, stopAPI, err = StartAPI(ctx, cfg.API, store, s.Projections, map[string]api.Check{
		"postgres": func(ctx context.Context) error { return pool.Ping(ctx) },
	}, log)
	if err != nil {
		return nil, nil, err
	}
	cleanups.push(stopAPI)
	name := cfg.API.ProjectionName
	s.API.Metrics.WatchProjection(metrics.KindLifecycle, name, func(ctx context.Context) (projections.Progress, error) {
		last, err := store.StreamLastSequence(ctx)
		if err != nil {
			return projections.Progress{}, err
		}
		cp, err := s.Projections.Checkpoint(ctx, name)
		if err != nil {
			return projections.Progress{}, err
		}
		st := projections.Progress{Name: name, Checkpoint: cp, StreamLast: last}
		if last > cp {
			st.LagEvents = last - cp
		}
		return st, nil
	})
	return s, cleanups.stop, nil
}
