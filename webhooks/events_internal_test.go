package webhooks

import (
	"testing"

	"github.com/tokenledger/tokenledger/domain"
)

// TestTypeOf: each lifecycle fact has the webhook type receivers subscribe
// to; a revocation's reason picks leaked and inactive out of the others.
func TestTypeOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		event domain.Event
		want  EventType
	}{
		{domain.TokenIssued{}, EventIssued},
		{domain.TokenExpiring{}, EventExpiring},
		{domain.TokenExpired{}, EventExpired},
		{domain.TokenRevoked{Reason: "rotated keys"}, EventRevoked},
		{domain.TokenRevoked{Reason: domain.ReasonLeaked, Report: &domain.LeakReport{Source: "content"}}, EventLeaked},
		{domain.TokenRevoked{Reason: ReasonInactive}, EventInactive},
		{domain.OwnerTokensRevoked{}, EventOwnerRevoked},
		{domain.OwnerFamilyRevoked{}, EventFamilyRevoked},
	} {
		got, ok := typeOf(domain.Envelope{Data: tc.event})
		if !ok || got != tc.want {
			t.Errorf("%T %+v: %q, %v; want %q", tc.event, tc.event, got, ok, tc.want)
		}
	}
	if _, ok := typeOf(domain.Envelope{Data: domain.TokenExpirySet{}}); ok {
		t.Error("an expiry change is delivered")
	}
}
