//go:build linux

package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"testing"

	"github.com/tokenledger/tokenledger/internal/testkit/apitest"
	"github.com/tokenledger/tokenledger/internal/testkit/authlibtest"
	"github.com/tokenledger/tokenledger/sdk"
)

// TestAuthlibRevokesAndIntrospects drives RFC 7009 revocation and RFC 7662
// introspection with Authlib, a third-party OAuth 2 client, as a confidential
// client (client_id and client_secret in the body) and as a public one
// (client_id only): both send parameters tokenledger does not use, which it
// must ignore (RFC 6749 §3.2). Each secret is active, then revoked with one
// event, then inactive, and /v1/auth refuses it.
func TestAuthlibRevokesAndIntrospects(t *testing.T) {
	t.Parallel()
	python := authlibtest.Python(t)
	s := apitest.Start(t, apitest.Options{})
	introspector, _ := issueDirect(t, s, "gateway", []string{"ledger:introspect"}, 0)
	confidential, confidentialID := issueDirect(t, s, "billing", []string{"invoices:read"}, 0)
	public, publicID := issueDirect(t, s, "cli-user", []string{"repo:read"}, 0)
	before := s.LastSequence(t)

	cmd := exec.Command(python, "testdata/authlib_client.py")
	cmd.Env = append(os.Environ(), "TL_URL="+s.URL, "TL_INTROSPECTOR="+introspector,
		"TL_CONFIDENTIAL="+confidential, "TL_PUBLIC="+public)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("authlib client: %v\n%s", err, redact(stderr.Bytes()))
	}
	var got struct {
		Steps []struct {
			Name   string          `json:"name"`
			Status int             `json:"status"`
			Body   json.RawMessage `json:"body"`
			Sent   []string        `json:"sent"`
		} `json:"steps"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("authlib client output %q: %v", redact(out), err)
	}

	clients := []struct {
		name, owner, jti string
		// credentials are the client authentication parameters Authlib
		// puts in the body for this kind of client.
		credentials []string
	}{
		{"confidential", "billing", confidentialID.String(), []string{"client_id", "client_secret"}},
		{"public", "cli-user", publicID.String(), []string{"client_id"}},
	}
	if len(got.Steps) != 3*len(clients) {
		t.Fatalf("authlib client ran %d steps, want %d: %s", len(got.Steps), 3*len(clients), redact(out))
	}
	for i, c := range clients {
		for j, step := range got.Steps[3*i : 3*i+3] {
			if step.Status != http.StatusOK {
				t.Errorf("%s: %d %s, want 200", step.Name, step.Status, redact(step.Body))
				continue
			}
			for _, p := range append([]string{"token", "token_type_hint"}, c.credentials...) {
				if !slices.Contains(step.Sent, p) {
					t.Errorf("%s: Authlib sent %v, without %s: the test no longer shows extra parameters are ignored", step.Name, step.Sent, p)
				}
			}
			switch j {
			case 0:
				var in sdk.Introspection
				if err := json.Unmarshal(step.Body, &in); err != nil || !in.Active || in.Subject != c.owner || in.JTI != c.jti {
					t.Errorf("%s: %s, want the active token %s of %s", step.Name, redact(step.Body), c.jti, c.owner)
				}
			case 1:
				if m := members(t, step.Body); len(m) != 0 {
					t.Errorf("%s: body %s, want {}", step.Name, redact(step.Body))
				}
			case 2:
				if m := members(t, step.Body); len(m) != 1 || m["active"] != false {
					t.Errorf("%s: %s, want exactly {\"active\": false}", step.Name, redact(step.Body))
				}
			}
		}
	}
	if after := s.LastSequence(t); after != before+2 {
		t.Errorf("the two revocations appended %d events, want 2", after-before)
	}
	for _, secret := range []string{confidential, public} {
		if got := authStatus(t, s, secret); got != http.StatusUnauthorized {
			t.Errorf("/v1/auth for a token Authlib revoked: %d, want 401", got)
		}
	}
}

// members decodes a JSON object as the Python client re-wrote it.
func members(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("body %s is not a JSON object: %v", redact(body), err)
	}
	return m
}

// TestSecretEndpointsIgnoreOtherParameters sends RFC 7009 and RFC 7662
// requests carrying parameters tokenledger does not use (client
// credentials, token_type_hint, anything else, repeated or empty), as forms
// and as JSON: each must be read for its token alone. Revocation records
// one event and kills the token; introspection answers it active.
func TestSecretEndpointsIgnoreOtherParameters(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	introspector, _ := issueDirect(t, s, "gateway", []string{"ledger:introspect"}, 0)
	const form = "application/x-www-form-urlencoded"
	q := url.QueryEscape
	for _, c := range []struct {
		name        string
		contentType string
		body        func(secret string) string
	}{
		{"form with client credentials and a hint", form, func(secret string) string {
			return "token=" + q(secret) + "&token_type_hint=access_token&client_id=billing&client_secret=s3cr%2Ft"
		}},
		{"form with the token last", form, func(secret string) string {
			return "client_id=billing&client_secret=x&token_type_hint=refresh_token&token=" + q(secret)
		}},
		{"form with unknown, repeated and empty parameters", form, func(secret string) string {
			return "scope=a+b&x=1&x=2&client_id=&token=" + q(secret) + "&token_type_hint=&token_type_hint=access_token"
		}},
		{"JSON with client credentials and a hint", "application/json", func(secret string) string {
			return `{"token":"` + secret + `","token_type_hint":"access_token","client_id":"billing","client_secret":"x"}`
		}},
		{"JSON with members of every type", "application/json", func(secret string) string {
			return `{"client_id":"billing","extra":{"nested":[1,2.5,null,true,"x"]},"token_type_hint":7,"TOKEN":"ignored","token":"` + secret + `"}`
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			secret, id := issueDirect(t, s, "client-params", []string{"read"}, 0)

			before := s.LastSequence(t)
			res := do(t, s, req{method: "POST", path: "/v1/introspect", secret: introspector, contentType: c.contentType, body: c.body(secret)})
			var in sdk.Introspection
			if res.status == http.StatusOK {
				res.decode(t, &in)
			}
			if res.status != http.StatusOK || !in.Active || in.JTI != id.String() {
				t.Errorf("introspect: %d %s, want token %s active", res.status, redact(res.body), id)
			}

			res = do(t, s, req{method: "POST", path: "/v1/revoke", contentType: c.contentType, body: c.body(secret)})
			if res.status != http.StatusOK {
				t.Fatalf("revoke: %d %s, want 200", res.status, redact(res.body))
			}
			if after := s.LastSequence(t); after != before+1 {
				t.Errorf("introspection and revocation appended %d events, want 1", after-before)
			}
			if got := authStatus(t, s, secret); got != http.StatusUnauthorized {
				t.Errorf("/v1/auth after the revocation: %d, want 401", got)
			}
		})
	}
}
