package api_test

import (
	"net/http"
	"testing"

	"github.com/tokenledger/tokenledger/api"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/internal/testkit/apitest"
	"github.com/tokenledger/tokenledger/sdk"
)

// TestForwardAuthScopeSetting sends the same forward-auth checks to a server
// with each setting of RequireAuthScope. By default a scope is an optional
// requirement: a check that names none passes any valid token. With the
// setting, such a check is 400 scope_required whatever the token (a gateway
// configured without a scope fails closed), while checks that name a scope
// behave as by default.
func TestForwardAuthScopeSetting(t *testing.T) {
	t.Parallel()
	const (
		ok       = http.StatusOK
		bad      = http.StatusBadRequest
		invalid  = http.StatusUnauthorized
		lacks    = http.StatusForbidden
		required = sdk.CodeScopeRequired
	)
	type check struct {
		name string
		path string
		// secret is "valid" (a token with the scope read), "unknown" (a
		// well-formed secret of no token) or "" (no Authorization).
		secret string
		// scopeHeader is sent as api.ScopeHeader when set.
		scopeHeader string
		// status and code by setting: optional, then required.
		optional, required int
		requiredCode       string
	}
	checks := []check{
		{name: "no scope", path: "/v1/auth", secret: "valid", optional: ok, required: bad, requiredCode: required},
		{name: "no scope, unknown token", path: "/v1/auth", secret: "unknown", optional: invalid, required: bad, requiredCode: required},
		{name: "no scope, no token", path: "/v1/auth", optional: invalid, required: bad, requiredCode: required},
		{name: "empty ?scope=", path: "/v1/auth?scope=", secret: "valid", optional: ok, required: bad, requiredCode: required},
		{name: "blank ?scope=", path: "/v1/auth?scope=%20+", secret: "valid", optional: ok, required: bad, requiredCode: required},
		{name: "blank scope header", path: "/v1/auth", secret: "valid", scopeHeader: "  ", optional: ok, required: bad, requiredCode: required},
		{name: "Envoy form without the scope header", path: "/v1/auth/orders/42", secret: "valid", optional: ok, required: bad, requiredCode: required},
		{name: "Envoy form: the client's ?scope= does not count", path: "/v1/auth/orders/42?scope=read", secret: "valid", optional: ok, required: bad, requiredCode: required},
		{name: "?scope= held", path: "/v1/auth?scope=read", secret: "valid", optional: ok, required: ok},
		{name: "scope header held", path: "/v1/auth", secret: "valid", scopeHeader: "read", optional: ok, required: ok},
		{name: "Envoy form, scope header held", path: "/v1/auth/orders/42", secret: "valid", scopeHeader: "read", optional: ok, required: ok},
		{name: "?scope= lacked", path: "/v1/auth?scope=write", secret: "valid", optional: lacks, required: lacks},
		{name: "?scope= held, unknown token", path: "/v1/auth?scope=read", secret: "unknown", optional: invalid, required: invalid},
		{name: "?scope= held, no token", path: "/v1/auth?scope=read", optional: invalid, required: invalid},
	}
	for _, setting := range []struct {
		name    string
		require bool
	}{{"optional", false}, {"required", true}} {
		t.Run(setting.name, func(t *testing.T) {
			t.Parallel()
			s := apitest.Start(t, apitest.Options{RequireAuthScope: setting.require})
			valid, _ := issueDirect(t, s, "alice", []string{"read"}, 0)
			unknown := unknownSecret(t, s)
			for _, c := range checks {
				t.Run(c.name, func(t *testing.T) {
					want := c.optional
					if setting.require {
						want = c.required
					}
					rq := req{method: "GET", path: c.path, header: http.Header{}}
					switch c.secret {
					case "valid":
						rq.secret = valid
					case "unknown":
						rq.secret = unknown
					}
					if c.scopeHeader != "" {
						rq.header.Set(api.ScopeHeader, c.scopeHeader)
					}
					before := s.LastSequence(t)
					res := do(t, s, rq)
					if res.status != want {
						t.Fatalf("%d %s, want %d", res.status, redact(res.body), want)
					}
					if want == ok {
						if res.header.Get(api.HeaderTokenOwner) != "alice" {
							t.Errorf("X-Token-Owner %q, want alice", res.header.Get(api.HeaderTokenOwner))
						}
						return
					}
					code := res.errorCode(t)
					if want == bad && code != c.requiredCode {
						t.Errorf("code %q, want %q", code, c.requiredCode)
					}
					if after := s.LastSequence(t); after != before {
						t.Errorf("the stream moved from %d to %d", before, after)
					}
				})
			}
		})
	}
}

// unknownSecret returns a well-formed secret of a token that was never
// issued.
func unknownSecret(t *testing.T, s *apitest.Stack) string {
	t.Helper()
	id, err := domain.NewTokenID(s.Clock.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := domain.GenerateSecret(id, nil)
	if err != nil {
		t.Fatal(err)
	}
	return secret.Reveal()
}
