package ui_test

import (
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tokenledger/tokenledger/internal/testkit/apitest"
	"github.com/tokenledger/tokenledger/sdk"
	"github.com/tokenledger/tokenledger/ui"
)

// TestEveryAnswerCarriesTheCSP: pages, assets, redirects and error pages
// all carry the Content-Security-Policy (no inline script, no framing),
// and no page holds an inline script or style the policy would block.
func TestEveryAnswerCarriesTheCSP(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	tok := issueAPI(t, s, sdk.IssueRequest{Owner: "alice", Name: "ci"})
	stranger := &httpSession{s: s}
	hs := signInHTTP(t, s, s.Admin)

	check := func(what string, p page) {
		t.Helper()
		csp := p.header.Get("Content-Security-Policy")
		if csp != ui.ContentSecurityPolicy {
			t.Errorf("%s (%d): Content-Security-Policy %q, want %q", what, p.status, csp, ui.ContentSecurityPolicy)
		}
		if strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("%s: the policy %q allows inline script or framing", what, csp)
		}
		if strings.HasPrefix(p.header.Get("Content-Type"), "text/html") {
			for _, tag := range strings.Split(p.body, "<script")[1:] {
				if !strings.Contains(strings.SplitN(tag, ">", 2)[0], " src=") {
					t.Errorf("%s: an inline script: <script%.60s", what, tag)
				}
			}
			if strings.Contains(p.body, " style=") || strings.Contains(p.body, "<style") || strings.Contains(p.body, " onclick=") {
				t.Errorf("%s: inline style or event handler in the page", what)
			}
		}
	}
	if root := stranger.get(t, "/"); root.status != http.StatusSeeOther || root.header.Get("Location") != "/ui/" {
		t.Errorf("GET /: %d to %q, want 303 to /ui/", root.status, root.header.Get("Location"))
	}
	check("sign-in page", stranger.get(t, "/ui/signin"))
	check("signed-out redirect", stranger.get(t, "/ui/tokens"))
	check("stylesheet", stranger.get(t, "/ui/static/style.css"))
	check("script", stranger.get(t, "/ui/static/ui.js"))
	check("unknown page", stranger.get(t, "/ui/nowhere"))
	if p := stranger.get(t, "/ui/static/"); p.status != http.StatusNotFound {
		t.Errorf("the assets' folder is listed: %d", p.status)
	}
	check("failed sign-in", stranger.post(t, "/ui/signin", url.Values{"token": {"tlk_garbage"}}, nil))
	for _, path := range []string{"/ui/", "/ui/tokens", "/ui/tokens?status=active", "/ui/tokens/new", "/ui/tokens/" + tok.ID,
		"/ui/owners/alice", "/ui/state", "/ui/state?at=now", "/ui/tokens/not-an-id", "/ui/tokens?status=bogus"} {
		check(path, hs.get(t, path))
	}
	check("refused post", hs.post(t, "/ui/tokens/"+tok.ID+"/revoke", url.Values{}, nil))
	check("revoke", hs.post(t, "/ui/tokens/"+tok.ID+"/revoke", url.Values{"csrf": {hs.csrf}}, nil))
	check("sign out", hs.post(t, "/ui/signout", url.Values{"csrf": {hs.csrf}}, nil))
}

// TestCookiesAreNotReadableByScript: every cookie the UI sets (signing in,
// signing out, a session that is no longer valid) is HttpOnly, SameSite
// Strict and confined to the UI's paths.
func TestCookiesAreNotReadableByScript(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	var seen []string
	record := func(p page) {
		seen = append(seen, p.header.Values("Set-Cookie")...)
	}
	stranger := &httpSession{s: s}
	record(stranger.get(t, "/ui/signin"))
	record(stranger.post(t, "/ui/signin", url.Values{"token": {s.Admin}}, nil))
	hs := signInHTTP(t, s, s.Admin)
	record(hs.get(t, "/ui/tokens"))
	record(hs.post(t, "/ui/signout", url.Values{"csrf": {hs.csrf}}, nil))
	record(hs.get(t, "/ui/tokens")) // the revoked session's cookie is cleared
	if len(seen) < 3 {
		t.Fatalf("only %d Set-Cookie headers seen: %q", len(seen), seen)
	}
	for _, c := range seen {
		if !strings.Contains(c, "HttpOnly") || !strings.Contains(c, "SameSite=Strict") || !strings.Contains(c, "Path=/ui/") {
			t.Errorf("Set-Cookie %q lacks HttpOnly, SameSite=Strict or Path=/ui/", redactCookie(c))
		}
	}
}

func redactCookie(c string) string {
	if i := strings.Index(c, "tlk_"); i >= 0 {
		return c[:i] + "[secret]"
	}
	return c
}

// TestStateChangesNeedTheSessionsCSRFTokenAndOrigin: a form post with the
// session's cookie is refused (403, nothing recorded) without the
// session's CSRF token, with another session's, or from another origin;
// the same post from the UI's own page succeeds.
func TestStateChangesNeedTheSessionsCSRFTokenAndOrigin(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	tok := issueAPI(t, s, sdk.IssueRequest{Owner: "alice", Name: "ci"})
	hs := signInHTTP(t, s, s.Admin)
	other := signInHTTP(t, s, s.Admin)
	path := "/ui/tokens/" + tok.ID + "/revoke"
	for _, c := range []struct {
		name   string
		form   url.Values
		header http.Header
	}{
		{"no CSRF token", url.Values{"reason": {"x"}}, nil},
		{"a wrong CSRF token", url.Values{"csrf": {"AAAA"}}, nil},
		{"another session's CSRF token", url.Values{"csrf": {other.csrf}}, nil},
		{"another origin", url.Values{"csrf": {hs.csrf}}, http.Header{"Origin": {"http://attacker.example"}}},
		{"a cross-site fetch", url.Values{"csrf": {hs.csrf}}, http.Header{"Sec-Fetch-Site": {"cross-site"}}},
		{"a same-site but cross-origin fetch", url.Values{"csrf": {hs.csrf}}, http.Header{"Sec-Fetch-Site": {"same-site"}}},
	} {
		before := s.LastSequence(t)
		p := hs.post(t, path, c.form, c.header)
		if p.status != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", c.name, p.status)
		}
		if after := s.LastSequence(t); after != before {
			t.Errorf("%s: the stream moved from %d to %d", c.name, before, after)
		}
	}
	if st := getToken(t, s, tok.ID).Status; st != "active" {
		t.Fatalf("after refused posts the token is %s", st)
	}
	p := hs.post(t, path, url.Values{"csrf": {hs.csrf}}, http.Header{"Origin": {s.URL}, "Sec-Fetch-Site": {"same-origin"}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("the UI's own post: %d %s", p.status, p.body)
	}
	if st := getToken(t, s, tok.ID).Status; st != "revoked" {
		t.Errorf("after the UI's own post the token is %s, want revoked", st)
	}
}

// TestBadInputIsAnsweredLikeTheAPI: the UI answers bad input with the
// API's status and message, and records nothing.
func TestBadInputIsAnsweredLikeTheAPI(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	tok := issueAPI(t, s, sdk.IssueRequest{Owner: "alice", Name: "ci"})
	hs := signInHTTP(t, s, s.Admin)
	for _, c := range []struct{ ui, api string }{
		{"/ui/tokens?status=bogus", "/v1/tokens?status=bogus"},
		{"/ui/tokens?colour=red", "/v1/tokens?colour=red"},
		{"/ui/tokens?unused_for=-3d", "/v1/tokens?unused_for=-3d"},
		{"/ui/tokens?owner=" + url.QueryEscape("bad owner\x01"), "/v1/tokens?owner=" + url.QueryEscape("bad owner\x01")},
		{"/ui/tokens/not-an-id", "/v1/tokens/not-an-id"},
		{"/ui/tokens/01ARZ3NDEKTSV4RRFFQ69G5FAV", "/v1/tokens/01ARZ3NDEKTSV4RRFFQ69G5FAV"},
	} {
		p := hs.get(t, c.ui)
		st, b := apiCall(t, s, http.MethodGet, c.api, s.Admin, nil)
		var e sdk.ErrorBody
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("%s: %d %s", c.api, st, b)
		}
		if p.status != st || !strings.Contains(html.UnescapeString(p.body), e.Error.Message) {
			t.Errorf("%s: %d, want the API's %d %q; page: %.300s", c.ui, p.status, st, e.Error.Message, p.body)
		}
	}
	before := s.LastSequence(t)
	for _, c := range []struct {
		path string
		form url.Values
	}{
		{"/ui/tokens", url.Values{"name": {"x"}, "expires_in": {"-1h"}}},
		{"/ui/tokens", url.Values{"name": {"x"}, "kind": {"robot"}}},
		{"/ui/tokens", url.Values{"name": {"x"}, "scopes": {"bad\"scope"}}},
		{"/ui/tokens/" + tok.ID + "/expiry", url.Values{"expires_at": {"yesterday-ish"}}},
		{"/ui/tokens/" + tok.ID + "/expiry", url.Values{"expires_at": {"-1d"}}},
		{"/ui/tokens/" + tok.ID + "/rotate", url.Values{"grace": {"-5m"}}},
	} {
		c.form.Set("csrf", hs.csrf)
		if p := hs.post(t, c.path, c.form, nil); p.status != http.StatusBadRequest {
			t.Errorf("POST %s %v: %d, want 400; page: %.300s", c.path, c.form, p.status, p.body)
		}
	}
	if after := s.LastSequence(t); after != before {
		t.Errorf("bad input moved the stream from %d to %d", before, after)
	}
}
