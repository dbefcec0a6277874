package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
)

// OwnerRevocation is the answer of RevokeOwner.
type OwnerRevocation struct {
	Owner         domain.OwnerID
	RevokedBefore time.Time
	// Until is zero when no ban on new tokens is in force.
	Until  time.Time
	Reason string
}

// RevokeOwner revokes every token of owner issued up to now with one event;
// until, if set, blocks new tokens until then. A non-admin caller may revoke
// only its own owner's tokens (its own token included).
func (s *Service) RevokeOwner(ctx context.Context, c Caller, owner domain.OwnerID, until *time.Time, reason, correlationID string) (OwnerRevocation, error) {
	if err := domain.ValidateOwner(owner); err != nil {
		return OwnerRevocation{}, err
	}
	if !c.mayManage(owner) {
		return OwnerRevocation{}, fmt.Errorf("%w: a token of owner %q may not revoke another owner's tokens", ErrForbidden, c.Owner)
	}
	m := s.meta(c.Actor(), correlationID)
	var out OwnerRevocation
	err := s.retry(ctx, "revoke_owner", func(now time.Time) error {
		o, err := s.loadOwner(ctx, owner)
		if err != nil {
			return err
		}
		version := o.Version()
		if err := o.RevokeTokens(until, reason, m, now); err != nil {
			return err
		}
		start := time.Now()
		stored, err := s.cfg.Store.Append(ctx, eventstore.ExpectOwner(owner, version), o.Changes()...)
		s.observeAppend("revoke_owner", start, err)
		if err != nil {
			return storeErr(err)
		}
		s.observe(stored)
		if err := o.MarkStored(sequences(stored)...); err != nil {
			return err
		}
		out = OwnerRevocation{Owner: owner, Reason: o.Reason()}
		out.RevokedBefore, _ = o.RevokedBefore()
		if u, ok := o.Until(); ok && u.After(now) {
			out.Until = u
		}
		return nil
	})
	return out, err
}
