package validator

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/natsconn"
	"github.com/tokenledger/tokenledger/projections"
)

// DefaultEmbedName is the NATS client name of an embedded validator's
// connection (Embed.Name), as the server's connection list shows it.
const DefaultEmbedName = "tokenledger-validator"

// Embed is what Connect needs to run a validator inside another program:
// where NATS and PostgreSQL are, and the credentials to reach them.
//
// The validator needs little. In PostgreSQL it reads the read model once,
// at start (a role with SELECT on the projection tables is enough; the
// pool's transactions are read-only). In NATS it reads the two streams
// (stream info, direct gets, an ordered consumer of its own on the
// lifecycle stream) and publishes usage batches to the usage subjects:
// publish "$JS.API.>" and "<prefix>.usage.>" (tl.usage.> by default),
// denied eventstore.APINodeDeniedAPISubjects, and subscribe "_INBOX.>".
// That is the validator user of deploy/nats/nats-server.conf; it can
// neither append lifecycle events nor create, change, purge or delete a
// stream or the workers' durable consumers.
type Embed struct {
	// NATSURL is the NATS server's URL, or a comma-separated list of a
	// cluster's URLs. Required.
	NATSURL string
	// NATSAuth holds the credentials (a .creds file, an NKey seed file,
	// or a user with a password file) and TLS settings of the connection.
	// Its errors name the tokenledger flag of each setting
	// (--nats-creds, ...), which is the field of the same meaning.
	NATSAuth natsconn.Auth
	// Name is the connection's client name; empty means DefaultEmbedName.
	Name string
	// PostgresURL is the read model's database (a URL or a key=value
	// connection string, with its password or a PGPASSFILE). Required.
	PostgresURL string
	// Store names the streams and subjects; the zero value means
	// eventstore.DefaultConfig(). The streams must exist: Connect never
	// creates or changes them.
	Store eventstore.Config
	// Config configures the validator (its zero fields take the
	// defaults). Its Store and Projections must be nil: Connect sets
	// them.
	Config Config
}

// Validate reports every problem of e at once, as Connect would, without
// connecting: missing URLs, inconsistent or unreadable NATS credentials,
// an invalid store or validator configuration.
func (e Embed) Validate() error {
	var errs []error
	if e.NATSURL == "" {
		errs = append(errs, errors.New("nats url must be set"))
	}
	if e.PostgresURL == "" {
		errs = append(errs, errors.New("postgres url must be set"))
	} else if _, err := pgxpool.ParseConfig(e.PostgresURL); err != nil {
		errs = append(errs, fmt.Errorf("postgres url: %w", err))
	}
	if err := e.NATSAuth.Validate(e.NATSURL); err != nil {
		errs = append(errs, err)
	}
	if err := e.storeConfig().Validate(); err != nil {
		errs = append(errs, fmt.Errorf("store: %w", err))
	}
	if e.Config.Store != nil || e.Config.Projections != nil {
		errs = append(errs, errors.New("config: Store and Projections are set by Connect and must be nil"))
	}
	cfg := e.Config
	// Placeholders: Connect provides both.
	cfg.Store, cfg.Projections = &eventstore.Store{}, &projections.ReadModel{}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (e Embed) storeConfig() eventstore.Config {
	if e.Store == (eventstore.Config{}) {
		return eventstore.DefaultConfig()
	}
	return e.Store
}

// Connect connects to NATS and PostgreSQL as e says, opens the existing
// streams (eventstore.OpenExisting: it never creates or changes a
// stream), loads the read model's snapshot, starts following the
// lifecycle stream, and returns the validator running: Validate answers
// at once. ctx bounds the connecting and the start only.
//
// The PostgreSQL pool (at most two connections, read-only transactions)
// is closed as soon as the snapshot is loaded: a running validator holds
// no PostgreSQL connection. The NATS connection reconnects for ever;
// while it is down the validator answers until Config.MaxStaleness and
// then refuses with ErrStale (unless Config.FailOpen).
//
// Close stops the validator, flushes its usage and closes the NATS
// connection. If Connect fails, it has released everything it opened.
func Connect(ctx context.Context, e Embed) (*Validator, error) {
	if err := e.Validate(); err != nil {
		return nil, fmt.Errorf("connect validator: %w", err)
	}
	name := e.Name
	if name == "" {
		name = DefaultEmbedName
	}
	nc, err := natsconn.Connect(e.NATSURL, e.NATSAuth, nats.Name(name), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("connect validator: %w", err)
	}
	store, err := eventstore.OpenExisting(ctx, nc, domain.NewDefaultRegistry(), e.storeConfig())
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("connect validator: %w", err)
	}
	release := func() {
		_ = store.Close()
		// Closed, not drained: the validator has finished with it, and a
		// drain would wait out its timeout whenever NATS is unreachable.
		nc.Close()
	}
	pool, err := openReadPool(ctx, e.PostgresURL)
	if err != nil {
		release()
		return nil, fmt.Errorf("connect validator: %w", err)
	}
	defer pool.Close()

	cfg := e.Config
	cfg.Store, cfg.Projections = store, projections.New(pool)
	v, err := New(cfg)
	if err != nil {
		release()
		return nil, fmt.Errorf("connect validator: %w", err)
	}
	v.release = release
	if err := v.Start(ctx); err != nil {
		_ = v.Close(ctx)
		return nil, fmt.Errorf("connect validator: %w", err)
	}
	return v, nil
}

// openReadPool opens a pool of at most two connections whose
// transactions are read-only unless they ask otherwise.
func openReadPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres url: %w", err)
	}
	cfg.MaxConns = 2
	cfg.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = DefaultEmbedName
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	return pool, nil
}
