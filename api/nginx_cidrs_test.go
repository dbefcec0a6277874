//go:build linux

package api_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/internal/testkit/apitest"
	"github.com/tokenledger/tokenledger/internal/testkit/nginxtest"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/sdk"
)

// clientFrom returns an HTTP client whose connections come from the
// loopback address src, so that a test can be several clients on one
// machine.
func clientFrom(src string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		DisableKeepAlives: true,
	}}
}

// getFrom sends GET url from the loopback address src with the secret as a
// bearer and extra headers.
func getFrom(t *testing.T, src, url, secret string, header http.Header) resp {
	t.Helper()
	r, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		r.Header[k] = v
	}
	r.Header.Set("Authorization", "Bearer "+secret)
	res, err := clientFrom(src).Do(r)
	if err != nil {
		t.Fatalf("GET %s from %s: %v", url, src, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: body}
}

// TestNginxAllowedNetworks puts the shipped nginx snippet, as the one
// trusted proxy (127.0.0.1), in front of an app: a token limited to
// 127.0.0.2 passes for a client at 127.0.0.2, is refused with 403
// ip_not_allowed for a client at 127.0.0.3 (also when that client forges
// X-Forwarded-For, which nginx appends to), and a client that reaches
// tokenledger directly from an address that is no trusted proxy cannot
// choose its address with X-Forwarded-For or Forwarded. The address
// recorded as the token's last use is the client's, not nginx's.
func TestNginxAllowedNetworks(t *testing.T) {
	s := apitest.Start(t, apitest.Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	app := startProtectedApp(t)
	ngx := nginxtest.Start(t, nginxtest.Config{AuthAddr: urlHostPort(t, s.URL), AppAddr: app.addr()})

	limited := issue(t, s, s.Admin, sdk.IssueRequest{Owner: "partner", Name: "partner key", AllowedCIDRs: []string{"127.0.0.2"}})
	if len(limited.AllowedCIDRs) != 1 || limited.AllowedCIDRs[0] != "127.0.0.2/32" {
		t.Fatalf("issued allowed_cidrs %q, want [127.0.0.2/32]", limited.AllowedCIDRs)
	}
	open := issue(t, s, s.Admin, sdk.IssueRequest{Owner: "partner", Name: "any network"})

	refused := func(t *testing.T, r resp, path string) {
		t.Helper()
		if r.status != http.StatusForbidden {
			t.Fatalf("status %d, want 403; body %s", r.status, r.body)
		}
		if code := r.errorCode(t); code != sdk.CodeIPNotAllowed {
			t.Errorf("error code %s, want %s", code, sdk.CodeIPNotAllowed)
		}
		if path != "" && app.hitsOf(path) != 0 {
			t.Errorf("a refused request reached the app")
		}
	}

	t.Run("a client inside the networks passes", func(t *testing.T) {
		if r := getFrom(t, "127.0.0.2", ngx.URL()+"/inside", limited.Secret, nil); r.status != http.StatusOK || app.hitsOf("/inside") != 1 {
			t.Fatalf("status %d, app hit %d times; want 200 and one hit; body %s", r.status, app.hitsOf("/inside"), r.body)
		}
	})
	t.Run("a client outside the networks gets 403", func(t *testing.T) {
		refused(t, getFrom(t, "127.0.0.3", ngx.URL()+"/outside", limited.Secret, nil), "/outside")
	})
	t.Run("a client outside forging X-Forwarded-For through nginx gets 403", func(t *testing.T) {
		forged := http.Header{"X-Forwarded-For": {"127.0.0.2"}}
		refused(t, getFrom(t, "127.0.0.3", ngx.URL()+"/forged", limited.Secret, forged), "/forged")
	})
	t.Run("a token without networks passes from anywhere", func(t *testing.T) {
		if r := getFrom(t, "127.0.0.3", ngx.URL()+"/open", open.Secret, nil); r.status != http.StatusOK {
			t.Fatalf("status %d, want 200; body %s", r.status, r.body)
		}
	})
	t.Run("an untrusted peer's forwarding headers are ignored", func(t *testing.T) {
		for _, h := range []http.Header{
			{"X-Forwarded-For": {"127.0.0.2"}},
			{"Forwarded": {"for=127.0.0.2"}},
		} {
			refused(t, getFrom(t, "127.0.0.3", s.URL+"/v1/auth", limited.Secret, h), "")
		}
		if r := getFrom(t, "127.0.0.2", s.URL+"/v1/auth", limited.Secret, http.Header{"X-Forwarded-For": {"127.0.0.3"}}); r.status != http.StatusOK {
			t.Fatalf("from inside the networks, forging an outside address: status %d, want 200; body %s", r.status, r.body)
		}
	})
	t.Run("introspection of a use from outside is inactive", func(t *testing.T) {
		// The introspecting caller is the client here: 127.0.0.1, outside.
		r := do(t, s, req{method: "POST", path: "/v1/introspect", secret: s.Admin,
			body: "token=" + limited.Secret, contentType: "application/x-www-form-urlencoded"})
		if r.status != http.StatusOK || strings.TrimSpace(string(r.body)) != `{"active":false}` {
			t.Fatalf("introspection: %d %s, want 200 {\"active\":false}", r.status, r.body)
		}
	})
	t.Run("the last use records the client's address, not the proxy's", func(t *testing.T) {
		var got sdk.Token
		stacktest.Eventually(t, 20*time.Second, func() bool {
			r := do(t, s, req{method: "GET", path: "/v1/tokens/" + open.ID, secret: s.Admin})
			r.decode(t, &got)
			return len(got.LastUsedIPs) > 0
		}, "the token's last client addresses were never recorded")
		if got.LastUsedIPs[0].Addr != "127.0.0.3" {
			t.Errorf("last used from %+v, want 127.0.0.3 first (the client behind nginx)", got.LastUsedIPs)
		}
	})
}
