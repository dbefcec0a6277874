package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/internal/testkit/apitest"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/sdk"
)

// TestRotatedSecretReuseRevokesTheFamily checks reuse detection: a
// rotation chain is one family, and presenting a rotated-out secret after
// its grace revokes every token of the family, with reason
// rotated_secret_reused and, in the history, which token's secret was
// presented, from where and at which route. A flood of presentations
// appends once. A secret presented within its grace revokes nothing.
func TestRotatedSecretReuseRevokesTheFamily(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})

	// a → b without grace, b → c with an hour of grace.
	a, aID := issueDirect(t, s, "eve", []string{"read"}, 0)
	b := rotateWithGrace(t, s, aID, 0)
	c := rotateWithGrace(t, s, mustTokenID(t, b.ID), time.Hour)
	// x → y with an hour of grace: x stays usable, and is no reuse.
	x, xID := issueDirect(t, s, "eve", []string{"read"}, 0)
	y := rotateWithGrace(t, s, xID, time.Hour)

	if c.Family == nil || *c.Family != aID.String() || c.RotatedFrom == nil || *c.RotatedFrom != b.ID {
		t.Errorf("successor: family %v, rotated_from %v; want family %s from %s", c.Family, c.RotatedFrom, aID, b.ID)
	}
	if got := getToken(t, s, aID.String()); got.Family == nil || *got.Family != aID.String() || got.RotatedTo == nil || *got.RotatedTo != b.ID {
		t.Errorf("first token: family %v, rotated_to %v; want family %s, rotated to %s", got.Family, got.RotatedTo, aID, b.ID)
	}

	for _, secret := range []string{b.Secret, x} {
		if got := authStatus(t, s, secret); got != http.StatusOK {
			t.Fatalf("a secret within its grace: %d, want 200", got)
		}
	}

	before := s.LastSequence(t)
	// The rotation's expiry reaches the validator through its tail: wait
	// until the old secret is refused, then flood it.
	waitFor(t, "the rotated-out secret to be refused", func() bool { return authStatus(t, s, a) == http.StatusUnauthorized })
	for range 50 {
		if got := authStatus(t, s, a); got != http.StatusUnauthorized {
			t.Fatalf("the rotated-out secret: %d, want 401", got)
		}
	}
	waitFor(t, "the family to be revoked", func() bool {
		return authStatus(t, s, c.Secret) == http.StatusUnauthorized && authStatus(t, s, b.Secret) == http.StatusUnauthorized
	})
	for _, id := range []string{aID.String(), b.ID, c.ID} {
		got := getToken(t, s, id)
		if got.Status != string(domain.StatusRevoked) || got.RevokedReason == nil || *got.RevokedReason != domain.ReasonRotatedSecretReused {
			t.Errorf("token %s: status %s, reason %v; want revoked, %s", id, got.Status, got.RevokedReason, domain.ReasonRotatedSecretReused)
		}
	}
	// One event revokes the family of three, once however often the
	// secret was presented.
	if after := s.LastSequence(t); after != before+1 {
		t.Errorf("the reuse appended %d events, want 1 (one revocation of the family, once)", after-before)
	}

	for _, id := range []string{aID.String(), b.ID, c.ID} {
		res := do(t, s, req{method: "GET", path: "/v1/tokens/" + id + "/events", secret: s.Admin})
		var events sdk.EventList
		res.decode(t, &events)
		var reuse *domain.SecretReuse
		for _, e := range events.Items {
			if e.Type != string(domain.TypeOwnerFamilyRevoked) {
				continue
			}
			var d domain.OwnerFamilyRevoked
			if err := json.Unmarshal(e.Data, &d); err != nil {
				t.Fatal(err)
			}
			if d.Reason == domain.ReasonRotatedSecretReused && d.Family == aID {
				reuse = d.Reuse
			}
		}
		if reuse == nil || reuse.Token != aID || reuse.ClientAddr != "127.0.0.1" || reuse.Route != "/v1/auth" {
			t.Errorf("history of %s: reuse %+v, want the secret of %s presented from 127.0.0.1 at /v1/auth; events %s", id, reuse, aID, redact(res.body))
		}
	}

	// The family within its grace was left alone.
	for _, secret := range []string{x, y.Secret} {
		if got := authStatus(t, s, secret); got != http.StatusOK {
			t.Errorf("a token of the family whose secret was presented within its grace: %d, want 200", got)
		}
	}
}

// TestRotatedSecretReusedAsBearerRevokesTheFamily checks that the bearer of
// any API call is checked for reuse too, and that the route is recorded.
func TestRotatedSecretReusedAsBearerRevokesTheFamily(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	a, aID := issueDirect(t, s, "eve", []string{"read"}, 0)
	b := rotateWithGrace(t, s, aID, 0)
	waitFor(t, "the rotated-out secret to be refused", func() bool {
		return do(t, s, req{method: "GET", path: "/v1/tokens/" + b.ID, secret: a}).status == http.StatusUnauthorized
	})
	waitFor(t, "the family to be revoked", func() bool { return authStatus(t, s, b.Secret) == http.StatusUnauthorized })
	// The family of two is revoked by one event.
	if n := countEvents(t, s, string(domain.TypeOwnerFamilyRevoked)); n != 1 {
		t.Errorf("%d %s events, want 1", n, domain.TypeOwnerFamilyRevoked)
	}
	if n := countEvents(t, s, string(domain.TypeTokenRevoked)); n != 0 {
		t.Errorf("%d %s events, want 0", n, domain.TypeTokenRevoked)
	}
	got := getToken(t, s, b.ID)
	if got.RevokedReason == nil || *got.RevokedReason != domain.ReasonRotatedSecretReused {
		t.Fatalf("successor: %+v, want revoked for %s", got, domain.ReasonRotatedSecretReused)
	}
	res := do(t, s, req{method: "GET", path: "/v1/tokens/" + b.ID + "/events", secret: s.Admin})
	var events sdk.EventList
	res.decode(t, &events)
	last := events.Items[len(events.Items)-1]
	var d domain.OwnerFamilyRevoked
	if err := json.Unmarshal(last.Data, &d); err != nil || last.Type != string(domain.TypeOwnerFamilyRevoked) ||
		d.Reuse == nil || d.Reuse.Route != "/v1/tokens/{id}" || d.Reuse.Token != aID || d.Family != aID {
		t.Errorf("last event %s, want the revocation of family %s for the reuse of its secret at /v1/tokens/{id}", redact(res.body), aID)
	}
}

// rotateWithGrace rotates token id as the admin.
func rotateWithGrace(t *testing.T, s *apitest.Stack, id domain.TokenID, grace time.Duration) sdk.RotatedToken {
	t.Helper()
	res := do(t, s, req{method: "POST", path: "/v1/tokens/" + id.String() + "/rotate", secret: s.Admin,
		body: sdk.RotateRequest{Grace: ptr(sdk.Duration(grace))}})
	if res.status != http.StatusCreated {
		t.Fatalf("rotate %s: %d %s", id, res.status, redact(res.body))
	}
	var out sdk.RotatedToken
	res.decode(t, &out)
	return out
}

// getToken is GET /v1/tokens/{id} as the admin.
func getToken(t *testing.T, s *apitest.Stack, id string) sdk.Token {
	t.Helper()
	res := do(t, s, req{method: "GET", path: "/v1/tokens/" + id, secret: s.Admin})
	if res.status != http.StatusOK {
		t.Fatalf("get %s: %d %s", id, res.status, redact(res.body))
	}
	var out sdk.Token
	res.decode(t, &out)
	return out
}

// waitFor polls cond until it holds, failing the test after 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	stacktest.Eventually(t, 10*time.Second, cond, "%s", what)
}

// countEvents returns how many events of type typ the lifecycle stream
// holds.
func countEvents(t *testing.T, s *apitest.Stack, typ string) int {
	t.Helper()
	n := 0
	_, err := s.Store.Read(context.Background(), 0, func(e domain.Envelope) error {
		if string(e.Type) == typ {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatalf("read the stream: %v", err)
	}
	return n
}
