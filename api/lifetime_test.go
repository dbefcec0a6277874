package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/internal/testkit/apitest"
	"github.com/tokenledger/tokenledger/ledger"
	"github.com/tokenledger/tokenledger/sdk"
)

// TestNoNonAdminTokenOutlivesItsCaller checks the lifetime rule: a caller
// without ledger:admin obtains no token that outlives its own, neither by
// issuing nor by rotating (its own token or another of its owner's). A
// default lifetime is capped at the caller's expiry, a longer explicit one
// (or none at all) is refused with 403 lifetime_exceeds_caller and records
// nothing. An admin, and a caller whose token never expires, are bounded by
// the policy alone.
func TestNoNonAdminTokenOutlivesItsCaller(t *testing.T) {
	t.Parallel()
	policy := domain.DefaultPolicy()
	policy.AllowNeverExpires = true
	s := apitest.Start(t, apitest.Options{Policy: &policy})

	short, shortID := issueDirect(t, s, "eve", []string{"read"}, 2*time.Hour)
	shortExp := tokenExpiry(t, s, shortID)
	_, longID := issueDirect(t, s, "eve", []string{"read"}, 0)

	refused := func(t *testing.T, secret string, body sdk.IssueRequest) {
		t.Helper()
		before := s.LastSequence(t)
		res := do(t, s, req{method: "POST", path: "/v1/tokens", secret: secret, body: body})
		if res.status != http.StatusForbidden {
			t.Fatalf("issue %+v: %d %s, want 403", body, res.status, redact(res.body))
		}
		if code := res.errorCode(t); code != sdk.CodeLifetimeExceedsCaller {
			t.Errorf("code %q, want %q", code, sdk.CodeLifetimeExceedsCaller)
		}
		if after := s.LastSequence(t); after != before {
			t.Errorf("a refused issue moved the stream from %d to %d", before, after)
		}
	}

	t.Run("issue beyond the caller's expiry is refused", func(t *testing.T) {
		refused(t, short, sdk.IssueRequest{Scopes: []string{"read"}, ExpiresIn: ptr(sdk.Duration(720 * time.Hour))})
		refused(t, short, sdk.IssueRequest{Scopes: []string{"read"}, ExpiresAt: ptr(shortExp.Add(time.Second))})
		refused(t, short, sdk.IssueRequest{Scopes: []string{"read"}, NeverExpires: true})
	})

	t.Run("issue without an expiry gets at most the caller's", func(t *testing.T) {
		got := issue(t, s, short, sdk.IssueRequest{Scopes: []string{"read"}})
		if got.ExpiresAt == nil || !got.ExpiresAt.Equal(shortExp) {
			t.Errorf("expires_at %v, want the caller's %v", got.ExpiresAt, shortExp)
		}
		got = issue(t, s, short, sdk.IssueRequest{Scopes: []string{"read"}, ExpiresAt: &shortExp})
		if got.ExpiresAt == nil || !got.ExpiresAt.Equal(shortExp) {
			t.Errorf("expires_at %v, want exactly the caller's %v", got.ExpiresAt, shortExp)
		}
	})

	t.Run("rotating another token of the owner is capped at the caller's expiry", func(t *testing.T) {
		got := rotate(t, s, short, longID)
		if got.ExpiresAt == nil || !got.ExpiresAt.Equal(shortExp) {
			t.Errorf("successor expires_at %v, want the caller's %v", got.ExpiresAt, shortExp)
		}
	})

	t.Run("rotating itself never extends the caller", func(t *testing.T) {
		secret, id := short, shortID
		for range 3 {
			s.Clock.Advance(10 * time.Minute)
			got := rotate(t, s, secret, id)
			if got.ExpiresAt == nil || !got.ExpiresAt.Equal(shortExp) {
				t.Fatalf("successor expires_at %v, want the first token's %v", got.ExpiresAt, shortExp)
			}
			secret, id = got.Secret, mustTokenID(t, got.ID)
		}
		if got := authStatus(t, s, short); got != http.StatusUnauthorized {
			t.Errorf("the first token still authenticates after its rotation without grace (%d)", got)
		}
	})

	t.Run("an admin is bounded by the policy alone", func(t *testing.T) {
		admin, _ := issueDirect(t, s, "ops", []string{ledger.ScopeAdmin}, 2*time.Hour)
		got := issue(t, s, admin, sdk.IssueRequest{Owner: "eve", Scopes: []string{"read"}, ExpiresIn: ptr(sdk.Duration(720 * time.Hour))})
		if want := s.Clock.Now().Add(720 * time.Hour); got.ExpiresAt == nil || !got.ExpiresAt.Equal(want) {
			t.Errorf("expires_at %v, want %v", got.ExpiresAt, want)
		}
	})

	t.Run("a caller that never expires is bounded by the policy alone", func(t *testing.T) {
		admin := ledger.Caller{TokenID: s.AdminID, Owner: "admin", Scopes: []string{ledger.ScopeAdmin}}
		out, err := s.API.Ledger.Issue(context.Background(), admin, domain.IssueRequest{
			Owner: "eve", Scopes: []string{"read"}, NeverExpires: true,
		}, "test")
		if err != nil {
			t.Fatal(err)
		}
		forever := out.Secret.Reveal()
		got := issue(t, s, forever, sdk.IssueRequest{Scopes: []string{"read"}, ExpiresIn: ptr(sdk.Duration(720 * time.Hour))})
		if want := s.Clock.Now().Add(720 * time.Hour); got.ExpiresAt == nil || !got.ExpiresAt.Equal(want) {
			t.Errorf("expires_at %v, want %v", got.ExpiresAt, want)
		}
		got = issue(t, s, forever, sdk.IssueRequest{Scopes: []string{"read"}, NeverExpires: true})
		if got.ExpiresAt != nil {
			t.Errorf("expires_at %v, want none (the policy allows it)", got.ExpiresAt)
		}
	})
}

// tokenExpiry is token id's expiry as the admin sees it.
func tokenExpiry(t *testing.T, s *apitest.Stack, id domain.TokenID) time.Time {
	t.Helper()
	res := do(t, s, req{method: "GET", path: "/v1/tokens/" + id.String(), secret: s.Admin})
	var tok sdk.Token
	res.decode(t, &tok)
	if res.status != http.StatusOK || tok.ExpiresAt == nil {
		t.Fatalf("get %s: %d %s", id, res.status, redact(res.body))
	}
	return *tok.ExpiresAt
}

// rotate rotates token id without grace as caller, failing the test unless
// it is created.
func rotate(t *testing.T, s *apitest.Stack, caller string, id domain.TokenID) sdk.RotatedToken {
	t.Helper()
	res := do(t, s, req{method: "POST", path: "/v1/tokens/" + id.String() + "/rotate", secret: caller})
	if res.status != http.StatusCreated {
		t.Fatalf("rotate %s: %d %s", id, res.status, redact(res.body))
	}
	var out sdk.RotatedToken
	res.decode(t, &out)
	return out
}

func mustTokenID(t *testing.T, s string) domain.TokenID {
	t.Helper()
	id, err := domain.ParseTokenID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
