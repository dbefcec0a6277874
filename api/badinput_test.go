package api_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/internal/testkit/apitest"
	"github.com/tokenledger/tokenledger/sdk"
)

// badInput is one request the API must refuse.
type badInput struct {
	name         string
	method, path string
	// contentType is as in req: "" is application/json when there is a
	// body, "-" sends no Content-Type.
	contentType string
	// body is sent byte for byte.
	body string
	// auth is the Authorization header: "" is the admin's bearer token,
	// "-" sends none.
	auth string
	// auth2, if set, is sent as a second Authorization header after auth.
	auth2 string
	// raw sends the request with sendRaw, its path written on the request
	// line exactly as given.
	raw    bool
	status int
	code   string
	// message, if set, is a part of the error message that shows the
	// server read the value the case means.
	message string
}

const (
	badInputJSON   = "application/json"
	badInputForm   = "application/x-www-form-urlencoded"
	badInputNoAuth = "-"
)

// sendRaw writes one HTTP/1.1 request to the stack byte for byte, so
// escapes such as %FF and %00 in target reach the server as written, and
// reads the answer.
func sendRaw(t *testing.T, s *apitest.Stack, method, target string, header http.Header, body []byte) resp {
	t.Helper()
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", u.Host, err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nContent-Length: %d\r\n", method, target, u.Host, len(body))
	for k, vs := range header {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n")
	b.Write(body)
	if _, err := conn.Write(b.Bytes()); err != nil {
		t.Fatalf("write %s %s: %v", method, target, err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read the answer to %s %s: %v", method, target, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.Header.Get("X-Request-Id") == "" {
		t.Errorf("%s %s: no X-Request-Id", method, target)
	}
	return resp{status: res.StatusCode, header: res.Header, body: data}
}

// secretPattern matches every secret, so a test never prints one.
var secretPattern = regexp.MustCompile(domain.SecretPattern)

// redact returns body with every secret in it replaced, for messages.
func redact(body []byte) string {
	return secretPattern.ReplaceAllString(string(body), "[secret]")
}

// send sends c to the stack, as admin unless c says otherwise.
func (c badInput) send(t *testing.T, s *apitest.Stack) resp {
	t.Helper()
	header := http.Header{}
	switch c.auth {
	case "":
		header.Set("Authorization", "Bearer "+s.Admin)
	case badInputNoAuth:
	default:
		header.Set("Authorization", c.auth)
	}
	if c.auth2 != "" {
		header.Add("Authorization", c.auth2)
	}
	if !c.raw {
		rq := req{method: c.method, path: c.path, contentType: c.contentType, header: header}
		if c.body != "" {
			rq.body = []byte(c.body)
		}
		return do(t, s, rq)
	}
	ct := c.contentType
	if ct == "" && c.body != "" {
		ct = badInputJSON
	}
	if ct != "" && ct != "-" {
		header.Set("Content-Type", ct)
	}
	return sendRaw(t, s, c.method, c.path, header, []byte(c.body))
}

// TestBadInput sends malformed, oversized, mistyped and out-of-range
// requests to every route that takes input. Each must be the documented 4xx
// with a JSON error of the documented code, record nothing, and none may be
// a 5xx.
func TestBadInput(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	_, targetID := issueDirect(t, s, "patchee", []string{"x"}, 0)
	target := "/v1/tokens/" + targetID.String()
	unknownID, err := domain.NewTokenID(s.Clock.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	unknown := "/v1/tokens/" + unknownID.String()
	unknownSecret, err := domain.GenerateSecret(unknownID, nil)
	if err != nil {
		t.Fatal(err)
	}
	badChecksum := breakChecksum(s.Admin)

	// The raw sender reaches the routes: a well-formed owner on a raw
	// request line is revoked, so the refusals below are the server's
	// judgement of the values, not of the sender.
	if res := sendRaw(t, s, "POST", "/v1/owners/raw-check/revoke", http.Header{"Authorization": {"Bearer " + s.Admin}}, nil); res.status != http.StatusOK {
		t.Fatalf("raw sender, valid owner: %d %s", res.status, redact(res.body))
	}

	now := s.Clock.Now()
	rfc := func(at time.Time) string { return at.UTC().Format(time.RFC3339) }
	issueWith := func(fields string) string { return `{"owner":"alice",` + fields + `}` }
	scopes65 := make([]string, 65)
	for i := range scopes65 {
		scopes65[i] = fmt.Sprintf(`"s%d"`, i)
	}
	long := strings.Repeat("a", 10000)
	const (
		bad     = http.StatusBadRequest
		invalid = sdk.CodeInvalidRequest
		policy  = sdk.CodePolicyViolation
	)

	cases := []badInput{
		// JSON syntax and shape.
		{name: "truncated JSON", method: "POST", path: "/v1/tokens", body: `{"name":`, status: bad, code: invalid},
		{name: "array, not an object", method: "POST", path: "/v1/tokens", body: `[]`, status: bad, code: invalid},
		{name: "string, not an object", method: "POST", path: "/v1/tokens", body: `"x"`, status: bad, code: invalid},
		{name: "number, not an object", method: "POST", path: "/v1/tokens", body: `42`, status: bad, code: invalid},
		{name: "null, not an object", method: "POST", path: "/v1/tokens", body: `null`, status: bad, code: invalid},
		{name: "unknown field", method: "POST", path: "/v1/tokens", body: issueWith(`"nmae":"typo"`), status: bad, code: invalid, message: "nmae"},
		{name: "field name in another case", method: "POST", path: "/v1/tokens", body: `{"OWNER":"alice"}`, status: bad, code: invalid, message: "OWNER"},
		{name: "field given twice", method: "POST", path: "/v1/tokens", body: `{"owner":"a.b","owner":"alice"}`, status: bad, code: invalid, message: "twice"},
		{name: "token given twice (JSON)", method: "POST", path: "/v1/revoke", body: `{"token":"a","token":"b"}`, status: bad, code: invalid, message: "twice"},
		{name: "second object after the body", method: "POST", path: "/v1/tokens", body: `{} {}`, status: bad, code: invalid},
		{name: "garbage after the object", method: "POST", path: "/v1/tokens", body: `{}x`, status: bad, code: invalid},
		{name: "wrong type of field", method: "POST", path: "/v1/tokens", body: issueWith(`"scopes":"read"`), status: bad, code: invalid},
		{name: "empty body where one is required", method: "POST", path: "/v1/tokens", contentType: badInputJSON, status: bad, code: invalid},
		{name: "PATCH without a body", method: "PATCH", path: target, contentType: badInputJSON, status: bad, code: invalid},
		{name: "PATCH null body", method: "PATCH", path: target, body: `null`, status: bad, code: invalid},
		{name: "PATCH trailing data", method: "PATCH", path: target, body: `{"expires_at":null}]`, status: bad, code: invalid},
		{name: "DELETE unknown field", method: "DELETE", path: target, body: `{"reson":"typo"}`, status: bad, code: invalid},
		{name: "rotate negative grace", method: "POST", path: target + "/rotate", body: `{"grace":"-1h"}`, status: bad, code: invalid},
		{name: "owner revoke unknown field", method: "POST", path: "/v1/owners/alice/revoke", body: `{"untill":null}`, status: bad, code: invalid},

		// Size, media type and encoding.
		{name: "body over 64 KiB", method: "POST", path: "/v1/tokens", body: `{"name":"` + strings.Repeat("x", 64<<10) + `"}`, status: 413, code: sdk.CodePayloadTooLarge},
		{name: "PATCH body over 64 KiB", method: "PATCH", path: target, body: `{"expires_at":null,"x":"` + strings.Repeat("x", 64<<10) + `"}`, status: 413, code: sdk.CodePayloadTooLarge},
		{name: "text/plain", method: "POST", path: "/v1/tokens", contentType: "text/plain", body: `{}`, status: 415, code: sdk.CodeUnsupportedMediaType},
		{name: "form on a JSON route", method: "POST", path: "/v1/tokens", contentType: badInputForm, body: `name=x`, status: 415, code: sdk.CodeUnsupportedMediaType},
		{name: "no Content-Type with a body", method: "POST", path: "/v1/tokens", contentType: "-", body: `{}`, status: 415, code: sdk.CodeUnsupportedMediaType},
		{name: "charset latin1", method: "POST", path: "/v1/tokens", contentType: "application/json; charset=iso-8859-1", body: `{}`, status: 415, code: sdk.CodeUnsupportedMediaType},
		{name: "malformed Content-Type", method: "POST", path: "/v1/tokens", contentType: "application/json; charset", body: `{}`, status: 415, code: sdk.CodeUnsupportedMediaType},
		{name: "raw invalid UTF-8 in a JSON string", method: "POST", path: "/v1/tokens", body: "{\"name\":\"a\xffb\"}", status: bad, code: invalid, message: "UTF-8"},
		{name: "UTF-16 byte order mark before the body", method: "POST", path: "/v1/tokens", body: "\xff\xfe{}", status: bad, code: invalid, message: "UTF-8"},

		// Durations.
		{name: "expires_in a word", method: "POST", path: "/v1/tokens", body: issueWith(`"expires_in":"soon"`), status: bad, code: invalid},
		{name: "expires_in negative", method: "POST", path: "/v1/tokens", body: issueWith(`"expires_in":-5`), status: bad, code: invalid},
		{name: "expires_in negative string", method: "POST", path: "/v1/tokens", body: issueWith(`"expires_in":"-1h"`), status: bad, code: invalid},
		{name: "expires_in zero", method: "POST", path: "/v1/tokens", body: issueWith(`"expires_in":0`), status: bad, code: invalid},
		{name: "expires_in a fraction", method: "POST", path: "/v1/tokens", body: issueWith(`"expires_in":1.5`), status: bad, code: invalid},
		{name: "expires_in an exponent", method: "POST", path: "/v1/tokens", body: issueWith(`"expires_in":1e3`), status: bad, code: invalid},
		{name: "expires_in an exponent string", method: "POST", path: "/v1/tokens", body: issueWith(`"expires_in":"1e3"`), status: bad, code: invalid},
		{name: "expires_in a boolean", method: "POST", path: "/v1/tokens", body: issueWith(`"expires_in":true`), status: bad, code: invalid},
		{name: "expires_in beyond int64", method: "POST", path: "/v1/tokens", body: issueWith(`"expires_in":99999999999999999999999`), status: bad, code: invalid},
		{name: "expires_in seconds beyond a Duration", method: "POST", path: "/v1/tokens", body: issueWith(`"expires_in":9223372037`), status: bad, code: invalid},
		{name: "expires_in hours beyond a Duration", method: "POST", path: "/v1/tokens", body: issueWith(`"expires_in":"2562048h"`), status: bad, code: invalid},
		{name: "expires_in the largest Duration", method: "POST", path: "/v1/tokens", body: issueWith(`"expires_in":9223372036`), status: bad, code: policy},
		{name: "idle_timeout on an api token", method: "POST", path: "/v1/tokens", body: issueWith(`"idle_timeout":"10m"`), status: bad, code: invalid},
		{name: "idle_timeout a word", method: "POST", path: "/v1/tokens", body: issueWith(`"kind":"session","idle_timeout":"soon"`), status: bad, code: invalid},
		{name: "idle_timeout negative", method: "POST", path: "/v1/tokens", body: issueWith(`"kind":"session","idle_timeout":-60`), status: bad, code: invalid},
		{name: "idle_timeout not whole seconds", method: "POST", path: "/v1/tokens", body: issueWith(`"kind":"session","idle_timeout":"1500ms"`), status: bad, code: invalid},
		{name: "idle_timeout beyond the session lifetime", method: "POST", path: "/v1/tokens", body: issueWith(`"kind":"session","idle_timeout":"25h"`), status: bad, code: policy},

		// Times.
		{name: "expires_at month 13", method: "POST", path: "/v1/tokens", body: issueWith(`"expires_at":"2026-13-01T00:00:00Z"`), status: bad, code: invalid},
		{name: "expires_at a word", method: "POST", path: "/v1/tokens", body: issueWith(`"expires_at":"tomorrow"`), status: bad, code: invalid},
		{name: "expires_at a date without time", method: "POST", path: "/v1/tokens", body: issueWith(`"expires_at":"2026-12-01"`), status: bad, code: invalid},
		{name: "expires_at without a zone", method: "POST", path: "/v1/tokens", body: issueWith(`"expires_at":"2026-12-01T00:00:00"`), status: bad, code: invalid},
		{name: "expires_at a Unix epoch", method: "POST", path: "/v1/tokens", body: issueWith(fmt.Sprintf(`"expires_at":%d`, now.Add(time.Hour).Unix())), status: bad, code: invalid},
		{name: "expires_at in the past", method: "POST", path: "/v1/tokens", body: issueWith(`"expires_at":"` + rfc(now.Add(-time.Hour)) + `"`), status: bad, code: policy},
		{name: "expires_at beyond the maximum lifetime", method: "POST", path: "/v1/tokens", body: issueWith(`"expires_at":"` + rfc(now.Add(s.Policy.MaxLifetime+time.Hour)) + `"`), status: bad, code: policy},
		{name: "expires_in and expires_at", method: "POST", path: "/v1/tokens", body: issueWith(`"expires_in":3600,"expires_at":"` + rfc(now.Add(2*time.Hour)) + `"`), status: bad, code: invalid},
		{name: "expires_in and never_expires", method: "POST", path: "/v1/tokens", body: issueWith(`"expires_in":3600,"never_expires":true`), status: bad, code: invalid},
		{name: "PATCH month 13", method: "PATCH", path: target, body: `{"expires_at":"2026-13-01T00:00:00Z"}`, status: bad, code: invalid},
		{name: "PATCH a word", method: "PATCH", path: target, body: `{"expires_at":"tomorrow"}`, status: bad, code: invalid},
		{name: "PATCH a date without time", method: "PATCH", path: target, body: `{"expires_at":"2026-12-01"}`, status: bad, code: invalid},
		{name: "PATCH a Unix epoch", method: "PATCH", path: target, body: fmt.Sprintf(`{"expires_at":%d}`, now.Add(time.Hour).Unix()), status: bad, code: invalid},
		{name: "PATCH in the past", method: "PATCH", path: target, body: `{"expires_at":"` + rfc(now.Add(-time.Hour)) + `"}`, status: bad, code: policy},
		{name: "PATCH beyond the maximum lifetime", method: "PATCH", path: target, body: `{"expires_at":"` + rfc(now.Add(s.Policy.MaxLifetime+time.Hour)) + `"}`, status: bad, code: policy},
		{name: "owner revoke until in the past", method: "POST", path: "/v1/owners/alice/revoke", body: `{"until":"` + rfc(now.Add(-time.Hour)) + `"}`, status: bad, code: invalid},
		{name: "owner revoke until a word", method: "POST", path: "/v1/owners/alice/revoke", body: `{"until":"later"}`, status: bad, code: invalid},

		// Owners in the body.
		{name: "owner with a dot", method: "POST", path: "/v1/tokens", body: `{"owner":"a.b"}`, status: bad, code: invalid, message: `'.'`},
		{name: "owner with a star", method: "POST", path: "/v1/tokens", body: `{"owner":"a*"}`, status: bad, code: invalid, message: `'*'`},
		{name: "owner with a greater-than", method: "POST", path: "/v1/tokens", body: `{"owner":"a>"}`, status: bad, code: invalid, message: `'>'`},
		{name: "owner with a space", method: "POST", path: "/v1/tokens", body: `{"owner":"a b"}`, status: bad, code: invalid, message: `' '`},
		{name: "owner with NUL", method: "POST", path: "/v1/tokens", body: `{"owner":"a\u0000b"}`, status: bad, code: invalid, message: `'\x00'`},
		{name: "owner with raw invalid UTF-8", method: "POST", path: "/v1/tokens", body: "{\"owner\":\"a\xff\xfeb\"}", status: bad, code: invalid, message: "UTF-8"},
		{name: "owner with a lone surrogate escape", method: "POST", path: "/v1/tokens", body: `{"owner":"a\udcffb"}`, status: bad, code: invalid},
		{name: "owner of 10000 characters", method: "POST", path: "/v1/tokens", body: `{"owner":"` + long + `"}`, status: bad, code: invalid, message: "10000"},

		// Owners in the path, written on the request line as is.
		{name: "path owner with a dot", method: "POST", path: "/v1/owners/a.b/revoke", raw: true, status: bad, code: invalid, message: `'.'`},
		{name: "path owner with a star", method: "POST", path: "/v1/owners/a*/revoke", raw: true, status: bad, code: invalid, message: `'*'`},
		{name: "path owner with an escaped star", method: "POST", path: "/v1/owners/a%2A/revoke", raw: true, status: bad, code: invalid, message: `'*'`},
		{name: "path owner with a greater-than", method: "POST", path: "/v1/owners/a%3E/revoke", raw: true, status: bad, code: invalid, message: `'>'`},
		{name: "path owner with a space", method: "POST", path: "/v1/owners/a%20b/revoke", raw: true, status: bad, code: invalid, message: `' '`},
		{name: "path owner with NUL", method: "POST", path: "/v1/owners/a%00b/revoke", raw: true, status: bad, code: invalid, message: `'\x00'`},
		{name: "path owner with invalid UTF-8", method: "POST", path: "/v1/owners/a%FF/revoke", raw: true, status: bad, code: invalid, message: "UTF-8"},
		{name: "path owner with invalid UTF-8, lower case", method: "POST", path: "/v1/owners/%ff%fe/revoke", raw: true, status: bad, code: invalid, message: "UTF-8"},
		{name: "path owner of 10000 characters", method: "POST", path: "/v1/owners/" + long + "/revoke", raw: true, status: bad, code: invalid, message: "10000"},

		// Names and scopes.
		{name: "name over the limit", method: "POST", path: "/v1/tokens", body: issueWith(`"name":"` + strings.Repeat("n", domain.MaxNameLen+1) + `"`), status: bad, code: invalid},
		{name: "name with a control character", method: "POST", path: "/v1/tokens", body: issueWith(`"name":"a\u0007b"`), status: bad, code: invalid},
		{name: "65 scopes", method: "POST", path: "/v1/tokens", body: issueWith(`"scopes":[` + strings.Join(scopes65, ",") + `]`), status: bad, code: invalid},
		{name: "scope with a space", method: "POST", path: "/v1/tokens", body: issueWith(`"scopes":["repo read"]`), status: bad, code: invalid},
		{name: "empty scope", method: "POST", path: "/v1/tokens", body: issueWith(`"scopes":[""]`), status: bad, code: invalid},
		{name: "scope over the limit", method: "POST", path: "/v1/tokens", body: issueWith(`"scopes":["` + strings.Repeat("s", domain.MaxScopeLen+1) + `"]`), status: bad, code: invalid},
		{name: "unknown kind", method: "POST", path: "/v1/tokens", body: issueWith(`"kind":"robot"`), status: bad, code: invalid},

		// Token ids.
		{name: "GET unknown id", method: "GET", path: unknown, status: 404, code: sdk.CodeNotFound},
		{name: "PATCH unknown id", method: "PATCH", path: unknown, body: `{"expires_at":"` + rfc(now.Add(time.Hour)) + `"}`, status: 404, code: sdk.CodeNotFound},
		{name: "DELETE unknown id", method: "DELETE", path: unknown, status: 404, code: sdk.CodeNotFound},
		{name: "rotate unknown id", method: "POST", path: unknown + "/rotate", status: 404, code: sdk.CodeNotFound},
		{name: "events of unknown id", method: "GET", path: unknown + "/events", status: 404, code: sdk.CodeNotFound},
		{name: "id 123", method: "GET", path: "/v1/tokens/123", status: bad, code: invalid},
		{name: "id of 27 characters", method: "GET", path: "/v1/tokens/" + unknownID.String() + "0", status: bad, code: invalid},
		{name: "id of punctuation", method: "GET", path: "/v1/tokens/!!!", status: bad, code: invalid},
		{name: "id with a letter outside Crockford base32", method: "GET", path: "/v1/tokens/" + unknownID.String()[:25] + "U", status: bad, code: invalid},
		{name: "id beyond the ULID range", method: "GET", path: "/v1/tokens/8ZZZZZZZZZZZZZZZZZZZZZZZZZ", status: bad, code: invalid},
		{name: "PATCH id 123", method: "PATCH", path: "/v1/tokens/123", body: `{"expires_at":null}`, status: bad, code: invalid},
		{name: "DELETE id 123", method: "DELETE", path: "/v1/tokens/123", status: bad, code: invalid},
		{name: "rotate id 123", method: "POST", path: "/v1/tokens/123/rotate", status: bad, code: invalid},
		{name: "events of id 123", method: "GET", path: "/v1/tokens/123/events", status: bad, code: invalid},

		// Listing.
		{name: "list unknown parameter", method: "GET", path: "/v1/tokens?ownr=alice", status: bad, code: invalid},
		{name: "list repeated parameter", method: "GET", path: "/v1/tokens?owner=alice&owner=bob", status: bad, code: invalid},
		{name: "list limit 0", method: "GET", path: "/v1/tokens?limit=0", status: bad, code: invalid},
		{name: "list limit abc", method: "GET", path: "/v1/tokens?limit=abc", status: bad, code: invalid},
		{name: "list limit negative", method: "GET", path: "/v1/tokens?limit=-1", status: bad, code: invalid},
		{name: "list limit beyond int", method: "GET", path: "/v1/tokens?limit=99999999999999999999", status: bad, code: invalid},
		{name: "list unused_for negative", method: "GET", path: "/v1/tokens?unused_for=-1h", status: bad, code: invalid},
		{name: "list expiring_within zero", method: "GET", path: "/v1/tokens?expiring_within=0", status: bad, code: invalid},
		{name: "list bad status", method: "GET", path: "/v1/tokens?status=dormant", status: bad, code: invalid},
		{name: "list bad cursor", method: "GET", path: "/v1/tokens?cursor=zzz", status: bad, code: invalid},
		{name: "list owner with a dot", method: "GET", path: "/v1/tokens?owner=a.b", status: bad, code: invalid},
		{name: "list owner with invalid UTF-8", method: "GET", path: "/v1/tokens?owner=%FF", raw: true, status: bad, code: invalid, message: "UTF-8"},
		{name: "list owner with NUL", method: "GET", path: "/v1/tokens?owner=a%00", raw: true, status: bad, code: invalid, message: `'\x00'`},

		// Introspection and revocation by secret.
		{name: "introspect without a body", method: "POST", path: "/v1/introspect", contentType: "-", status: bad, code: invalid},
		{name: "introspect empty token", method: "POST", path: "/v1/introspect", contentType: badInputForm, body: "token=", status: bad, code: invalid},
		{name: "introspect two tokens", method: "POST", path: "/v1/introspect", contentType: badInputForm, body: "token=a&token=b", status: bad, code: invalid},
		{name: "introspect two tokens among client credentials", method: "POST", path: "/v1/introspect", contentType: badInputForm, body: "client_id=a&token=a&client_secret=b&token=b", status: bad, code: invalid, message: "once"},
		{name: "introspect client credentials without a token", method: "POST", path: "/v1/introspect", contentType: badInputForm, body: "client_id=a&client_secret=b&token_type_hint=access_token", status: bad, code: invalid, message: "required"},
		{name: "introspect JSON client credentials without a token", method: "POST", path: "/v1/introspect", body: `{"client_id":"a","client_secret":"b"}`, status: bad, code: invalid, message: "required"},
		{name: "introspect JSON without token", method: "POST", path: "/v1/introspect", body: `{}`, status: bad, code: invalid},
		{name: "introspect text/plain", method: "POST", path: "/v1/introspect", contentType: "text/plain", body: "token=a", status: 415, code: sdk.CodeUnsupportedMediaType},
		{name: "revoke without a body", method: "POST", path: "/v1/revoke", contentType: "-", auth: badInputNoAuth, status: bad, code: invalid},
		{name: "revoke two tokens", method: "POST", path: "/v1/revoke", contentType: badInputForm, body: "token=a&token=b", auth: badInputNoAuth, status: bad, code: invalid},
		{name: "revoke malformed form", method: "POST", path: "/v1/revoke", contentType: badInputForm, body: "token=%ZZ", auth: badInputNoAuth, status: bad, code: invalid},
		{name: "revoke raw invalid UTF-8", method: "POST", path: "/v1/revoke", contentType: badInputForm, body: "token=\xff", auth: badInputNoAuth, status: bad, code: invalid},
		{name: "revoke client credentials without a token", method: "POST", path: "/v1/revoke", contentType: badInputForm, body: "client_id=a&client_secret=b", auth: badInputNoAuth, status: bad, code: invalid, message: "required"},
		{name: "revoke empty token among client credentials", method: "POST", path: "/v1/revoke", contentType: badInputForm, body: "token=&client_id=a", auth: badInputNoAuth, status: bad, code: invalid, message: "required"},
		{name: "revoke JSON token twice among other members", method: "POST", path: "/v1/revoke", body: `{"client_id":"x","token":"a","token":"b"}`, auth: badInputNoAuth, status: bad, code: invalid, message: "twice"},
		{name: "revoke JSON token not a string", method: "POST", path: "/v1/revoke", body: `{"token":5,"client_id":"x"}`, auth: badInputNoAuth, status: bad, code: invalid, message: "string"},
		{name: "revoke JSON token only in another case", method: "POST", path: "/v1/revoke", body: `{"TOKEN":"a","client_id":"x"}`, auth: badInputNoAuth, status: bad, code: invalid, message: "required"},
		{name: "revoke JSON null token", method: "POST", path: "/v1/revoke", body: `{"token":null,"client_id":"x"}`, auth: badInputNoAuth, status: bad, code: invalid, message: "required"},
		{name: "revoke JSON malformed ignored member", method: "POST", path: "/v1/revoke", body: `{"token":"a","client_id":}`, auth: badInputNoAuth, status: bad, code: invalid, message: "JSON"},
		{name: "revoke JSON array", method: "POST", path: "/v1/revoke", body: `[{"token":"a"}]`, auth: badInputNoAuth, status: bad, code: invalid, message: "object"},
		{name: "revoke JSON trailing data", method: "POST", path: "/v1/revoke", body: `{"token":"a","client_id":"x"} {}`, auth: badInputNoAuth, status: bad, code: invalid, message: "after"},
		{name: "revoke body over 64 KiB in an ignored parameter", method: "POST", path: "/v1/revoke", contentType: badInputForm, body: "token=a&client_secret=" + strings.Repeat("x", 64<<10), auth: badInputNoAuth, status: 413, code: sdk.CodePayloadTooLarge},
		{name: "revoke form charset latin1", method: "POST", path: "/v1/revoke", contentType: badInputForm + "; charset=iso-8859-1", body: "token=a", auth: badInputNoAuth, status: 415, code: sdk.CodeUnsupportedMediaType},
		{name: "revoke body over 64 KiB", method: "POST", path: "/v1/revoke", contentType: badInputForm, body: "token=" + strings.Repeat("x", 64<<10), auth: badInputNoAuth, status: 413, code: sdk.CodePayloadTooLarge},

		// Credentials.
		{name: "bad checksum", method: "GET", path: "/v1/tokens", auth: "Bearer " + badChecksum, status: 401, code: sdk.CodeUnauthorized},
		{name: "bad checksum issuing", method: "POST", path: "/v1/tokens", auth: "Bearer " + badChecksum, body: `{}`, status: 401, code: sdk.CodeUnauthorized},
		{name: "unknown secret", method: "GET", path: "/v1/tokens", auth: "Bearer " + unknownSecret.Reveal(), status: 401, code: sdk.CodeUnauthorized},
		{name: "Basic credentials", method: "GET", path: "/v1/tokens", auth: "Basic abc", status: 401, code: sdk.CodeUnauthorized},
		{name: "Bearer without a token", method: "GET", path: "/v1/tokens", auth: "Bearer", status: 401, code: sdk.CodeUnauthorized},
		{name: "bearer and spaces", method: "GET", path: "/v1/tokens", auth: "bearer  ", status: 401, code: sdk.CodeUnauthorized},
		{name: "two tokens in one header", method: "GET", path: "/v1/tokens", auth: "Bearer " + s.Admin + " " + s.Admin, status: 401, code: sdk.CodeUnauthorized},
		{name: "auth: bad checksum", method: "GET", path: "/v1/auth", auth: "Bearer " + badChecksum, status: 401, code: sdk.CodeInvalidToken},
		{name: "auth: unknown secret", method: "GET", path: "/v1/auth", auth: "Bearer " + unknownSecret.Reveal(), status: 401, code: sdk.CodeInvalidToken},
		{name: "auth: Basic credentials", method: "GET", path: "/v1/auth", auth: "Basic abc", status: 401, code: sdk.CodeInvalidToken},
		{name: "auth: Bearer without a token", method: "GET", path: "/v1/auth", auth: "Bearer", status: 401, code: sdk.CodeInvalidToken},
		{name: "auth: bearer and spaces", method: "GET", path: "/v1/auth", auth: "bearer  ", status: 401, code: sdk.CodeInvalidToken},
		{name: "auth: unknown parameter", method: "GET", path: "/v1/auth?scopes=read", status: bad, code: invalid},
		{name: "two Authorization headers, valid first", method: "GET", path: "/v1/tokens", auth2: "Bearer garbage", status: bad, code: invalid, message: "more than one Authorization"},
		{name: "two Authorization headers, valid second", method: "GET", path: "/v1/tokens", auth: "Bearer garbage", auth2: "Bearer " + s.Admin, status: bad, code: invalid, message: "more than one Authorization"},
		{name: "the same bearer twice", method: "POST", path: "/v1/tokens", auth2: "Bearer " + s.Admin, body: issueWith(`"name":"twice"`), status: bad, code: invalid, message: "more than one Authorization"},
		{name: "auth: two Authorization headers", method: "GET", path: "/v1/auth", auth2: "Bearer garbage", status: bad, code: invalid, message: "more than one Authorization"},
		{name: "auth, Envoy form: two Authorization headers", method: "POST", path: "/v1/auth/orders", auth2: "Basic abc", status: bad, code: invalid, message: "more than one Authorization"},
		{name: "revoke by secret with two Authorization headers", method: "POST", path: "/v1/revoke", contentType: badInputForm, body: "token=a", auth: "Bearer a", auth2: "Bearer b", status: bad, code: invalid, message: "more than one Authorization"},
		{name: "two Authorization headers, raw", method: "GET", path: "/v1/tokens", raw: true, auth2: "Bearer garbage", status: bad, code: invalid, message: "more than one Authorization"},

		// Routing.
		{name: "wrong method", method: "PUT", path: "/v1/tokens", status: 405, code: sdk.CodeMethodNotAllowed},
		{name: "unknown path", method: "GET", path: "/v1/token", status: 404, code: sdk.CodeNotFound},
	}

	runBadInputs(t, s, cases)
}

// TestBadInputScopeRequired sends, to a server that requires forward-auth
// checks to name a scope, checks that name none: each is 400
// scope_required, whatever the token and in either form of the route.
func TestBadInputScopeRequired(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{RequireAuthScope: true})
	const required = sdk.CodeScopeRequired
	runBadInputs(t, s, []badInput{
		{name: "auth without a scope", method: "GET", path: "/v1/auth", status: 400, code: required, message: "scope"},
		{name: "auth without a scope or a token", method: "GET", path: "/v1/auth", auth: badInputNoAuth, status: 400, code: required, message: "scope"},
		{name: "auth with an empty scope", method: "GET", path: "/v1/auth?scope=", raw: true, status: 400, code: required, message: "scope"},
		{name: "auth with a blank scope", method: "GET", path: "/v1/auth?scope=%20%20", raw: true, status: 400, code: required, message: "scope"},
		{name: "auth, Envoy form, without the scope header", method: "POST", path: "/v1/auth/orders?scope=read", status: 400, code: required, message: "scope"},
		{name: "auth with a scope but two Authorization headers", method: "GET", path: "/v1/auth?scope=read", auth2: "Bearer garbage", status: 400, code: sdk.CodeInvalidRequest, message: "more than one Authorization"},
	})
}

// runBadInputs sends each case to s and checks it was refused as the case
// says, recording nothing; no case may be answered with a 5xx.
func runBadInputs(t *testing.T, s *apitest.Stack, cases []badInput) {
	t.Helper()
	var fivexx []string
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := s.LastSequence(t)
			res := c.send(t, s)
			if res.status >= 500 {
				fivexx = append(fivexx, fmt.Sprintf("%s: %d", c.name, res.status))
			}
			if res.status != c.status {
				t.Errorf("%s %.80s: %d %.300s, want %d %s", c.method, c.path, res.status, redact(res.body), c.status, c.code)
			}
			if res.status >= 400 {
				if code := res.errorCode(t); code != c.code {
					t.Errorf("code %q, want %q", code, c.code)
				}
				var e sdk.ErrorBody
				res.decode(t, &e)
				if !strings.Contains(e.Error.Message, c.message) {
					t.Errorf("message %q does not show the server read %q", e.Error.Message, c.message)
				}
			}
			if after := s.LastSequence(t); after != before {
				t.Errorf("the stream moved from %d to %d", before, after)
			}
		})
	}
	if len(fivexx) > 0 {
		t.Errorf("bad input answered with 5xx: %s", strings.Join(fivexx, "; "))
	}
}
