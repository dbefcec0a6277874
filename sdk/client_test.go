package sdk

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/version"
)

// Secrets shaped as the server makes them; the caller's token and a leaked
// one.
const (
	callerSecret = "tlk_01JD8XK2M3N4P5Q6R7S8T9V0WX_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVW"
	leakedSecret = "tlk_01JD9YYYYYYYYYYYYYYYYYYYYY_0123456789012345678901234567890123456789012345678"
	tokenID      = "01JD8XK2M3N4P5Q6R7S8T9V0WX"
)

// seen is what the test server saw of one request.
type seen struct {
	method, path, query string
	header              http.Header
	body                string
}

// reply is what the test server answers.
type reply struct {
	status int
	header map[string]string
	body   string
}

// recorder is an httptest server that records every request and answers
// each with the same reply.
type recorder struct {
	srv   *httptest.Server
	mu    sync.Mutex
	reqs  []seen
	reply reply
}

func newRecorder(t *testing.T, r reply) *recorder {
	t.Helper()
	rec := &recorder{reply: r}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			t.Errorf("read request body: %v", err)
		}
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, seen{req.Method, req.URL.EscapedPath(), req.URL.RawQuery, req.Header.Clone(), string(b)})
		rec.mu.Unlock()
		for k, v := range rec.reply.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(rec.reply.status)
		_, _ = io.WriteString(w, rec.reply.body)
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

// only returns the one request the server saw.
func (r *recorder) only(t *testing.T) seen {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) != 1 {
		t.Fatalf("server saw %d requests, want 1", len(r.reqs))
	}
	return r.reqs[0]
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

func newTestClient(t *testing.T, base string, opts ...Option) *Client {
	t.Helper()
	c, err := New(base, append([]Option{WithToken(callerSecret)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ptr[T any](v T) *T { return &v }

var (
	created = time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)
	expires = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
)

const tokenJSON = `{"id":"` + tokenID + `","owner":"team/a b","name":"ci","scopes":["read","write"],"kind":"api",` +
	`"status":"active","created_at":"2026-11-03T10:00:00Z","expires_at":"2026-12-03T10:00:00Z",` +
	`"revoked_at":null,"revoked_reason":null,"owner_revoked":false,"last_used_at":null,"use_count":3}`

var wantToken = Token{
	ID: tokenID, Owner: "team/a b", Name: "ci", Scopes: []string{"read", "write"}, Kind: "api",
	Status: "active", CreatedAt: created, ExpiresAt: &expires, UseCount: 3,
}

// Every method sends its route's method, escaped path, query, headers and
// body exactly as the API defines them, and decodes the answer into the
// route's type.
func TestRequestEncoding(t *testing.T) {
	t.Parallel()
	const jsonType = "application/json"
	const formType = "application/x-www-form-urlencoded"
	issued := IssuedToken{TokenMetadata: wantToken, Secret: leakedSecret}
	tests := []struct {
		name  string
		base  string // path appended to the server's URL
		reply reply
		call  func(ctx context.Context, c *Client) (any, error)
		// want* are the request the server must see.
		wantMethod, wantPath, wantQuery string
		wantType                        string // Content-Type; "" for no body
		wantBody                        string
		// wantAuth is the Authorization header; "" for none.
		wantAuth string
		want     any
	}{
		{
			name:  "issue sends the request's JSON and decodes the secret",
			reply: reply{201, nil, tokenJSON[:len(tokenJSON)-1] + `,"token":"` + leakedSecret + `"}`},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.Issue(ctx, IssueRequest{Owner: "team/a b", Name: "ci", Scopes: []string{"read", "write"}, Kind: "api", ExpiresIn: ptr(Duration(720 * time.Hour))})
			},
			wantMethod: "POST", wantPath: "/v1/tokens", wantType: jsonType,
			wantBody: `{"owner":"team/a b","name":"ci","scopes":["read","write"],"kind":"api","expires_in":"720h0m0s"}`,
			wantAuth: "Bearer " + callerSecret,
			want:     issued,
		},
		{
			name:  "issue of a session with a fixed expiry leaves out the zero fields",
			reply: reply{201, nil, tokenJSON[:len(tokenJSON)-1] + `,"token":"` + leakedSecret + `"}`},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.Issue(ctx, IssueRequest{Kind: "session", ExpiresAt: &expires, IdleTimeout: ptr(Duration(30 * time.Minute))})
			},
			wantMethod: "POST", wantPath: "/v1/tokens", wantType: jsonType,
			wantBody: `{"kind":"session","expires_at":"2026-12-03T10:00:00Z","idle_timeout":"30m0s"}`,
			wantAuth: "Bearer " + callerSecret,
			want:     issued,
		},
		{
			name:  "issue with never_expires",
			reply: reply{201, nil, tokenJSON[:len(tokenJSON)-1] + `,"token":"` + leakedSecret + `"}`},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.Issue(ctx, IssueRequest{NeverExpires: true})
			},
			wantMethod: "POST", wantPath: "/v1/tokens", wantType: jsonType,
			wantBody: `{"never_expires":true}`, wantAuth: "Bearer " + callerSecret, want: issued,
		},
		{
			name:  "list sends every filter as a query parameter",
			reply: reply{200, nil, `{"items":[` + tokenJSON + `],"next_cursor":"c2"}`},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.List(ctx, ListOptions{Owner: "team/a b", Status: "active", UnusedFor: 720 * time.Hour, ExpiringWithin: 90 * time.Minute, Limit: 50, Cursor: "c1"})
			},
			wantMethod: "GET", wantPath: "/v1/tokens",
			wantQuery: "cursor=c1&expiring_within=1h30m0s&limit=50&owner=team%2Fa+b&status=active&unused_for=720h0m0s",
			wantAuth:  "Bearer " + callerSecret,
			want:      TokenPage{Items: []Token{wantToken}, NextCursor: "c2"},
		},
		{
			name:       "list without options sends no query",
			reply:      reply{200, nil, `{"items":[]}`},
			call:       func(ctx context.Context, c *Client) (any, error) { return c.List(ctx, ListOptions{}) },
			wantMethod: "GET", wantPath: "/v1/tokens", wantAuth: "Bearer " + callerSecret,
			want: TokenPage{Items: []Token{}},
		},
		{
			name:       "get",
			reply:      reply{200, nil, tokenJSON},
			call:       func(ctx context.Context, c *Client) (any, error) { return c.Get(ctx, tokenID) },
			wantMethod: "GET", wantPath: "/v1/tokens/" + tokenID, wantAuth: "Bearer " + callerSecret,
			want: wantToken,
		},
		{
			name:       "get escapes the id as one path segment",
			reply:      reply{200, nil, tokenJSON},
			call:       func(ctx context.Context, c *Client) (any, error) { return c.Get(ctx, "a/b c?d#e%") },
			wantMethod: "GET", wantPath: "/v1/tokens/a%2Fb%20c%3Fd%23e%25", wantAuth: "Bearer " + callerSecret,
			want: wantToken,
		},
		{
			name:       "a base URL's path prefixes the route",
			base:       "/ledger/",
			reply:      reply{200, nil, tokenJSON},
			call:       func(ctx context.Context, c *Client) (any, error) { return c.Get(ctx, tokenID) },
			wantMethod: "GET", wantPath: "/ledger/v1/tokens/" + tokenID, wantAuth: "Bearer " + callerSecret,
			want: wantToken,
		},
		{
			name:  "set expiry sends the time",
			reply: reply{200, nil, tokenJSON},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.SetExpiry(ctx, tokenID, &expires)
			},
			wantMethod: "PATCH", wantPath: "/v1/tokens/" + tokenID, wantType: jsonType,
			wantBody: `{"expires_at":"2026-12-03T10:00:00Z"}`, wantAuth: "Bearer " + callerSecret,
			want: wantToken,
		},
		{
			name:  "set expiry to none sends expires_at null",
			reply: reply{200, nil, tokenJSON},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.SetExpiry(ctx, tokenID, nil)
			},
			wantMethod: "PATCH", wantPath: "/v1/tokens/" + tokenID, wantType: jsonType,
			wantBody: `{"expires_at":null}`, wantAuth: "Bearer " + callerSecret,
			want: wantToken,
		},
		{
			name:  "revoke with a reason",
			reply: reply{204, nil, ""},
			call: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.Revoke(ctx, tokenID, "leaked in a log")
			},
			wantMethod: "DELETE", wantPath: "/v1/tokens/" + tokenID, wantType: jsonType,
			wantBody: `{"reason":"leaked in a log"}`, wantAuth: "Bearer " + callerSecret,
		},
		{
			name:       "revoke without a reason sends no body",
			reply:      reply{204, nil, ""},
			call:       func(ctx context.Context, c *Client) (any, error) { return nil, c.Revoke(ctx, tokenID, "") },
			wantMethod: "DELETE", wantPath: "/v1/tokens/" + tokenID, wantAuth: "Bearer " + callerSecret,
		},
		{
			name:  "rotate with a grace period",
			reply: reply{201, nil, tokenJSON[:len(tokenJSON)-1] + `,"token":"` + leakedSecret + `","previous_expires_at":"2026-11-03T11:00:00Z"}`},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.Rotate(ctx, tokenID, time.Hour)
			},
			wantMethod: "POST", wantPath: "/v1/tokens/" + tokenID + "/rotate", wantType: jsonType,
			wantBody: `{"grace":"1h0m0s"}`, wantAuth: "Bearer " + callerSecret,
			want: RotatedToken{IssuedToken: issued, PreviousExpiresAt: created.Add(time.Hour)},
		},
		{
			name:       "rotate without grace sends no body",
			reply:      reply{201, nil, tokenJSON[:len(tokenJSON)-1] + `,"token":"` + leakedSecret + `","previous_expires_at":"2026-11-03T10:00:00Z"}`},
			call:       func(ctx context.Context, c *Client) (any, error) { return c.Rotate(ctx, tokenID, 0) },
			wantMethod: "POST", wantPath: "/v1/tokens/" + tokenID + "/rotate", wantAuth: "Bearer " + callerSecret,
			want: RotatedToken{IssuedToken: issued, PreviousExpiresAt: created},
		},
		{
			name:       "events",
			reply:      reply{200, nil, `{"items":[{"sequence":7,"id":"e1","type":"token.issued","time":"2026-11-03T10:00:00Z","actor":"alice","aggregate_kind":"token","aggregate_id":"` + tokenID + `","schema":1,"data":{"name":"ci"}}]}`},
			call:       func(ctx context.Context, c *Client) (any, error) { return c.Events(ctx, tokenID) },
			wantMethod: "GET", wantPath: "/v1/tokens/" + tokenID + "/events", wantAuth: "Bearer " + callerSecret,
			want: EventList{Items: []Event{{Sequence: 7, ID: "e1", Type: "token.issued", Time: created, Actor: "alice", AggregateKind: "token", AggregateID: tokenID, Schema: 1, Data: []byte(`{"name":"ci"}`)}}},
		},
		{
			name:  "owner revoke escapes the owner and sends the request",
			reply: reply{200, nil, `{"owner":"team/a b@example.com","revoked_before":"2026-11-03T10:00:00Z","until":"2026-12-03T10:00:00Z","reason":"offboarded"}`},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.RevokeOwner(ctx, "team/a b@example.com", OwnerRevokeRequest{Until: &expires, Reason: "offboarded"})
			},
			wantMethod: "POST", wantPath: "/v1/owners/team%2Fa%20b@example.com/revoke", wantType: jsonType,
			wantBody: `{"until":"2026-12-03T10:00:00Z","reason":"offboarded"}`, wantAuth: "Bearer " + callerSecret,
			want: OwnerRevocation{Owner: "team/a b@example.com", RevokedBefore: created, Until: &expires, Reason: "offboarded"},
		},
		{
			name:  "owner revoke with a zero request sends {}",
			reply: reply{200, nil, `{"owner":"alice","revoked_before":"2026-11-03T10:00:00Z","until":null}`},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.RevokeOwner(ctx, "alice", OwnerRevokeRequest{})
			},
			wantMethod: "POST", wantPath: "/v1/owners/alice/revoke", wantType: jsonType,
			wantBody: `{}`, wantAuth: "Bearer " + callerSecret,
			want: OwnerRevocation{Owner: "alice", RevokedBefore: created},
		},
		{
			name:       "revoke a secret: form-encoded, no credentials",
			reply:      reply{200, nil, `{}`},
			call:       func(ctx context.Context, c *Client) (any, error) { return nil, c.RevokeSecret(ctx, leakedSecret+"+/=") },
			wantMethod: "POST", wantPath: "/v1/revoke", wantType: formType,
			wantBody: "token=" + leakedSecret + "%2B%2F%3D",
		},
		{
			name:  "introspect: form-encoded, with the caller's credentials",
			reply: reply{200, nil, `{"active":true,"sub":"alice","scope":"read write","token_type":"api","exp":1796292000,"iat":1793700000,"jti":"` + tokenID + `"}`},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.Introspect(ctx, leakedSecret)
			},
			wantMethod: "POST", wantPath: "/v1/introspect", wantType: formType,
			wantBody: "token=" + leakedSecret, wantAuth: "Bearer " + callerSecret,
			want: Introspection{Active: true, Subject: "alice", Scope: "read write", TokenType: "api", Exp: 1796292000, Iat: 1793700000, JTI: tokenID},
		},
		{
			name:       "introspect of an inactive token",
			reply:      reply{200, nil, `{"active":false}`},
			call:       func(ctx context.Context, c *Client) (any, error) { return c.Introspect(ctx, leakedSecret) },
			wantMethod: "POST", wantPath: "/v1/introspect", wantType: formType,
			wantBody: "token=" + leakedSecret, wantAuth: "Bearer " + callerSecret,
			want: Introspection{},
		},
		{
			name:  "auth presents the secret asked about, not the caller's, and reads the headers",
			reply: reply{200, map[string]string{"X-Token-Id": tokenID, "X-Token-Owner": "team/a b", "X-Token-Scopes": "read write"}, ""},
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.Auth(ctx, leakedSecret, "repo:write")
			},
			wantMethod: "GET", wantPath: "/v1/auth", wantQuery: "scope=repo%3Awrite",
			wantAuth: "Bearer " + leakedSecret,
			want:     AuthResult{TokenID: tokenID, Owner: "team/a b", Scopes: []string{"read", "write"}},
		},
		{
			name:       "auth without a scope",
			reply:      reply{200, map[string]string{"X-Token-Id": tokenID, "X-Token-Owner": "alice", "X-Token-Scopes": ""}, ""},
			call:       func(ctx context.Context, c *Client) (any, error) { return c.Auth(ctx, leakedSecret, "") },
			wantMethod: "GET", wantPath: "/v1/auth", wantAuth: "Bearer " + leakedSecret,
			want: AuthResult{TokenID: tokenID, Owner: "alice", Scopes: []string{}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder(t, tt.reply)
			c := newTestClient(t, rec.srv.URL+tt.base, WithUserAgent("tokenledger-test/1"))
			got, err := tt.call(t.Context(), c)
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decoded answer\n got %#v\nwant %#v", got, tt.want)
			}
			r := rec.only(t)
			if r.method != tt.wantMethod || r.path != tt.wantPath || r.query != tt.wantQuery {
				t.Errorf("request %s %s?%s, want %s %s?%s", r.method, r.path, r.query, tt.wantMethod, tt.wantPath, tt.wantQuery)
			}
			if r.body != tt.wantBody {
				t.Errorf("body %q, want %q", r.body, tt.wantBody)
			}
			if got := r.header.Get("Content-Type"); got != tt.wantType {
				t.Errorf("Content-Type %q, want %q", got, tt.wantType)
			}
			if got := r.header.Get("Authorization"); got != tt.wantAuth {
				t.Errorf("Authorization %q, want %q", got, tt.wantAuth)
			}
			if got := r.header.Get("User-Agent"); got != "tokenledger-test/1" {
				t.Errorf("User-Agent %q, want the one set", got)
			}
			if got := r.header.Get("Accept"); got != "application/json" {
				t.Errorf("Accept %q, want application/json", got)
			}
		})
	}
}

// The default User-Agent is sent unless one is set.
func TestDefaultUserAgent(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, reply{200, nil, tokenJSON})
	if _, err := newTestClient(t, rec.srv.URL).Get(t.Context(), tokenID); err != nil {
		t.Fatal(err)
	}
	if got, want := rec.only(t).header.Get("User-Agent"), "tokenledger-go/"+version.Get().Version; got != want || DefaultUserAgent != want {
		t.Errorf("User-Agent %q, want %q (the module's version)", got, want)
	}
}

// Without WithToken, no Authorization header is sent.
func TestNoToken(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, reply{401, nil, `{"error":{"code":"unauthorized","message":"no credentials"}}`})
	c, err := New(rec.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Get(t.Context(), tokenID)
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("error %v, want ErrUnauthorized", err)
	}
	if h, ok := rec.only(t).header["Authorization"]; ok {
		t.Errorf("Authorization header %q sent without a token", h)
	}
}

// Every non-2xx answer becomes an *Error: the error document's code and
// message when there is one, a summary of a proxy's page otherwise; the
// sentinels match by code; no secret of the request ever shows.
func TestErrorDecoding(t *testing.T) {
	t.Parallel()
	getToken := func(ctx context.Context, c *Client) error { _, err := c.Get(ctx, tokenID); return err }
	tests := []struct {
		name    string
		reply   reply
		call    func(ctx context.Context, c *Client) error
		want    Error
		is      []error // sentinels the error must match
		isNot   []error // and must not
		wantMsg string  // the whole err.Error()
	}{
		{
			name:    "JSON error document",
			reply:   reply{404, map[string]string{"Content-Type": "application/json", "X-Request-Id": "req-1"}, `{"error":{"code":"not_found","message":"no such token"}}`},
			call:    getToken,
			want:    Error{Status: 404, Code: CodeNotFound, Message: "no such token", RequestID: "req-1"},
			is:      []error{ErrNotFound},
			isNot:   []error{ErrConflict, ErrUnavailable, ErrForbidden},
			wantMsg: "get token " + tokenID + ": not_found: no such token (HTTP 404, request req-1)",
		},
		{
			name:    "conflict",
			reply:   reply{409, map[string]string{"X-Request-Id": "req-2"}, `{"error":{"code":"conflict","message":"token is revoked"}}`},
			call:    func(ctx context.Context, c *Client) error { _, err := c.SetExpiry(ctx, tokenID, nil); return err },
			want:    Error{Status: 409, Code: CodeConflict, Message: "token is revoked", RequestID: "req-2"},
			is:      []error{ErrConflict},
			isNot:   []error{ErrNotFound},
			wantMsg: "set expiry of token " + tokenID + ": conflict: token is revoked (HTTP 409, request req-2)",
		},
		{
			name:    "owner blocked",
			reply:   reply{403, nil, `{"error":{"code":"owner_blocked","message":"no new token before 2026-12-03T10:00:00Z"}}`},
			call:    func(ctx context.Context, c *Client) error { _, err := c.Issue(ctx, IssueRequest{}); return err },
			want:    Error{Status: 403, Code: CodeOwnerBlocked, Message: "no new token before 2026-12-03T10:00:00Z"},
			is:      []error{ErrOwnerBlocked},
			isNot:   []error{ErrForbidden},
			wantMsg: "issue token: owner_blocked: no new token before 2026-12-03T10:00:00Z (HTTP 403)",
		},
		{
			name:    "a proxy's HTML page",
			reply:   reply{502, map[string]string{"Content-Type": "text/html"}, "<html><body><h1>502 Bad Gateway</h1></body></html>"},
			call:    getToken,
			want:    Error{Status: 502, Message: "Bad Gateway"},
			is:      []error{ErrUnavailable},
			isNot:   []error{ErrInternal, ErrNotFound},
			wantMsg: "get token " + tokenID + ": HTTP 502: Bad Gateway",
		},
		{
			name:    "a proxy's plain text with Retry-After",
			reply:   reply{503, map[string]string{"Content-Type": "text/plain; charset=utf-8", "Retry-After": "7", "X-Request-Id": "p-9"}, "upstream connect error\nor disconnect\n"},
			call:    getToken,
			want:    Error{Status: 503, Message: "Service Unavailable: upstream connect error or disconnect", RequestID: "p-9", RetryAfter: 7 * time.Second},
			is:      []error{ErrUnavailable},
			wantMsg: "get token " + tokenID + ": HTTP 503: Service Unavailable: upstream connect error or disconnect (request p-9)",
		},
		{
			name:    "the server's unavailable with Retry-After",
			reply:   reply{503, map[string]string{"Retry-After": "3"}, `{"error":{"code":"unavailable","message":"cannot record the revocation now"}}`},
			call:    func(ctx context.Context, c *Client) error { return c.RevokeSecret(ctx, leakedSecret) },
			want:    Error{Status: 503, Code: CodeUnavailable, Message: "cannot record the revocation now", RetryAfter: 3 * time.Second},
			is:      []error{ErrUnavailable},
			wantMsg: "revoke secret: unavailable: cannot record the revocation now (HTTP 503)",
		},
		{
			name:    "an empty 500 is no error document",
			reply:   reply{500, nil, ""},
			call:    getToken,
			want:    Error{Status: 500, Message: "Internal Server Error"},
			isNot:   []error{ErrInternal, ErrUnavailable},
			wantMsg: "get token " + tokenID + ": HTTP 500: Internal Server Error",
		},
		{
			name:    "JSON that is not an error document",
			reply:   reply{400, map[string]string{"Content-Type": "application/json"}, `{"message":"bad"}`},
			call:    getToken,
			want:    Error{Status: 400, Message: "Bad Request"},
			isNot:   []error{ErrInvalidRequest},
			wantMsg: "get token " + tokenID + ": HTTP 400: Bad Request",
		},
		{
			name:    "auth's invalid token",
			reply:   reply{401, map[string]string{"WWW-Authenticate": `Bearer error="invalid_token", error_description="expired"`}, `{"error":{"code":"invalid_token","message":"the token expired"}}`},
			call:    func(ctx context.Context, c *Client) error { _, err := c.Auth(ctx, leakedSecret, ""); return err },
			want:    Error{Status: 401, Code: CodeInvalidToken, Message: "the token expired"},
			is:      []error{ErrInvalidToken},
			isNot:   []error{ErrUnauthorized},
			wantMsg: "auth: invalid_token: the token expired (HTTP 401)",
		},
		{
			name:  "auth's insufficient scope",
			reply: reply{403, nil, `{"error":{"code":"insufficient_scope","message":"needs repo:write"}}`},
			call: func(ctx context.Context, c *Client) error {
				_, err := c.Auth(ctx, leakedSecret, "repo:write")
				return err
			},
			want:    Error{Status: 403, Code: CodeInsufficientScope, Message: "needs repo:write"},
			is:      []error{ErrInsufficientScope},
			wantMsg: "auth: insufficient_scope: needs repo:write (HTTP 403)",
		},
		{
			name:    "a message echoing the secret of the request is redacted",
			reply:   reply{400, nil, `{"error":{"code":"invalid_request","message":"bad token ` + leakedSecret + `"}}`},
			call:    func(ctx context.Context, c *Client) error { _, err := c.Introspect(ctx, leakedSecret); return err },
			want:    Error{Status: 400, Code: CodeInvalidRequest, Message: "bad token [redacted]"},
			is:      []error{ErrInvalidRequest},
			wantMsg: "introspect: invalid_request: bad token [redacted] (HTTP 400)",
		},
		{
			name:    "a proxy echoing a secret that does not look like one",
			reply:   reply{400, map[string]string{"Content-Type": "text/plain"}, "rejected token=not-a-tlk-secret&x"},
			call:    func(ctx context.Context, c *Client) error { return c.RevokeSecret(ctx, "not-a-tlk-secret") },
			want:    Error{Status: 400, Message: "Bad Request: rejected token=[redacted]&x"},
			wantMsg: "revoke secret: HTTP 400: Bad Request: rejected token=[redacted]&x",
		},
		{
			name:    "a message echoing the caller's token is redacted",
			reply:   reply{401, nil, `{"error":{"code":"unauthorized","message":"unknown token ` + callerSecret[:40] + `"}}`},
			call:    getToken,
			want:    Error{Status: 401, Code: CodeUnauthorized, Message: "unknown token tlk_01JD…[redacted]"},
			is:      []error{ErrUnauthorized},
			wantMsg: "get token " + tokenID + ": unauthorized: unknown token tlk_01JD…[redacted] (HTTP 401)",
		},
		{
			name:    "a multi-line message becomes one line",
			reply:   reply{400, nil, `{"error":{"code":"invalid_request","message":"scopes:\n- empty\n- too long"}}`},
			call:    getToken,
			want:    Error{Status: 400, Code: CodeInvalidRequest, Message: "scopes: - empty - too long"},
			is:      []error{ErrInvalidRequest},
			wantMsg: "get token " + tokenID + ": invalid_request: scopes: - empty - too long (HTTP 400)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder(t, tt.reply)
			err := tt.call(t.Context(), newTestClient(t, rec.srv.URL))
			var apiErr *Error
			if !errors.As(err, &apiErr) {
				t.Fatalf("error %v (%T), want an *Error", err, err)
			}
			if *apiErr != tt.want {
				t.Errorf("Error\n got %+v\nwant %+v", *apiErr, tt.want)
			}
			for _, s := range tt.is {
				if !errors.Is(err, s) {
					t.Errorf("errors.Is(err, %v) = false, want true", s)
				}
			}
			for _, s := range tt.isNot {
				if errors.Is(err, s) {
					t.Errorf("errors.Is(err, %v) = true, want false", s)
				}
			}
			if err.Error() != tt.wantMsg {
				t.Errorf("message\n got %q\nwant %q", err.Error(), tt.wantMsg)
			}
			for _, secret := range []string{callerSecret, leakedSecret, "not-a-tlk-secret"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error holds a secret: %q", err.Error())
				}
			}
		})
	}
}

// Answers that are not errors but cannot be used fail without being read
// whole; bad arguments fail before any request is made.
func TestFailuresWithoutAnAPIError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		reply reply
		call  func(ctx context.Context, c *Client) error
		// requests is how many requests the server must see.
		requests int
		wantErr  string
	}{
		{
			name:     "a 200 whose body is not JSON",
			reply:    reply{200, map[string]string{"X-Request-Id": "r1"}, "<html>login</html>"},
			call:     func(ctx context.Context, c *Client) error { _, err := c.Get(ctx, tokenID); return err },
			requests: 1,
			wantErr:  "get token " + tokenID + ": decode the answer (HTTP 200, request r1): invalid character '<' looking for beginning of value",
		},
		{
			name:     "a body over the size limit",
			reply:    reply{200, nil, `{"items":[],"next_cursor":"` + strings.Repeat("x", MaxResponseBytes) + `"}`},
			call:     func(ctx context.Context, c *Client) error { _, err := c.List(ctx, ListOptions{}); return err },
			requests: 1,
			wantErr:  "list tokens: read the answer (HTTP 200): the body exceeds 4194304 bytes",
		},
		{
			name:    "a secret where the token id belongs",
			call:    func(ctx context.Context, c *Client) error { _, err := c.Get(ctx, leakedSecret); return err },
			wantErr: "get token: the token id given is a secret (tlk_...): pass the token's id, not its secret",
		},
		{
			name:    "a secret where the token id belongs, on revoke",
			call:    func(ctx context.Context, c *Client) error { return c.Revoke(ctx, leakedSecret, "") },
			wantErr: "revoke token: the token id given is a secret (tlk_...): pass the token's id, not its secret",
		},
		{
			name:    "an empty id",
			call:    func(ctx context.Context, c *Client) error { _, err := c.Rotate(ctx, "", 0); return err },
			wantErr: "rotate token: empty token id",
		},
		{
			name: "an owner that is a dot-segment",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.RevokeOwner(ctx, "..", OwnerRevokeRequest{})
				return err
			},
			wantErr: `revoke owner: owner ".." cannot be a path segment`,
		},
		{
			name:    "an empty secret to revoke",
			call:    func(ctx context.Context, c *Client) error { return c.RevokeSecret(ctx, "") },
			wantErr: "revoke secret: empty secret",
		},
		{
			name: "a secret that cannot be a header",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.Auth(ctx, "tlk_x\r\nX-Evil: 1", "")
				return err
			},
			wantErr: "auth: the secret contains characters an Authorization header cannot carry",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder(t, tt.reply)
			err := tt.call(t.Context(), newTestClient(t, rec.srv.URL))
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
			var apiErr *Error
			if errors.As(err, &apiErr) {
				t.Errorf("error is an *Error %+v, want another kind", apiErr)
			}
			if n := rec.count(); n != tt.requests {
				t.Errorf("server saw %d requests, want %d", n, tt.requests)
			}
		})
	}
}

// The default client follows no redirect: a secret in a body is not re-sent
// to where the redirect points, and the redirect is an *Error.
func TestRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	elsewhere := newRecorder(t, reply{200, nil, `{"active":true}`})
	rec := newRecorder(t, reply{307, map[string]string{"Location": elsewhere.srv.URL + "/v1/introspect"}, ""})
	_, err := newTestClient(t, rec.srv.URL).Introspect(t.Context(), leakedSecret)
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusTemporaryRedirect {
		t.Fatalf("error %v, want an *Error with status 307", err)
	}
	if n := elsewhere.count(); n != 0 {
		t.Errorf("the redirect's target got %d requests, want 0", n)
	}
}

// The context's cancellation ends a call with the context's error.
func TestContextCancelled(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, reply{200, nil, tokenJSON})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := newTestClient(t, rec.srv.URL).Get(ctx, tokenID)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, base string
		opts       []Option
		wantErr    string // "" for success
	}{
		{name: "http", base: "http://127.0.0.1:8080"},
		{name: "https with a path", base: "https://example.com/ledger/"},
		{name: "empty", base: "", wantErr: `server URL "": want an http:// or https:// URL`},
		{name: "no scheme", base: "127.0.0.1:8080", wantErr: `server URL: parse "127.0.0.1:8080": first path segment in URL cannot contain colon`},
		{name: "other scheme", base: "ftp://example.com", wantErr: `server URL "ftp://example.com": want an http:// or https:// URL`},
		{name: "no host", base: "http:///v1", wantErr: `server URL "http:///v1": no host`},
		{name: "a query", base: "http://example.com/?a=1", wantErr: `server URL "http://example.com/?a=1": a query or fragment is not allowed`},
		{name: "a password is not echoed", base: "ftp://u:hunter2@example.com", wantErr: `server URL "ftp://u:xxxxx@example.com": want an http:// or https:// URL`},
		{name: "a token with a line break", base: "http://example.com", opts: []Option{WithToken("tlk_a\nb")}, wantErr: "token: contains characters an Authorization header cannot carry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := New(tt.base, tt.opts...)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tt.wantErr == "" && c == nil:
				t.Fatal("New returned no client")
			case tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr):
				t.Fatalf("New: error %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// pager serves GET /v1/tokens in pages of one token per cursor: "" → c1 →
// c2 → last, optionally failing at one cursor or repeating one ("" for
// neither).
func pager(t *testing.T, failAt, repeatAt string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	next := map[string]string{"": "c1", "c1": "c2", "c2": ""}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		cur := r.URL.Query().Get("cursor")
		if got := r.URL.Query().Get("owner"); got != "alice" {
			t.Errorf("page %q asked for owner %q, want the filter kept on every page", cur, got)
		}
		if failAt != "" && cur == failAt {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"error":{"code":"unavailable","message":"read model unreachable"}}`)
			return
		}
		nc := next[cur]
		if repeatAt != "" && cur == repeatAt {
			nc = cur
		}
		body := `{"items":[{"id":"t` + cur + `"}]`
		if nc != "" {
			body += `,"next_cursor":"` + nc + `"`
		}
		_, _ = io.WriteString(w, body+"}")
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

// ListAll follows next_cursor to the last page, stops fetching when the
// loop breaks, and ends on the first error.
func TestListAll(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name            string
		failAt, repeat  string
		breakAfter      int // stop the loop after this many tokens; 0: never
		wantIDs         []string
		wantErr         error
		wantErrContains string
		wantCalls       int32
	}{
		{name: "every page", wantIDs: []string{"t", "tc1", "tc2"}, wantCalls: 3},
		{name: "a break stops fetching", breakAfter: 2, wantIDs: []string{"t", "tc1"}, wantCalls: 2},
		{name: "an error ends it", failAt: "c2", wantIDs: []string{"t", "tc1"}, wantErr: ErrUnavailable, wantCalls: 3},
		{name: "a repeated cursor is not followed", repeat: "c1", wantIDs: []string{"t", "tc1"}, wantErrContains: `the server answered cursor "c1" with itself`, wantCalls: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, calls := pager(t, tt.failAt, tt.repeat)
			var ids []string
			var errs []error
			for tok, err := range newTestClient(t, srv.URL).ListAll(t.Context(), ListOptions{Owner: "alice", Limit: 1}) {
				if err != nil {
					errs = append(errs, err)
					continue
				}
				ids = append(ids, tok.ID)
				if len(ids) == tt.breakAfter {
					break
				}
			}
			if !reflect.DeepEqual(ids, tt.wantIDs) {
				t.Errorf("tokens %v, want %v", ids, tt.wantIDs)
			}
			wantErrs := 0
			if tt.wantErr != nil || tt.wantErrContains != "" {
				wantErrs = 1
			}
			if len(errs) != wantErrs {
				t.Fatalf("errors %v, want %d", errs, wantErrs)
			}
			if tt.wantErr != nil && !errors.Is(errs[0], tt.wantErr) {
				t.Errorf("error %v, want %v", errs[0], tt.wantErr)
			}
			if tt.wantErrContains != "" && !strings.Contains(errs[0].Error(), tt.wantErrContains) {
				t.Errorf("error %v, want it to say %q", errs[0], tt.wantErrContains)
			}
			if n := calls.Load(); n != tt.wantCalls {
				t.Errorf("%d pages fetched, want %d", n, tt.wantCalls)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name, v string
		want    time.Duration
	}{
		{"absent", "", 0},
		{"seconds", "120", 2 * time.Minute},
		{"zero", "0", 0},
		{"negative", "-5", 0},
		{"an HTTP date", "Tue, 03 Nov 2026 10:00:30 GMT", 30 * time.Second},
		{"a past date", "Tue, 03 Nov 2026 09:00:00 GMT", 0},
		{"garbage", "soon", 0},
		{"overflowing seconds", "99999999999999999", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := retryAfter(tt.v, now); got != tt.want {
				t.Errorf("retryAfter(%q) = %v, want %v", tt.v, got, tt.want)
			}
		})
	}
}
