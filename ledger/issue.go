package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
)

// Issued is a newly issued token and its secret, which exists only here.
type Issued struct {
	View
	Secret domain.Secret
}

// Issue issues a token for req.Owner (the caller's owner when empty). A
// non-admin caller may issue only for its own owner, only scopes it holds
// itself, and no token that outlives its own: without a requested expiry the
// policy's default is capped at the caller's expiry, and a requested expiry
// after it (or none at all) is ErrLifetimeExceedsCaller. A non-admin
// caller whose token is limited to networks issues tokens limited to them:
// its own networks when none are asked for, and asking for networks not
// within them is ErrForbidden.
func (s *Service) Issue(ctx context.Context, c Caller, req domain.IssueRequest, correlationID string) (Issued, error) {
	if req.Owner == "" {
		req.Owner = c.Owner
	}
	if err := domain.ValidateOwner(req.Owner); err != nil {
		return Issued{}, err
	}
	if !c.mayManage(req.Owner) {
		return Issued{}, fmt.Errorf("%w: a token of owner %q may not issue tokens for another owner", ErrForbidden, c.Owner)
	}
	scopes, err := domain.NormalizeScopes(req.Scopes)
	if err != nil {
		return Issued{}, err
	}
	if !c.IsAdmin() {
		for _, sc := range scopes {
			if !c.HasScope(sc) {
				return Issued{}, fmt.Errorf("%w: scope %q is not one of the caller's scopes", ErrForbidden, sc)
			}
		}
	}
	req.Scopes = scopes
	req.NotAfter = c.lifetimeBound()
	if !c.IsAdmin() && len(c.AllowedCIDRs) > 0 {
		// A caller limited to networks issues tokens limited to them:
		// its own by default, narrower ones if asked.
		asked, err := domain.NormalizeCIDRs(req.AllowedCIDRs)
		if err != nil {
			return Issued{}, err
		}
		if len(asked) == 0 {
			req.AllowedCIDRs = domain.CIDRStrings(c.AllowedCIDRs)
		} else if !domain.CIDRsWithin(asked, c.AllowedCIDRs) {
			return Issued{}, fmt.Errorf("%w: the allowed networks asked for are not within the caller's own", ErrForbidden)
		}
	}
	m := s.meta(c.Actor(), correlationID)

	var out Issued
	err = s.retry(ctx, "issue", func(now time.Time) error {
		owner, err := s.loadOwner(ctx, req.Owner)
		if err != nil {
			return err
		}
		tok, secret, err := domain.IssueToken(s.cfg.Policy, owner, req, m, now, s.cfg.Entropy)
		if err != nil {
			return lifetimeErr(err)
		}
		if err := s.append(ctx, "issue", tok, func() ([]domain.Envelope, error) {
			return s.cfg.Store.Append(ctx, eventstore.ExpectOwner(req.Owner, owner.Version()), tok.Changes()...)
		}); err != nil {
			return err
		}
		out = Issued{View: view(tok, owner, now), Secret: secret}
		return nil
	})
	return out, err
}
