//go:build linux

package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/internal/testkit/apitest"
	"github.com/tokenledger/tokenledger/internal/testkit/caddytest"
	"github.com/tokenledger/tokenledger/sdk"
)

// TestCaddyForwardAuth puts the shipped Caddyfile (deploy/caddy) in front
// of an app with the real tokenledger API as its forward_auth endpoint: a
// valid token holding the scope reaches the app with tokenledger's identity
// headers (whatever the client forged) and without its secret; revoked,
// expired and malformed tokens and a missing scope stop at Caddy with
// tokenledger's status and WWW-Authenticate, the app never reached.
func TestCaddyForwardAuth(t *testing.T) {
	s := apitest.Start(t, apitest.Options{})
	app := startProtectedApp(t)
	caddy := caddytest.Start(t, caddytest.Config{Tokenledger: urlHostPort(t, s.URL), App: app.addr(), Scope: "repo:write"})

	alice := issue(t, s, s.Admin, sdk.IssueRequest{Owner: "alice", Scopes: []string{"repo:read", "repo:write"}})
	reader := issue(t, s, s.Admin, sdk.IssueRequest{Owner: "alice", Scopes: []string{"repo:read"}})
	revoked := issue(t, s, s.Admin, sdk.IssueRequest{Owner: "alice", Scopes: []string{"repo:write"}})
	expiring := issue(t, s, s.Admin, sdk.IssueRequest{Owner: "alice", Scopes: []string{"repo:write"}, ExpiresIn: ptr(sdk.Duration(time.Minute))})
	forged := http.Header{"X-Token-Owner": {"mallory"}, "X-Token-Id": {"01M81AYQ6J4PFQY8YYP7860CH3"}, "X-Token-Scopes": {"ledger:admin"}}

	get := func(t *testing.T, path, secret string, header http.Header) resp {
		t.Helper()
		r, err := http.NewRequest(http.MethodGet, caddy.URL()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			r.Header[k] = v
		}
		if secret != "" {
			r.Header.Set("Authorization", "Bearer "+secret)
		}
		res, err := (&http.Client{Timeout: 10 * time.Second}).Do(r)
		if err != nil {
			t.Fatalf("GET %s through caddy: %v", path, err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp{status: res.StatusCode, header: res.Header, body: body}
	}

	// The tokens refused below pass first: the refusal is the server's
	// verdict reaching Caddy.
	for _, tok := range []sdk.IssuedToken{revoked, expiring} {
		if r := get(t, "/warmup/"+tok.ID, tok.Secret, nil); r.status != http.StatusOK {
			t.Fatalf("a token before it was refused: %d %s", r.status, r.body)
		}
	}
	if r := do(t, s, req{method: "DELETE", path: "/v1/tokens/" + revoked.ID, secret: s.Admin}); r.status != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	s.Clock.Advance(2 * time.Minute)

	t.Run("a valid token reaches the app with its identity, forged headers replaced", func(t *testing.T) {
		r := get(t, "/ok", alice.Secret, forged)
		if r.status != http.StatusOK {
			t.Fatalf("%d %s", r.status, r.body)
		}
		var seen appSeen
		if err := json.Unmarshal(r.body, &seen); err != nil {
			t.Fatal(err)
		}
		if seen.TokenID != alice.ID || seen.TokenOwner != "alice" || seen.TokenScopes != "repo:read repo:write" {
			t.Errorf("the app saw %+v, want alice's identity", seen)
		}
		if seen.Authorization != "" {
			t.Errorf("the app received the secret in Authorization")
		}
	})

	for _, tt := range []struct {
		name, path, secret string
		status             int
		wwwAuth            string
	}{
		{"revoked", "/revoked", revoked.Secret, 401, `error="invalid_token"`},
		{"expired", "/expired", expiring.Secret, 401, `error="invalid_token"`},
		{"malformed", "/malformed", "tlk_garbage", 401, `error="invalid_token"`},
		{"no token", "/none", "", 401, `Bearer realm="tokenledger"`},
		{"without the required scope", "/reader", reader.Secret, 403, `error="insufficient_scope"`},
	} {
		t.Run(tt.name+" is refused at the gateway", func(t *testing.T) {
			r := get(t, tt.path, tt.secret, forged)
			if r.status != tt.status || !strings.Contains(r.header.Get("WWW-Authenticate"), tt.wwwAuth) {
				t.Errorf("%d, WWW-Authenticate %q; want %d with %s", r.status, r.header.Get("WWW-Authenticate"), tt.status, tt.wwwAuth)
			}
			if n := app.hitsOf(tt.path); n != 0 {
				t.Errorf("the app was reached %d times", n)
			}
		})
	}
}
