package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
)

// SetExpiry sets token id's expiry to at (nil: does not expire). A non-admin
// caller may only shorten it. A revoked token is domain.ErrTokenRevoked (or
// domain.ErrOwnerRevoked).
func (s *Service) SetExpiry(ctx context.Context, c Caller, id domain.TokenID, at *time.Time, correlationID string) (View, error) {
	m := s.meta(c.Actor(), correlationID)
	var out View
	err := s.retry(ctx, "set_expiry", func(now time.Time) error {
		tok, owner, err := s.loadForCaller(ctx, c, id)
		if err != nil {
			return err
		}
		if _, ok := owner.FamilyRevocationOf(tok); ok {
			return fmt.Errorf("set expiry of token %s: %w", id, domain.ErrTokenRevoked)
		}
		if owner.Covers(tok) {
			return fmt.Errorf("set expiry of token %s: %w", id, domain.ErrOwnerRevoked)
		}
		if !c.IsAdmin() && tok.Extends(at) {
			if at == nil {
				return fmt.Errorf("%w: only an admin may remove a token's expiry", ErrForbidden)
			}
			return fmt.Errorf("%w: only an admin may extend a token's expiry", ErrForbidden)
		}
		if err := tok.SetExpiry(s.cfg.Policy, at, m, now); err != nil {
			return err
		}
		if err := s.append(ctx, "set_expiry", tok, func() ([]domain.Envelope, error) {
			return s.cfg.Store.Append(ctx, eventstore.ExpectToken(id, tok.Version()), tok.Changes()...)
		}); err != nil {
			return err
		}
		out = view(tok, owner, now)
		return nil
	})
	if err != nil {
		return View{}, err
	}
	// The event is acknowledged: the answer is built from the aggregate,
	// and the read model only adds the usage, if it can.
	s.addUsage(ctx, &out)
	return out, nil
}
