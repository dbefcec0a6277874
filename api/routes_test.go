package api_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/internal/testkit/apitest"
	"github.com/tokenledger/tokenledger/sdk"
	"github.com/tokenledger/tokenledger/version"
)

// TestEveryRoute drives every route of the API against a real stack,
// through each answer PRODUCT.md's table lists, error statuses included.
func TestEveryRoute(t *testing.T) {
	s := apitest.Start(t, apitest.Options{})
	admin := s.Admin

	// alice may issue and manage her own tokens with the scopes she holds.
	alice := issue(t, s, admin, sdk.IssueRequest{Owner: "alice", Name: "alice's key", Scopes: []string{"repo:read", "repo:write"}})
	if !strings.HasPrefix(alice.Secret, domain.SecretPrefix) || alice.Owner != "alice" || alice.Status != "active" ||
		alice.ExpiresAt == nil || alice.LastUsedAt != nil || alice.UseCount != 0 || alice.Kind != "api" {
		t.Fatalf("issued token: %+v", alice.TokenMetadata)
	}
	if want := alice.CreatedAt.Add(s.Policy.DefaultLifetime); !alice.ExpiresAt.Equal(want) {
		t.Errorf("default expiry %v, want %v (the policy's default lifetime)", alice.ExpiresAt, want)
	}

	t.Run("POST /v1/tokens", func(t *testing.T) {
		own := issue(t, s, alice.Secret, sdk.IssueRequest{Name: "ci", Scopes: []string{"repo:read"}, ExpiresIn: ptr(sdk.Duration(24 * time.Hour))})
		if own.Owner != "alice" || !slices.Equal(own.Scopes, []string{"repo:read"}) {
			t.Errorf("issue without owner: %+v, want alice's token with repo:read", own.TokenMetadata)
		}
		at := s.Clock.Now().Add(12 * time.Hour).Truncate(time.Second)
		sess := issue(t, s, admin, sdk.IssueRequest{Owner: "alice", Kind: "session", ExpiresAt: &at, IdleTimeout: ptr(sdk.Duration(10 * time.Minute))})
		if sess.Kind != "session" || sess.IdleTimeout == nil || time.Duration(*sess.IdleTimeout) != 10*time.Minute ||
			sess.AbsoluteExpiresAt == nil || !sess.AbsoluteExpiresAt.Equal(at) {
			t.Errorf("session: %+v", sess.TokenMetadata)
		}
		for _, c := range []struct {
			name   string
			secret string
			body   any
			status int
			code   string
		}{
			{"bad kind", admin, sdk.IssueRequest{Owner: "alice", Kind: "robot"}, 400, sdk.CodeInvalidRequest},
			{"beyond the maximum lifetime", admin, sdk.IssueRequest{Owner: "alice", ExpiresIn: ptr(sdk.Duration(s.Policy.MaxLifetime + time.Hour))}, 400, sdk.CodePolicyViolation},
			{"never expires, not allowed", admin, sdk.IssueRequest{Owner: "alice", NeverExpires: true}, 400, sdk.CodePolicyViolation},
			{"no credentials", "", sdk.IssueRequest{Owner: "alice"}, 401, sdk.CodeUnauthorized},
			{"for another owner", alice.Secret, sdk.IssueRequest{Owner: "bob"}, 403, sdk.CodeForbidden},
			{"scope escalation", alice.Secret, sdk.IssueRequest{Scopes: []string{"repo:read", "ledger:admin"}}, 403, sdk.CodeForbidden},
			{"body too large", admin, `{"name":"` + strings.Repeat("x", 70<<10) + `"}`, 413, sdk.CodePayloadTooLarge},
		} {
			before := s.LastSequence(t)
			res := do(t, s, req{method: "POST", path: "/v1/tokens", secret: c.secret, body: c.body})
			if res.status != c.status || res.errorCode(t) != c.code {
				t.Errorf("%s: %d %s, want %d %s", c.name, res.status, res.body, c.status, c.code)
			}
			if after := s.LastSequence(t); after != before {
				t.Errorf("%s: the stream grew from %d to %d", c.name, before, after)
			}
		}
		res := do(t, s, req{method: "POST", path: "/v1/tokens", secret: admin, body: `name=x`, contentType: "application/x-www-form-urlencoded"})
		if res.status != 415 || res.errorCode(t) != sdk.CodeUnsupportedMediaType {
			t.Errorf("form body: %d %s, want 415", res.status, res.body)
		}
	})

	t.Run("GET /v1/tokens", func(t *testing.T) {
		for range 3 {
			issue(t, s, admin, sdk.IssueRequest{Owner: "pager", Scopes: []string{"x"}})
		}
		s.WaitProjected(t)
		var got []string
		cursor := ""
		for pages := 0; ; pages++ {
			path := "/v1/tokens?owner=pager&limit=2"
			if cursor != "" {
				path += "&cursor=" + url.QueryEscape(cursor)
			}
			res := do(t, s, req{method: "GET", path: path, secret: admin})
			if res.status != 200 {
				t.Fatalf("list: %d %s", res.status, res.body)
			}
			var page sdk.TokenPage
			res.decode(t, &page)
			for _, it := range page.Items {
				got = append(got, it.ID)
			}
			if page.NextCursor == "" {
				break
			}
			if pages > 3 {
				t.Fatal("pagination does not end")
			}
			cursor = page.NextCursor
		}
		if len(got) != 3 {
			t.Errorf("paged through %d tokens of pager, want 3", len(got))
		}
		res := do(t, s, req{method: "GET", path: "/v1/tokens", secret: alice.Secret})
		var page sdk.TokenPage
		res.decode(t, &page)
		for _, it := range page.Items {
			if it.Owner != "alice" {
				t.Errorf("alice's listing shows %s's token", it.Owner)
			}
		}
		res = do(t, s, req{method: "GET", path: "/v1/tokens?status=active&unused_for=1h&expiring_within=720h", secret: admin})
		if res.status != 200 {
			t.Errorf("filters: %d %s", res.status, res.body)
		}
		for _, c := range []struct {
			name, path, secret string
			status             int
		}{
			{"bad status", "/v1/tokens?status=dormant", admin, 400},
			{"bad duration", "/v1/tokens?unused_for=soon", admin, 400},
			{"unknown parameter", "/v1/tokens?ownr=alice", admin, 400},
			{"bad cursor", "/v1/tokens?cursor=zzz", admin, 400},
			{"no credentials", "/v1/tokens", "", 401},
			{"another owner's tokens", "/v1/tokens?owner=pager", alice.Secret, 403},
		} {
			res := do(t, s, req{method: "GET", path: c.path, secret: c.secret})
			if res.status != c.status {
				t.Errorf("%s: %d %s, want %d", c.name, res.status, res.body, c.status)
			}
			res.errorCode(t)
		}
	})

	t.Run("GET /v1/tokens/{id}", func(t *testing.T) {
		res := do(t, s, req{method: "GET", path: "/v1/tokens/" + alice.ID, secret: alice.Secret})
		var tok sdk.Token
		res.decode(t, &tok)
		if res.status != 200 || tok.ID != alice.ID || tok.Owner != "alice" {
			t.Fatalf("get: %d %s", res.status, res.body)
		}
		if strings.Contains(string(res.body), "tlk_") || strings.Contains(string(res.body), "sha256") {
			t.Errorf("metadata shows the secret or its hash: %s", res.body)
		}
		bob, _ := issueDirect(t, s, "bob", []string{"x"}, 0)
		unknown, _ := domain.NewTokenID(s.Clock.Now(), nil)
		for _, c := range []struct {
			name, path, secret string
			status             int
		}{
			{"another owner's token", "/v1/tokens/" + alice.ID, bob, 404},
			{"unknown id", "/v1/tokens/" + unknown.String(), admin, 404},
			{"not a ULID", "/v1/tokens/not-a-ulid", admin, 400},
			{"no credentials", "/v1/tokens/" + alice.ID, "", 401},
		} {
			res := do(t, s, req{method: "GET", path: c.path, secret: c.secret})
			if res.status != c.status {
				t.Errorf("%s: %d %s, want %d", c.name, res.status, res.body, c.status)
			}
			res.errorCode(t)
		}
	})

	t.Run("PATCH /v1/tokens/{id}", func(t *testing.T) {
		tok := issue(t, s, alice.Secret, sdk.IssueRequest{Name: "shorten me"})
		shorter := s.Clock.Now().Add(time.Hour).Truncate(time.Second)
		res := do(t, s, req{method: "PATCH", path: "/v1/tokens/" + tok.ID, secret: alice.Secret, body: sdk.SetExpiryRequest{ExpiresAt: &shorter}})
		var got sdk.Token
		res.decode(t, &got)
		if res.status != 200 || got.ExpiresAt == nil || !got.ExpiresAt.Equal(shorter) {
			t.Fatalf("shorten: %d %s", res.status, res.body)
		}
		later := shorter.Add(24 * time.Hour)
		res = do(t, s, req{method: "PATCH", path: "/v1/tokens/" + tok.ID, secret: admin, body: sdk.SetExpiryRequest{ExpiresAt: &later}})
		if res.status != 200 {
			t.Errorf("admin extends: %d %s", res.status, res.body)
		}
		past := s.Clock.Now().Add(-time.Hour)
		revoked := issue(t, s, alice.Secret, sdk.IssueRequest{Name: "revoked"})
		if r := do(t, s, req{method: "DELETE", path: "/v1/tokens/" + revoked.ID, secret: alice.Secret}); r.status != 204 {
			t.Fatalf("revoke: %d %s", r.status, r.body)
		}
		for _, c := range []struct {
			name, id, secret string
			body             any
			status           int
			code             string
		}{
			{"owner extends", tok.ID, alice.Secret, map[string]any{"expires_at": later.Add(time.Hour)}, 403, sdk.CodeForbidden},
			{"owner clears", tok.ID, alice.Secret, map[string]any{"expires_at": nil}, 403, sdk.CodeForbidden},
			{"in the past", tok.ID, admin, sdk.SetExpiryRequest{ExpiresAt: &past}, 400, sdk.CodePolicyViolation},
			{"beyond the maximum lifetime", tok.ID, admin, sdk.SetExpiryRequest{ExpiresAt: ptr(s.Clock.Now().Add(s.Policy.MaxLifetime + time.Hour))}, 400, sdk.CodePolicyViolation},
			{"missing expires_at", tok.ID, admin, `{}`, 400, sdk.CodeInvalidRequest},
			{"revoked", revoked.ID, admin, sdk.SetExpiryRequest{ExpiresAt: &shorter}, 409, sdk.CodeConflict},
			{"unknown", "01M81AYQ6J4PFQY8YYP7860CH3", admin, sdk.SetExpiryRequest{ExpiresAt: &shorter}, 404, sdk.CodeNotFound},
			{"no credentials", tok.ID, "", sdk.SetExpiryRequest{ExpiresAt: &shorter}, 401, sdk.CodeUnauthorized},
		} {
			before := s.LastSequence(t)
			res := do(t, s, req{method: "PATCH", path: "/v1/tokens/" + c.id, secret: c.secret, body: c.body})
			if res.status != c.status || res.errorCode(t) != c.code {
				t.Errorf("%s: %d %s, want %d %s", c.name, res.status, res.body, c.status, c.code)
			}
			if after := s.LastSequence(t); after != before {
				t.Errorf("%s: the stream grew from %d to %d", c.name, before, after)
			}
		}
	})

	t.Run("DELETE /v1/tokens/{id}", func(t *testing.T) {
		tok := issue(t, s, alice.Secret, sdk.IssueRequest{Name: "doomed"})
		if got := authStatus(t, s, tok.Secret); got != 200 {
			t.Fatalf("auth before revoke: %d", got)
		}
		res := do(t, s, req{method: "DELETE", path: "/v1/tokens/" + tok.ID, secret: alice.Secret, body: sdk.RevokeRequest{Reason: "leaked in a log"}})
		if res.status != 204 || len(res.body) != 0 {
			t.Fatalf("revoke: %d %q", res.status, res.body)
		}
		if got := authStatus(t, s, tok.Secret); got != 401 {
			t.Errorf("auth right after revoke: %d, want 401", got)
		}
		before := s.LastSequence(t)
		if res := do(t, s, req{method: "DELETE", path: "/v1/tokens/" + tok.ID, secret: admin}); res.status != 204 {
			t.Errorf("second revoke: %d %s, want 204", res.status, res.body)
		}
		if after := s.LastSequence(t); after != before {
			t.Errorf("a second revoke appended %d events", after-before)
		}
		res = do(t, s, req{method: "GET", path: "/v1/tokens/" + tok.ID, secret: admin})
		var got sdk.Token
		res.decode(t, &got)
		if got.Status != "revoked" || got.RevokedReason == nil || *got.RevokedReason != "leaked in a log" || got.RevokedAt == nil {
			t.Errorf("after revoke: %s", res.body)
		}
		if res := do(t, s, req{method: "DELETE", path: "/v1/tokens/01M81AYQ6J4PFQY8YYP7860CH3", secret: admin}); res.status != 404 {
			t.Errorf("unknown: %d, want 404", res.status)
		}
	})

	t.Run("POST /v1/tokens/{id}/rotate", func(t *testing.T) {
		old := issue(t, s, alice.Secret, sdk.IssueRequest{Name: "rotating", Scopes: []string{"repo:read"}})
		before := s.LastSequence(t)
		res := do(t, s, req{method: "POST", path: "/v1/tokens/" + old.ID + "/rotate", secret: alice.Secret, body: sdk.RotateRequest{Grace: ptr(sdk.Duration(time.Hour))}})
		if res.status != 201 {
			t.Fatalf("rotate: %d %s", res.status, res.body)
		}
		var rot sdk.RotatedToken
		res.decode(t, &rot)
		if rot.Secret == "" || rot.ID == old.ID || rot.Name != old.Name || !slices.Equal(rot.Scopes, old.Scopes) ||
			rot.RotatedFrom == nil || *rot.RotatedFrom != old.ID {
			t.Errorf("rotated: %s", res.body)
		}
		if want := s.Clock.Now().Add(time.Hour); !rot.PreviousExpiresAt.Equal(want.Truncate(time.Microsecond)) {
			t.Errorf("previous_expires_at %v, want %v", rot.PreviousExpiresAt, want)
		}
		if after := s.LastSequence(t); after != before+2 {
			t.Errorf("rotation appended %d events, want 2 (one atomic append)", after-before)
		}
		if authStatus(t, s, old.Secret) != 200 || authStatus(t, s, rot.Secret) != 200 {
			t.Error("both tokens must work during the grace period")
		}
		res = do(t, s, req{method: "POST", path: "/v1/tokens/" + old.ID + "/rotate", secret: alice.Secret})
		if res.status != 409 || res.errorCode(t) != sdk.CodeConflict {
			t.Errorf("rotating twice: %d %s, want 409", res.status, res.body)
		}
		if res := do(t, s, req{method: "POST", path: "/v1/tokens/01M81AYQ6J4PFQY8YYP7860CH3/rotate", secret: admin}); res.status != 404 {
			t.Errorf("unknown: %d, want 404", res.status)
		}
	})

	t.Run("GET /v1/tokens/{id}/events", func(t *testing.T) {
		tok := issue(t, s, alice.Secret, sdk.IssueRequest{Name: "history"})
		do(t, s, req{method: "DELETE", path: "/v1/tokens/" + tok.ID, secret: alice.Secret, body: sdk.RevokeRequest{Reason: "done"}})
		res := do(t, s, req{method: "GET", path: "/v1/tokens/" + tok.ID + "/events", secret: alice.Secret})
		var list sdk.EventList
		res.decode(t, &list)
		if res.status != 200 || len(list.Items) != 2 || list.Items[0].Type != "token.issued.v1" || list.Items[1].Type != "token.revoked.v1" ||
			list.Items[0].Sequence >= list.Items[1].Sequence {
			t.Fatalf("events: %d %s", res.status, res.body)
		}
		if list.Items[0].Actor != "token:"+alice.ID {
			t.Errorf("actor %q, want the calling token", list.Items[0].Actor)
		}
		if strings.Contains(string(res.body), "secret_sha256") {
			t.Errorf("events show the secret's hash: %s", res.body)
		}
		bob, _ := issueDirect(t, s, "bob", []string{"x"}, 0)
		if res := do(t, s, req{method: "GET", path: "/v1/tokens/" + tok.ID + "/events", secret: bob}); res.status != 404 {
			t.Errorf("another owner: %d, want 404", res.status)
		}
	})

	t.Run("POST /v1/owners/{owner}/revoke", func(t *testing.T) {
		a1 := issue(t, s, admin, sdk.IssueRequest{Owner: "carol", Scopes: []string{"x"}})
		a2 := issue(t, s, admin, sdk.IssueRequest{Owner: "carol", Scopes: []string{"x"}})
		before := s.LastSequence(t)
		until := s.Clock.Now().Add(time.Hour).Truncate(time.Second)
		res := do(t, s, req{method: "POST", path: "/v1/owners/carol/revoke", secret: a1.Secret, body: sdk.OwnerRevokeRequest{Reason: "compromised", Until: &until}})
		var rev sdk.OwnerRevocation
		res.decode(t, &rev)
		if res.status != 200 || rev.Owner != "carol" || rev.Until == nil || !rev.Until.Equal(until) || rev.Reason != "compromised" {
			t.Fatalf("owner revoke: %d %s", res.status, res.body)
		}
		if after := s.LastSequence(t); after != before+1 {
			t.Errorf("owner revoke appended %d events, want 1", after-before)
		}
		if authStatus(t, s, a1.Secret) != 401 || authStatus(t, s, a2.Secret) != 401 {
			t.Error("carol's tokens still pass after the owner revocation")
		}
		res = do(t, s, req{method: "POST", path: "/v1/tokens", secret: admin, body: sdk.IssueRequest{Owner: "carol"}})
		if res.status != 403 || res.errorCode(t) != sdk.CodeOwnerBlocked {
			t.Errorf("issue during the ban: %d %s, want 403 owner_blocked", res.status, res.body)
		}
		s.Clock.Advance(2 * time.Hour)
		fresh := issue(t, s, admin, sdk.IssueRequest{Owner: "carol", Scopes: []string{"x"}})
		if authStatus(t, s, fresh.Secret) != 200 {
			t.Error("a token issued after the ban ended does not pass")
		}
		for _, c := range []struct {
			name, path, secret string
			body               any
			status             int
		}{
			{"another owner", "/v1/owners/carol/revoke", alice.Secret, nil, 403},
			{"owner with a dot", "/v1/owners/a.b/revoke", admin, nil, 400},
			{"until in the past", "/v1/owners/carol/revoke", admin, sdk.OwnerRevokeRequest{Until: ptr(s.Clock.Now().Add(-time.Hour))}, 400},
			{"no credentials", "/v1/owners/carol/revoke", "", nil, 401},
		} {
			before := s.LastSequence(t)
			res := do(t, s, req{method: "POST", path: c.path, secret: c.secret, body: c.body})
			if res.status != c.status {
				t.Errorf("%s: %d %s, want %d", c.name, res.status, res.body, c.status)
			}
			res.errorCode(t)
			if after := s.LastSequence(t); after != before {
				t.Errorf("%s: the stream grew", c.name)
			}
		}
	})

	t.Run("POST /v1/revoke", func(t *testing.T) {
		tok := issue(t, s, alice.Secret, sdk.IssueRequest{Name: "leaked"})
		res := do(t, s, req{method: "POST", path: "/v1/revoke", body: "token=" + url.QueryEscape(tok.Secret) + "&token_type_hint=access_token", contentType: "application/x-www-form-urlencoded"})
		if res.status != 200 {
			t.Fatalf("revoke by secret: %d %s", res.status, res.body)
		}
		if authStatus(t, s, tok.Secret) != 401 {
			t.Error("a token revoked by its secret still passes")
		}
		json := do(t, s, req{method: "POST", path: "/v1/revoke", body: sdk.SecretRequest{Token: breakChecksum(alice.Secret)}})
		unknownID, _ := domain.NewTokenID(s.Clock.Now(), nil)
		forged, _ := domain.GenerateSecret(unknownID, nil)
		for _, c := range []struct {
			name   string
			res    resp
			status int
		}{
			{"bad checksum (JSON)", json, 200},
			{"unknown token", do(t, s, req{method: "POST", path: "/v1/revoke", body: "token=" + forged.Reveal(), contentType: "application/x-www-form-urlencoded"}), 200},
			{"garbage", do(t, s, req{method: "POST", path: "/v1/revoke", body: "token=hello", contentType: "application/x-www-form-urlencoded"}), 200},
			{"no token", do(t, s, req{method: "POST", path: "/v1/revoke", body: "", contentType: "application/x-www-form-urlencoded"}), 400},
		} {
			if c.res.status != c.status {
				t.Errorf("%s: %d %s, want %d", c.name, c.res.status, c.res.body, c.status)
			}
		}
		if authStatus(t, s, alice.Secret) != 200 {
			t.Error("a secret with one wrong character revoked the real token")
		}
	})

	t.Run("POST /v1/introspect", func(t *testing.T) {
		introspector, _ := issueDirect(t, s, "gateway", []string{"ledger:introspect"}, 0)
		res := do(t, s, req{method: "POST", path: "/v1/introspect", secret: introspector, body: "token=" + url.QueryEscape(alice.Secret), contentType: "application/x-www-form-urlencoded"})
		var in sdk.Introspection
		res.decode(t, &in)
		if res.status != 200 || !in.Active || in.Subject != "alice" || in.Scope != "repo:read repo:write" || in.TokenType != "api" ||
			in.JTI != alice.ID || in.Exp != alice.ExpiresAt.Unix() || in.Iat == 0 {
			t.Fatalf("introspect: %d %s", res.status, res.body)
		}
		res = do(t, s, req{method: "POST", path: "/v1/introspect", secret: admin, body: sdk.SecretRequest{Token: "tlk_nonsense"}})
		if res.status != 200 || string(res.body) != "{\"active\":false}\n" {
			t.Errorf("inactive: %d %q, want exactly {\"active\":false}", res.status, res.body)
		}
		for _, c := range []struct {
			name, secret string
			status       int
		}{
			{"without the scope", alice.Secret, 403},
			{"no credentials", "", 401},
		} {
			res := do(t, s, req{method: "POST", path: "/v1/introspect", secret: c.secret, body: "token=x", contentType: "application/x-www-form-urlencoded"})
			if res.status != c.status {
				t.Errorf("%s: %d, want %d", c.name, res.status, c.status)
			}
			res.errorCode(t)
		}
		if res := do(t, s, req{method: "POST", path: "/v1/introspect", secret: admin, body: "", contentType: "-"}); res.status != 400 {
			t.Errorf("no token: %d, want 400", res.status)
		}
	})

	t.Run("GET /v1/auth", func(t *testing.T) {
		res := do(t, s, req{method: "GET", path: "/v1/auth?scope=repo:read", secret: alice.Secret})
		if res.status != 200 || res.header.Get("X-Token-Owner") != "alice" || res.header.Get("X-Token-Id") != alice.ID ||
			res.header.Get("X-Token-Scopes") != "repo:read repo:write" {
			t.Fatalf("auth: %d %v", res.status, res.header)
		}
		expiring := issue(t, s, admin, sdk.IssueRequest{Owner: "alice", ExpiresIn: ptr(sdk.Duration(time.Minute))})
		revoked := issue(t, s, admin, sdk.IssueRequest{Owner: "alice"})
		do(t, s, req{method: "DELETE", path: "/v1/tokens/" + revoked.ID, secret: admin})
		s.Clock.Advance(2 * time.Minute)
		unknownID, _ := domain.NewTokenID(s.Clock.Now().Add(-time.Hour), nil)
		unknown, _ := domain.GenerateSecret(unknownID, nil)
		for _, c := range []struct {
			name, secret, query, wantDesc string
			status                        int
		}{
			{"malformed", "tlk_short", "", "malformed", 401},
			{"bad checksum", breakChecksum(alice.Secret), "", "malformed", 401},
			{"unknown", unknown.Reveal(), "", "unknown", 401},
			{"expired", expiring.Secret, "", "expired", 401},
			{"revoked", revoked.Secret, "", "revoked", 401},
			{"insufficient scope", alice.Secret, "?scope=admin:write", "", 403},
		} {
			res := do(t, s, req{method: "GET", path: "/v1/auth" + c.query, secret: c.secret})
			if res.status != c.status {
				t.Errorf("%s: %d, want %d", c.name, res.status, c.status)
			}
			www := res.header.Get("WWW-Authenticate")
			switch c.status {
			case 401:
				if !strings.Contains(www, `error="invalid_token"`) || !strings.Contains(www, c.wantDesc) {
					t.Errorf("%s: WWW-Authenticate %q", c.name, www)
				}
				if res.errorCode(t) != sdk.CodeInvalidToken {
					t.Errorf("%s: code %s", c.name, res.body)
				}
			case 403:
				if !strings.Contains(www, `error="insufficient_scope"`) || res.errorCode(t) != sdk.CodeInsufficientScope {
					t.Errorf("%s: WWW-Authenticate %q, body %s", c.name, www, res.body)
				}
			}
			if res.header.Get("X-Token-Owner") != "" {
				t.Errorf("%s: X-Token-Owner on a refusal", c.name)
			}
		}
		// Envoy's form: the client's method and path, however unclean,
		// are checked, never redirected.
		for _, path := range []string{"/v1/auth/orders/7?expand=lines", "/v1/auth/a//b/../c", "/v1/auth/"} {
			res := do(t, s, req{method: "POST", path: path, secret: alice.Secret, header: http.Header{"X-Tokenledger-Scope": {"repo:read"}}})
			if res.status != 200 || res.header.Get("X-Token-Owner") != "alice" {
				t.Errorf("Envoy form %s: %d %v", path, res.status, res.header)
			}
		}
		if res := do(t, s, req{method: "DELETE", path: "/v1/auth/x", secret: alice.Secret, header: http.Header{"X-Tokenledger-Scope": {"admin:write"}}}); res.status != 403 {
			t.Errorf("Envoy form without the scope of X-Tokenledger-Scope: %d, want 403", res.status)
		}
		if res := do(t, s, req{method: "GET", path: "/v1/auth"}); res.status != 401 || !strings.HasPrefix(res.header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("no token: %d %v", res.status, res.header)
		}
	})

	t.Run("health and documents", func(t *testing.T) {
		for _, c := range []struct {
			path   string
			status int
			want   string
		}{
			{"/livez", 200, `"status":"ok"`},
			{"/livez", 200, `"version":"` + version.Get().Version + `"`},
			{"/metrics", 200, `tokenledger_build_info{go_version="` + version.Get().GoVersion + `",revision="` + version.Get().Revision + `",version="` + version.Get().Version + `"} 1`},
			{"/readyz", 200, `"status":"ready"`},
			{"/v1/openapi.json", 200, `"openapi"`},
			{"/metrics", 200, `tokenledger_http_requests_total{code="201",method="POST",route="/v1/tokens"}`},
			{"/metrics", 200, `tokenledger_validation_duration_seconds_count{result="revoked"}`},
			{"/metrics", 200, `tokenledger_append_duration_seconds_count{op="rotate"} 1`},
			{"/metrics", 200, `tokenledger_validator_tokens`},
		} {
			res := do(t, s, req{method: "GET", path: c.path})
			if res.status != c.status || !strings.Contains(string(res.body), c.want) {
				t.Errorf("%s: %d %s", c.path, res.status, res.body)
			}
		}
		res := do(t, s, req{method: "PUT", path: "/v1/tokens"})
		if res.status != 405 || res.header.Get("Allow") == "" || res.errorCode(t) != sdk.CodeMethodNotAllowed {
			t.Errorf("wrong method: %d %v %s", res.status, res.header, res.body)
		}
		if res := do(t, s, req{method: "GET", path: "/v2/tokens"}); res.status != 404 || res.errorCode(t) != sdk.CodeNotFound {
			t.Errorf("unknown path: %d %s", res.status, res.body)
		}
	})
}

// A revocation that cannot be recorded is a 503 with Retry-After, never a
// silent 200.
func TestRevokeWithoutTheEventStore(t *testing.T) {
	s := apitest.Start(t, apitest.Options{})
	tok := issue(t, s, s.Admin, sdk.IssueRequest{Owner: "alice", Name: "unlucky"})
	s.StopNATS(t)
	res := do(t, s, req{method: "POST", path: "/v1/revoke", body: "token=" + url.QueryEscape(tok.Secret), contentType: "application/x-www-form-urlencoded"})
	if res.status != http.StatusServiceUnavailable || res.header.Get("Retry-After") == "" || res.errorCode(t) != sdk.CodeUnavailable {
		t.Errorf("revoke with NATS down: %d %v %s, want 503 with Retry-After", res.status, res.header, res.body)
	}
}

// TestMutationsAnswerByTheirDeadline stops the nats-server under a running
// API node: every mutation then answers 503 with Retry-After by the
// configured mutation timeout (the event store's attempts and the ledger's
// retries all end with it), never hangs past it.
func TestMutationsAnswerByTheirDeadline(t *testing.T) {
	const deadline = 2 * time.Second
	s := apitest.Start(t, apitest.Options{MutationTimeout: deadline})
	tok := issue(t, s, s.Admin, sdk.IssueRequest{Owner: "alice", Name: "victim"})
	s.StopNATS(t)
	for _, rq := range []req{
		{method: "POST", path: "/v1/tokens", secret: s.Admin, body: sdk.IssueRequest{Owner: "alice"}},
		{method: "PATCH", path: "/v1/tokens/" + tok.ID, secret: s.Admin, body: map[string]any{"expires_at": s.Clock.Now().Add(time.Hour)}},
		{method: "POST", path: "/v1/tokens/" + tok.ID + "/rotate", secret: s.Admin, body: map[string]any{}},
		{method: "DELETE", path: "/v1/tokens/" + tok.ID, secret: s.Admin},
		{method: "POST", path: "/v1/owners/alice/revoke", secret: s.Admin, body: map[string]any{}},
		{method: "POST", path: "/v1/revoke", body: "token=" + url.QueryEscape(tok.Secret), contentType: "application/x-www-form-urlencoded"},
	} {
		start := time.Now()
		res := do(t, s, rq)
		took := time.Since(start)
		if res.status != http.StatusServiceUnavailable || res.header.Get("Retry-After") == "" || res.errorCode(t) != sdk.CodeUnavailable {
			t.Errorf("%s %s with NATS down: %d %s, want 503 with Retry-After", rq.method, rq.path, res.status, res.body)
		}
		// A bound, not a speed: the answer must come by the deadline
		// (with a second's slack for the busy test machine).
		if took > deadline+time.Second {
			t.Errorf("%s %s with NATS down answered after %v, deadline %v", rq.method, rq.path, took.Round(time.Millisecond), deadline)
		}
	}
}
