package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/ledger"
	"github.com/tokenledger/tokenledger/natsconn"
)

// ErrNotEmpty: the ledger already holds events, so it was bootstrapped;
// issuing another admin token then needs Force.
var ErrNotEmpty = errors.New("the ledger is not empty")

// BootstrapConfig configures `tokenledger admin bootstrap`.
type BootstrapConfig struct {
	// NATSURL is the NATS server holding the event streams.
	NATSURL string
	// NATSAuth holds the credentials and TLS settings of the NATS
	// connections.
	NATSAuth natsconn.Auth
	// Store names the streams; it must match the deployment's.
	Store eventstore.Config
	// Policy is the issuing policy: the token gets its default lifetime.
	Policy domain.Policy
	// Force issues an admin token even when the ledger holds events: the
	// break-glass path when every admin token is lost. The issue is in the
	// history like any other, with the actor "system:bootstrap".
	Force bool
}

// Validate reports every problem with c at once.
func (c BootstrapConfig) Validate() error {
	errs := validateStoreConnection(c.NATSURL, c.NATSAuth, c.Store)
	if err := c.Policy.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("policy: %w", err))
	}
	return errors.Join(errs...)
}

// AdminBootstrap issues an admin token into the ledger at cfg.NATSURL: on an
// empty ledger, or on any ledger with cfg.Force. The secret is in the result
// only.
func AdminBootstrap(ctx context.Context, cfg BootstrapConfig) (*ledger.Bootstrapped, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	nc, store, err := connectStore(ctx, eventstore.Open, cfg.NATSURL, cfg.NATSAuth, "tokenledger-admin-bootstrap", cfg.Store)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	defer store.Close()
	n, err := store.StreamLastSequence(ctx)
	if err != nil {
		return nil, err
	}
	if n > 0 && !cfg.Force {
		return nil, fmt.Errorf("%w: it holds %d events, so it was bootstrapped already; --force issues another admin token (break-glass)", ErrNotEmpty, n)
	}
	return ledger.BootstrapAdmin(ctx, store, cfg.Policy, domain.SystemClock{})
}

// StreamsConfig configures `tokenledger streams init`.
type StreamsConfig struct {
	// NATSURL is the NATS server that holds (or will hold) the streams.
	NATSURL string
	// NATSAuth holds the credentials and TLS settings of the NATS
	// connections.
	NATSAuth natsconn.Auth
	// Store is the streams' configuration to create or apply.
	Store eventstore.Config
}

// Validate reports every problem with c at once.
func (c StreamsConfig) Validate() error {
	return errors.Join(validateStoreConnection(c.NATSURL, c.NATSAuth, c.Store)...)
}

// InitStreams creates the event streams at cfg.NATSURL, or updates them to
// cfg.Store where they differ, and returns the lifecycle stream's last
// sequence. It is the one place besides `dev` that changes streams: every
// other process opens them as they are (eventstore.OpenExisting). Run it
// with the operator's credentials.
func InitStreams(ctx context.Context, cfg StreamsConfig) (uint64, error) {
	if err := cfg.Validate(); err != nil {
		return 0, err
	}
	nc, store, err := connectStore(ctx, eventstore.Open, cfg.NATSURL, cfg.NATSAuth, "tokenledger-streams-init", cfg.Store)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	defer store.Close()
	return store.StreamLastSequence(ctx)
}

// validateStoreConnection reports every problem with how a set-up command
// reaches the event store.
func validateStoreConnection(natsURL string, auth natsconn.Auth, store eventstore.Config) []error {
	var errs []error
	if err := validateNATSURL(natsURL); err != nil {
		errs = append(errs, err)
	}
	if err := auth.Validate(natsURL); err != nil {
		errs = append(errs, err)
	}
	if err := store.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("store: %w", err))
	}
	return errs
}
