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
	return s.recordOnce(ctx, "announce_expiry", ExpiryActor, id, func(tok *domain.Token, owner *domain.Owner, m domain.Meta, now time.Time) (bool, error) {
		return tok.AnnounceExpiry(owner, leads, m, now)
	})
}

// recordOnce is the write of a scheduled fact about token id whose event
// id is derived (a notice, a policy's revocation): decide records it on the
// token, or reports false when it is not due or recorded already, and the
// token's whole history is checked before appending, so any number of
// callers, restarts and replays record it once: of two callers racing, one
// appends and the other finds the event in the history it reloads (or the
// store reports the id as taken). It reports whether this call recorded
// it. An unknown token is no error.
func (s *Service) recordOnce(ctx context.Context, op, actor string, id domain.TokenID,
	decide func(tok *domain.Token, owner *domain.Owner, m domain.Meta, now time.Time) (bool, error)) (bool, error) {
	m := s.meta(actor, "")
	var recorded bool
	err := s.retry(ctx, op, func(now time.Time) error {
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
		ok, err := decide(tok, owner, m, now)
		if err != nil || !ok {
			return err
		}
		err = s.append(ctx, op, tok, func() ([]domain.Envelope, error) {
			return s.cfg.Store.Append(ctx, eventstore.ExpectToken(id, tok.Version()), tok.Changes()...)
		})
		if errors.Is(err, eventstore.ErrEventIDReused) {
			// Another writer stored the event (at another instant) a
			// moment ago, within the store's duplicate window.
			return nil
		}
		recorded = err == nil
		return err
	})
	return recorded, err
}
