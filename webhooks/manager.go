package webhooks

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/oklog/ulid/v2"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/ledger"
)

// StreamEnd tells the lifecycle stream's last sequence
// (eventstore.Store implements it).
type StreamEnd interface {
	StreamLastSequence(ctx context.Context) (uint64, error)
}

// MaxDeliveriesPage is the most deliveries one page lists.
const MaxDeliveriesPage = 500

// Manager runs the webhook use cases of the API, authorized for a caller:
// an admin (ledger:admin) manages every endpoint and may subscribe to
// every owner; any other caller manages only endpoints of its own owner,
// and another owner's endpoint is domain.ErrNotFound to it. It is safe for
// concurrent use.
type Manager struct {
	st           store
	end          StreamEnd
	allowPrivate bool
	clock        domain.Clock
}

// NewManager returns a manager of the endpoints in pool's database;
// end tells where the stream ends when an endpoint is registered (it
// receives only later events). allowPrivate lets URLs name loopback,
// private and link-local addresses. clock nil means domain.SystemClock.
func NewManager(pool *pgxpool.Pool, end StreamEnd, allowPrivate bool, clock domain.Clock) *Manager {
	if clock == nil {
		clock = domain.SystemClock{}
	}
	return &Manager{st: store{pool}, end: end, allowPrivate: allowPrivate, clock: clock}
}

// Registration is a registered endpoint and its signing secret, which is
// shown only here.
type Registration struct {
	Endpoint
	Secret Secret
}

// Register registers an endpoint receiving events of the given types
// (all when empty) of owner's tokens (nil: the caller's owner; for an
// admin, nil means every owner). A non-admin caller may name only its own
// owner (ledger.ErrForbidden otherwise). A bad URL or event type wraps
// domain.ErrInvalidArgument; a URL naming a refused address also wraps
// ErrRefusedTarget.
func (m *Manager) Register(ctx context.Context, c ledger.Caller, rawURL string, events []EventType, owner *domain.OwnerID) (Registration, error) {
	u, err := ValidateURL(rawURL, m.allowPrivate)
	if err != nil {
		return Registration{}, fmt.Errorf("%w: %w", domain.ErrInvalidArgument, err)
	}
	if err := ValidateEventTypes(events); err != nil {
		return Registration{}, err
	}
	if owner != nil {
		if err := domain.ValidateOwner(*owner); err != nil {
			return Registration{}, err
		}
	}
	if !c.IsAdmin() {
		if owner != nil && *owner != c.Owner {
			return Registration{}, fmt.Errorf("%w: a token of owner %q may subscribe only to its own owner's events", ledger.ErrForbidden, c.Owner)
		}
		own := c.Owner
		owner = &own
	}
	types := slices.Clone(events)
	slices.Sort(types)
	types = slices.Compact(types)
	if types == nil {
		types = []EventType{}
	}
	end, err := m.end.StreamLastSequence(ctx)
	if err != nil {
		return Registration{}, fmt.Errorf("%w: %w", ledger.ErrUnavailable, err)
	}
	now := domain.NormalizeTime(m.clock.Now())
	id, err := ulid.New(ulid.Timestamp(now), rand.Reader)
	if err != nil {
		return Registration{}, err
	}
	r := Registration{
		Endpoint: Endpoint{ID: id.String(), URL: u.String(), Owner: owner, Events: types, CreatedBy: c.Actor(), CreatedAt: now},
		Secret:   NewSecret(),
	}
	if err := m.st.insertEndpoint(ctx, r.Endpoint, r.Secret, end); err != nil {
		return Registration{}, fmt.Errorf("%w: %w", ledger.ErrUnavailable, err)
	}
	return r, nil
}

// List returns the endpoints the caller may see, oldest first.
func (m *Manager) List(ctx context.Context, c ledger.Caller) ([]Endpoint, error) {
	var owner *domain.OwnerID
	if !c.IsAdmin() {
		own := c.Owner
		owner = &own
	}
	out, err := m.st.endpoints(ctx, owner)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ledger.ErrUnavailable, err)
	}
	return out, nil
}

// Get returns endpoint id, if the caller may see it.
func (m *Manager) Get(ctx context.Context, c ledger.Caller, id string) (Endpoint, error) {
	e, err := m.st.endpoint(ctx, id)
	if errors.Is(err, domain.ErrNotFound) {
		return Endpoint{}, err
	}
	if err != nil {
		return Endpoint{}, fmt.Errorf("%w: %w", ledger.ErrUnavailable, err)
	}
	if !c.IsAdmin() && (e.Owner == nil || *e.Owner != c.Owner) {
		return Endpoint{}, fmt.Errorf("webhook endpoint %s: %w", id, domain.ErrNotFound)
	}
	return e, nil
}

// Remove removes endpoint id and its deliveries: nothing more is sent to
// it.
func (m *Manager) Remove(ctx context.Context, c ledger.Caller, id string) error {
	if _, err := m.Get(ctx, c, id); err != nil {
		return err
	}
	if err := m.st.deleteEndpoint(ctx, id); err != nil {
		return fmt.Errorf("%w: %w", ledger.ErrUnavailable, err)
	}
	return nil
}

// Deliveries lists endpoint id's deliveries, newest first: at most limit
// (1 to MaxDeliveriesPage), those with an id below before (0: from the
// newest).
func (m *Manager) Deliveries(ctx context.Context, c ledger.Caller, id string, before int64, limit int) ([]Delivery, error) {
	if limit < 1 || limit > MaxDeliveriesPage {
		return nil, fmt.Errorf("%w: limit %d is not within 1 to %d", domain.ErrInvalidArgument, limit, MaxDeliveriesPage)
	}
	if _, err := m.Get(ctx, c, id); err != nil {
		return nil, err
	}
	out, err := m.st.deliveries(ctx, id, before, limit)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ledger.ErrUnavailable, err)
	}
	return out, nil
}
