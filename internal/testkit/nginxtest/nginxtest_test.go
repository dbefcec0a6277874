//go:build linux

package nginxtest

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/stack"
)

// The stand-in auth endpoint's answers, by the prefix of the bearer secret.
// Each test case uses a secret of its own so that what the stand-in saw can
// be told apart between parallel cases.
const (
	prefixValid    = "good-"     // 200, owner alice, scopes orders:read orders:write
	prefixNoScopes = "noscopes-" // 200, owner bob, no scopes
	prefixBroken   = "broken-"   // 500
	prefixStale    = "stale-"    // 503, Retry-After: 7
	// anything else: 401

	tokenID        = "01JTESTTOKEN0000000000000000"
	unknownAuthn   = `Bearer realm="tokenledger", error="invalid_token", error_description="the token is unknown"`
	staleRetry     = "7"
	aliceScopes    = "orders:read orders:write"
	clientTimeout  = 10 * time.Second
	headerTokenID  = "X-Token-Id"
	headerOwner    = "X-Token-Owner"
	headerScopes   = "X-Token-Scopes"
	headerWWWAuthn = "WWW-Authenticate"
)

// authCall is one request the stand-in auth endpoint received.
type authCall struct {
	method        string
	path          string
	rawQuery      string
	scope         string
	contentLength int64
	chunked       bool
	body          string
}

// authStandIn answers GET /v1/auth as tokenledger does, from the bearer
// secret's prefix, and records every call.
type authStandIn struct {
	srv      *httptest.Server
	newConns atomic.Int64

	mu    sync.Mutex
	calls map[string][]authCall // by Authorization header
}

func startAuth(t *testing.T) *authStandIn {
	t.Helper()
	a := &authStandIn{calls: make(map[string][]authCall)}
	a.srv = httptest.NewUnstartedServer(http.HandlerFunc(a.serve))
	a.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			a.newConns.Add(1)
		}
	}
	a.srv.Start()
	t.Cleanup(a.srv.Close)
	return a
}

func (a *authStandIn) addr() string { return a.srv.Listener.Addr().String() }

// seen returns the calls made with the Authorization header authz.
func (a *authStandIn) seen(authz string) []authCall {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.calls[authz])
}

func (a *authStandIn) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	authz := r.Header.Get("Authorization")
	a.mu.Lock()
	a.calls[authz] = append(a.calls[authz], authCall{
		method: r.Method, path: r.URL.Path, rawQuery: r.URL.RawQuery, scope: r.URL.Query().Get("scope"),
		contentLength: r.ContentLength, chunked: slices.Contains(r.TransferEncoding, "chunked"), body: string(body),
	})
	a.mu.Unlock()

	// As tokenledger: only GET /v1/auth exists.
	if r.URL.Path != "/v1/auth" {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	secret, _ := strings.CutPrefix(authz, "Bearer ")
	var owner string
	var scopes []string
	switch {
	case strings.HasPrefix(secret, prefixValid):
		owner, scopes = "alice", strings.Fields(aliceScopes)
	case strings.HasPrefix(secret, prefixNoScopes):
		owner = "bob"
	case strings.HasPrefix(secret, prefixBroken):
		http.Error(w, "internal", http.StatusInternalServerError)
		return
	case strings.HasPrefix(secret, prefixStale):
		w.Header().Set("Retry-After", staleRetry)
		http.Error(w, "stale", http.StatusServiceUnavailable)
		return
	default:
		w.Header().Set(headerWWWAuthn, unknownAuthn)
		http.Error(w, `{"error":{"code":"invalid_token","message":"the token is unknown"}}`, http.StatusUnauthorized)
		return
	}
	required := r.URL.Query().Get("scope")
	for _, s := range strings.Fields(required) {
		if !slices.Contains(scopes, s) {
			w.Header().Set(headerWWWAuthn, insufficientAuthn(required))
			http.Error(w, `{"error":{"code":"insufficient_scope","message":"the token lacks a required scope"}}`, http.StatusForbidden)
			return
		}
	}
	w.Header().Set(headerTokenID, tokenID)
	w.Header().Set(headerOwner, owner)
	w.Header().Set(headerScopes, strings.Join(scopes, " "))
	w.WriteHeader(http.StatusOK)
}

func insufficientAuthn(required string) string {
	return `Bearer realm="tokenledger", error="insufficient_scope", scope="` + required + `"`
}

// appRequest is what the stand-in app received, echoed as JSON.
type appRequest struct {
	Method string      `json:"method"`
	URI    string      `json:"uri"`
	Body   string      `json:"body"`
	Header http.Header `json:"header"`
}

// appStandIn echoes every request as JSON, except under /status/<code>,
// where it answers with that status itself, and records the paths it saw.
type appStandIn struct {
	srv *httptest.Server

	mu    sync.Mutex
	paths map[string]int
}

func startApp(t *testing.T) *appStandIn {
	t.Helper()
	a := &appStandIn{paths: make(map[string]int)}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.paths[r.URL.Path]++
		a.mu.Unlock()
		if code, ok := strings.CutPrefix(r.URL.Path, "/status/"); ok {
			status, _ := strconv.Atoi(strings.Split(code, "/")[0])
			w.Header().Set(headerWWWAuthn, "App")
			w.WriteHeader(status)
			_, _ = io.WriteString(w, "from the app")
			return
		}
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(appRequest{Method: r.Method, URI: r.URL.RequestURI(), Body: string(body), Header: r.Header})
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *appStandIn) addr() string { return a.srv.Listener.Addr().String() }

func (a *appStandIn) reached(path string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.paths[path] > 0
}

// response is a response read whole.
type response struct {
	status int
	header http.Header
	body   string
}

// do sends one request through nginx.
func do(t *testing.T, method, url string, header http.Header, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	client := &http.Client{Timeout: clientTimeout}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(data)}
}

// echoed decodes what the app received from a 200 response.
func echoed(t *testing.T, r response) appRequest {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, want 200; body %q", r.status, r.body)
	}
	var got appRequest
	if err := json.Unmarshal([]byte(r.body), &got); err != nil {
		t.Fatalf("app echo %q: %v", r.body, err)
	}
	return got
}

// wantHeader fails unless h has exactly the values want for name (none
// when want is empty).
func wantHeader(t *testing.T, where string, h http.Header, name string, want ...string) {
	t.Helper()
	if got := h.Values(name); !slices.Equal(got, want) {
		t.Errorf("%s: %s = %q, want %q", where, name, got, want)
	}
}

// wantErrorCode fails unless body is a JSON error with code.
func wantErrorCode(t *testing.T, body, code string) {
	t.Helper()
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Code != code {
		t.Errorf("body %q: want a JSON error with code %q (decode error: %v)", body, code, err)
	}
}

// wantOneCheck fails unless the auth endpoint was called exactly once with
// authz, as GET /v1/auth without a body, and returns that call.
func wantOneCheck(t *testing.T, auth *authStandIn, authz string) authCall {
	t.Helper()
	calls := auth.seen(authz)
	if len(calls) != 1 {
		t.Fatalf("auth endpoint called %d times with %q, want once", len(calls), authz)
	}
	c := calls[0]
	if c.method != http.MethodGet || c.path != "/v1/auth" {
		t.Errorf("check was %s %s, want GET /v1/auth", c.method, c.path)
	}
	if c.contentLength > 0 || c.chunked || c.body != "" {
		t.Errorf("check carried a body: Content-Length %d, chunked %v, body %q", c.contentLength, c.chunked, c.body)
	}
	return c
}

func bearer(secret string) http.Header {
	return http.Header{"Authorization": {"Bearer " + secret}}
}

func TestForwardAuth(t *testing.T) {
	t.Parallel()
	auth, app := startAuth(t), startApp(t)
	ngx := Start(t, Config{AuthAddr: auth.addr(), AppAddr: app.addr()})

	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"a valid token reaches the app with its identity and without the secret", func(t *testing.T) {
			h := bearer(prefixValid + "identity")
			got := echoed(t, do(t, http.MethodGet, ngx.URL()+"/orders/7?expand=lines", h, ""))
			if got.Method != http.MethodGet || got.URI != "/orders/7?expand=lines" {
				t.Errorf("app got %s %s, want GET /orders/7?expand=lines", got.Method, got.URI)
			}
			wantHeader(t, "app request", got.Header, headerTokenID, tokenID)
			wantHeader(t, "app request", got.Header, headerOwner, "alice")
			wantHeader(t, "app request", got.Header, headerScopes, aliceScopes)
			wantHeader(t, "app request", got.Header, "Authorization")
			c := wantOneCheck(t, auth, h.Get("Authorization"))
			if c.rawQuery != "" {
				t.Errorf("check query %q, want none when the location requires no scope", c.rawQuery)
			}
		}},
		{"identity headers sent by the client are replaced by the token's", func(t *testing.T) {
			h := bearer(prefixValid + "forged")
			h.Set(headerTokenID, "01JFORGED")
			h.Set(headerOwner, "mallory")
			h.Add(headerOwner, "eve")
			h.Set(headerScopes, "ledger:admin")
			got := echoed(t, do(t, http.MethodGet, ngx.URL()+"/forged", h, ""))
			wantHeader(t, "app request", got.Header, headerTokenID, tokenID)
			wantHeader(t, "app request", got.Header, headerOwner, "alice")
			wantHeader(t, "app request", got.Header, headerScopes, aliceScopes)
		}},
		{"scopes sent by the client are dropped for a token without scopes", func(t *testing.T) {
			h := bearer(prefixNoScopes + "forged")
			h.Set(headerScopes, "ledger:admin")
			got := echoed(t, do(t, http.MethodGet, ngx.URL()+"/noscopes", h, ""))
			wantHeader(t, "app request", got.Header, headerOwner, "bob")
			wantHeader(t, "app request", got.Header, headerScopes)
		}},
		{"an invalid token gets 401 with tokenledger's WWW-Authenticate and never reaches the app", func(t *testing.T) {
			h := bearer("tlk_unknown")
			h.Set(headerOwner, "mallory")
			r := do(t, http.MethodGet, ngx.URL()+"/invalid", h, "")
			if r.status != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401; body %q", r.status, r.body)
			}
			wantHeader(t, "response", r.header, headerWWWAuthn, unknownAuthn)
			wantErrorCode(t, r.body, "invalid_token")
			if app.reached("/invalid") {
				t.Error("the app was reached")
			}
			wantOneCheck(t, auth, h.Get("Authorization"))
		}},
		{"a request without Authorization gets 401", func(t *testing.T) {
			r := do(t, http.MethodGet, ngx.URL()+"/anonymous", nil, "")
			if r.status != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401; body %q", r.status, r.body)
			}
			wantHeader(t, "response", r.header, headerWWWAuthn, unknownAuthn)
			if app.reached("/anonymous") {
				t.Error("the app was reached")
			}
		}},
		{"a 500 of the auth endpoint becomes 503 with Retry-After", func(t *testing.T) {
			r := do(t, http.MethodGet, ngx.URL()+"/broken", bearer(prefixBroken+"500"), "")
			if r.status != http.StatusServiceUnavailable {
				t.Fatalf("status %d, want 503; body %q", r.status, r.body)
			}
			wantHeader(t, "response", r.header, "Retry-After", "1")
			wantErrorCode(t, r.body, "unavailable")
			if app.reached("/broken") {
				t.Error("the app was reached")
			}
		}},
		{"a 503 of the auth endpoint stays 503 with its Retry-After", func(t *testing.T) {
			r := do(t, http.MethodGet, ngx.URL()+"/stale", bearer(prefixStale+"503"), "")
			if r.status != http.StatusServiceUnavailable {
				t.Fatalf("status %d, want 503; body %q", r.status, r.body)
			}
			wantHeader(t, "response", r.header, "Retry-After", staleRetry)
			if app.reached("/stale") {
				t.Error("the app was reached")
			}
		}},
		{"the request body goes to the app only, and the check is a GET", func(t *testing.T) {
			h := bearer(prefixValid + "body")
			h.Set("Content-Type", "application/json")
			const payload = `{"item":"secret payload"}`
			got := echoed(t, do(t, http.MethodPost, ngx.URL()+"/orders", h, payload))
			if got.Method != http.MethodPost || got.Body != payload {
				t.Errorf("app got %s with body %q, want POST with %q", got.Method, got.Body, payload)
			}
			wantOneCheck(t, auth, h.Get("Authorization"))
		}},
		{"the check location cannot be requested from outside", func(t *testing.T) {
			h := bearer(prefixValid + "internal")
			r := do(t, http.MethodGet, ngx.URL()+"/_tokenledger/auth", h, "")
			if r.status != http.StatusNotFound {
				t.Errorf("status %d, want 404; body %q", r.status, r.body)
			}
			if calls := auth.seen(h.Get("Authorization")); len(calls) != 0 {
				t.Errorf("auth endpoint called %d times, want never", len(calls))
			}
		}},
		{"error responses of the app pass through untouched", func(t *testing.T) {
			for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusInternalServerError} {
				r := do(t, http.MethodGet, ngx.URL()+"/status/"+strconv.Itoa(status), bearer(prefixValid+"apperr"), "")
				if r.status != status || r.body != "from the app" {
					t.Errorf("app's %d: got %d %q, want %d %q", status, r.status, r.body, status, "from the app")
				}
				wantHeader(t, "app's "+strconv.Itoa(status), r.header, headerWWWAuthn, "App")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.check(t)
		})
	}
}

func TestForwardAuthScope(t *testing.T) {
	t.Parallel()
	auth, app := startAuth(t), startApp(t)
	tests := []struct {
		name       string
		scope      string
		wantStatus int
	}{
		{"a token with the required scope passes", "orders:write", http.StatusOK},
		{"a token with all of several required scopes passes", "orders:read orders:write", http.StatusOK},
		{"a token lacking the required scope gets 403 with tokenledger's WWW-Authenticate", "billing:read", http.StatusForbidden},
		{"a token lacking one of several required scopes gets 403", "orders:read billing:read", http.StatusForbidden},
		{"a scope with characters special to URLs and nginx reaches the check intact", `a+b&c=d%e$f#g`, http.StatusForbidden},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ngx := Start(t, Config{AuthAddr: auth.addr(), AppAddr: app.addr(), Scope: tt.scope})
			h := bearer(prefixValid + "scope-" + strconv.Itoa(i))
			path := "/scoped/" + strconv.Itoa(i)
			r := do(t, http.MethodGet, ngx.URL()+path, h, "")
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %q", r.status, tt.wantStatus, r.body)
			}
			c := wantOneCheck(t, auth, h.Get("Authorization"))
			if c.scope != tt.scope {
				t.Errorf("check asked for scope %q (query %q), want %q", c.scope, c.rawQuery, tt.scope)
			}
			if tt.wantStatus == http.StatusForbidden {
				wantHeader(t, "response", r.header, headerWWWAuthn, insufficientAuthn(tt.scope))
				wantErrorCode(t, r.body, "insufficient_scope")
				if app.reached(path) {
					t.Error("the app was reached")
				}
				return
			}
			wantHeader(t, "app request", echoed(t, r).Header, headerOwner, "alice")
		})
	}
}

func TestForwardAuthUnreachable(t *testing.T) {
	t.Parallel()
	app := startApp(t)
	port, err := stack.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ngx := Start(t, Config{AuthAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), AppAddr: app.addr()})
	r := do(t, http.MethodGet, ngx.URL()+"/down", bearer(prefixValid+"down"), "")
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503; body %q", r.status, r.body)
	}
	wantHeader(t, "response", r.header, "Retry-After", "1")
	if app.reached("/down") {
		t.Error("the app was reached")
	}
}

func TestForwardAuthKeepsConnectionsToAuth(t *testing.T) {
	t.Parallel()
	auth, app := startAuth(t), startApp(t)
	ngx := Start(t, Config{AuthAddr: auth.addr(), AppAddr: app.addr()})
	const requests = 5
	for i := range requests {
		echoed(t, do(t, http.MethodGet, ngx.URL()+"/keepalive", bearer(prefixValid+"keepalive-"+strconv.Itoa(i)), ""))
	}
	if n := auth.newConns.Load(); n != 1 {
		t.Errorf("%d sequential checks opened %d connections to the auth endpoint, want 1 kept alive", requests, n)
	}
}

func TestRender(t *testing.T) {
	t.Parallel()
	cfg := Config{AuthAddr: "127.0.0.1:1111", AppAddr: "127.0.0.1:2222", Scope: "orders:read orders:write"}
	snippet, err := readSnippet()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		snippet string
		wantErr bool
		want    []string
	}{
		{"the shipped snippet gets every value", snippet, false, []string{
			"server 127.0.0.1:1111;", "server 127.0.0.1:2222;", "listen 127.0.0.1:3333;",
			`set $tokenledger_scope "orders%3Aread+orders%3Awrite";`,
		}},
		{"placeholders in comments are left alone", "# listen 80;\nlisten 80; # listen 80;\nserver 127.0.0.1:8080;\nserver 127.0.0.1:3000;\nset $tokenledger_scope \"\";\n", false, []string{
			"# listen 80;\nlisten 127.0.0.1:3333; # listen 80;",
		}},
		{"a missing placeholder is an error", "server 127.0.0.1:8080;\nserver 127.0.0.1:3000;\nset $tokenledger_scope \"\";\n", true, nil},
		{"a repeated placeholder is an error", "listen 80;\nlisten 80;\nserver 127.0.0.1:8080;\nserver 127.0.0.1:3000;\nset $tokenledger_scope \"\";\n", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := render(tt.snippet, cfg, "127.0.0.1:3333")
			if (err != nil) != tt.wantErr {
				t.Fatalf("render error %v, want error %v", err, tt.wantErr)
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("rendered configuration lacks %q:\n%s", w, got)
				}
			}
		})
	}
}
