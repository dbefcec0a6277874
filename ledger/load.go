package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/tokenledger/tokenledger/domain"
)

func (s *Service) meta(actor, correlationID string) domain.Meta {
	return domain.Meta{Actor: actor, CorrelationID: correlationID}
}

func (s *Service) loadToken(ctx context.Context, id domain.TokenID) (*domain.Token, error) {
	events, err := s.cfg.Store.LoadToken(ctx, id)
	if err != nil {
		return nil, storeErr(err)
	}
	tok, err := domain.TokenFromHistory(events)
	if err != nil {
		return nil, s.notFoundOr(id, err)
	}
	return tok, nil
}

func (s *Service) notFoundOr(id domain.TokenID, err error) error {
	if errors.Is(err, domain.ErrNotFound) {
		return fmt.Errorf("token %s: %w", id, domain.ErrNotFound)
	}
	return fmt.Errorf("load token %s: %w", id, err)
}

func (s *Service) loadOwner(ctx context.Context, owner domain.OwnerID) (*domain.Owner, error) {
	events, err := s.cfg.Store.LoadOwner(ctx, owner)
	if err != nil {
		return nil, storeErr(err)
	}
	o, err := domain.OwnerFromHistory(owner, events)
	if err != nil {
		return nil, fmt.Errorf("load owner %q: %w", owner, err)
	}
	return o, nil
}

// loadForCaller loads token id and its owner, reporting another owner's
// token to a non-admin caller as ErrNotFound.
func (s *Service) loadForCaller(ctx context.Context, c Caller, id domain.TokenID) (*domain.Token, *domain.Owner, error) {
	tok, err := s.loadToken(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if !c.mayManage(tok.Owner()) {
		return nil, nil, fmt.Errorf("token %s: %w", id, domain.ErrNotFound)
	}
	owner, err := s.loadOwner(ctx, tok.Owner())
	if err != nil {
		return nil, nil, err
	}
	return tok, owner, nil
}
