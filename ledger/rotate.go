package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
)

// Rotated is the answer of Rotate.
type Rotated struct {
	Issued
	// PreviousExpiresAt is when the old token expires.
	PreviousExpiresAt time.Time
}

// Rotate issues a token with the same owner, name, scopes and kind as token
// id and sets the old one to expire after grace, in one atomic append. For
// a non-admin caller the new token's policy lifetime is capped at the
// caller's own expiry: rotating never extends a caller's life (rotating its
// own token gives a successor that expires when the old token would have).
func (s *Service) Rotate(ctx context.Context, c Caller, id domain.TokenID, grace time.Duration, correlationID string) (Rotated, error) {
	m := s.meta(c.Actor(), correlationID)
	notAfter := c.lifetimeBound()
	var out Rotated
	err := s.retry(ctx, "rotate", func(now time.Time) error {
		old, owner, err := s.loadForCaller(ctx, c, id)
		if err != nil {
			return err
		}
		ownerVersion, oldVersion := owner.Version(), old.Version()
		tok, secret, err := domain.Rotate(s.cfg.Policy, owner, old, grace, notAfter, m, now, s.cfg.Entropy)
		if err != nil {
			if errors.Is(err, domain.ErrPolicyViolation) {
				if _, rotated := old.RotatedTo(); rotated {
					return fmt.Errorf("%w: %w", ErrConflict, err)
				}
			}
			return lifetimeErr(err)
		}
		start := time.Now()
		stored, err := s.cfg.Store.AppendAtomic(ctx,
			eventstore.Change{Expect: eventstore.ExpectToken(id, oldVersion), Events: old.Changes()},
			eventstore.Change{Expect: eventstore.ExpectOwner(owner.ID(), ownerVersion), Events: tok.Changes()},
		)
		s.observeAppend("rotate", start, err)
		if err != nil {
			return storeErr(err)
		}
		s.observe(stored)
		nOld := len(old.Changes())
		if err := markStored(old, stored[:nOld]); err != nil {
			return err
		}
		if err := markStored(tok, stored[nOld:]); err != nil {
			return err
		}
		exp, _ := old.ExpiresAt()
		out = Rotated{Issued: Issued{View: view(tok, owner, now), Secret: secret}, PreviousExpiresAt: exp}
		return nil
	})
	return out, err
}
