package ui_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/tokenledger/tokenledger/internal/testkit/apitest"
)

// lockedBuffer is a log sink written from many goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestNoSecretInLogsOrURLs: signing in, issuing and rotating through the
// UI, with every component logging at Debug, puts no secret (the pasted
// token, the session's, the issued and rotated ones) in a log line, and
// every redirect the UI answers names no secret.
func TestNoSecretInLogsOrURLs(t *testing.T) {
	t.Parallel()
	logs := &lockedBuffer{}
	s := apitest.Start(t, apitest.Options{Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	hs := signInHTTP(t, s, s.Admin)
	secrets := []string{s.Admin, hs.cookie.Value}
	secretRE := regexp.MustCompile(`value="(tlk_[^"]+)"`)

	issued := hs.post(t, "/ui/tokens", url.Values{"csrf": {hs.csrf}, "owner": {"alice"}, "name": {"ci"}}, nil)
	m := secretRE.FindStringSubmatch(issued.body)
	if issued.status != http.StatusCreated || m == nil {
		t.Fatalf("issue: %d, no secret in the page", issued.status)
	}
	secrets = append(secrets, m[1])
	if cc := issued.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("the page with the secret has Cache-Control %q, want no-store", cc)
	}
	id := strings.Split(strings.TrimPrefix(m[1], "tlk_"), "_")[0]
	rotated := hs.post(t, "/ui/tokens/"+id+"/rotate", url.Values{"csrf": {hs.csrf}}, nil)
	if m := secretRE.FindStringSubmatch(rotated.body); rotated.status != http.StatusCreated || m == nil {
		t.Fatalf("rotate: %d, no secret in the page", rotated.status)
	} else {
		secrets = append(secrets, m[1])
	}
	out := hs.post(t, "/ui/signout", url.Values{"csrf": {hs.csrf}}, nil)
	for _, p := range []page{issued, rotated, out} {
		if loc := p.header.Get("Location"); strings.Contains(loc, "tlk_") {
			t.Errorf("a redirect names a secret: %s", loc)
		}
	}

	all := logs.String()
	if !strings.Contains(all, "/ui/tokens") {
		t.Fatalf("the log has no line of the UI's requests: %.500s", all)
	}
	for i, sec := range secrets {
		if strings.Contains(all, sec) || strings.Contains(all, sec[len(sec)-20:]) {
			t.Errorf("secret %d is in the log", i)
		}
	}
}
