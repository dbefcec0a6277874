package ledger

import (
	"context"
	"time"

	"github.com/tokenledger/tokenledger/domain"
)

// InactivityActor is the actor recorded on the inactivity policy's
// warnings and revocations.
const InactivityActor = "policy"

// EnforceInactivity applies the inactivity policy to token id, to be
// revoked at due unless used (see domain.Token.EnforceInactivity): it
// records the revocation, or the warning of lead times leads that is due
// now, if not recorded yet, and reports whether this call recorded an
// event. Event ids are derived from the token, the lead time and due, and
// the token's whole history is checked before appending, so any number of
// callers, restarts and replays record each event once. An unknown token
// is no error.
func (s *Service) EnforceInactivity(ctx context.Context, id domain.TokenID, due time.Time, leads []time.Duration) (bool, error) {
	return s.recordOnce(ctx, "enforce_inactivity", InactivityActor, id, func(tok *domain.Token, owner *domain.Owner, m domain.Meta, now time.Time) (bool, error) {
		return tok.EnforceInactivity(owner, due, leads, m, now)
	})
}
