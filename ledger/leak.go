package ledger

import (
	"context"
	"crypto/subtle"
	"errors"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
)

// LeakLabel is what a secret scanner is told of a reported secret.
type LeakLabel string

const (
	// LeakTruePositive: the secret is a token's, which is revoked now (or
	// was revoked before).
	LeakTruePositive LeakLabel = "true_positive"
	// LeakFalsePositive: the secret is no token's.
	LeakFalsePositive LeakLabel = "false_positive"
)

// SecretScanningActor is the actor recorded for revocations on a secret
// scanner's report; the scanner's name follows it ("secret-scanning:github").
const SecretScanningActor = "secret-scanning"

// ReportLeaked acts on a secret scanner's report (named scanner) that
// secret was found in public at report.URL: the token whose secret it is
// is revoked with reason domain.ReasonLeaked and the report in the event,
// unless it is revoked already. It answers LeakTruePositive for a token's
// secret, live or revoked before, and LeakFalsePositive for anything else
// (a malformed secret, an unknown token, a secret that does not match).
// Only a failure to load or record is an error.
func (s *Service) ReportLeaked(ctx context.Context, scanner, secret string, report domain.LeakReport, correlationID string) (LeakLabel, error) {
	id, hash, err := domain.CheckSecret(secret)
	if err != nil {
		return LeakFalsePositive, nil
	}
	tok, err := s.loadToken(ctx, id)
	if errors.Is(err, domain.ErrNotFound) {
		return LeakFalsePositive, nil
	}
	if err != nil {
		return "", err
	}
	stored := tok.SecretHash()
	if subtle.ConstantTimeCompare(stored[:], hash[:]) != 1 {
		return LeakFalsePositive, nil
	}
	m := s.meta(SecretScanningActor+":"+scanner, correlationID)
	if err := tok.RevokeLeaked(report, m, s.cfg.Clock.Now()); err != nil {
		return "", err
	}
	if len(tok.Changes()) > 0 {
		if err := s.append(ctx, "revoke_leaked", tok, func() ([]domain.Envelope, error) {
			return s.cfg.Store.Append(ctx, eventstore.ExpectNothing(), tok.Changes()...)
		}); err != nil {
			return "", err
		}
	}
	return LeakTruePositive, nil
}
