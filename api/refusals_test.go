package api_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/tokenledger/tokenledger/internal/testkit/apitest"
	"github.com/tokenledger/tokenledger/sdk"
)

// "Who still uses the revoked token?": a refused forward-auth check leaves
// an info line naming the token id (never the secret), the reason, the
// client's address and the route, and counts in
// tokenledger_auth_refusals_total{reason}.
func TestRefusedForwardAuthIsLoggedAndCounted(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	s := apitest.Start(t, apitest.Options{Log: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	revoked := issue(t, s, s.Admin, sdk.IssueRequest{Owner: "alice", Scopes: []string{"read"}})
	if res := do(t, s, req{method: "DELETE", path: "/v1/tokens/" + revoked.ID, secret: s.Admin}); res.status != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", res.status, res.body)
	}
	scoped := issue(t, s, s.Admin, sdk.IssueRequest{Owner: "bob", Scopes: []string{"read"}})
	garbage := "tlk_not-a-secret-at-all"

	for _, c := range []struct {
		path, secret string
		status       int
	}{
		{"/v1/auth", revoked.Secret, 401},
		{"/v1/auth", revoked.Secret, 401}, // within the window: counted, not logged
		{"/v1/auth?scope=write", scoped.Secret, 403},
		{"/v1/auth", garbage, 401},
		{"/v1/auth", "", 401},
	} {
		res := do(t, s, req{method: "GET", path: c.path, secret: c.secret, header: http.Header{"X-Forwarded-Uri": {"/orders/7"}}})
		if res.status != c.status {
			t.Fatalf("%s: %d, want %d", c.path, res.status, c.status)
		}
	}
	out := logs.String()
	var refusals []string
	for line := range strings.Lines(out) {
		if strings.Contains(line, `"msg":"forward-auth refused"`) {
			refusals = append(refusals, line)
		}
	}
	for _, want := range [][]string{
		{`"level":"INFO"`, `"token_id":"` + revoked.ID + `"`, `"reason":"revoked"`, `"client_addr":"127.0.0.1"`, `"route":"/orders/7"`},
		{`"token_id":"` + scoped.ID + `"`, `"reason":"insufficient_scope"`},
		{`"reason":"malformed"`, `"client_addr":"127.0.0.1"`},
	} {
		found := 0
		for _, line := range refusals {
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(line, w)
			}
			if ok {
				found++
			}
		}
		if found != 1 {
			t.Errorf("%d refusal lines with %q, want 1:\n%s", found, want, strings.Join(refusals, ""))
		}
	}
	for _, secret := range []string{revoked.Secret, scoped.Secret, garbage} {
		if strings.Contains(out, secret) {
			t.Errorf("the logs hold a presented secret")
		}
	}
	metrics := string(do(t, s, req{method: "GET", path: "/metrics"}).body)
	for _, want := range []string{`tokenledger_auth_refusals_total{reason="revoked"} 2`, `tokenledger_auth_refusals_total{reason="insufficient_scope"} 1`,
		`tokenledger_auth_refusals_total{reason="malformed"} 1`, `tokenledger_auth_refusals_total{reason="no_token"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
