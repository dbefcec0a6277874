package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
)

// SessionSlideActor is the actor of the session extensions recorded after
// use.
const SessionSlideActor = "system:session-slide"

// SessionStore is what sliding a session needs of the event store: the
// token's history and an append. *eventstore.Store implements it.
type SessionStore interface {
	Appender
	LoadToken(ctx context.Context, id domain.TokenID) ([]domain.Envelope, error)
}

// SessionSlider is the session-extension use case: after a session was
// used, its expiry slides (domain.Token.ExtendSession decides how far). The
// usage consumer runs it for the sessions each batch used. Its zero
// fields other than Store take defaults; it is safe for concurrent use.
type SessionSlider struct {
	Store SessionStore
	// Step is the policy's SessionExtendStep.
	Step time.Duration
	// Clock tells the time; nil means domain.SystemClock.
	Clock domain.Clock
	// MaxAttempts bounds how often one extension is decided again after a
	// concurrent change of the token; zero means 4.
	MaxAttempts int
	// OnConflict, if set, is called each time an extension is decided
	// again because the token changed meanwhile.
	OnConflict func()
}

// Extend slides session id after a use at lastUse: it loads the token, lets
// domain.Token.ExtendSession decide, and appends the extension under the
// token's concurrency check, deciding again after a conflict. It returns
// the token as it stands afterwards (nil when that is not known: an append
// whose sequences could not be recorded) and whether an extension was
// appended. A token that is not a session, is revoked, or need not move is
// returned unextended; a token never issued is an error wrapping
// domain.ErrNotFound.
func (s SessionSlider) Extend(ctx context.Context, id domain.TokenID, lastUse time.Time, m domain.Meta) (*domain.Token, bool, error) {
	clock := s.Clock
	if clock == nil {
		clock = domain.SystemClock{}
	}
	attempts := s.MaxAttempts
	if attempts <= 0 {
		attempts = 4
	}
	for attempt := 1; ; attempt++ {
		history, err := s.Store.LoadToken(ctx, id)
		if err != nil {
			return nil, false, fmt.Errorf("load token %s: %w", id, err)
		}
		t, err := domain.TokenFromHistory(history)
		if err != nil {
			return nil, false, err
		}
		if t.Kind() != domain.KindSession {
			return t, false, nil
		}
		ok, err := t.ExtendSession(lastUse, s.Step, m, clock.Now())
		switch {
		case errors.Is(err, domain.ErrTokenRevoked):
			return t, false, nil
		case err != nil:
			return nil, false, err
		case !ok:
			return t, false, nil
		}
		stored, err := s.Store.Append(ctx, eventstore.ExpectToken(id, t.Version()), t.Changes()...)
		if err == nil {
			if markStored(t, stored) != nil {
				return nil, true, nil
			}
			return t, true, nil
		}
		if !errors.Is(err, eventstore.ErrConflict) || attempt >= attempts {
			return nil, false, fmt.Errorf("append extension of token %s: %w", id, err)
		}
		if s.OnConflict != nil {
			s.OnConflict()
		}
	}
}
