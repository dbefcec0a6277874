//go:build linux

package api_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/internal/testkit/apitest"
	"github.com/tokenledger/tokenledger/internal/testkit/nginxtest"
	"github.com/tokenledger/tokenledger/sdk"
)

// appSeen is what the protected app received of one request.
type appSeen struct {
	Path          string `json:"path"`
	TokenID       string `json:"token_id"`
	TokenOwner    string `json:"token_owner"`
	TokenScopes   string `json:"token_scopes"`
	HasScopes     bool   `json:"has_scopes"`
	Authorization string `json:"authorization"`
}

// protectedApp is the service behind nginx: it answers every request with
// the identity headers it received, as JSON, and counts its hits per path.
type protectedApp struct {
	srv  *httptest.Server
	mu   sync.Mutex
	hits map[string]int
}

func startProtectedApp(t *testing.T) *protectedApp {
	t.Helper()
	a := &protectedApp{hits: map[string]int{}}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.hits[r.URL.Path]++
		a.mu.Unlock()
		_, hasScopes := r.Header[http.CanonicalHeaderKey("X-Token-Scopes")]
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(appSeen{
			Path: r.URL.Path, TokenID: r.Header.Get("X-Token-Id"), TokenOwner: r.Header.Get("X-Token-Owner"),
			TokenScopes: r.Header.Get("X-Token-Scopes"), HasScopes: hasScopes, Authorization: r.Header.Get("Authorization"),
		})
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *protectedApp) addr() string { return a.srv.Listener.Addr().String() }

func (a *protectedApp) hitsOf(path string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.hits[path]
}

// urlHostPort is the host:port of a base URL.
func urlHostPort(t *testing.T, base string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := net.SplitHostPort(u.Host); err != nil {
		t.Fatalf("%s: %v", base, err)
	}
	return u.Host
}

// throughNginx sends GET path to nginx with the secret as a bearer (none if
// empty) and extra headers.
func throughNginx(t *testing.T, ngx *nginxtest.Nginx, path, secret string, header http.Header) resp {
	t.Helper()
	r, err := http.NewRequest(http.MethodGet, ngx.URL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		r.Header[k] = v
	}
	if secret != "" {
		r.Header.Set("Authorization", "Bearer "+secret)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	res, err := c.Do(r)
	if err != nil {
		t.Fatalf("GET %s through nginx: %v", path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: body}
}

// TestNginxAuthRequest puts the shipped nginx snippet in front of an app
// with the real tokenledger API as its auth_request endpoint: a valid token
// reaches the app with tokenledger's identity headers (whatever the client
// forged), and every refused token stops at nginx with tokenledger's
// WWW-Authenticate, the app never reached.
func TestNginxAuthRequest(t *testing.T) {
	s := apitest.Start(t, apitest.Options{})
	app := startProtectedApp(t)
	authAddr := urlHostPort(t, s.URL)
	open := nginxtest.Start(t, nginxtest.Config{AuthAddr: authAddr, AppAddr: app.addr()})
	scoped := nginxtest.Start(t, nginxtest.Config{AuthAddr: authAddr, AppAddr: app.addr(), Scope: "repo:write"})

	alice := issue(t, s, s.Admin, sdk.IssueRequest{Owner: "alice", Name: "alice's key", Scopes: []string{"repo:read", "repo:write"}})
	reader := issue(t, s, s.Admin, sdk.IssueRequest{Owner: "alice", Name: "read only", Scopes: []string{"repo:read"}})
	bare := issue(t, s, s.Admin, sdk.IssueRequest{Owner: "bob", Name: "no scopes"})
	revoked := issue(t, s, s.Admin, sdk.IssueRequest{Owner: "alice", Name: "revoked"})
	expiring := issue(t, s, s.Admin, sdk.IssueRequest{Owner: "alice", Name: "short", ExpiresIn: ptr(sdk.Duration(time.Minute))})
	badSum := breakChecksum(alice.Secret)
	forged := http.Header{"X-Token-Owner": {"mallory"}, "X-Token-Id": {"01M81AYQ6J4PFQY8YYP7860CH3"}, "X-Token-Scopes": {"ledger:admin"}}

	// Each refused case first shows its token passing where it should, so
	// the refusal is the server's verdict reaching nginx.
	for _, tok := range []sdk.IssuedToken{revoked, expiring} {
		if r := throughNginx(t, open, "/warmup/"+tok.ID, tok.Secret, nil); r.status != http.StatusOK {
			t.Fatalf("%s before it was refused: %d %s", tok.Name, r.status, r.body)
		}
	}
	if r := do(t, s, req{method: "DELETE", path: "/v1/tokens/" + revoked.ID, secret: s.Admin}); r.status != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	s.Clock.Advance(2 * time.Minute)

	tests := []struct {
		name   string
		ngx    *nginxtest.Nginx
		secret string
		header http.Header
		status int
		// want is what the app must see (status 200), or the description
		// tokenledger gives in WWW-Authenticate (401, 403).
		want    appSeen
		wantWWW string
	}{
		{name: "a valid token reaches the app with its identity", ngx: open, secret: alice.Secret, status: 200,
			want: appSeen{TokenID: alice.ID, TokenOwner: "alice", TokenScopes: "repo:read repo:write", HasScopes: true}},
		{name: "forged identity headers are replaced", ngx: open, secret: alice.Secret, header: forged, status: 200,
			want: appSeen{TokenID: alice.ID, TokenOwner: "alice", TokenScopes: "repo:read repo:write", HasScopes: true}},
		{name: "a forged scope header is dropped for a token without scopes", ngx: open, secret: bare.Secret, header: forged, status: 200,
			want: appSeen{TokenID: bare.ID, TokenOwner: "bob"}},
		{name: "a token with the location's scope passes", ngx: scoped, secret: alice.Secret, status: 200,
			want: appSeen{TokenID: alice.ID, TokenOwner: "alice", TokenScopes: "repo:read repo:write", HasScopes: true}},
		{name: "revoked", ngx: open, secret: revoked.Secret, status: 401, wantWWW: `error="invalid_token", error_description="the token was revoked"`},
		{name: "expired", ngx: open, secret: expiring.Secret, status: 401, wantWWW: `error="invalid_token", error_description="the token expired"`},
		{name: "malformed", ngx: open, secret: "tlk_nope", status: 401, wantWWW: `error="invalid_token", error_description="the token is malformed"`},
		{name: "bad checksum", ngx: open, secret: badSum, status: 401, wantWWW: `error="invalid_token", error_description="the token is malformed"`},
		{name: "no token", ngx: open, status: 401, wantWWW: `Bearer realm="tokenledger"`},
		{name: "no token, forged identity", ngx: open, header: forged, status: 401, wantWWW: `Bearer realm="tokenledger"`},
		{name: "revoked, at a scoped location", ngx: scoped, secret: revoked.Secret, status: 401, wantWWW: `error="invalid_token", error_description="the token was revoked"`},
		{name: "a token without the location's scope", ngx: scoped, secret: reader.Secret, status: 403, wantWWW: `error="insufficient_scope", scope="repo:write"`},
		{name: "a token without the location's scope, forging it", ngx: scoped, secret: reader.Secret, header: forged, status: 403, wantWWW: `error="insufficient_scope", scope="repo:write"`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := "/case/" + strconv.Itoa(i)
			r := throughNginx(t, tt.ngx, path, tt.secret, tt.header)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d; headers %v; body %s", r.status, tt.status, r.header, r.body)
			}
			if tt.status == http.StatusOK {
				var got appSeen
				r.decode(t, &got)
				tt.want.Path = path
				if got != tt.want {
					t.Errorf("the app saw %+v, want %+v", got, tt.want)
				}
				if hits := app.hitsOf(path); hits != 1 {
					t.Errorf("the app was hit %d times, want once", hits)
				}
				return
			}
			if hits := app.hitsOf(path); hits != 0 {
				t.Errorf("a refused request reached the app %d times", hits)
			}
			www := r.header.Values("WWW-Authenticate")
			if len(www) != 1 || !strings.HasPrefix(www[0], "Bearer ") || !strings.Contains(www[0], tt.wantWWW) {
				t.Errorf("WWW-Authenticate %q, want one Bearer challenge with %s", www, tt.wantWWW)
			}
			want := sdk.CodeInvalidToken
			if tt.status == http.StatusForbidden {
				want = sdk.CodeInsufficientScope
			}
			if code := r.errorCode(t); code != want {
				t.Errorf("error code %s, want %s", code, want)
			}
		})
	}

	// Revocation takes effect at nginx at once: no cache between them.
	t.Run("revoked between two requests", func(t *testing.T) {
		tok := issue(t, s, s.Admin, sdk.IssueRequest{Owner: "alice", Name: "revoked mid-way"})
		if r := throughNginx(t, open, "/before-revoke", tok.Secret, nil); r.status != http.StatusOK {
			t.Fatalf("before the revocation: %d %s", r.status, r.body)
		}
		if r := do(t, s, req{method: "DELETE", path: "/v1/tokens/" + tok.ID, secret: s.Admin}); r.status != http.StatusNoContent {
			t.Fatalf("revoke: %d %s", r.status, r.body)
		}
		r := throughNginx(t, open, "/after-revoke", tok.Secret, nil)
		if r.status != http.StatusUnauthorized || app.hitsOf("/after-revoke") != 0 {
			t.Errorf("right after the revocation: %d %s, app hit %d times; want 401 and no hit", r.status, r.body, app.hitsOf("/after-revoke"))
		}
	})
}
