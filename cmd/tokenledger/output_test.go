package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mattn/go-runewidth"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/sdk"
)

// now is the instant the output tests tell relative times from.
var now = time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)

func TestRelativeTime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		t    time.Time
		want string
	}{
		{"the same instant", now, "just now"},
		{"59s ago", now.Add(-59 * time.Second), "just now"},
		{"60s ago", now.Add(-60 * time.Second), "1 minute ago"},
		{"119s ago, rounded to the nearest minute", now.Add(-119 * time.Second), "2 minutes ago"},
		{"2 minutes ago, plural", now.Add(-2 * time.Minute), "2 minutes ago"},
		{"59m59s ago rounds up to an hour", now.Add(-(59*time.Minute + 59*time.Second)), "1 hour ago"},
		{"59m20s ago", now.Add(-(59*time.Minute + 20*time.Second)), "59 minutes ago"},
		{"2h10m ago, two units", now.Add(-(2*time.Hour + 10*time.Minute)), "2 hours 10 minutes ago"},
		{"10h20m ago, hours alone from 10 on", now.Add(-(10*time.Hour + 20*time.Minute)), "10 hours ago"},
		{"1h ago", now.Add(-time.Hour), "1 hour ago"},
		{"2h ago", now.Add(-2 * time.Hour), "2 hours ago"},
		{"23h59m ago rounds up to a day", now.Add(-(23*time.Hour + 59*time.Minute)), "1 day ago"},
		{"23h20m ago", now.Add(-(23*time.Hour + 20*time.Minute)), "23 hours ago"},
		{"1 day ago", now.Add(-24 * time.Hour), "1 day ago"},
		{"47h59m ago is not 1 day", now.Add(-(47*time.Hour + 59*time.Minute)), "2 days ago"},
		{"47h ago, two units", now.Add(-47 * time.Hour), "1 day 23 hours ago"},
		{"9d11h ago, two units", now.Add(-(9*24*time.Hour + 11*time.Hour)), "9 days 11 hours ago"},
		{"12 days ago", now.Add(-12 * 24 * time.Hour), "12 days ago"},
		{"400 days ago, still days", now.Add(-400 * 24 * time.Hour), "400 days ago"},
		{"1s ahead", now.Add(time.Second), "in less than a minute"},
		{"59s ahead", now.Add(59 * time.Second), "in less than a minute"},
		{"60s ahead", now.Add(60 * time.Second), "in 1 minute"},
		{"3m29s ahead", now.Add(3*time.Minute + 29*time.Second), "in 3 minutes"},
		{"3m30s ahead rounds up", now.Add(3*time.Minute + 30*time.Second), "in 4 minutes"},
		{"1h ahead", now.Add(time.Hour), "in 1 hour"},
		{"23h59m ahead", now.Add(23*time.Hour + 59*time.Minute), "in 1 day"},
		{"a fresh 48h token", now.Add(48*time.Hour - time.Second), "in 2 days"},
		{"a 48h token a minute old", now.Add(47*time.Hour + 59*time.Minute), "in 2 days"},
		{"a 48h token an hour old", now.Add(47 * time.Hour), "in 1 day 23 hours"},
		{"a fresh 30-day token", now.Add(30*24*time.Hour - time.Second), "in 30 days"},
		{"a 30-day token an hour old", now.Add(30*24*time.Hour - time.Hour), "in 30 days"},
		{"a 30-day token 13 hours old", now.Add(30*24*time.Hour - 13*time.Hour), "in 29 days"},
		{"1 day ahead", now.Add(24 * time.Hour), "in 1 day"},
		{"12 days ahead", now.Add(12*24*time.Hour + time.Hour), "in 12 days"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := relativeTime(tt.t, now); got != tt.want {
				t.Errorf("relativeTime(now%+v) = %q, want %q", tt.t.Sub(now), got, tt.want)
			}
		})
	}
}

func TestLastUsedText(t *testing.T) {
	t.Parallel()
	at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	tests := []struct {
		name string
		t    *time.Time
		want string
	}{
		{"never used", nil, "never used"},
		{"a few seconds ago", at(-5 * time.Second), "last used just now"},
		{"3 minutes ago", at(-3 * time.Minute), "last used 3 minutes ago"},
		{"25 hours ago", at(-25 * time.Hour), "last used 1 day 1 hour ago"},
		{"a server clock ahead reads as just now", at(40 * time.Second), "last used just now"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := lastUsedText(tt.t, now); got != tt.want {
				t.Errorf("lastUsedText = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestExpiryText(t *testing.T) {
	t.Parallel()
	at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	tests := []struct {
		name string
		t    *time.Time
		want string
	}{
		{"no expiry", nil, "does not expire"},
		{"12 days ahead", at(12*24*time.Hour + time.Minute), "expires in 12 days"},
		{"1 minute ahead", at(time.Minute), "expires in 1 minute"},
		{"seconds ahead", at(30 * time.Second), "expires in less than a minute"},
		{"exactly now has expired", at(0), "expired just now"},
		{"2 hours ago", at(-2*time.Hour - 10*time.Minute), "expired 2 hours 10 minutes ago"},
		{"1 day ago", at(-24 * time.Hour), "expired 1 day ago"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := expiryText(tt.t, now); got != tt.want {
				t.Errorf("expiryText = %q, want %q", got, tt.want)
			}
		})
	}
}

func timePtr(t time.Time) *time.Time { return &t }
func strPtr(s string) *string        { return &s }

// Tokens of every shape the table and the show view must render.
var (
	activeToken = sdk.Token{
		ID: "01JD8XK2M3N4P5Q6R7S8T9V0WX", Owner: "alice", Name: "ci", Scopes: []string{"repo:read", "repo:write"},
		Kind: "api", Status: "active", CreatedAt: now.Add(-30 * 24 * time.Hour),
		ExpiresAt: timePtr(now.Add(12*24*time.Hour + time.Hour)), LastUsedAt: timePtr(now.Add(-3 * time.Minute)), UseCount: 42,
	}
	sessionToken = sdk.Token{
		ID: "01JD9AAAAAAAAAAAAAAAAAAAAA", Owner: "team/platform", Kind: "session", Status: "active",
		CreatedAt: now.Add(-time.Hour), IdleTimeout: durPtr(30 * time.Minute),
		AbsoluteExpiresAt: timePtr(now.Add(7 * 24 * time.Hour)),
	}
	revokedToken = sdk.Token{
		ID: "01JDBBBBBBBBBBBBBBBBBBBBBB", Owner: "bob\tx\x1b[31m", Name: "old deploy key", Scopes: []string{"deploy"},
		Kind: "api", Status: "revoked", CreatedAt: now.Add(-90 * 24 * time.Hour), ExpiresAt: timePtr(now.Add(-2 * time.Hour)),
		RevokedAt: timePtr(now.Add(-26 * time.Hour)), RevokedReason: strPtr("leaked in a log"), OwnerRevoked: true,
		LastUsedAt: timePtr(now.Add(-27 * time.Hour)), UseCount: 7,
		RotatedFrom: strPtr("01JDCCCCCCCCCCCCCCCCCCCCCC"), RotatedTo: strPtr("01JDDDDDDDDDDDDDDDDDDDDDDD"),
	}
)

func durPtr(d time.Duration) *sdk.Duration { v := sdk.Duration(d); return &v }

// The table has one aligned line per token with human times; values that
// could break the layout or drive the terminal are quoted.
func TestTokenTable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		tokens []sdk.Token
		want   string
	}{
		{
			name:   "every shape",
			tokens: []sdk.Token{activeToken, sessionToken, revokedToken},
			want: "" +
				"ID                          OWNER             NAME            KIND     STATUS   SCOPES                LAST USE                     EXPIRY\n" +
				"01JD8XK2M3N4P5Q6R7S8T9V0WX  alice             ci              api      active   repo:read,repo:write  last used 3 minutes ago      expires in 12 days\n" +
				"01JD9AAAAAAAAAAAAAAAAAAAAA  team/platform     -               session  active   -                     never used                   does not expire\n" +
				"01JDBBBBBBBBBBBBBBBBBBBBBB  \"bob\\tx\\x1b[31m\"  old deploy key  api      revoked  deploy                last used 1 day 3 hours ago  expired 2 hours ago\n",
		},
		{
			name:   "no tokens",
			tokens: nil,
			want:   "No tokens.\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			if err := writeTokenTable(&b, tt.tokens, now); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Errorf("table\n got:\n%s\nwant:\n%s", b.String(), tt.want)
			}
		})
	}
}

// The show view has every field, absent ones as "-".
func TestTokenDetail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		token sdk.Token
		want  string
	}{
		{
			name:  "an active api token",
			token: activeToken,
			want: "" +
				"ID:               01JD8XK2M3N4P5Q6R7S8T9V0WX\n" +
				"Owner:            alice\n" +
				"Name:             ci\n" +
				"Kind:             api\n" +
				"Status:           active\n" +
				"Scopes:           repo:read,repo:write\n" +
				"Created:          2026-10-16T12:00:00Z (30 days ago)\n" +
				"Expires:          2026-11-27T13:00:00Z (expires in 12 days)\n" +
				"Idle timeout:     -\n" +
				"Absolute expiry:  -\n" +
				"Last used:        2026-11-15T11:57:00Z (3 minutes ago)\n" +
				"Use count:        42\n" +
				"Revoked:          -\n" +
				"Revoked reason:   -\n" +
				"Owner revoked:    no\n" +
				"Rotated from:     -\n" +
				"Rotated to:       -\n" +
				"Family:           -\n" +
				"Networks:         any\n" +
				"Used from:        -\n",
		},
		{
			name:  "a session",
			token: sessionToken,
			want: "" +
				"ID:               01JD9AAAAAAAAAAAAAAAAAAAAA\n" +
				"Owner:            team/platform\n" +
				"Name:             -\n" +
				"Kind:             session\n" +
				"Status:           active\n" +
				"Scopes:           -\n" +
				"Created:          2026-11-15T11:00:00Z (1 hour ago)\n" +
				"Expires:          does not expire\n" +
				"Idle timeout:     30 minutes\n" +
				"Absolute expiry:  2026-11-22T12:00:00Z (in 7 days)\n" +
				"Last used:        never used\n" +
				"Use count:        0\n" +
				"Revoked:          -\n" +
				"Revoked reason:   -\n" +
				"Owner revoked:    no\n" +
				"Rotated from:     -\n" +
				"Rotated to:       -\n" +
				"Family:           -\n" +
				"Networks:         any\n" +
				"Used from:        -\n",
		},
		{
			name:  "a revoked, rotated token",
			token: revokedToken,
			want: "" +
				"ID:               01JDBBBBBBBBBBBBBBBBBBBBBB\n" +
				"Owner:            \"bob\\tx\\x1b[31m\"\n" +
				"Name:             old deploy key\n" +
				"Kind:             api\n" +
				"Status:           revoked\n" +
				"Scopes:           deploy\n" +
				"Created:          2026-08-17T12:00:00Z (90 days ago)\n" +
				"Expires:          2026-11-15T10:00:00Z (expired 2 hours ago)\n" +
				"Idle timeout:     -\n" +
				"Absolute expiry:  -\n" +
				"Last used:        2026-11-14T09:00:00Z (1 day 3 hours ago)\n" +
				"Use count:        7\n" +
				"Revoked:          2026-11-14T10:00:00Z (1 day 2 hours ago)\n" +
				"Revoked reason:   leaked in a log\n" +
				"Owner revoked:    yes\n" +
				"Rotated from:     01JDCCCCCCCCCCCCCCCCCCCCCC\n" +
				"Rotated to:       01JDDDDDDDDDDDDDDDDDDDDDDD\n" +
				"Family:           -\n" +
				"Networks:         any\n" +
				"Used from:        -\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			if err := writeTokenDetail(&b, tt.token, now); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Errorf("show view\n got:\n%s\nwant:\n%s", b.String(), tt.want)
			}
		})
	}
}

const testSecret = "tlk_01JD8XK2M3N4P5Q6R7S8T9V0WX_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVW"

// checkedSecret is a secret in the real format, checksum included, as
// --secret-stdin checks it before sending anything.
var checkedSecret = func() string {
	id, err := domain.ParseTokenID("01JD8XK2M3N4P5Q6R7S8T9V0WX")
	if err != nil {
		panic(err)
	}
	sec, err := domain.GenerateSecret(id, strings.NewReader(strings.Repeat("k", 64)))
	if err != nil {
		panic(err)
	}
	return sec.Reveal()
}()

// Each printer writes one table or one JSON document; the secret of an
// issue or rotation shows exactly once.
func TestPrinter(t *testing.T) {
	t.Parallel()
	issued := sdk.IssuedToken{TokenMetadata: sessionToken, Secret: testSecret}
	rotated := sdk.RotatedToken{IssuedToken: sdk.IssuedToken{TokenMetadata: activeToken, Secret: testSecret}, PreviousExpiresAt: now.Add(5 * time.Minute)}
	rotated.RotatedFrom = strPtr("01JDCCCCCCCCCCCCCCCCCCCCCC")
	detail := func(tok sdk.Token) string {
		var b bytes.Buffer
		if err := writeTokenDetail(&b, tok, now); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	tests := []struct {
		name  string
		json  bool
		print func(p printer) error
		want  string
	}{
		{
			name:  "issued, table",
			print: func(p printer) error { return p.issued(issued) },
			want:  "Token (shown once, store it now): " + testSecret + "\n\n" + detail(sessionToken),
		},
		{
			name:  "issued, json",
			json:  true,
			print: func(p printer) error { return p.issued(issued) },
			want: `{
  "id": "01JD9AAAAAAAAAAAAAAAAAAAAA",
  "owner": "team/platform",
  "name": "",
  "scopes": null,
  "kind": "session",
  "status": "active",
  "created_at": "2026-11-15T11:00:00Z",
  "expires_at": null,
  "idle_timeout": "30m0s",
  "absolute_expires_at": "2026-11-22T12:00:00Z",
  "revoked_at": null,
  "revoked_reason": null,
  "owner_revoked": false,
  "last_used_at": null,
  "use_count": 0,
  "token": "` + testSecret + `"
}
`,
		},
		{
			name:  "rotated, table",
			print: func(p printer) error { return p.rotated(rotated) },
			want: "Token (shown once, store it now): " + testSecret + "\n\n" + detail(rotated.TokenMetadata) +
				"\nThe previous token 01JDCCCCCCCCCCCCCCCCCCCCCC expires in 5 minutes (2026-11-15T12:05:00Z).\n",
		},
		{
			name:  "a page with a next page, table",
			print: func(p printer) error { return p.tokens([]sdk.Token{activeToken}, "c2") },
			want: "" +
				"ID                          OWNER  NAME  KIND  STATUS  SCOPES                LAST USE                 EXPIRY\n" +
				"01JD8XK2M3N4P5Q6R7S8T9V0WX  alice  ci    api   active  repo:read,repo:write  last used 3 minutes ago  expires in 12 days\n" +
				"More tokens: add --cursor c2 (or --all).\n",
		},
		{
			name:  "a page with a next page, json",
			json:  true,
			print: func(p printer) error { return p.tokens(nil, "c2") },
			want:  "{\n  \"items\": [],\n  \"next_cursor\": \"c2\"\n}\n",
		},
		{
			name:  "every page, json: one items document",
			json:  true,
			print: func(p printer) error { return p.tokens(nil, "") },
			want:  "{\n  \"items\": []\n}\n",
		},
		{
			name:  "revoked, table",
			print: func(p printer) error { return p.revoked("01JD8XK2M3N4P5Q6R7S8T9V0WX") },
			want:  "Token 01JD8XK2M3N4P5Q6R7S8T9V0WX revoked.\n",
		},
		{
			name:  "revoked, json",
			json:  true,
			print: func(p printer) error { return p.revoked("01JD8XK2M3N4P5Q6R7S8T9V0WX") },
			want:  "{\n  \"id\": \"01JD8XK2M3N4P5Q6R7S8T9V0WX\",\n  \"revoked\": true\n}\n",
		},
		{
			name:  "secret revoked, json",
			json:  true,
			print: func(p printer) error { return p.secretRevoked() },
			want:  "{}\n",
		},
		{
			name: "owner revoked, table",
			print: func(p printer) error {
				return p.ownerRevoked(sdk.OwnerRevocation{Owner: "alice", RevokedBefore: now, Until: timePtr(now.Add(30 * 24 * time.Hour)), Reason: "left"})
			},
			want: "Owner alice: every token issued before 2026-11-15T12:00:00Z is revoked.\n" +
				"No new token until 2026-12-15T12:00:00Z (in 30 days).\n" +
				"Reason: left\n",
		},
		{
			name: "owner revoked without until, json",
			json: true,
			print: func(p printer) error {
				return p.ownerRevoked(sdk.OwnerRevocation{Owner: "alice", RevokedBefore: now})
			},
			want: "{\n  \"owner\": \"alice\",\n  \"revoked_before\": \"2026-11-15T12:00:00Z\",\n  \"until\": null\n}\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			if err := tt.print(printer{w: &b, json: tt.json, now: now}); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Errorf("output\n got:\n%s\nwant:\n%s", b.String(), tt.want)
			}
			if n := strings.Count(b.String(), testSecret); n > 1 {
				t.Errorf("the secret is printed %d times", n)
			}
		})
	}
}

// apiRequest is what the fake API saw of one request.
type apiRequest struct {
	method, path, query, auth, contentType, body string
}

// fakeAPI answers every request with one status and body and records what
// it was sent. It stands in for the server, which has its own tests; the
// commands' tests check what they send and print.
type fakeAPI struct {
	srv    *httptest.Server
	mu     sync.Mutex
	seen   []apiRequest
	status int
	body   string
}

func newFakeAPI(t *testing.T, status int, body string) *fakeAPI {
	t.Helper()
	f := &fakeAPI{status: status, body: body}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.seen = append(f.seen, apiRequest{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), string(b)})
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Request-Id", "req-7")
		w.WriteHeader(f.status)
		_, _ = io.WriteString(w, f.body)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) requests() []apiRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]apiRequest(nil), f.seen...)
}

func tokenJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The commands turn their flags into the API's requests, present the token
// of TOKENLEDGER_TOKEN, and print the answer; bad input fails with one line
// before any request.
func TestClientCommands(t *testing.T) {
	t.Parallel()
	const caller = "tlk_01JDEEEEEEEEEEEEEEEEEEEEEE_callercallercallercallercallercallercallercallercall"
	issuedBody := tokenJSON(t, sdk.IssuedToken{TokenMetadata: activeToken, Secret: testSecret})
	tests := []struct {
		name   string
		args   []string
		env    []string // besides the server and the caller's token
		stdin  string
		noAuth bool // run without TOKENLEDGER_TOKEN
		status int
		body   string
		// want is the one request the command must send; nil: none.
		want       *apiRequest
		wantCode   int
		wantStdout string // a substring of stdout
		wantStderr string // all of stderr
	}{
		{
			name:   "issue with every flag",
			args:   []string{"token", "issue", "--owner", "team/a b", "--name", "ci", "--scope", "repo:read", "--scope", "repo:write", "--kind", "session", "--expires-in", "3600", "--idle-timeout", "30m"},
			status: 201, body: issuedBody,
			want: &apiRequest{method: "POST", path: "/v1/tokens", auth: "Bearer " + caller, contentType: "application/json",
				body: `{"owner":"team/a b","name":"ci","scopes":["repo:read","repo:write"],"kind":"session","expires_in":"1h0m0s","idle_timeout":"30m0s"}`},
			wantStdout: "Token (shown once, store it now): " + testSecret + "\n\nID:",
		},
		{
			name:   "issue with --expires-at and json output",
			args:   []string{"token", "issue", "--expires-at", "2026-12-31T23:59:00+01:00"},
			env:    []string{"TOKENLEDGER_OUTPUT=json"},
			status: 201, body: issuedBody,
			want: &apiRequest{method: "POST", path: "/v1/tokens", auth: "Bearer " + caller, contentType: "application/json",
				body: `{"expires_at":"2026-12-31T22:59:00Z"}`},
			wantStdout: `  "token": "` + testSecret + `"`,
		},
		{
			name:   "list with filters",
			args:   []string{"token", "list", "--owner", "alice", "--status", "expired", "--unused-for", "720h", "--expiring-within", "86400", "--limit", "10", "--cursor", "c1"},
			status: 200, body: `{"items":[` + tokenJSON(t, activeToken) + `],"next_cursor":"c2"}`,
			want: &apiRequest{method: "GET", path: "/v1/tokens", auth: "Bearer " + caller,
				query: "cursor=c1&expiring_within=24h0m0s&limit=10&owner=alice&status=expired&unused_for=720h0m0s"},
			wantStdout: "More tokens: add --cursor c2 (or --all).\n",
		},
		{
			name:   "expire --never sends expires_at null",
			args:   []string{"token", "expire", "01JD8XK2M3N4P5Q6R7S8T9V0WX", "--never"},
			status: 200, body: tokenJSON(t, activeToken),
			want: &apiRequest{method: "PATCH", path: "/v1/tokens/01JD8XK2M3N4P5Q6R7S8T9V0WX", auth: "Bearer " + caller, contentType: "application/json",
				body: `{"expires_at":null}`},
			wantStdout: "Status:           active\n",
		},
		{
			name:   "rotate with grace",
			args:   []string{"token", "rotate", "01JD8XK2M3N4P5Q6R7S8T9V0WX", "--grace", "10m"},
			status: 201, body: tokenJSON(t, sdk.RotatedToken{IssuedToken: sdk.IssuedToken{TokenMetadata: activeToken, Secret: testSecret}, PreviousExpiresAt: now}),
			want: &apiRequest{method: "POST", path: "/v1/tokens/01JD8XK2M3N4P5Q6R7S8T9V0WX/rotate", auth: "Bearer " + caller, contentType: "application/json",
				body: `{"grace":"10m0s"}`},
			wantStdout: "Token (shown once, store it now): " + testSecret + "\n",
		},
		{
			name:   "revoke with a reason",
			args:   []string{"token", "revoke", "01JD8XK2M3N4P5Q6R7S8T9V0WX", "--reason", "leaked"},
			status: 204,
			want: &apiRequest{method: "DELETE", path: "/v1/tokens/01JD8XK2M3N4P5Q6R7S8T9V0WX", auth: "Bearer " + caller, contentType: "application/json",
				body: `{"reason":"leaked"}`},
			wantStdout: "Token 01JD8XK2M3N4P5Q6R7S8T9V0WX revoked.\n",
		},
		{
			name:   "revoke a leaked secret from stdin, without credentials",
			args:   []string{"token", "revoke", "--secret-stdin"},
			stdin:  "\n  " + checkedSecret + "\n",
			noAuth: true,
			status: 200, body: `{}`,
			want:       &apiRequest{method: "POST", path: "/v1/revoke", contentType: "application/x-www-form-urlencoded", body: "token=" + checkedSecret},
			wantStdout: "Revocation recorded.",
		},
		{
			name:   "owner revoke escapes the owner",
			args:   []string{"owner", "revoke", "team/a b", "--until", "2026-12-31T00:00:00Z", "--reason", "offboarded"},
			status: 200, body: `{"owner":"team/a b","revoked_before":"2026-11-15T12:00:00Z","until":"2026-12-31T00:00:00Z","reason":"offboarded"}`,
			want: &apiRequest{method: "POST", path: "/v1/owners/team%2Fa%20b/revoke", auth: "Bearer " + caller, contentType: "application/json",
				body: `{"until":"2026-12-31T00:00:00Z","reason":"offboarded"}`},
			wantStdout: "Owner team/a b: every token issued before 2026-11-15T12:00:00Z is revoked.\n",
		},
		{
			name:   "an API error is one line with its code and request id",
			args:   []string{"token", "show", "01JD8XK2M3N4P5Q6R7S8T9V0WX"},
			status: 404, body: `{"error":{"code":"not_found","message":"no such token"}}`,
			want:       &apiRequest{method: "GET", path: "/v1/tokens/01JD8XK2M3N4P5Q6R7S8T9V0WX", auth: "Bearer " + caller},
			wantCode:   1,
			wantStderr: "tokenledger: get token 01JD8XK2M3N4P5Q6R7S8T9V0WX: not_found: no such token (HTTP 404, request req-7) (server {server})\n",
		},
		{
			name:       "no caller token",
			args:       []string{"token", "list"},
			noAuth:     true,
			wantCode:   1,
			wantStderr: "tokenledger: TOKENLEDGER_TOKEN is not set: export the caller's token in it (it is never taken as a flag)\n",
		},
		{
			name:       "a time that is not RFC 3339",
			args:       []string{"token", "expire", "01JD8XK2M3N4P5Q6R7S8T9V0WX", "--at", "tomorrow"},
			wantCode:   1,
			wantStderr: "tokenledger: invalid argument \"tomorrow\" for \"--at\" flag: time \"tomorrow\": want an RFC 3339 time (2026-12-31T23:59:00Z), a date (2026-12-31), \"now\", or a time relative to now (\"-2h\", \"+30d\")\n",
		},
		{
			name:       "a bad duration",
			args:       []string{"token", "list", "--unused-for", "30days"},
			wantCode:   1,
			wantStderr: "tokenledger: invalid argument \"30days\" for \"--unused-for\" flag: duration \"30days\": want a duration such as \"30d\", \"2w\", \"1d12h\", \"720h\" or whole seconds\n",
		},
		{
			name:       "a negative duration",
			args:       []string{"token", "issue", "--expires-in", "-1h"},
			wantCode:   1,
			wantStderr: "tokenledger: --expires-in -1h0m0s: want a positive duration\n",
		},
		{
			name:       "exclusive expiry flags",
			args:       []string{"token", "issue", "--expires-in", "1h", "--never-expires"},
			wantCode:   1,
			wantStderr: "tokenledger: --expires-in, --expires-at and --never-expires exclude each other\n",
		},
		{
			name:       "expire without a choice",
			args:       []string{"token", "expire", "01JD8XK2M3N4P5Q6R7S8T9V0WX"},
			wantCode:   1,
			wantStderr: "tokenledger: give exactly one of --at TIME, --in DURATION and --never\n",
		},
		{
			name:       "an unknown status",
			args:       []string{"token", "list", "--status", "dead"},
			wantCode:   1,
			wantStderr: "tokenledger: invalid argument \"dead\" for \"--status\" flag: want active, expired or revoked\n",
		},
		{
			name:       "an unknown output format",
			args:       []string{"owner", "revoke", "alice", "--output", "yaml"},
			wantCode:   1,
			wantStderr: "tokenledger: invalid argument \"yaml\" for \"--output\" flag: want table or json\n",
		},
		{
			name:       "a secret given as the id is never sent nor echoed",
			args:       []string{"token", "show", testSecret},
			wantCode:   1,
			wantStderr: "tokenledger: get token: the token id given is a secret (tlk_...): pass the token's id, not its secret\n",
		},
		{
			name:       "--secret-stdin with an id",
			args:       []string{"token", "revoke", "01JD8XK2M3N4P5Q6R7S8T9V0WX", "--secret-stdin"},
			stdin:      testSecret,
			wantCode:   1,
			wantStderr: "tokenledger: --secret-stdin takes no token id and no --reason\n",
		},
		{
			name:       "--secret-stdin with nothing on stdin",
			args:       []string{"token", "revoke", "--secret-stdin"},
			noAuth:     true,
			wantCode:   1,
			wantStderr: "tokenledger: no secret on stdin\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			api := newFakeAPI(t, tt.status, tt.body)
			env := append([]string{"TOKENLEDGER_SERVER=" + api.srv.URL}, tt.env...)
			if !tt.noAuth {
				env = append(env, tokenEnv+"="+caller)
			}
			res := runBinaryStdin(t, env, tt.stdin, tt.args...)
			if res.code != tt.wantCode {
				t.Errorf("exit code %d, want %d; stderr: %s", res.code, tt.wantCode, res.stderr)
			}
			if tt.wantStderr != "" || tt.wantCode == 0 {
				if want := strings.ReplaceAll(tt.wantStderr, "{server}", api.srv.URL); res.stderr != want {
					t.Errorf("stderr\n got %q\nwant %q", res.stderr, want)
				}
			}
			if !strings.Contains(res.stdout, tt.wantStdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.wantStdout, res.stdout)
			}
			if strings.Contains(res.stderr, caller) || strings.Contains(res.stdout, caller) {
				t.Error("the caller's token was printed")
			}
			got := api.requests()
			switch {
			case tt.want == nil && len(got) != 0:
				t.Errorf("sent %+v, want no request", got)
			case tt.want != nil && (len(got) != 1 || got[0] != *tt.want):
				t.Errorf("sent %+v\nwant [%+v]", got, *tt.want)
			}
		})
	}
}

// `token list --all` follows next_cursor and prints one document of every
// token.
func TestListAllCommand(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var cursors []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cur := r.URL.Query().Get("cursor")
		mu.Lock()
		cursors = append(cursors, cur)
		mu.Unlock()
		page := map[string]string{
			"":   `{"items":[{"id":"A","created_at":"2026-11-15T12:00:00Z"}],"next_cursor":"c1"}`,
			"c1": `{"items":[{"id":"B","created_at":"2026-11-15T12:00:00Z"}]}`,
		}[cur]
		_, _ = io.WriteString(w, page)
	}))
	t.Cleanup(srv.Close)
	res := runBinaryStdin(t, []string{"TOKENLEDGER_SERVER=" + srv.URL, tokenEnv + "=tlk_x"}, "", "token", "list", "--all", "--output", "json")
	if res.code != 0 {
		t.Fatalf("exit code %d: %s", res.code, res.stderr)
	}
	var doc sdk.TokenPage
	if err := json.Unmarshal([]byte(res.stdout), &doc); err != nil {
		t.Fatalf("stdout is not one JSON document: %v\n%s", err, res.stdout)
	}
	if len(doc.Items) != 2 || doc.Items[0].ID != "A" || doc.Items[1].ID != "B" || doc.NextCursor != "" {
		t.Errorf("document %+v, want tokens A and B and no cursor", doc)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(cursors, ",") != ",c1" {
		t.Errorf("pages asked for %q, want the first then c1", cursors)
	}
}

// runBinaryStdin runs tokenledger as runBinary does, with stdin as its
// standard input.
func runBinaryStdin(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	bin, err := buildBinary()
	if err != nil {
		t.Fatalf("build tokenledger: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return result{stdout.String(), stderr.String(), 0}
	case errors.As(err, &exit) && ctx.Err() == nil:
		return result{stdout.String(), stderr.String(), exit.ExitCode()}
	default:
		t.Fatalf("tokenledger %s: %v; stderr:\n%s", strings.Join(args, " "), err, stderr.String())
		return result{}
	}
}

// Owners and names may be in any script: the table aligns its columns by
// the width a terminal gives each character (山 takes two columns), not by
// bytes or runes.
func TestTokenTableAlignsWideCharacters(t *testing.T) {
	t.Parallel()
	wide := activeToken
	wide.ID, wide.Owner, wide.Name = "01JDEEEEEEEEEEEEEEEEEEEEEE", "山田太郎", "デプロイ"
	var b strings.Builder
	if err := writeTokenTable(&b, []sdk.Token{activeToken, wide, revokedToken}, now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("table:\n%s", b.String())
	}
	// Every column starts at the same display column on every line.
	columnAt := func(line, cellText string) int {
		i := strings.Index(line, cellText)
		if i < 0 {
			t.Fatalf("line %q lacks %q", line, cellText)
		}
		return runewidth.StringWidth(line[:i])
	}
	for _, col := range []struct{ header, cells string }{{"NAME", "ci|デプロイ|old deploy key"}, {"KIND", "api|api|api"}, {"EXPIRY", "expires|expires|expired"}} {
		want := columnAt(lines[0], col.header)
		for i, c := range strings.Split(col.cells, "|") {
			if got := columnAt(lines[i+1], c); got != want {
				t.Errorf("column %s starts at display column %d on line %d, want %d:\n%s", col.header, got, i+1, want, b.String())
			}
		}
	}
	if !strings.Contains(lines[2], "山田太郎          デプロイ") {
		t.Errorf("the wide owner is padded by runes, not display width:\n%s", b.String())
	}
}
