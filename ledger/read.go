package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tokenledger/tokenledger/audit"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/projections"
)

// Get returns token id as of now. Another owner's token is ErrNotFound for
// a non-admin caller.
func (s *Service) Get(ctx context.Context, c Caller, id domain.TokenID) (View, error) {
	tok, owner, err := s.loadForCaller(ctx, c, id)
	if err != nil {
		return View{}, err
	}
	v := view(tok, owner, s.cfg.Clock.Now())
	s.addUsage(ctx, &v)
	return v, nil
}

// List returns one page of tokens from the read model. A non-admin caller
// lists its own owner's tokens; naming another owner is ErrForbidden.
func (s *Service) List(ctx context.Context, c Caller, f projections.ListFilter) (projections.Page, error) {
	if f.Owner == nil && !c.IsAdmin() {
		own := c.Owner
		f.Owner = &own
	}
	if f.Owner != nil && !c.mayManage(*f.Owner) {
		return projections.Page{}, fmt.Errorf("%w: a token of owner %q may list only its own owner's tokens", ErrForbidden, c.Owner)
	}
	p, err := s.cfg.Projections.List(ctx, f)
	if err != nil {
		if errors.Is(err, domain.ErrInvalidArgument) {
			return projections.Page{}, err
		}
		return projections.Page{}, fmt.Errorf("%w: list tokens: %w", ErrUnavailable, err)
	}
	return p, nil
}

// Events returns token id's history, complete up to the stream sequence it
// names: its stored events and the owner-wide revocation that revoked it,
// in stream order (see audit.TokenHistory). Another owner's token is
// ErrNotFound for a non-admin caller.
func (s *Service) Events(ctx context.Context, c Caller, id domain.TokenID) (audit.History, error) {
	h, err := audit.TokenHistory(ctx, s.cfg.Store, id)
	switch {
	case errors.Is(err, domain.ErrNotFound):
		return audit.History{}, fmt.Errorf("token %s: %w", id, domain.ErrNotFound)
	case errors.Is(err, domain.ErrCorruptEvent), errors.Is(err, domain.ErrUnknownEventType),
		errors.Is(err, domain.ErrInvalidArgument):
		return audit.History{}, err
	case err != nil:
		return audit.History{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if !c.mayManage(h.Owner) {
		return audit.History{}, fmt.Errorf("token %s: %w", id, domain.ErrNotFound)
	}
	return h, nil
}

// usageTimeout bounds the read of a token's usage from the read model, so
// that an unreachable PostgreSQL delays an answer by at most this.
const usageTimeout = 2 * time.Second

// addUsage adds the uses recorded in the read model to v. It never fails:
// the read model is not needed for an answer, so when it cannot be read v
// is marked UsagePartial and takes the last use the local validator saw.
func (s *Service) addUsage(ctx context.Context, v *View) {
	ctx, cancel := context.WithTimeout(ctx, usageTimeout)
	defer cancel()
	u, err := s.cfg.Projections.GetUsage(ctx, v.Token.ID())
	switch {
	case errors.Is(err, domain.ErrNotFound):
	case err != nil:
		v.UsagePartial = true
		if s.cfg.LocalUsage == nil {
			return
		}
		if at, ok := s.cfg.LocalUsage.LastUse(v.Token.ID()); ok && at.After(v.LastUsedAt) {
			v.LastUsedAt = at
		}
	default:
		v.UseCount += u.Count
		if u.LastAt.After(v.LastUsedAt) {
			v.LastUsedAt = u.LastAt
		}
		if addrs, err := s.cfg.Projections.GetRecentAddrs(ctx, v.Token.ID()); err == nil {
			v.LastUsedIPs = addrs
		}
	}
}

// UsageSeries returns the uses of token id per hour or day in [from, to)
// from the read model's rollups, for a caller who may see the token.
func (s *Service) UsageSeries(ctx context.Context, c Caller, id domain.TokenID, g projections.Granularity, from, to time.Time) ([]projections.UsageBucket, error) {
	if _, _, err := s.loadForCaller(ctx, c, id); err != nil {
		return nil, err
	}
	return s.cfg.Projections.UsageSeries(ctx, id, g, from, to)
}

func view(tok *domain.Token, owner *domain.Owner, now time.Time) View {
	v := View{
		Token:        tok,
		Now:          now,
		Status:       tok.Status(now, owner),
		OwnerRevoked: owner != nil && owner.Covers(tok),
		UseCount:     tok.UseCount(),
	}
	v.OwnerRevocation, _ = owner.RevocationOf(tok)
	v.FamilyRevocation, v.FamilyRevoked = owner.FamilyRevocationOf(tok)
	v.LastUsedAt, _ = tok.LastUsedAt()
	return v
}
