//go:build linux

package ui_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/tokenledger/tokenledger/internal/testkit/apitest"
	"github.com/tokenledger/tokenledger/internal/testkit/chromiumtest"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/sdk"
	"github.com/tokenledger/tokenledger/ui"
)

// ScreenshotsEnv names the folder the browser tests write their
// screenshots to; by default it is the test's artifact directory (kept
// with go test -artifacts).
const ScreenshotsEnv = "TOKENLEDGER_UI_SCREENSHOTS"

// browser is a headless chromium tab on a stack's UI.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
	dir  string
}

// newBrowser starts Debian's chromium headless for t (installing it if
// needed) and opens a tab.
func newBrowser(t *testing.T, s *apitest.Stack) *browser {
	t.Helper()
	exe := chromiumtest.Find(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	// The first action starts the browser; it must not run under a
	// deadline, which would stop the browser with it.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium %s: %v", exe, err)
	}
	dir := os.Getenv(ScreenshotsEnv)
	if dir == "" {
		dir = t.ArtifactDir()
	} else {
		dir = filepath.Join(dir, t.Name())
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots of %s go to %s (set %s to choose the folder)", t.Name(), dir, ScreenshotsEnv)
	return &browser{t: t, ctx: ctx, base: s.URL, dir: dir}
}

// do runs actions, failing the test on error; each call is bounded.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v (at %s)", what, err, b.location())
	}
}

func run[T any](b *browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return v
}

func (b *browser) location() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	return loc
}

// open navigates to path of the UI.
func (b *browser) open(path string) {
	b.t.Helper()
	b.do("open "+path, chromedp.Navigate(b.base+path))
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	return run(b, "text of "+sel, chromedp.Text(chromedp.CSS(sel)))
}

func (b *browser) html() string {
	b.t.Helper()
	return run(b, "page HTML", chromedp.OuterHTML(chromedp.CSS("html")))
}

func (b *browser) exists(sel string) bool {
	b.t.Helper()
	return run(b, "query "+sel, chromedp.Evaluate[bool]("document.querySelector("+jsString(sel)+") !== null"))
}

func jsString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// shot writes a full-page screenshot named name.png.
func (b *browser) shot(name string) {
	b.t.Helper()
	png := run(b, "screenshot "+name, chromedp.FullScreenshot(100))
	path := filepath.Join(b.dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// signIn signs in through the sign-in form with secret.
func (b *browser) signIn(secret string) {
	b.t.Helper()
	b.open("/ui/")
	b.do("sign in",
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), secret),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.ID("me-owner")),
	)
}

// cookies returns the browser's cookies for the UI.
func (b *browser) cookies() []*network.Cookie {
	b.t.Helper()
	return run(b, "cookies", func(ctx context.Context, t *chromedp.Target) ([]*network.Cookie, error) {
		res, err := cdp.Call(ctx, t, network.GetCookies, network.GetCookiesParams{URLs: []string{b.base + "/ui/"}})
		return res.Cookies, err
	})
}

// sessionID is the id of the session token the page says it runs on.
func (b *browser) sessionID() string {
	b.t.Helper()
	return strings.TrimSpace(b.text(".me code"))
}

// TestBrowserAdminFlow drives the UI as the bootstrap admin in chromium:
// sign in, issue a token and read its secret once, find it "never used",
// see "last used … ago" after a use is flushed, rotate it, revoke the
// successor (forward-auth then answers 401), and sign out, which revokes
// the session token.
func TestBrowserAdminFlow(t *testing.T) {
	s := apitest.Start(t, apitest.Options{})
	b := newBrowser(t, s)

	b.open("/ui/")
	b.do("the sign-in page", chromedp.WaitVisible(chromedp.ID("token")))
	b.shot("signin")
	b.signIn(s.Admin)
	if got := b.text("#me-owner"); got != "admin" {
		t.Fatalf("signed in as %q, want admin", got)
	}
	if c := run(b, "document.cookie", chromedp.Evaluate[string]("document.cookie")); c != "" {
		t.Errorf("document.cookie is %q: a script can read a cookie", c)
	}
	var session *network.Cookie
	for _, c := range b.cookies() {
		if c.Name == ui.CookieName {
			session = c
		}
	}
	if session == nil || !session.HTTPOnly || session.SameSite != network.CookieSameSiteStrict {
		t.Fatalf("the session cookie %+v is not HttpOnly and SameSite=Strict", session)
	}
	sessionID := b.sessionID()
	if st := getToken(t, s, sessionID); st.Kind != "session" || st.Owner != "admin" || st.Status != "active" {
		t.Fatalf("the session token is %+v, want an active session of admin", st)
	}

	// Issue: the secret is shown once.
	b.open("/ui/tokens/new")
	b.do("issue",
		chromedp.WaitVisible(chromedp.ID("name")),
		chromedp.SendKeys(chromedp.ID("owner"), "alice"),
		chromedp.SendKeys(chromedp.ID("name"), "deploy-bot"),
		chromedp.SendKeys(chromedp.ID("scopes"), "deploy read"),
		chromedp.SendKeys(chromedp.ID("expires_in"), "12d"),
	)
	b.shot("issue")
	b.do("submit the issue form", chromedp.Click(chromedp.ID("issue")), chromedp.WaitVisible(chromedp.ID("secret")))
	secret := run(b, "the secret", chromedp.Value(chromedp.ID("secret")))
	if !strings.HasPrefix(secret, "tlk_") {
		t.Fatalf("the page shows %q, not a secret", secret)
	}
	b.shot("secret")
	id := strings.Split(strings.TrimPrefix(secret, "tlk_"), "_")[0]
	if !strings.Contains(b.location(), "/ui/tokens/"+id) {
		t.Errorf("after the issue the address is %s, want the token's page (the secret page must leave the history)", b.location())
	}
	b.do("reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("token-meta")))
	if strings.Contains(b.html(), secret) || b.exists("#secret") {
		t.Fatal("reloading shows the secret again")
	}
	if strings.Contains(b.location(), secret) {
		t.Fatal("the secret is in the address")
	}

	// The list: never used, then last used after a use is flushed.
	b.open("/ui/tokens?owner=alice")
	row := "#t-" + id
	b.do("the list", chromedp.WaitVisible(chromedp.CSS(row)))
	if got := b.text(row + " .last-used"); got != "never used" {
		t.Errorf("the new token's row says %q, want never used", got)
	}
	if got := b.text(row + " .expiry"); got != "expires in 12 days" {
		t.Errorf("the new token's row says %q, want expires in 12 days", got)
	}
	title := run(b, "exact time", chromedp.AttributeValue(chromedp.CSS(row+" .expiry time"), "title"))
	if !title.Exists || !strings.HasSuffix(title.Value, "UTC") {
		t.Errorf("the expiry has no exact time on hover: %+v", title)
	}
	if st := authStatus(t, s, secret); st != http.StatusOK {
		t.Fatalf("forward-auth with the new secret: %d, want 200", st)
	}
	stacktest.Eventually(t, 30*time.Second, func() bool {
		b.open("/ui/tokens?owner=alice")
		got := b.text(row + " .last-used")
		return strings.HasPrefix(got, "last used ") && strings.HasSuffix(got, " ago")
	}, "the list never showed the token as last used … ago")
	b.shot("list")

	// Rotate, then revoke the successor.
	b.open("/ui/tokens/" + id)
	b.do("the token page", chromedp.WaitVisible(chromedp.ID("rotate")))
	if !strings.Contains(b.text("ol.timeline"), "issued") {
		t.Error("the token's history does not show its issue")
	}
	b.shot("token")
	b.do("rotate", chromedp.SendKeys(chromedp.ID("grace"), "1h"), chromedp.Click(chromedp.ID("rotate")), chromedp.WaitVisible(chromedp.ID("secret")))
	successor := run(b, "the successor's secret", chromedp.Value(chromedp.ID("secret")))
	if !strings.HasPrefix(successor, "tlk_") || successor == secret {
		t.Fatalf("rotation showed %q", successor)
	}
	newID := strings.Split(strings.TrimPrefix(successor, "tlk_"), "_")[0]
	if st := authStatus(t, s, successor); st != http.StatusOK {
		t.Fatalf("forward-auth with the successor: %d, want 200", st)
	}
	if got := getToken(t, s, newID); got.Name != "deploy-bot" || got.Owner != "alice" {
		t.Errorf("the successor is %+v, want alice's deploy-bot", got)
	}
	b.open("/ui/tokens/" + newID)
	b.do("revoke",
		chromedp.WaitVisible(chromedp.ID("reason")),
		chromedp.SendKeys(chromedp.ID("reason"), "leaked in a log"),
		chromedp.Click(chromedp.ID("revoke")),
		chromedp.WaitVisible(chromedp.CSS("#token-status.status-revoked")),
	)
	if !strings.Contains(b.text("ol.timeline"), "leaked in a log") {
		t.Error("the history does not show the revocation's reason")
	}
	if st := authStatus(t, s, successor); st != http.StatusUnauthorized {
		t.Errorf("forward-auth after the revoke: %d, want 401", st)
	}

	// Audit pages.
	b.open("/ui/owners/alice")
	b.do("owner history", chromedp.WaitVisible(chromedp.CSS("ol.timeline")))
	b.shot("owner")
	b.open("/ui/state?at=now")
	b.do("state at an instant", chromedp.WaitVisible(chromedp.ID("state")))
	if !strings.Contains(b.text("#state"), "deploy-bot") {
		t.Error("the state now does not list deploy-bot")
	}
	b.shot("state")

	// Sign out: the session token is revoked.
	b.do("sign out", chromedp.Click(chromedp.ID("signout")), chromedp.WaitVisible(chromedp.ID("token")))
	if st := getToken(t, s, sessionID).Status; st != "revoked" {
		t.Errorf("after signing out the session token is %s, want revoked", st)
	}
	b.open("/ui/tokens")
	b.do("signed out", chromedp.WaitVisible(chromedp.ID("token")))
}

// TestBrowserNonAdmin: a token of alice signs in and sees alice's tokens
// only; bob's token is not found by URL nor listed; the admin-only parts
// are absent, and posting them anyway is refused.
func TestBrowserNonAdmin(t *testing.T) {
	s := apitest.Start(t, apitest.Options{})
	alice := issueAPI(t, s, sdk.IssueRequest{Owner: "alice", Name: "alice-laptop", Scopes: []string{"read"}})
	aliceCI := issueAPI(t, s, sdk.IssueRequest{Owner: "alice", Name: "alice-ci", Scopes: []string{"read"}})
	bob := issueAPI(t, s, sdk.IssueRequest{Owner: "bob", Name: "bob-secret-thing"})
	s.WaitProjected(t)
	b := newBrowser(t, s)
	b.signIn(alice.Secret)
	if got := b.text("#me-owner"); got != "alice" {
		t.Fatalf("signed in as %q, want alice", got)
	}

	b.open("/ui/tokens")
	b.do("alice's list", chromedp.WaitVisible(chromedp.CSS("#t-"+aliceCI.ID)))
	list := b.text("#tokens")
	if strings.Contains(list, "bob") || b.exists("#t-"+bob.ID) {
		t.Errorf("alice's list shows bob's token: %s", list)
	}
	b.shot("list-alice")
	b.open("/ui/tokens?owner=bob")
	if got := b.text("#error-message"); !strings.Contains(got, "only its own owner") {
		t.Errorf("listing bob's tokens: %q, want a refusal", got)
	}
	b.open("/ui/tokens/" + bob.ID)
	if got := b.text("#error-message"); got != "no such token" {
		t.Errorf("bob's token by URL: %q, want no such token", got)
	}
	if strings.Contains(b.html(), "bob-secret-thing") {
		t.Error("bob's token's name leaked to alice")
	}

	// Admin-only parts are absent.
	for _, c := range []struct{ path, sel string }{
		{"/ui/tokens", "#nav-state"},
		{"/ui/tokens", "#nav-owner"},
		{"/ui/tokens", "#f-owner"},
		{"/ui/tokens/new", "#owner"},
		{"/ui/tokens/" + aliceCI.ID, "#never_expires"},
		{"/ui/owners/alice", "#until"},
	} {
		b.open(c.path)
		b.do("open "+c.path, chromedp.WaitVisible(chromedp.ID("me-owner")))
		if b.exists(c.sel) {
			t.Errorf("%s shows the admin-only %s to alice", c.path, c.sel)
		}
	}

	// ... and refused when forged: forms built in the page (same origin,
	// with the page's CSRF token) that the UI never offers alice.
	b.open("/ui/tokens")
	b.do("tokens", chromedp.WaitVisible(chromedp.ID("me-owner")))
	forge := func(what, action string, fields map[string]string) {
		t.Helper()
		before := s.LastSequence(t)
		js := `(() => { const f = document.createElement("form"); f.method = "post"; f.action = ` + jsString(action) + `;
			const add = (k, v) => { const i = document.createElement("input"); i.type = "hidden"; i.name = k; i.value = v; f.appendChild(i); };
			add("csrf", document.querySelector("input[name=csrf]").value);`
		for k, v := range fields {
			js += "add(" + jsString(k) + ", " + jsString(v) + ");"
		}
		js += `document.body.appendChild(f); f.submit(); return true; })()`
		b.do(what, chromedp.Evaluate[chromedp.Void](js, chromedp.EvalIgnoreExceptions))
		b.do(what+": the answer", chromedp.WaitVisible(chromedp.ID("error-message")))
		if got := b.text("#error-message"); got == "" {
			t.Errorf("%s: no refusal shown", what)
		}
		if after := s.LastSequence(t); after != before {
			t.Errorf("%s: the stream moved from %d to %d", what, before, after)
		}
		b.open("/ui/tokens")
		b.do("back", chromedp.WaitVisible(chromedp.ID("me-owner")))
	}
	forge("issue for bob", "/ui/tokens", map[string]string{"owner": "bob", "name": "x"})
	forge("extend alice's token", "/ui/tokens/"+aliceCI.ID+"/expiry", map[string]string{"expires_at": "+300d"})
	forge("revoke bob's token", "/ui/tokens/"+bob.ID+"/revoke", map[string]string{"reason": "x"})
	forge("rotate bob's token", "/ui/tokens/"+bob.ID+"/rotate", nil)
	forge("revoke every token of bob", "/ui/owners/bob/revoke", map[string]string{"reason": "x"})
	b.open("/ui/state?at=now")
	if got := b.text("#error-message"); !strings.Contains(got, "ledger:admin") {
		t.Errorf("the state at an instant for alice: %q, want a refusal naming ledger:admin", got)
	}
	b.open("/ui/owners/bob")
	if got := b.text("#error-message"); !strings.Contains(got, "its own owner's history") {
		t.Errorf("bob's history for alice: %q, want a refusal", got)
	}
	if st := getToken(t, s, bob.ID).Status; st != "active" {
		t.Errorf("bob's token is %s after alice's attempts", st)
	}
}

// TestBrowserRefusesCrossSiteFormPost: a page of another origin that posts
// a form to the UI (here a revocation) is refused, and nothing changes.
func TestBrowserRefusesCrossSiteFormPost(t *testing.T) {
	s := apitest.Start(t, apitest.Options{})
	victim := issueAPI(t, s, sdk.IssueRequest{Owner: "alice", Name: "victim"})
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte(`<!doctype html><form method="post" action="` + s.URL + `/ui/tokens/` + victim.ID + `/revoke">
<input type="hidden" name="reason" value="csrf"><input type="hidden" name="csrf" value="guess">
<button id="go" type="submit">Win a prize</button></form>`))
	}))
	t.Cleanup(attacker.Close)
	b := newBrowser(t, s)
	b.signIn(s.Admin)
	before := s.LastSequence(t)
	b.do("the attacker's page", chromedp.Navigate(attacker.URL), chromedp.WaitVisible(chromedp.ID("go")))
	b.do("the cross-site post", chromedp.Click(chromedp.ID("go")), chromedp.WaitVisible(chromedp.ID("error-message")))
	if got := b.text("#error-message"); !strings.Contains(got, "cross-site request refused") {
		t.Errorf("the cross-site post was answered %q, want the cross-origin refusal", got)
	}
	if st := getToken(t, s, victim.ID).Status; st != "active" {
		t.Errorf("the victim token is %s, want active", st)
	}
	if after := s.LastSequence(t); after != before {
		t.Errorf("the stream moved from %d to %d", before, after)
	}
}

// TestBrowserKeyboard: with key presses only (Tab, typing, Enter, Space) a
// person signs in, issues a token, copies its secret, revokes it and signs
// out; every form field on the way has a label.
func TestBrowserKeyboard(t *testing.T) {
	s := apitest.Start(t, apitest.Options{})
	b := newBrowser(t, s)
	unlabelled := `[...document.querySelectorAll("input:not([type=hidden]), select, textarea")].filter(e => !e.labels || e.labels.length === 0).map(e => e.id || e.name)`
	checkLabels := func(where string) {
		t.Helper()
		if got := run(b, "unlabelled fields", chromedp.Evaluate[[]string](unlabelled)); len(got) > 0 {
			t.Errorf("%s: fields without a label: %v", where, got)
		}
	}
	active := func() string {
		return run(b, "focused element", chromedp.Evaluate[string]("document.activeElement ? document.activeElement.id : ''"))
	}
	tabTo := func(id string) {
		t.Helper()
		for range 60 {
			if active() == id {
				return
			}
			b.do("Tab", chromedp.KeyEvent("\t"))
		}
		t.Fatalf("Tab never reached #%s on %s", id, b.location())
	}
	key := func(what, keys string, then chromedp.Action[chromedp.Void]) {
		t.Helper()
		b.do(what, chromedp.KeyEvent(keys), then)
	}

	b.open("/ui/signin")
	b.do("sign-in page", chromedp.WaitVisible(chromedp.ID("token")))
	checkLabels("sign-in page")
	tabTo("token")
	key("type the token", s.Admin, chromedp.WaitVisible(chromedp.ID("token")))
	tabTo("signin")
	key("sign in", "\r", chromedp.WaitVisible(chromedp.ID("me-owner")))
	checkLabels("token list")

	tabTo("nav-issue")
	key("open the issue form", "\r", chromedp.WaitVisible(chromedp.ID("name")))
	checkLabels("issue form")
	tabTo("name")
	key("type a name", "kbd-token", chromedp.WaitVisible(chromedp.ID("name")))
	tabTo("issue")
	key("issue", "\r", chromedp.WaitVisible(chromedp.ID("secret")))
	checkLabels("secret page")
	secret := run(b, "the secret", chromedp.Value(chromedp.ID("secret")))
	tabTo("copy")
	key("copy", " ", chromedp.WaitVisible(chromedp.ID("copy-status")))
	stacktest.Eventually(t, 10*time.Second, func() bool { return b.text("#copy-status") != "" }, "the copy button said nothing")

	tabTo("to-token")
	key("open the token", "\r", chromedp.WaitVisible(chromedp.ID("reason")))
	checkLabels("token page")
	tabTo("reason")
	key("type a reason", "done", chromedp.WaitVisible(chromedp.ID("reason")))
	tabTo("revoke")
	key("revoke", "\r", chromedp.WaitVisible(chromedp.CSS("#token-status.status-revoked")))
	if st := authStatus(t, s, secret); st != http.StatusUnauthorized {
		t.Errorf("forward-auth after the keyboard revoke: %d, want 401", st)
	}

	b.open("/ui/owners/admin")
	b.do("owner page", chromedp.WaitVisible(chromedp.ID("owner-reason")))
	checkLabels("owner page")
	b.open("/ui/state")
	b.do("state page", chromedp.WaitVisible(chromedp.ID("at")))
	checkLabels("state page")
	tabTo("at")
	key("type an instant", "now", chromedp.WaitVisible(chromedp.ID("at")))
	tabTo("show-state")
	key("show the state", "\r", chromedp.WaitVisible(chromedp.ID("state")))

	sessionID := b.sessionID()
	tabTo("signout")
	key("sign out", "\r", chromedp.WaitVisible(chromedp.ID("token")))
	if st := getToken(t, s, sessionID).Status; st != "revoked" {
		t.Errorf("after signing out by keyboard the session is %s, want revoked", st)
	}
}
