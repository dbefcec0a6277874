package ledger

import (
	"context"
	"crypto/subtle"
	"errors"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
)

// SecretHolderActor is the actor recorded for revocations by a presented
// secret (RFC 7009), where the holder has no other identity.
const SecretHolderActor = "secret-holder"

// Revoke revokes token id for reason. Revoking a revoked token (by itself
// or with its rotation family) succeeds and records nothing.
func (s *Service) Revoke(ctx context.Context, c Caller, id domain.TokenID, reason, correlationID string) error {
	tok, owner, err := s.loadForCaller(ctx, c, id)
	if err != nil {
		return err
	}
	if _, ok := owner.FamilyRevocationOf(tok); ok {
		return nil
	}
	return s.revoke(ctx, "revoke", tok, reason, s.meta(c.Actor(), correlationID))
}

// revoke records tok's revocation. A revocation is valid in any state
// (terminal and idempotent), so it is appended without an expectation and
// never conflicts.
func (s *Service) revoke(ctx context.Context, op string, tok *domain.Token, reason string, m domain.Meta) error {
	if err := tok.Revoke(reason, m, s.cfg.Clock.Now()); err != nil {
		return err
	}
	if len(tok.Changes()) == 0 {
		return nil
	}
	return s.append(ctx, op, tok, func() ([]domain.Envelope, error) {
		return s.cfg.Store.Append(ctx, eventstore.ExpectNothing(), tok.Changes()...)
	})
}

// RevokeSecret revokes the token whose secret is presented (RFC 7009):
// possession is the proof. A malformed secret, an unknown token or a secret
// that does not match the token's hash is not an error (the caller learns
// nothing); only a failure to record the revocation is. It reports whether a
// token was found.
func (s *Service) RevokeSecret(ctx context.Context, secret, correlationID string) (found bool, err error) {
	id, hash, err := domain.CheckSecret(secret)
	if err != nil {
		return false, nil
	}
	tok, err := s.loadToken(ctx, id)
	if errors.Is(err, domain.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	stored := tok.SecretHash()
	if subtle.ConstantTimeCompare(stored[:], hash[:]) != 1 {
		return false, nil
	}
	owner, err := s.loadOwner(ctx, tok.Owner())
	if err != nil {
		return false, err
	}
	if _, ok := owner.FamilyRevocationOf(tok); ok {
		return true, nil
	}
	return true, s.revoke(ctx, "revoke_secret", tok, "revoked by a holder of its secret", s.meta(SecretHolderActor, correlationID))
}

// ReuseDetectionActor is the actor recorded for the revocation of a
// rotation family whose rotated-out secret was presented.
const ReuseDetectionActor = "system:reuse-detection"

// RevokeReusedFamily revokes the whole rotation family of reuse.Token,
// because that token's rotated-out secret was presented after its grace
// (at reuse.Route, from reuse.ClientAddr): one owner.family_revoked event
// on the token's owner, with reason domain.ReasonRotatedSecretReused and
// the reuse, revokes every token of the family issued before it, whatever
// the family's size. It is appended under the owner's expectation, so a
// rotation racing with it either lands before it (and is covered) or is
// decided again and refused. Validators call it off their hot path. A
// token that is not rotated out (unknown, within its grace, revoked
// already) records nothing and is no error; a family already revoked
// records nothing either, so repeated reports append once.
func (s *Service) RevokeReusedFamily(ctx context.Context, reuse domain.SecretReuse) error {
	m := s.meta(ReuseDetectionActor, "")
	return s.retry(ctx, "revoke_family", func(now time.Time) error {
		reused, err := s.loadToken(ctx, reuse.Token)
		if errors.Is(err, domain.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if !reused.RotatedOut(now) {
			return nil
		}
		owner, err := s.loadOwner(ctx, reused.Owner())
		if err != nil {
			return err
		}
		version := owner.Version()
		if err := owner.RevokeFamily(reused, reuse, m, now); err != nil {
			return err
		}
		if len(owner.Changes()) == 0 {
			return nil
		}
		start := time.Now()
		stored, err := s.cfg.Store.Append(ctx, eventstore.ExpectOwner(owner.ID(), version), owner.Changes()...)
		s.observeAppend("revoke_family", start, err)
		if err != nil {
			return storeErr(err)
		}
		s.observe(stored)
		return owner.MarkStored(sequences(stored)...)
	})
}
