package api_test

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/internal/testkit/apitest"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/sdk"
)

// TestAllowedNetworksThroughTheAPI: allowed_cidrs are set at issue (in
// canonical form), changed by PATCH within the caller's rights — an owner
// narrows, only an admin widens or lifts them — with an expiry in the
// same change, recorded in the token's history, and a token used from
// outside its networks is refused by forward-auth (403 ip_not_allowed) and
// by the management API alike, and is inactive to introspection.
func TestAllowedNetworksThroughTheAPI(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	owner, _ := issueDirect(t, s, "alice", []string{"repo:read"}, 0)
	tok := issue(t, s, owner, sdk.IssueRequest{Name: "partner", AllowedCIDRs: []string{"10.1.2.3/8", "192.0.2.9"}})
	if want := []string{"10.0.0.0/8", "192.0.2.9/32"}; !slices.Equal(tok.AllowedCIDRs, want) {
		t.Fatalf("issued allowed_cidrs %q, want %q", tok.AllowedCIDRs, want)
	}
	patch := func(caller string, body any) resp {
		t.Helper()
		return do(t, s, req{method: "PATCH", path: "/v1/tokens/" + tok.ID, secret: caller, body: body})
	}
	cidrsOf := func(r resp) []string {
		t.Helper()
		var got sdk.Token
		r.decode(t, &got)
		return got.AllowedCIDRs
	}

	for _, tc := range []struct {
		name   string
		caller string
		body   any
		status int
		want   []string
	}{
		{"bad input is refused", owner, map[string]any{"allowed_cidrs": []string{"10.0.0.0/33"}}, http.StatusBadRequest, nil},
		{"a body that changes nothing is refused", owner, map[string]any{}, http.StatusBadRequest, nil},
		{"the owner may narrow", owner, map[string]any{"allowed_cidrs": []string{"10.5.0.0/16"}}, http.StatusOK, []string{"10.5.0.0/16"}},
		{"the owner may not widen", owner, map[string]any{"allowed_cidrs": []string{"10.0.0.0/8"}}, http.StatusForbidden, nil},
		{"the owner may not lift the limit", owner, map[string]any{"allowed_cidrs": nil}, http.StatusForbidden, nil},
		{"an admin may widen, with an expiry in the same change", s.Admin, map[string]any{"allowed_cidrs": []string{"10.0.0.0/8", "127.0.0.1"}, "expires_at": s.Clock.Now().Add(time.Hour)}, http.StatusOK, []string{"10.0.0.0/8", "127.0.0.1/32"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := patch(tc.caller, tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.status == http.StatusOK && !slices.Equal(cidrsOf(r), tc.want) {
				t.Errorf("allowed_cidrs %q, want %q", cidrsOf(r), tc.want)
			}
		})
	}
	var events sdk.EventList
	do(t, s, req{method: "GET", path: "/v1/tokens/" + tok.ID + "/events", secret: s.Admin}).decode(t, &events)
	var types []string
	for _, e := range events.Items {
		types = append(types, e.Type)
	}
	if want := []string{"token.issued.v1", "token.cidrs_set.v1", "token.expiry_set.v1", "token.cidrs_set.v1"}; !slices.Equal(types, want) {
		t.Errorf("history %q, want %q", types, want)
	}

	// From 127.0.0.1: allowed now. Narrowed to 10/8: refused everywhere.
	if r := do(t, s, req{method: "GET", path: "/v1/auth", secret: tok.Secret}); r.status != http.StatusOK {
		t.Fatalf("forward-auth from inside: %d %s", r.status, r.body)
	}
	if r := patch(owner, map[string]any{"allowed_cidrs": []string{"10.0.0.0/8"}}); r.status != http.StatusOK {
		t.Fatalf("narrow: %d %s", r.status, r.body)
	}
	// The validator applies the change from the stream's tail.
	var r resp
	stacktest.Eventually(t, 10*time.Second, func() bool {
		r = do(t, s, req{method: "GET", path: "/v1/auth", secret: tok.Secret})
		return r.status != http.StatusOK
	}, "the narrowed networks never reached the validator")
	if r.status != http.StatusForbidden || r.errorCode(t) != sdk.CodeIPNotAllowed || r.header.Get("X-Tokenledger-Error") != sdk.CodeIPNotAllowed {
		t.Errorf("forward-auth from outside: %d %s %v, want 403 ip_not_allowed", r.status, r.body, r.header)
	}
	if r := do(t, s, req{method: "GET", path: "/v1/tokens", secret: tok.Secret}); r.status != http.StatusForbidden || r.errorCode(t) != sdk.CodeIPNotAllowed {
		t.Errorf("management API from outside: %d %s, want 403 ip_not_allowed", r.status, r.body)
	}

	// A caller limited to networks issues tokens within them only.
	limitedCaller := issue(t, s, s.Admin, sdk.IssueRequest{Owner: "bob", Scopes: []string{"x"}, AllowedCIDRs: []string{"127.0.0.0/8"}})
	if got := issue(t, s, limitedCaller.Secret, sdk.IssueRequest{Name: "default"}).AllowedCIDRs; !slices.Equal(got, []string{"127.0.0.0/8"}) {
		t.Errorf("a limited caller's token without networks asked: %q, want the caller's [127.0.0.0/8]", got)
	}
	if got := issue(t, s, limitedCaller.Secret, sdk.IssueRequest{AllowedCIDRs: []string{"127.0.0.0/24"}}).AllowedCIDRs; !slices.Equal(got, []string{"127.0.0.0/24"}) {
		t.Errorf("a limited caller's token with narrower networks: %q", got)
	}
	if r := do(t, s, req{method: "POST", path: "/v1/tokens", secret: limitedCaller.Secret, body: sdk.IssueRequest{AllowedCIDRs: []string{"10.0.0.0/8"}}}); r.status != http.StatusForbidden {
		t.Errorf("a limited caller asking for other networks: %d %s, want 403", r.status, r.body)
	}
}
