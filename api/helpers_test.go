package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/internal/testkit/apitest"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/ledger"
	"github.com/tokenledger/tokenledger/sdk"
)

func TestMain(m *testing.M) { stacktest.Main(m) }

// req is one HTTP request of a test.
type req struct {
	method, path string
	// secret, if set, is sent as Authorization: Bearer.
	secret string
	// body is sent as is when a string or []byte, as JSON otherwise.
	body any
	// contentType defaults to application/json when there is a body.
	contentType string
	header      http.Header
}

// resp is the answer to a req.
type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// errorCode returns the code of a JSON error body, failing the test when
// the body is not one.
func (r resp) errorCode(t *testing.T) string {
	t.Helper()
	var e sdk.ErrorBody
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("status %d: body %q is not a JSON error {\"error\":{\"code\",\"message\"}}", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type %q, want application/json", ct)
	}
	return e.Error.Code
}

// do sends rq to the stack.
func do(t *testing.T, s *apitest.Stack, rq req) resp {
	t.Helper()
	return doWith(t, s.Client(), s.URL, rq)
}

func doWith(t *testing.T, c *http.Client, base string, rq req) resp {
	t.Helper()
	var body io.Reader
	ct := rq.contentType
	switch b := rq.body.(type) {
	case nil:
	case string:
		body = strings.NewReader(b)
	case []byte:
		body = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(data)
	}
	if body != nil && ct == "" {
		ct = "application/json"
	}
	r, err := http.NewRequest(rq.method, base+rq.path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range rq.header {
		r.Header[k] = v
	}
	if ct != "" && ct != "-" {
		r.Header.Set("Content-Type", ct)
	}
	if rq.secret != "" {
		r.Header.Set("Authorization", "Bearer "+rq.secret)
	}
	res, err := c.Do(r)
	if err != nil {
		t.Fatalf("%s %s: %v", rq.method, rq.path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.Header.Get("X-Request-Id") == "" {
		t.Errorf("%s %s: no X-Request-Id", rq.method, rq.path)
	}
	return resp{status: res.StatusCode, header: res.Header, body: data}
}

// issue issues a token through the API as caller, failing the test unless
// it is created.
func issue(t *testing.T, s *apitest.Stack, caller string, r sdk.IssueRequest) sdk.IssuedToken {
	t.Helper()
	res := do(t, s, req{method: "POST", path: "/v1/tokens", secret: caller, body: r})
	if res.status != http.StatusCreated {
		t.Fatalf("issue %+v: status %d: %s", r, res.status, res.body)
	}
	var out sdk.IssuedToken
	res.decode(t, &out)
	return out
}

// issueDirect issues a token through the ledger, bypassing HTTP, for
// setting up callers.
func issueDirect(t *testing.T, s *apitest.Stack, owner string, scopes []string, expiresIn time.Duration) (string, domain.TokenID) {
	t.Helper()
	admin := ledger.Caller{TokenID: s.AdminID, Owner: "admin", Scopes: []string{ledger.ScopeAdmin}}
	out, err := s.API.Ledger.Issue(context.Background(), admin, domain.IssueRequest{
		Owner: domain.OwnerID(owner), Name: "caller", Scopes: scopes, ExpiresIn: expiresIn,
	}, "test")
	if err != nil {
		t.Fatalf("issue for %s: %v", owner, err)
	}
	return out.Secret.Reveal(), out.Token.ID()
}

// authStatus is the status of GET /v1/auth for secret.
func authStatus(t *testing.T, s *apitest.Stack, secret string) int {
	t.Helper()
	return do(t, s, req{method: "GET", path: "/v1/auth", secret: secret}).status
}

func ptr[T any](v T) *T { return &v }

// breakChecksum returns secret with its last character changed to another
// one (otherBase62), so that its checksum no longer holds: replacing it
// with a fixed character leaves the secret valid whenever it already ends
// with that character.
func breakChecksum(secret string) string {
	return secret[:len(secret)-1] + otherBase62(secret[len(secret)-1])
}
