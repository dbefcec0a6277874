package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
)

// Update is a change of a token's settings; the fields not marked set are
// left as they are.
type Update struct {
	// SetExpiry asks for ExpiresAt (nil: does not expire) as the expiry.
	SetExpiry bool
	ExpiresAt *time.Time
	// SetCIDRs asks for AllowedCIDRs (none: any network) as the networks
	// the token may be used from (see domain.NormalizeCIDRs).
	SetCIDRs     bool
	AllowedCIDRs []string
}

// SetExpiry sets token id's expiry to at (nil: does not expire). A non-admin
// caller may only shorten it. A revoked token is domain.ErrTokenRevoked (or
// domain.ErrOwnerRevoked).
func (s *Service) SetExpiry(ctx context.Context, c Caller, id domain.TokenID, at *time.Time, correlationID string) (View, error) {
	return s.Update(ctx, c, id, Update{SetExpiry: true, ExpiresAt: at}, correlationID)
}

// Update changes token id's expiry, its allowed networks, or both, with one
// append: either every change is recorded or none. A non-admin caller may
// only shorten the expiry and only narrow the networks (every new network
// within one the token has; lifting the limit widens it). A revoked token
// is domain.ErrTokenRevoked (or domain.ErrOwnerRevoked); an update that
// sets nothing is domain.ErrInvalidArgument.
func (s *Service) Update(ctx context.Context, c Caller, id domain.TokenID, u Update, correlationID string) (View, error) {
	if !u.SetExpiry && !u.SetCIDRs {
		return View{}, fmt.Errorf("update token %s: %w: nothing to change", id, domain.ErrInvalidArgument)
	}
	var cidrs []string
	if u.SetCIDRs {
		ps, err := domain.NormalizeCIDRs(u.AllowedCIDRs)
		if err != nil {
			return View{}, fmt.Errorf("update token %s: %w", id, err)
		}
		cidrs = domain.CIDRStrings(ps)
	}
	op := "update"
	switch {
	case !u.SetCIDRs:
		op = "set_expiry"
	case !u.SetExpiry:
		op = "set_cidrs"
	}
	m := s.meta(c.Actor(), correlationID)
	var out View
	err := s.retry(ctx, op, func(now time.Time) error {
		tok, owner, err := s.loadForCaller(ctx, c, id)
		if err != nil {
			return err
		}
		if _, ok := owner.FamilyRevocationOf(tok); ok {
			return fmt.Errorf("update token %s: %w", id, domain.ErrTokenRevoked)
		}
		if owner.Covers(tok) {
			return fmt.Errorf("update token %s: %w", id, domain.ErrOwnerRevoked)
		}
		if u.SetExpiry {
			if !c.IsAdmin() && tok.Extends(u.ExpiresAt) {
				if u.ExpiresAt == nil {
					return fmt.Errorf("%w: only an admin may remove a token's expiry", ErrForbidden)
				}
				return fmt.Errorf("%w: only an admin may extend a token's expiry", ErrForbidden)
			}
			if err := tok.SetExpiry(s.cfg.Policy, u.ExpiresAt, m, now); err != nil {
				return err
			}
		}
		if u.SetCIDRs {
			if !c.IsAdmin() && !widensNot(cidrs, tok) {
				if len(cidrs) == 0 {
					return fmt.Errorf("%w: only an admin may lift a token's network limit", ErrForbidden)
				}
				return fmt.Errorf("%w: only an admin may widen a token's allowed networks", ErrForbidden)
			}
			if err := tok.SetAllowedCIDRs(cidrs, m, now); err != nil {
				return err
			}
		}
		if len(tok.Changes()) > 0 {
			if err := s.append(ctx, op, tok, func() ([]domain.Envelope, error) {
				return s.cfg.Store.Append(ctx, eventstore.ExpectToken(id, tok.Version()), tok.Changes()...)
			}); err != nil {
				return err
			}
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

// widensNot reports whether limiting tok to cidrs (canonical) keeps it
// within the networks it has.
func widensNot(cidrs []string, tok *domain.Token) bool {
	ps, _ := domain.NormalizeCIDRs(cidrs)
	return domain.CIDRsWithin(ps, tok.AllowedCIDRs())
}
