package ledger

import (
	"context"
	"errors"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
)

// InactivityActor is the actor recorded on the inactivity policy's
// warnings and revocations.
const InactivityActor = "policy"

// EnforceInactivity applies the inactivity policy to token id, to be
// revoked at due unless used (see domain.Token.EnforceInactivity): it
// records the revocation, or the warning of lead times leads that is due
// now, if not recorded yet, and reports whether this call recorded an
// event. Event ids are derived from the token, the lead time and due, and
// the token's whole history is checked before appending, so any number of
// callers, restarts and replays record each event once. An unknown token
// is no error.
func (s *Service) EnforceInactivity(ctx context.Context, id domain.TokenID, due time.Time, leads []time.Duration) (bool, error) {
	m := s.meta(InactivityActor, "")
	var recorded bool
	err := s.retry(ctx, "enforce_inactivity", func(now time.Time) error {
		recorded = false
		tok, err := s.loadToken(ctx, id)
		if errors.Is(err, domain.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		owner, err := s.loadOwner(ctx, tok.Owner())
		if err != nil {
			return err
		}
		ok, err := tok.EnforceInactivity(owner, due, leads, m, now)
		if err != nil || !ok {
			return err
		}
		err = s.append(ctx, "enforce_inactivity", tok, func() ([]domain.Envelope, error) {
			return s.cfg.Store.Append(ctx, eventstore.ExpectToken(id, tok.Version()), tok.Changes()...)
		})
		if errors.Is(err, eventstore.ErrEventIDReused) {
			return nil
		}
		recorded = err == nil
		return err
	})
	return recorded, err
}
