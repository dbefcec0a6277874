package openapitest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/tokenledger/tokenledger/api/openapi"
	"github.com/tokenledger/tokenledger/internal/testkit/openapitest"
)

// recorder stands in for the testing.TB a Checker reports to, so a test can
// see what the checker reported instead of failing.
type recorder struct {
	testing.TB
	mu     sync.Mutex
	errors []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func (r *recorder) Error(args ...any) { r.Errorf("%s", fmt.Sprint(args...)) }

func (r *recorder) reports() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errors...)
}

const (
	tokenID = "01JQ3Z8V4N6Y2K5T7W9X0A1B2C"
	secret  = "tlk_01JQ3Z8V4N6Y2K5T7W9X0A1B2C_abcdefghijABCDEFGHIJ0123456789abcdefghijklmQWERTY"
)

const tokenJSON = `{"id":"01JQ3Z8V4N6Y2K5T7W9X0A1B2C","owner":"team-billing","name":"ci","scopes":["orders:read"],` +
	`"kind":"api","status":"active","created_at":"2026-11-02T09:30:00Z","expires_at":"2026-12-02T09:30:00Z",` +
	`"revoked_at":null,"revoked_reason":null,"owner_revoked":false,"last_used_at":null,"use_count":0}`

// answer is what a test server writes.
type answer struct {
	status  int
	headers map[string]string
	body    string
}

func (a answer) write(w http.ResponseWriter) {
	for k, v := range a.headers {
		w.Header()[http.CanonicalHeaderKey(k)] = []string{v}
	}
	w.WriteHeader(a.status)
	_, _ = io.WriteString(w, a.body)
}

func jsonAnswer(status int, body string) answer {
	return answer{status: status, body: body, headers: map[string]string{"Content-Type": "application/json", "X-Request-Id": "req-1"}}
}

func (a answer) without(header string) answer {
	h := map[string]string{}
	for k, v := range a.headers {
		if !strings.EqualFold(k, header) {
			h[k] = v
		}
	}
	a.headers = h
	return a
}

func (a answer) with(header, value string) answer {
	h := map[string]string{}
	for k, v := range a.headers {
		if !strings.EqualFold(k, header) {
			h[k] = v
		}
	}
	h[header] = value
	a.headers = h
	return a
}

func newRequest(t *testing.T, method, target, contentType, body string) *http.Request {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, target, r)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req
}

func TestCheckerReportsMismatches(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name            string
		method, path    string
		contentType     string
		reqBody         string
		validateRequest bool
		answer          answer
		// wantReports are substrings, one per expected report; none means
		// the exchange conforms.
		wantReports []string
	}{
		{
			name: "a conforming token answer", method: "GET", path: "/v1/tokens/" + tokenID,
			answer: jsonAnswer(200, tokenJSON),
		},
		{
			name: "an undocumented status", method: "GET", path: "/v1/tokens/" + tokenID,
			answer:      jsonAnswer(409, `{"error":{"code":"conflict","message":"m"}}`),
			wantReports: []string{"GET /v1/tokens/" + tokenID + " (getToken) answered 409: status 409 is not documented"},
		},
		{
			name: "a body member of the wrong type", method: "GET", path: "/v1/tokens/" + tokenID,
			answer:      jsonAnswer(200, strings.Replace(tokenJSON, `"use_count":0`, `"use_count":"none"`, 1)),
			wantReports: []string{"answered 200: response body doesn't match schema"},
		},
		{
			name: "a missing required member", method: "GET", path: "/v1/tokens/" + tokenID,
			answer:      jsonAnswer(200, strings.Replace(tokenJSON, `"owner":"team-billing",`, "", 1)),
			wantReports: []string{`property "owner" is missing`},
		},
		{
			name: "null where the document forbids it", method: "GET", path: "/v1/tokens/" + tokenID,
			answer:      jsonAnswer(200, strings.Replace(tokenJSON, `"scopes":["orders:read"]`, `"scopes":null`, 1)),
			wantReports: []string{"answered 200: response body doesn't match schema"},
		},
		{
			name: "no X-Request-Id", method: "GET", path: "/v1/tokens/" + tokenID,
			answer:      jsonAnswer(200, tokenJSON).without("X-Request-Id"),
			wantReports: []string{`"X-Request-Id" missing`},
		},
		{
			name: "the wrong content type", method: "GET", path: "/v1/tokens/" + tokenID,
			answer:      jsonAnswer(200, tokenJSON).with("Content-Type", "text/plain"),
			wantReports: []string{"text/plain"},
		},
		{
			name: "an error body with a code that does not fit the status", method: "GET", path: "/v1/tokens/" + tokenID,
			answer:      jsonAnswer(404, `{"error":{"code":"conflict","message":"m"}}`),
			wantReports: []string{"answered 404: response body doesn't match schema"},
		},
		{
			name: "a conforming error body", method: "GET", path: "/v1/tokens/" + tokenID,
			answer: jsonAnswer(404, `{"error":{"code":"not_found","message":"token not found"}}`),
		},
		{
			name: "an error body that is not the Error shape", method: "GET", path: "/v1/tokens/not-a-ulid",
			answer:      jsonAnswer(400, `{"message":"bad id"}`),
			wantReports: []string{"answered 400: response body doesn't match schema"},
		},
		{
			name: "a conforming revocation", method: "DELETE", path: "/v1/tokens/" + tokenID,
			answer:      answer{status: 204, headers: map[string]string{"X-Request-Id": "r"}, body: ""},
			wantReports: nil,
		},
		{
			name: "an inactive introspection that says more than active", method: "POST", path: "/v1/introspect",
			contentType: "application/x-www-form-urlencoded", reqBody: "token=" + url.QueryEscape(secret),
			answer:      jsonAnswer(200, `{"active":false,"sub":"team-billing"}`),
			wantReports: []string{"answered 200: response body doesn't match schema"},
		},
		{
			name: "a conforming forward-auth pass with no scopes", method: "GET", path: "/v1/auth?scope=orders:read",
			answer: answer{status: 200, headers: map[string]string{"X-Request-Id": "r", "X-Token-Id": tokenID, "X-Token-Owner": "o", "X-Token-Scopes": ""}},
		},
		{
			name: "a forward-auth pass without the owner header", method: "GET", path: "/v1/auth",
			answer:      answer{status: 200, headers: map[string]string{"X-Request-Id": "r", "X-Token-Id": tokenID, "X-Token-Scopes": "a b"}},
			wantReports: []string{`"X-Token-Owner" missing`},
		},
		{
			name: "a forward-auth refusal without WWW-Authenticate", method: "GET", path: "/v1/auth",
			answer:      jsonAnswer(401, `{"error":{"code":"invalid_token","message":"token expired"}}`),
			wantReports: []string{`"WWW-Authenticate" missing`},
		},
		{
			name: "a forward-auth pass with a body", method: "GET", path: "/v1/auth",
			answer:      answer{status: 200, headers: map[string]string{"X-Request-Id": "r", "X-Token-Id": tokenID, "X-Token-Owner": "o", "X-Token-Scopes": "a"}, body: "ok"},
			wantReports: []string{"the documented answer has no body, got 2 bytes"},
		},
		{
			name: "an unknown path answered 404 not_found", method: "GET", path: "/v1/nothing",
			answer: jsonAnswer(404, `{"error":{"code":"not_found","message":"m"}}`),
		},
		{
			name: "an unknown path answered 200", method: "GET", path: "/v1/nothing",
			answer:      jsonAnswer(200, `{}`),
			wantReports: []string{"GET /v1/nothing (no operation) answered 200: the request matches no operation"},
		},
		{
			name: "a wrong method answered 405 with Allow", method: "PUT", path: "/v1/tokens",
			answer: jsonAnswer(405, `{"error":{"code":"method_not_allowed","message":"m"}}`).with("Allow", "GET, HEAD, POST"),
		},
		{
			name: "a wrong method answered 405 without Allow", method: "PUT", path: "/v1/tokens",
			answer:      jsonAnswer(405, `{"error":{"code":"method_not_allowed","message":"m"}}`),
			wantReports: []string{"405 without an Allow header"},
		},
		{
			name: "a wrong method answered 405 whose Allow forgets a method", method: "PUT", path: "/v1/tokens",
			answer:      jsonAnswer(405, `{"error":{"code":"method_not_allowed","message":"m"}}`).with("Allow", "GET"),
			wantReports: []string{"does not list the documented method POST"},
		},
		{
			name: "a wrong method answered 404", method: "PUT", path: "/v1/tokens",
			answer:      jsonAnswer(404, `{"error":{"code":"not_found","message":"m"}}`),
			wantReports: []string{"want status 405, got 404"},
		},
		{
			name: "a malformed body the test meant to send", method: "POST", path: "/v1/tokens",
			contentType: "application/json", reqBody: `{"name":`,
			answer: jsonAnswer(400, `{"error":{"code":"invalid_request","message":"m"}}`),
		},
		{
			name: "a malformed body with request validation", method: "POST", path: "/v1/tokens",
			contentType: "application/json", reqBody: `{"name":`, validateRequest: true,
			answer:      jsonAnswer(400, `{"error":{"code":"invalid_request","message":"m"}}`),
			wantReports: []string{"request POST /v1/tokens (issueToken): request body: failed to decode"},
		},
		{
			name: "an unknown request member with request validation", method: "POST", path: "/v1/tokens",
			contentType: "application/json", reqBody: `{"name":"n","colour":"red"}`, validateRequest: true,
			answer:      jsonAnswer(400, `{"error":{"code":"invalid_request","message":"m"}}`),
			wantReports: []string{`request POST /v1/tokens (issueToken): request body: doesn't match schema #/components/schemas/IssueRequest: property "colour" is unsupported`},
		},
		{
			name: "a conforming form revocation with request validation", method: "POST", path: "/v1/revoke",
			contentType: "application/x-www-form-urlencoded", reqBody: "token=" + url.QueryEscape(secret), validateRequest: true,
			answer: jsonAnswer(200, `{}`),
		},
		{
			name: "a conforming JSON introspection with request validation", method: "POST", path: "/v1/introspect",
			contentType: "application/json", reqBody: `{"token":"` + secret + `"}`, validateRequest: true,
			answer: jsonAnswer(200, `{"active":true,"sub":"o","scope":"a b","token_type":"api","iat":1,"jti":"`+tokenID+`"}`),
		},
		{
			name: "a revocation answered 503 without Retry-After", method: "POST", path: "/v1/revoke",
			contentType: "application/x-www-form-urlencoded", reqBody: "token=x",
			answer:      jsonAnswer(503, `{"error":{"code":"unavailable","message":"m"}}`),
			wantReports: []string{`"Retry-After" missing`},
		},
		{
			name: "a not-ready answer", method: "GET", path: "/readyz",
			answer: jsonAnswer(503, `{"status":"not ready","checks":{"eventstore":"nats: timeout"}}`),
		},
		{
			name: "a metrics answer", method: "GET", path: "/metrics",
			answer: answer{status: 200, headers: map[string]string{"X-Request-Id": "r", "Content-Type": "text/plain; version=0.0.4; charset=utf-8"}, body: "# HELP x\nx 1\n"},
		},
		{
			name: "the document itself", method: "GET", path: "/v1/openapi.json",
			answer: jsonAnswer(200, `{"openapi":"3.0.3"}`),
		},
		{
			name: "a path that differs from the document's only by a dot", method: "GET", path: "/v1/openapiXjson",
			answer:      jsonAnswer(200, `{}`),
			wantReports: []string{"(no operation) answered 200"},
		},
		{
			name: "a trailing slash answered 404 not_found", method: "GET", path: "/v1/tokens/",
			answer: jsonAnswer(404, `{"error":{"code":"not_found","message":"m"}}`),
		},
		{
			name: "a HEAD of a GET operation", method: "HEAD", path: "/livez",
			answer: answer{status: 200, headers: map[string]string{"X-Request-Id": "r", "Content-Type": "application/json"}},
		},
		{
			name: "a HEAD answered with an undocumented status", method: "HEAD", path: "/livez",
			answer:      answer{status: 500, headers: map[string]string{"X-Request-Id": "r"}},
			wantReports: []string{"HEAD /livez (livez) answered 500: status 500 is not documented"},
		},
		{
			name: "an owner with a slash in the path", method: "POST", path: "/v1/owners/team%2Fbilling/revoke",
			answer: jsonAnswer(200, `{"owner":"team/billing","revoked_before":"2026-11-02T09:30:00Z","until":null}`),
		},
		{
			name: "an owner with a slash in the path, with request validation", method: "POST", path: "/v1/owners/team%2Fbilling/revoke",
			validateRequest: true,
			answer:          jsonAnswer(200, `{"owner":"team/billing","revoked_before":"2026-11-02T09:30:00Z","until":null}`),
		},
		{
			name: "an owner outside the owner syntax, with request validation", method: "POST", path: "/v1/owners/team.billing/revoke",
			validateRequest: true,
			answer:          jsonAnswer(400, `{"error":{"code":"invalid_request","message":"m"}}`),
			wantReports:     []string{`request POST /v1/owners/team.billing/revoke (revokeOwnerTokens): parameter "owner" in path`},
		},
		{
			name: "Envoy's form with a multi-segment path, with request validation", method: "POST", path: "/v1/auth/orders/7/lines?expand=all",
			validateRequest: true,
			answer:          answer{status: 200, headers: map[string]string{"X-Request-Id": "r", "X-Token-Id": tokenID, "X-Token-Owner": "o", "X-Token-Scopes": "a"}},
		},
		{
			name: "Envoy's form for the root path", method: "GET", path: "/v1/auth/",
			answer: answer{status: 200, headers: map[string]string{"X-Request-Id": "r", "X-Token-Id": tokenID, "X-Token-Owner": "o", "X-Token-Scopes": "a"}},
		},
		{
			name: "Envoy's form answered with an undocumented status", method: "PUT", path: "/v1/auth/orders/7",
			answer:      jsonAnswer(409, `{"error":{"code":"conflict","message":"m"}}`),
			wantReports: []string{"PUT /v1/auth/orders/7 (forwardAuthPrefixedPut) answered 409: status 409 is not documented"},
		},
		{
			name: "a method Envoy's form does not have, answered 405 with Allow", method: "TRACE", path: "/v1/auth/orders/7",
			answer: jsonAnswer(405, `{"error":{"code":"method_not_allowed","message":"m"}}`).with("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
		},
		{
			name: "a method Envoy's form does not have, answered 405 whose Allow forgets a method", method: "TRACE", path: "/v1/auth/orders/7",
			answer:      jsonAnswer(405, `{"error":{"code":"method_not_allowed","message":"m"}}`).with("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE"),
			wantReports: []string{"does not list the documented method OPTIONS"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var gotBody string
			var gotHeader bool
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				gotBody = string(b)
				_, gotHeader = r.Header[http.CanonicalHeaderKey(openapitest.RequestValidationHeader)]
				tc.answer.write(w)
			}))
			t.Cleanup(srv.Close)

			rec := &recorder{TB: t}
			c := openapitest.New(rec, openapi.Document())
			req := newRequest(t, tc.method, srv.URL+tc.path, tc.contentType, tc.reqBody)
			if tc.validateRequest {
				req.Header.Set(openapitest.RequestValidationHeader, "1")
			}
			resp, err := c.Client().Do(req)
			if err != nil {
				t.Fatalf("request: %v", err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("read the answer: %v", err)
			}

			if string(body) != tc.answer.body || resp.StatusCode != tc.answer.status {
				t.Errorf("the caller got %d %q, the server sent %d %q", resp.StatusCode, body, tc.answer.status, tc.answer.body)
			}
			if gotBody != tc.reqBody {
				t.Errorf("the server got the body %q, the caller sent %q", gotBody, tc.reqBody)
			}
			if gotHeader {
				t.Errorf("the server got %s: the checker must strip it", openapitest.RequestValidationHeader)
			}
			reports := rec.reports()
			if len(reports) != len(tc.wantReports) {
				t.Fatalf("got %d reports, want %d:\n%s", len(reports), len(tc.wantReports), strings.Join(reports, "\n"))
			}
			for i, want := range tc.wantReports {
				if !strings.Contains(reports[i], want) {
					t.Errorf("report %d = %q, want it to contain %q", i, reports[i], want)
				}
			}
		})
	}
}

// TestCheckerReportsNoSecret proves mismatching exchanges that carry a
// secret, in either body or in the URL, are reported without it, while the
// caller still gets everything the server sent.
func TestCheckerReportsNoSecret(t *testing.T) {
	t.Parallel()
	issued := strings.TrimSuffix(strings.Replace(tokenJSON, `"use_count":0`, `"use_count":"many"`, 1), "}") + `,"token":"` + secret + `"}`
	tests := []struct {
		name        string
		method      string
		path        string
		reqBody     string
		answer      answer
		wantReports int
	}{
		{
			name: "a secret in both bodies", method: "POST", path: "/v1/tokens",
			reqBody:     `{"name":"` + secret + `","kind":"forever"}`,
			answer:      jsonAnswer(201, issued),
			wantReports: 2,
		},
		{
			name: "a secret in the query", method: "GET", path: "/v1/auth?scope=" + secret,
			answer:      jsonAnswer(200, `{"token":"`+secret+`"}`),
			wantReports: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				tc.answer.write(w)
			}))
			t.Cleanup(srv.Close)
			rec := &recorder{TB: t}
			c := openapitest.New(rec, openapi.Document())
			contentType := ""
			if tc.reqBody != "" {
				contentType = "application/json"
			}
			req := newRequest(t, tc.method, srv.URL+tc.path, contentType, tc.reqBody)
			req = req.WithContext(openapitest.WithRequestValidation(req.Context()))
			resp, err := c.Client().Do(req)
			if err != nil {
				t.Fatalf("request: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(body), secret) {
				t.Fatal("the caller did not get the secret the server sent")
			}
			reports := rec.reports()
			if len(reports) != tc.wantReports {
				t.Fatalf("got %d reports, want %d", len(reports), tc.wantReports)
			}
			for _, r := range reports {
				if strings.Contains(r, secret[len("tlk_")+8:]) {
					t.Errorf("a report shows the secret: %q", r)
				}
			}
		})
	}
}

// TestCheckerCountsAnswers proves Seen counts (operation, status) pairs,
// including from concurrent requests, and RequireCoverage names exactly the
// documented answers never seen.
func TestCheckerCountsAnswers(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/livez":
			jsonAnswer(200, `{"status":"ok","version":"v0.0.0-test"}`).write(w)
		case "/readyz":
			jsonAnswer(503, `{"status":"not ready","checks":{"x":"down"}}`).write(w)
		default:
			jsonAnswer(404, `{"error":{"code":"not_found","message":"m"}}`).write(w)
		}
	}))
	t.Cleanup(srv.Close)
	rec := &recorder{TB: t}
	c := openapitest.New(rec, openapi.Document())
	client := c.Client()

	const n = 8
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for _, p := range []string{"/livez", "/readyz", "/nowhere"} {
				resp, err := client.Get(srv.URL + p)
				if err != nil {
					t.Errorf("GET %s: %v", p, err)
					return
				}
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	if r := rec.reports(); len(r) != 0 {
		t.Fatalf("conforming answers were reported: %q", r)
	}
	seen := c.Seen()
	for _, want := range []openapitest.OperationStatus{{Operation: "livez", Status: 200}, {Operation: "readyz", Status: 503}, {Operation: "", Status: 404}} {
		if seen[want] != n {
			t.Errorf("Seen()[%v] = %d, want %d", want, seen[want], n)
		}
	}

	coverage := &recorder{TB: t}
	// 400 (two Authorization headers) is documented for every route;
	// this test leaves it out.
	c.RequireCoverage(coverage, func(op string, status int) bool { return (op == "livez" || op == "readyz") && status != 400 })
	reports := coverage.reports()
	if len(reports) != 1 || !strings.Contains(reports[0], "readyz 200") || strings.Contains(reports[0], "livez") || strings.Contains(reports[0], "readyz 503") {
		t.Errorf("RequireCoverage reported %q, want exactly readyz 200 missing", reports)
	}
	coverage = &recorder{TB: t}
	c.RequireCoverage(coverage, func(op string, status int) bool { return op == "livez" && status != 400 })
	if r := coverage.reports(); len(r) != 0 {
		t.Errorf("RequireCoverage reported %q for answers that were all seen", r)
	}
}

// TestDocumentedListsEveryAnswer checks Documented against the document:
// every operation, with its statuses.
func TestDocumentedListsEveryAnswer(t *testing.T) {
	t.Parallel()
	c := openapitest.New(t, openapi.Document())
	docd := c.Documented()
	ops := map[string]bool{}
	for _, p := range docd {
		ops[p.Operation] = true
	}
	if len(ops) != len(openapi.Operations()) {
		t.Errorf("Documented covers %d operations, the document has %d", len(ops), len(openapi.Operations()))
	}
	want := openapitest.OperationStatus{Operation: "issueToken", Status: 503}
	found := false
	for _, p := range docd {
		found = found || p == want
	}
	if !found {
		t.Errorf("Documented lacks %v", want)
	}
}

// TestCheckerKeepsTransportErrors proves a failed round trip comes back to
// the caller as is and is not reported as a mismatch.
func TestCheckerKeepsTransportErrors(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close()
	rec := &recorder{TB: t}
	c := openapitest.New(rec, openapi.Document())
	req, err := http.NewRequestWithContext(context.Background(), "GET", addr+"/livez", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client().Do(req); err == nil {
		t.Fatal("a request to a closed server succeeded")
	}
	if r := rec.reports(); len(r) != 0 {
		t.Errorf("a transport error was reported as a mismatch: %q", r)
	}
}
