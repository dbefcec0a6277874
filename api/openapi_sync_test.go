package api_test

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/tokenledger/tokenledger/api"
	"github.com/tokenledger/tokenledger/api/openapi"
	"github.com/tokenledger/tokenledger/app"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/internal/testkit/apitest"
	"github.com/tokenledger/tokenledger/internal/testkit/openapitest"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/sdk"
)

// fetchDocument gets /v1/openapi.json from the running stack, and loads and
// validates it with kin-openapi.
func fetchDocument(t *testing.T, s *apitest.Stack) ([]byte, *openapi3.T) {
	t.Helper()
	res, err := s.Client().Get(s.URL + "/v1/openapi.json")
	if err != nil {
		t.Fatalf("GET /v1/openapi.json: %v", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read /v1/openapi.json: %v", err)
	}
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /v1/openapi.json: %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(body)
	if err != nil {
		t.Fatalf("load the served document: %v", err)
	}
	if err := doc.Validate(loader.Context, openapi3.EnableSchemaPatternValidation()); err != nil {
		t.Fatalf("the served document is not valid OpenAPI: %v", err)
	}
	return body, doc
}

// docEndpoint is a method and a path template in the document's syntax.
type docEndpoint struct{ method, path string }

func (e docEndpoint) String() string { return e.method + " " + e.path }

// restWildcard matches a net/http.ServeMux wildcard that spans the rest of
// the path, "{name...}".
var restWildcard = regexp.MustCompile(`\{([^{}]+)\.\.\.\}`)

// documentPath converts a ServeMux pattern to the document's template
// ("{path...}" becomes "{path}") and returns the names of its rest-of-path
// wildcards.
func documentPath(pattern string) (string, []string) {
	var rest []string
	for _, m := range restWildcard.FindAllStringSubmatch(pattern, -1) {
		rest = append(rest, m[1])
	}
	return restWildcard.ReplaceAllString(pattern, "{$1}"), rest
}

// multiSegment returns the names of the parameters of op (or of its path
// item) marked as spanning the rest of the path.
func multiSegment(item *openapi3.PathItem, op *openapi3.Operation) []string {
	var out []string
	for _, p := range slices.Concat(item.Parameters, op.Parameters) {
		if p.Value != nil && p.Value.Extensions[openapitest.MultiSegmentExtension] == true {
			out = append(out, p.Value.Name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestOpenAPIMatchesServer proves the document the server serves is the
// package's, is valid, and describes exactly the routes the server answers:
// every route is an operation and every operation a route, rest-of-path
// wildcards included, and each path's 405 names exactly its documented
// methods.
func TestOpenAPIMatchesServer(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	served, doc := fetchDocument(t, s)
	if !bytes.Equal(served, openapi.Document()) {
		t.Error("the served document differs from openapi.Document()")
	}

	routes := map[docEndpoint][]string{}
	for _, r := range s.API.Server.Routes() {
		path, rest := documentPath(r.Path)
		routes[docEndpoint{r.Method, path}] = rest
	}
	type operation struct {
		id   string
		rest []string
	}
	documented := map[docEndpoint]operation{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			documented[docEndpoint{method, path}] = operation{op.OperationID, multiSegment(item, op)}
		}
	}
	for _, e := range []docEndpoint{{"GET", "/metrics"}, {"GET", "/livez"}, {"GET", "/readyz"}, {"GET", "/v1/openapi.json"}, {"GET", "/v1/auth/{path}"}} {
		if _, ok := routes[e]; !ok {
			t.Errorf("Routes() lacks %s: the comparison below would not see it", e)
		}
	}

	for e, rest := range routes {
		op, ok := documented[e]
		switch {
		case e.method == http.MethodHead:
			// net/http answers HEAD wherever GET is; it is not documented.
			if _, ok := routes[docEndpoint{http.MethodGet, e.path}]; !ok {
				t.Errorf("the server answers %s without GET", e)
			}
		case !ok:
			t.Errorf("the server answers %s; the document has no such operation", e)
		case !slices.Equal(op.rest, rest):
			t.Errorf("%s (%s): rest-of-path parameters %v in the document, %v on the server", e, op.id, op.rest, rest)
		}
	}
	for e, op := range documented {
		if _, ok := routes[e]; !ok {
			t.Errorf("the document describes %s (%s); the server has no such route", e, op.id)
		}
	}

	// The names the server's code uses are the document's.
	if p := doc.Components.Parameters["ScopeHeader"]; p == nil || p.Value.Name != api.ScopeHeader || p.Value.In != "header" {
		t.Errorf("the document's scope header is not %s", api.ScopeHeader)
	}
	if r := doc.Components.Responses["ForwardAuthValid"]; r == nil {
		t.Error("the document has no ForwardAuthValid response")
	} else {
		for _, h := range []string{api.HeaderTokenID, api.HeaderTokenOwner, api.HeaderTokenScopes, api.RequestIDHeader} {
			if r.Value.Headers[h] == nil {
				t.Errorf("the forward-auth pass does not document %s", h)
			}
		}
	}

	// On the wire too: a method no path has is 405, and Allow names the
	// documented methods, with HEAD wherever GET is.
	param := regexp.MustCompile(`\{[^{}]+\}`)
	for path, item := range doc.Paths.Map() {
		var want []string
		for method := range item.Operations() {
			want = append(want, method)
			if method == http.MethodGet {
				want = append(want, http.MethodHead)
			}
		}
		slices.Sort(want)
		target := path
		for _, op := range item.Operations() {
			for _, name := range multiSegment(item, op) {
				target = strings.Replace(target, "{"+name+"}", "orders/7", 1)
			}
		}
		target = param.ReplaceAllString(target, "x")
		res := do(t, s, req{method: "TRACE", path: target})
		var got []string
		for m := range strings.SplitSeq(res.header.Get("Allow"), ",") {
			got = append(got, strings.TrimSpace(m))
		}
		slices.Sort(got)
		if res.status != http.StatusMethodNotAllowed || !slices.Equal(got, want) {
			t.Errorf("TRACE %s: %d with Allow %v, want 405 with Allow %v", target, res.status, got, want)
		}
	}
}

// conformanceTour sends the requests of TestEveryRouteConformsToOpenAPI
// through the checker.
type conformanceTour struct {
	s *apitest.Stack
	c *http.Client
}

// call sends rq and fails t unless the answer has status want.
func (tr conformanceTour) call(t *testing.T, rq req, want int) resp {
	t.Helper()
	res := doWith(t, tr.c, tr.s.URL, rq)
	if res.status != want {
		t.Errorf("%s %s: %d %s, want %d", rq.method, rq.path, res.status, res.body, want)
	}
	return res
}

// conforming marks rq as one a conforming client sends, so the checker also
// validates the request against the document.
func conforming(rq req) req {
	h := rq.header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set(openapitest.RequestValidationHeader, "1")
	rq.header = h
	return rq
}

// withScopeHeader sets the scopes forward-auth must require in the
// X-Tokenledger-Scope header of rq.
func withScopeHeader(rq req, scopes string) req {
	h := rq.header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set(api.ScopeHeader, scopes)
	rq.header = h
	return rq
}

// envoyAuthMethods are the methods of the Envoy form of forward-auth.
var envoyAuthMethods = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// TestEveryRouteConformsToOpenAPI tours every operation of the document
// against a real stack through the OpenAPI checker: at least one success
// and the main error answers of each, every answer validated against the
// document, and well-formed requests validated too. Every documented
// (operation, status) must be seen (the 400 of every route, at least with two
// Authorization headers), except the 409 of issueToken and
// revokeOwnerTokens, which only concurrent writers exhausting the ledger's
// attempts produce. The 503s come last: with the event store stopped for
// /v1/revoke, and with the validator stale (its clock moved past the
// staleness bound) for every authenticated operation.
func TestEveryRouteConformsToOpenAPI(t *testing.T) {
	t.Parallel()
	scanKeys := newScanKeys(t)
	scanKey := scanKeys.publish(t, "key-1")
	s := apitest.Start(t, apitest.Options{SecretScanningKeysURL: scanKeys.srv.URL})
	served, _ := fetchDocument(t, s)
	chk := openapitest.New(t, served)
	signed := func(body []byte) http.Header {
		return http.Header{"Github-Public-Key-Identifier": {"key-1"}, "Github-Public-Key-Signature": {sign(t, scanKey, body)}}
	}
	c := chk.Client()
	c.Timeout = 30 * time.Second
	// A redirect is an answer to check, not to follow.
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	tr := conformanceTour{s: s, c: c}
	admin := s.Admin
	big := `{"name":"` + strings.Repeat("x", 70<<10) + `"}`
	unknownID, err := domain.NewTokenID(s.Clock.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	unknown := unknownID.String()
	issueVia := func(t *testing.T, secret string, body sdk.IssueRequest) sdk.IssuedToken {
		t.Helper()
		res := tr.call(t, conforming(req{method: "POST", path: "/v1/tokens", secret: secret, body: body}), 201)
		var out sdk.IssuedToken
		res.decode(t, &out)
		return out
	}

	alice := issueVia(t, admin, sdk.IssueRequest{Owner: "alice", Name: "alice's key", Scopes: []string{"repo:read", "repo:write"}})
	unlucky := issueVia(t, admin, sdk.IssueRequest{Owner: "alice", Name: "revoked with the store down"})

	t.Run("issueToken", func(t *testing.T) {
		for _, owner := range []string{"team/payments", "zoë:42", "東京#1"} {
			if got := issueVia(t, admin, sdk.IssueRequest{Owner: owner}); got.Owner != owner {
				t.Errorf("issued for %q, got owner %q", owner, got.Owner)
			}
		}
		tr.call(t, req{method: "POST", path: "/v1/tokens", secret: admin, body: map[string]any{"owner": "alice", "kind": "robot"}}, 400)
		tr.call(t, req{method: "POST", path: "/v1/tokens", secret: admin, body: map[string]any{"owner": "a.b"}}, 400)
		tr.call(t, req{method: "POST", path: "/v1/tokens", body: sdk.IssueRequest{Owner: "alice"}}, 401)
		tr.call(t, conforming(req{method: "POST", path: "/v1/tokens", secret: alice.Secret, body: sdk.IssueRequest{Owner: "bob"}}), 403)
		res := tr.call(t, conforming(req{method: "POST", path: "/v1/tokens", secret: alice.Secret, body: sdk.IssueRequest{ExpiresIn: ptr(sdk.Duration(60 * 24 * time.Hour))}}), 403)
		if res.status == 403 && res.errorCode(t) != sdk.CodeLifetimeExceedsCaller {
			t.Errorf("issue outliving the caller: %s, want lifetime_exceeds_caller", res.body)
		}
		tr.call(t, req{method: "POST", path: "/v1/tokens", secret: admin, body: big}, 413)
		tr.call(t, req{method: "POST", path: "/v1/tokens", secret: admin, body: "name=x", contentType: "application/x-www-form-urlencoded"}, 415)
	})

	t.Run("listTokens", func(t *testing.T) {
		s.WaitProjected(t)
		res := tr.call(t, conforming(req{method: "GET", path: "/v1/tokens?owner=alice&status=active&limit=1", secret: admin}), 200)
		var page sdk.TokenPage
		res.decode(t, &page)
		if len(page.Items) != 1 || page.NextCursor == "" {
			t.Errorf("first page of alice's tokens: %s", res.body)
		}
		tr.call(t, conforming(req{method: "GET", path: "/v1/tokens?owner=" + url.QueryEscape("team/payments"), secret: admin}), 200)
		tr.call(t, req{method: "GET", path: "/v1/tokens?status=dormant", secret: admin}, 400)
		tr.call(t, req{method: "GET", path: "/v1/tokens"}, 401)
		tr.call(t, conforming(req{method: "GET", path: "/v1/tokens?owner=bob", secret: alice.Secret}), 403)
	})

	t.Run("getToken", func(t *testing.T) {
		tr.call(t, conforming(req{method: "GET", path: "/v1/tokens/" + alice.ID, secret: alice.Secret}), 200)
		tr.call(t, req{method: "GET", path: "/v1/tokens/not-a-ulid", secret: admin}, 400)
		tr.call(t, req{method: "GET", path: "/v1/tokens/" + alice.ID}, 401)
		tr.call(t, conforming(req{method: "GET", path: "/v1/tokens/" + unknown, secret: admin}), 404)
	})

	t.Run("updateToken and revokeToken", func(t *testing.T) {
		tok := issueVia(t, alice.Secret, sdk.IssueRequest{Name: "shorten me"})
		shorter := s.Clock.Now().Add(time.Hour).Truncate(time.Second)
		path := "/v1/tokens/" + tok.ID
		tr.call(t, conforming(req{method: "PATCH", path: path, secret: alice.Secret, body: sdk.SetExpiryRequest{ExpiresAt: &shorter}}), 200)
		tr.call(t, req{method: "PATCH", path: path, secret: admin, body: `{}`}, 400)
		tr.call(t, conforming(req{method: "PATCH", path: path, body: sdk.SetExpiryRequest{ExpiresAt: &shorter}}), 401)
		tr.call(t, conforming(req{method: "PATCH", path: path, secret: alice.Secret, body: map[string]any{"expires_at": nil}}), 403)
		tr.call(t, conforming(req{method: "PATCH", path: "/v1/tokens/" + unknown, secret: admin, body: sdk.SetExpiryRequest{ExpiresAt: &shorter}}), 404)
		tr.call(t, req{method: "PATCH", path: path, secret: admin, body: big}, 413)
		tr.call(t, req{method: "PATCH", path: path, secret: admin, body: "expires_at=", contentType: "application/x-www-form-urlencoded"}, 415)

		tr.call(t, conforming(req{method: "DELETE", path: path, secret: alice.Secret, body: sdk.RevokeRequest{Reason: "done with it"}}), 204)
		tr.call(t, conforming(req{method: "DELETE", path: path, secret: admin}), 204)
		tr.call(t, conforming(req{method: "PATCH", path: path, secret: admin, body: sdk.SetExpiryRequest{ExpiresAt: &shorter}}), 409)
		tr.call(t, req{method: "DELETE", path: "/v1/tokens/not-a-ulid", secret: admin}, 400)
		tr.call(t, req{method: "DELETE", path: path}, 401)
		tr.call(t, conforming(req{method: "DELETE", path: "/v1/tokens/" + unknown, secret: admin}), 404)
		tr.call(t, req{method: "DELETE", path: path, secret: admin, body: big}, 413)
		tr.call(t, req{method: "DELETE", path: path, secret: admin, body: "reason=x", contentType: "application/x-www-form-urlencoded"}, 415)
	})

	t.Run("rotateToken", func(t *testing.T) {
		old := issueVia(t, alice.Secret, sdk.IssueRequest{Name: "rotating", Scopes: []string{"repo:read"}})
		path := "/v1/tokens/" + old.ID + "/rotate"
		tr.call(t, conforming(req{method: "POST", path: path, secret: alice.Secret, body: sdk.RotateRequest{Grace: ptr(sdk.Duration(time.Hour))}}), 201)
		tr.call(t, conforming(req{method: "POST", path: path, secret: alice.Secret}), 409)
		tr.call(t, req{method: "POST", path: "/v1/tokens/not-a-ulid/rotate", secret: admin}, 400)
		tr.call(t, req{method: "POST", path: path}, 401)
		tr.call(t, conforming(req{method: "POST", path: "/v1/tokens/" + unknown + "/rotate", secret: admin}), 404)
		tr.call(t, req{method: "POST", path: path, secret: admin, body: big}, 413)
		tr.call(t, req{method: "POST", path: path, secret: admin, body: "grace=1h", contentType: "application/x-www-form-urlencoded"}, 415)

		// 403 owner_blocked needs a token the ban does not cover while the
		// ban holds: one created after the ban's end, rotated by a node
		// whose clock is behind. Simulate the second node by setting the
		// shared clock back, then forward again.
		start := s.Clock.Now()
		until := start.Add(time.Hour).Truncate(time.Second)
		tr.call(t, conforming(req{method: "POST", path: "/v1/owners/dave/revoke", secret: admin, body: sdk.OwnerRevokeRequest{Until: &until}}), 200)
		later := s.Clock.Advance(2 * time.Hour)
		dave := issueVia(t, admin, sdk.IssueRequest{Owner: "dave"})
		s.Clock.Set(start.Add(30 * time.Minute))
		res := tr.call(t, conforming(req{method: "POST", path: "/v1/tokens/" + dave.ID + "/rotate", secret: admin}), 403)
		s.Clock.Set(later)
		if res.status == 403 && res.errorCode(t) != sdk.CodeOwnerBlocked {
			t.Errorf("rotate during the ban: %s, want owner_blocked", res.body)
		}
	})

	t.Run("getTokenUsage", func(t *testing.T) {
		tr.call(t, conforming(req{method: "GET", path: "/v1/tokens/" + alice.ID + "/usage?granularity=day", secret: alice.Secret}), 200)
		tr.call(t, req{method: "GET", path: "/v1/tokens/" + alice.ID + "/usage?granularity=week", secret: admin}, 400)
		tr.call(t, req{method: "GET", path: "/v1/tokens/" + alice.ID + "/usage"}, 401)
		tr.call(t, conforming(req{method: "GET", path: "/v1/tokens/" + unknown + "/usage", secret: admin}), 404)
	})

	t.Run("listTokenEvents", func(t *testing.T) {
		tr.call(t, conforming(req{method: "GET", path: "/v1/tokens/" + alice.ID + "/events", secret: alice.Secret}), 200)
		tr.call(t, req{method: "GET", path: "/v1/tokens/not-a-ulid/events", secret: admin}, 400)
		tr.call(t, req{method: "GET", path: "/v1/tokens/" + alice.ID + "/events"}, 401)
		tr.call(t, conforming(req{method: "GET", path: "/v1/tokens/" + unknown + "/events", secret: admin}), 404)
	})

	t.Run("revokeOwnerTokens", func(t *testing.T) {
		res := tr.call(t, conforming(req{method: "POST", path: "/v1/owners/" + url.PathEscape("team/payments") + "/revoke", secret: admin, body: sdk.OwnerRevokeRequest{Reason: "reorganized"}}), 200)
		var rev sdk.OwnerRevocation
		res.decode(t, &rev)
		if rev.Owner != "team/payments" {
			t.Errorf("revoked owner %q, want team/payments", rev.Owner)
		}
		tr.call(t, conforming(req{method: "POST", path: "/v1/owners/" + url.PathEscape("zoë:42") + "/revoke", secret: admin}), 200)
		tr.call(t, req{method: "POST", path: "/v1/owners/a.b/revoke", secret: admin}, 400)
		tr.call(t, req{method: "POST", path: "/v1/owners/bob/revoke"}, 401)
		tr.call(t, conforming(req{method: "POST", path: "/v1/owners/bob/revoke", secret: alice.Secret}), 403)
		tr.call(t, req{method: "POST", path: "/v1/owners/bob/revoke", secret: admin, body: big}, 413)
		tr.call(t, req{method: "POST", path: "/v1/owners/bob/revoke", secret: admin, body: "reason=x", contentType: "application/x-www-form-urlencoded"}, 415)
	})

	t.Run("listOwnerEvents", func(t *testing.T) {
		s.WaitProjected(t)
		res := tr.call(t, conforming(req{method: "GET", path: "/v1/owners/alice/events", secret: admin}), 200)
		var list sdk.EventList
		res.decode(t, &list)
		if len(list.Items) == 0 {
			t.Error("alice's history is empty")
		}
		tr.call(t, conforming(req{method: "GET", path: "/v1/owners/alice/events", secret: alice.Secret}), 200)
		tr.call(t, req{method: "GET", path: "/v1/owners/a.b/events", secret: admin}, 400)
		tr.call(t, req{method: "GET", path: "/v1/owners/alice/events"}, 401)
		tr.call(t, conforming(req{method: "GET", path: "/v1/owners/bob/events", secret: alice.Secret}), 403)
	})

	t.Run("reportLeakedSecrets", func(t *testing.T) {
		leaked := issueVia(t, admin, sdk.IssueRequest{Owner: "alice", Name: "leaked"})
		body := reportBody(t, sdk.SecretScanningReport{Token: leaked.Secret, Type: "tokenledger_token", URL: "https://github.com/o/r/blob/1/f", Source: "content"},
			sdk.SecretScanningReport{Token: "tlk_nothing", Type: "tokenledger_token", URL: "https://github.com/o/r", Source: "commit"})
		tr.call(t, conforming(req{method: "POST", path: "/v1/secret-scanning/github", body: body, header: signed(body)}), 200)
		bad := []byte(`[{"token": 7}]`)
		tr.call(t, req{method: "POST", path: "/v1/secret-scanning/github", body: bad, header: signed(bad)}, 400)
		h := signed(body)
		h.Set("Github-Public-Key-Signature", sign(t, scanKeys.publish(t, "unpublished"), body))
		tr.call(t, conforming(req{method: "POST", path: "/v1/secret-scanning/github", body: body, header: h}), 401)
		large := []byte(`[` + strings.Repeat(`{"token":"x","type":"t","url":"u","source":"s"},`, 2000) + `{}]`)
		tr.call(t, req{method: "POST", path: "/v1/secret-scanning/github", body: large, header: signed(large)}, 413)
	})

	t.Run("webhooks", func(t *testing.T) {
		res := tr.call(t, conforming(req{method: "POST", path: "/v1/webhooks", secret: admin,
			body: sdk.WebhookRequest{URL: "https://hooks.example.com/tokenledger", Events: []string{"token.expiring", "token.leaked"}}}), 201)
		var hook sdk.Webhook
		res.decode(t, &hook)
		if !strings.HasPrefix(hook.Secret, "whsec_") || hook.Owner != nil {
			t.Errorf("registered webhook %s: want a secret and every owner", res.body)
		}
		tr.call(t, conforming(req{method: "POST", path: "/v1/webhooks", secret: alice.Secret, body: sdk.WebhookRequest{URL: "https://hooks.example.com/alice"}}), 201)
		tr.call(t, req{method: "POST", path: "/v1/webhooks", secret: admin, body: sdk.WebhookRequest{URL: "http://127.0.0.1:9/x"}}, 400)
		tr.call(t, req{method: "POST", path: "/v1/webhooks", secret: admin, body: sdk.WebhookRequest{URL: "https://h.example.com", Events: []string{"token.nope"}}}, 400)
		tr.call(t, req{method: "POST", path: "/v1/webhooks", body: sdk.WebhookRequest{URL: "https://hooks.example.com/x"}}, 401)
		bob := "bob"
		tr.call(t, conforming(req{method: "POST", path: "/v1/webhooks", secret: alice.Secret, body: sdk.WebhookRequest{URL: "https://hooks.example.com/x", Owner: &bob}}), 403)
		tr.call(t, req{method: "POST", path: "/v1/webhooks", secret: admin, body: big}, 413)
		tr.call(t, req{method: "POST", path: "/v1/webhooks", secret: admin, body: "url=x", contentType: "application/x-www-form-urlencoded"}, 415)

		res = tr.call(t, conforming(req{method: "GET", path: "/v1/webhooks", secret: alice.Secret}), 200)
		var list sdk.WebhookList
		res.decode(t, &list)
		if len(list.Items) != 1 || list.Items[0].Owner == nil || *list.Items[0].Owner != "alice" || list.Items[0].Secret != "" {
			t.Errorf("alice's webhooks: %s", res.body)
		}
		tr.call(t, conforming(req{method: "GET", path: "/v1/webhooks", secret: admin}), 200)
		tr.call(t, req{method: "GET", path: "/v1/webhooks?owner=alice", secret: admin}, 400)
		tr.call(t, req{method: "GET", path: "/v1/webhooks"}, 401)

		deliveries := "/v1/webhooks/" + hook.ID + "/deliveries"
		tr.call(t, conforming(req{method: "GET", path: deliveries + "?limit=10", secret: admin}), 200)
		tr.call(t, req{method: "GET", path: deliveries + "?limit=0", secret: admin}, 400)
		tr.call(t, req{method: "GET", path: deliveries}, 401)
		tr.call(t, conforming(req{method: "GET", path: deliveries, secret: alice.Secret}), 404)

		tr.call(t, conforming(req{method: "DELETE", path: "/v1/webhooks/" + hook.ID, secret: alice.Secret}), 404)
		tr.call(t, req{method: "DELETE", path: "/v1/webhooks/" + hook.ID}, 401)
		tr.call(t, conforming(req{method: "DELETE", path: "/v1/webhooks/" + hook.ID, secret: admin}), 204)
		tr.call(t, conforming(req{method: "GET", path: deliveries, secret: admin}), 404)
	})

	t.Run("getStateAt", func(t *testing.T) {
		at := url.QueryEscape(s.Clock.Now().UTC().Format(time.RFC3339Nano))
		res := tr.call(t, conforming(req{method: "GET", path: "/v1/state?owner=alice&at=" + at, secret: admin}), 200)
		var st sdk.StateAt
		res.decode(t, &st)
		if len(st.Items) == 0 {
			t.Error("the state of alice's tokens now is empty")
		}
		tr.call(t, conforming(req{method: "GET", path: "/v1/state?at=" + at, secret: admin}), 200)
		tr.call(t, req{method: "GET", path: "/v1/state?at=yesterday", secret: admin}, 400)
		tr.call(t, req{method: "GET", path: "/v1/state?at=" + at}, 401)
		tr.call(t, conforming(req{method: "GET", path: "/v1/state?at=" + at, secret: alice.Secret}), 403)
	})

	t.Run("revokeSecret", func(t *testing.T) {
		leaked := issueVia(t, admin, sdk.IssueRequest{Owner: "alice", Name: "leaked"})
		form := "application/x-www-form-urlencoded"
		tr.call(t, conforming(req{method: "POST", path: "/v1/revoke", body: "token=" + url.QueryEscape(leaked.Secret), contentType: form}), 200)
		tr.call(t, conforming(req{method: "POST", path: "/v1/revoke", body: sdk.SecretRequest{Token: "tlk_nonsense"}}), 200)
		tr.call(t, req{method: "POST", path: "/v1/revoke", body: "", contentType: form}, 400)
		tr.call(t, req{method: "POST", path: "/v1/revoke", body: "token=" + strings.Repeat("x", 70<<10), contentType: form}, 413)
		tr.call(t, req{method: "POST", path: "/v1/revoke", body: "token", contentType: "text/plain"}, 415)
	})

	t.Run("introspectToken", func(t *testing.T) {
		form := "application/x-www-form-urlencoded"
		res := tr.call(t, conforming(req{method: "POST", path: "/v1/introspect", secret: admin, body: "token=" + url.QueryEscape(alice.Secret), contentType: form}), 200)
		var in sdk.Introspection
		res.decode(t, &in)
		if !in.Active || in.Subject != "alice" {
			t.Errorf("introspect alice: %s", res.body)
		}
		tr.call(t, conforming(req{method: "POST", path: "/v1/introspect", secret: admin, body: sdk.SecretRequest{Token: "tlk_nonsense"}}), 200)
		tr.call(t, req{method: "POST", path: "/v1/introspect", secret: admin, body: "", contentType: "-"}, 400)
		tr.call(t, conforming(req{method: "POST", path: "/v1/introspect", body: "token=x", contentType: form}), 401)
		tr.call(t, conforming(req{method: "POST", path: "/v1/introspect", secret: alice.Secret, body: "token=x", contentType: form}), 403)
		tr.call(t, req{method: "POST", path: "/v1/introspect", secret: admin, body: big}, 413)
		tr.call(t, req{method: "POST", path: "/v1/introspect", secret: admin, body: "token", contentType: "text/plain"}, 415)
	})

	t.Run("forwardAuth", func(t *testing.T) {
		res := tr.call(t, conforming(withScopeHeader(req{method: "GET", path: "/v1/auth?scope=repo:read", secret: alice.Secret}, "repo:write")), 200)
		if res.header.Get("X-Token-Owner") != "alice" || res.header.Get("X-Token-Scopes") != "repo:read repo:write" {
			t.Errorf("auth: %v", res.header)
		}
		tr.call(t, req{method: "GET", path: "/v1/auth?scop=repo:read", secret: alice.Secret}, 400)
		tr.call(t, conforming(req{method: "GET", path: "/v1/auth"}), 401)
		tr.call(t, req{method: "GET", path: "/v1/auth", secret: "tlk_short"}, 401)
		tr.call(t, conforming(req{method: "GET", path: "/v1/auth?scope=admin:write", secret: alice.Secret}), 403)
		tr.call(t, conforming(withScopeHeader(req{method: "GET", path: "/v1/auth", secret: alice.Secret}, "repo:read admin:write")), 403)
	})

	t.Run("forwardAuthPrefixed", func(t *testing.T) {
		for _, m := range envoyAuthMethods {
			// The query is the client's: its scope is not a requirement.
			res := tr.call(t, conforming(withScopeHeader(req{method: m, path: "/v1/auth/orders/7/lines?scope=admin:write&expand=all", secret: alice.Secret}, "repo:read")), 200)
			if res.header.Get("X-Token-Owner") != "alice" || res.header.Get("X-Token-Id") != alice.ID {
				t.Errorf("%s Envoy form: %v", m, res.header)
			}
			tr.call(t, conforming(req{method: m, path: "/v1/auth/orders/7"}), 401)
			tr.call(t, conforming(withScopeHeader(req{method: m, path: "/v1/auth/orders/7", secret: alice.Secret}, "admin:write")), 403)
		}
		tr.call(t, req{method: "GET", path: "/v1/auth/", secret: alice.Secret}, 200)
		tr.call(t, req{method: "HEAD", path: "/v1/auth/orders", secret: alice.Secret}, 200)
	})

	t.Run("operations and unrouted requests", func(t *testing.T) {
		tr.call(t, conforming(req{method: "GET", path: "/v1/openapi.json"}), 200)
		tr.call(t, conforming(req{method: "GET", path: "/metrics"}), 200)
		tr.call(t, conforming(req{method: "GET", path: "/livez"}), 200)
		tr.call(t, req{method: "HEAD", path: "/livez"}, 200)
		const clientID = "trace-1:a.b_c"
		res := tr.call(t, req{method: "GET", path: "/livez", header: http.Header{"X-Request-Id": {clientID}}}, 200)
		if got := res.header.Get("X-Request-Id"); got != clientID {
			t.Errorf("X-Request-Id %q, want the client's %q", got, clientID)
		}
		tr.call(t, conforming(req{method: "GET", path: "/readyz"}), 200)
		tr.call(t, req{method: "GET", path: "/v2/tokens"}, 404)
		tr.call(t, req{method: "PUT", path: "/v1/tokens"}, 405)
		tr.call(t, req{method: "POST", path: "/v1/auth", secret: alice.Secret}, 405)
		tr.call(t, req{method: "TRACE", path: "/v1/auth/orders/7", secret: alice.Secret}, 405)
	})

	t.Run("more than one Authorization header", func(t *testing.T) {
		fill := strings.NewReplacer("{id}", alice.ID, "{owner}", "alice", "{path...}", "orders/7")
		for _, rt := range s.API.Server.Routes() {
			tr.call(t, req{method: rt.Method, path: fill.Replace(rt.Path), header: http.Header{"Authorization": {"Bearer " + admin, "Bearer " + alice.Secret}}}, 400)
		}
	})

	t.Run("unavailable", func(t *testing.T) {
		s.StopNATS(t)
		scan := reportBody(t, sdk.SecretScanningReport{Token: unlucky.Secret, Type: "tokenledger_token", URL: "https://github.com/o/r", Source: "content"})
		res := tr.call(t, conforming(req{method: "POST", path: "/v1/secret-scanning/github", body: scan, header: signed(scan)}), 503)
		if res.header.Get("Retry-After") == "" {
			t.Error("secret scanning: 503 without Retry-After")
		}
		tr.call(t, conforming(req{method: "POST", path: "/v1/revoke", body: "token=" + url.QueryEscape(unlucky.Secret), contentType: "application/x-www-form-urlencoded"}), 503)

		v := s.API.Validator
		stacktest.Eventually(t, 20*time.Second, func() bool { return !v.Status().StaleSince.IsZero() },
			"the validator did not notice the event store is gone")
		s.Clock.Advance(app.DefaultAPIConfig().MaxStaleness + time.Second)
		if !v.Status().Stale {
			t.Fatal("the validator is not stale past its staleness bound")
		}
		at := s.Clock.Now().Add(time.Hour)
		form := "application/x-www-form-urlencoded"
		id := "/v1/tokens/" + alice.ID
		for _, rq := range []req{
			{method: "POST", path: "/v1/tokens", body: sdk.IssueRequest{Owner: "alice"}},
			{method: "GET", path: "/v1/tokens"},
			{method: "GET", path: id},
			{method: "PATCH", path: id, body: sdk.SetExpiryRequest{ExpiresAt: &at}},
			{method: "DELETE", path: id},
			{method: "POST", path: id + "/rotate"},
			{method: "GET", path: id + "/events"},
			{method: "GET", path: id + "/usage"},
			{method: "POST", path: "/v1/owners/alice/revoke"},
			{method: "GET", path: "/v1/owners/alice/events"},
			{method: "GET", path: "/v1/state?at=" + url.QueryEscape(at.UTC().Format(time.RFC3339))},
			{method: "POST", path: "/v1/introspect", body: "token=" + url.QueryEscape(alice.Secret), contentType: form},
			{method: "GET", path: "/v1/auth"},
			{method: "POST", path: "/v1/webhooks", body: sdk.WebhookRequest{URL: "https://hooks.example.com/x"}},
			{method: "GET", path: "/v1/webhooks"},
			{method: "DELETE", path: "/v1/webhooks/01JQ3Z8V4N6Y2K5T7W9X0A1B2C"},
			{method: "GET", path: "/v1/webhooks/01JQ3Z8V4N6Y2K5T7W9X0A1B2C/deliveries"},
		} {
			rq.secret = admin
			res := tr.call(t, conforming(rq), 503)
			if res.header.Get("Retry-After") == "" {
				t.Errorf("%s %s: 503 without Retry-After", rq.method, rq.path)
			}
		}
		for _, m := range envoyAuthMethods {
			tr.call(t, conforming(req{method: m, path: "/v1/auth/orders/7", secret: admin}), 503)
		}
		tr.call(t, conforming(req{method: "GET", path: "/readyz"}), 503)
	})

	chk.RequireCoverage(t, func(op string, status int) bool {
		// Only concurrent writers that exhaust the ledger's attempts make
		// these 409s; nothing a test can bring about on demand.
		return status != http.StatusConflict || (op != "issueToken" && op != "revokeOwnerTokens")
	})
}
