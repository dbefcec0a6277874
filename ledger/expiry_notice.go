package ledger

import (
	"context"
	"errors"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
)

// ExpiryActor is the actor recorded on expiry notices.
const ExpiryActor = "system:expiry"

// AnnounceExpiry records the expiry notice of token id that is due now,
// with lead times leads, if it is not recorded yet (see
// domain.Token.AnnounceExpiry), and reports whether this call recorded
// one. The notice's event id is derived from the token, the lead time and
// the expiry, and the token's whole history is checked before appending,
// so any number of callers, restarts and replays record each notice once:
// of two callers racing, one appends and the other finds the notice in the
// history it reloads (or the store reports the id as taken). An unknown
// token is no error.
func (s *Service) AnnounceExpiry(ctx context.Context, id domain.TokenID, leads []time.Duration) (bool, error) {
	m := s.meta(ExpiryActor, "")
	var recorded bool
	err := s.retry(ctx, "announce_expiry", func(now time.Time) error {
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
		ok, err := tok.AnnounceExpiry(owner, leads, m, now)
		if err != nil || !ok {
			return err
		}
		err = s.append(ctx, "announce_expiry", tok, func() ([]domain.Envelope, error) {
			return s.cfg.Store.Append(ctx, eventstore.ExpectToken(id, tok.Version()), tok.Changes()...)
		})
		if errors.Is(err, eventstore.ErrEventIDReused) {
			// Another writer stored the notice (at another instant) a
			// moment ago, within the store's duplicate window.
			return nil
		}
		recorded = err == nil
		return err
	})
	return recorded, err
}
