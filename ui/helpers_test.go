package ui_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/tokenledger/tokenledger/internal/testkit/apitest"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/sdk"
	"github.com/tokenledger/tokenledger/ui"
)

func TestMain(m *testing.M) { stacktest.Main(m) }

// apiCall sends one API request with secret as bearer token and returns the
// status and body.
func apiCall(t *testing.T, s *apitest.Stack, method, path, secret string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	res, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, b
}

// issueAPI issues a token through the API as the admin.
func issueAPI(t *testing.T, s *apitest.Stack, req sdk.IssueRequest) sdk.IssuedToken {
	t.Helper()
	st, b := apiCall(t, s, http.MethodPost, "/v1/tokens", s.Admin, req)
	if st != http.StatusCreated {
		t.Fatalf("issue: %d %s", st, b)
	}
	var out sdk.IssuedToken
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// getToken reads a token's metadata through the API as the admin.
func getToken(t *testing.T, s *apitest.Stack, id string) sdk.Token {
	t.Helper()
	st, b := apiCall(t, s, http.MethodGet, "/v1/tokens/"+id, s.Admin, nil)
	if st != http.StatusOK {
		t.Fatalf("get token %s: %d %s", id, st, b)
	}
	var out sdk.Token
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// authStatus is the answer of forward-auth to secret.
func authStatus(t *testing.T, s *apitest.Stack, secret string) int {
	t.Helper()
	st, _ := apiCall(t, s, http.MethodGet, "/v1/auth", secret, nil)
	return st
}

// page is a UI answer read by a plain HTTP client.
type page struct {
	status int
	header http.Header
	body   string
}

// httpSession is a signed-in UI session driven without a browser: its
// cookie, and the CSRF token its pages carry.
type httpSession struct {
	s      *apitest.Stack
	cookie *http.Cookie
	csrf   string
}

// signInHTTP signs in with secret through the sign-in form.
func signInHTTP(t *testing.T, s *apitest.Stack, secret string) *httpSession {
	t.Helper()
	hs := &httpSession{s: s}
	p := hs.post(t, "/ui/signin", url.Values{"token": {secret}}, nil)
	if p.status != http.StatusSeeOther {
		t.Fatalf("sign in: %d %s", p.status, p.body)
	}
	for _, c := range (&http.Response{Header: p.header}).Cookies() {
		if c.Name == ui.CookieName {
			hs.cookie = c
		}
	}
	if hs.cookie == nil {
		t.Fatalf("sign in set no %s cookie: %v", ui.CookieName, p.header.Values("Set-Cookie"))
	}
	tokens := hs.get(t, "/ui/tokens")
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(tokens.body)
	if m == nil {
		t.Fatalf("the token list has no CSRF token: %s", tokens.body)
	}
	hs.csrf = m[1]
	return hs
}

func (hs *httpSession) get(t *testing.T, path string) page {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, hs.s.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return hs.do(t, req)
}

// post sends form to path with the session's cookie (if any) and header.
func (hs *httpSession) post(t *testing.T, path string, form url.Values, header http.Header) page {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, hs.s.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header[k] = v
	}
	return hs.do(t, req)
}

func (hs *httpSession) do(t *testing.T, req *http.Request) page {
	t.Helper()
	if hs.cookie != nil {
		req.AddCookie(hs.cookie)
	}
	res, err := hs.s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return page{status: res.StatusCode, header: res.Header, body: string(b)}
}
