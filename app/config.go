package app

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/natsconn"
)

// Defaults shared by the commands that connect to a running system.
const (
	// DefaultNATSURL is where project and rebuild find NATS unless told.
	DefaultNATSURL = nats.DefaultURL
)

// validateNATSURL checks a comma-separated list of nats:// (or tls://,
// ws://, wss://) URLs.
func validateNATSURL(s string) error {
	if s == "" {
		return errors.New("nats url must be set")
	}
	for part := range strings.SplitSeq(s, ",") {
		u, err := url.Parse(strings.TrimSpace(part))
		if err != nil {
			return fmt.Errorf("nats url: %w", err)
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("nats url %q: want nats://host:port (or tls://, ws://, wss://)", redactURL(u))
		}
		if u.Host == "" {
			return fmt.Errorf("nats url %q has no host", redactURL(u))
		}
	}
	return nil
}

// validatePostgresURL checks that s is a connection string pgx accepts.
func validatePostgresURL(s string) error {
	if s == "" {
		return errors.New("postgres url must be set: --postgres-url or TOKENLEDGER_POSTGRES_URL")
	}
	if _, err := pgx.ParseConfig(s); err != nil {
		// pgx's message names the string with its password redacted.
		return fmt.Errorf("postgres url: %w", err)
	}
	return nil
}

func redactURL(u *url.URL) string {
	if _, ok := u.User.Password(); ok {
		u = &url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, User: url.UserPassword(u.User.Username(), "xxxxx")}
	}
	return u.String()
}

// storeOpener opens the event store on a connection: eventstore.Open for
// set-up, which creates or updates the streams, eventstore.OpenExisting
// for everything else.
type storeOpener func(context.Context, jetstream.JetStream, *domain.Registry, eventstore.Config) (*eventstore.Store, error)

// connectStore connects to NATS at natsURL with auth as client name and
// opens the event store with cfg. The caller closes the returned
// connection (after the store).
func connectStore(ctx context.Context, open storeOpener, natsURL string, auth natsconn.Auth, name string, cfg eventstore.Config, opts ...nats.Option) (*nats.Conn, *eventstore.Store, error) {
	nc, err := natsconn.Connect(natsURL, auth, append([]nats.Option{nats.Name(name)}, opts...)...)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	store, err := open(ctx, js, domain.NewDefaultRegistry(), cfg)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, store, nil
}

// stopStack is what a start function must undo, in the order it was done:
// stop undoes it in reverse.
type stopStack []func(context.Context) error

// push adds the undoing of the last thing done.
func (s *stopStack) push(f func(context.Context) error) { *s = append(*s, f) }

// stop undoes everything, the last first, and returns every error.
func (s stopStack) stop(ctx context.Context) error {
	var errs []error
	for i := len(s) - 1; i >= 0; i-- {
		errs = append(errs, s[i](ctx))
	}
	return errors.Join(errs...)
}

// connectBoth connects to NATS with auth as client name, reconnecting for ever, opens
// the existing event store on it (never creating or changing a stream), and opens a PostgreSQL pool with a current schema;
// their closing (the pool, then the store and the connection) goes onto
// cleanups. The connection is closed, not drained: whatever used it
// (projector, validator) has finished with it by then, and a drain would
// wait out its timeout whenever NATS is unreachable.
func connectBoth(ctx context.Context, cleanups *stopStack, name, natsURL string, auth natsconn.Auth, storeCfg eventstore.Config,
	postgresURL string, maxConns int32) (*eventstore.Store, *pgxpool.Pool, error) {
	nc, store, err := connectStore(ctx, eventstore.OpenExisting, natsURL, auth, name, storeCfg, nats.MaxReconnects(-1))
	if err != nil {
		return nil, nil, err
	}
	cleanups.push(func(context.Context) error {
		_ = store.Close()
		nc.Close()
		return nil
	})
	pool, err := openPool(ctx, postgresURL, maxConns)
	if err != nil {
		return nil, nil, err
	}
	cleanups.push(func(context.Context) error { pool.Close(); return nil })
	return store, pool, nil
}
