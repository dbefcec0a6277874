//go:build linux

// Package caddytest runs a real Caddy with the repository's
// deploy/caddy/Caddyfile for tests: installed from Debian's caddy package
// when missing (internal/debpkg), on a free port, stopped at cleanup. A
// test that cannot get Caddy fails saying what to install; it never skips.
package caddytest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/internal/debpkg"
)

// Config says where the Caddyfile's placeholders point.
type Config struct {
	// Tokenledger is the host:port of a tokenledger API node.
	Tokenledger string
	// App is the host:port of the protected app.
	App string
	// Scope is the scope every request's token must hold.
	Scope string
}

// Caddy is a running Caddy.
type Caddy struct {
	url string
}

// URL is the base URL Caddy serves the app at.
func (c *Caddy) URL() string { return c.url }

// startTimeout bounds Caddy's start.
const startTimeout = 30 * time.Second

// Start runs Caddy with deploy/caddy/Caddyfile for tb, stopped at cleanup.
func Start(tb testing.TB, cfg Config) *Caddy {
	tb.Helper()
	bin, err := binary()
	if err != nil {
		tb.Fatal(err)
	}
	_, self, _, _ := runtime.Caller(0)
	caddyfile := filepath.Join(filepath.Dir(self), "..", "..", "..", "deploy", "caddy", "Caddyfile")
	snippet, err := os.ReadFile(caddyfile)
	if err != nil {
		tb.Fatalf("read %s: %v", caddyfile, err)
	}
	dir := tb.TempDir()
	// The test's global options: no admin endpoint, no HTTPS, nothing kept
	// outside the temporary directory.
	conf := "{\n\tadmin off\n\tauto_https off\n}\n\n" + string(snippet)
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		tb.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "run", "--config", path, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(),
		"HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
		"SITE_ADDRESS=http://"+addr, "TOKENLEDGER_URL="+cfg.Tokenledger, "APP_UPSTREAM="+cfg.App, "TOKENLEDGER_SCOPE="+cfg.Scope)
	var logs syncBuilder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		cancel()
		tb.Fatalf("start caddy: %v", err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	tb.Cleanup(func() {
		cancel()
		<-done
	})
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-done:
			tb.Fatalf("caddy exited at start (%v):\n%s", waitErr, logs.String())
		default:
		}
		if res, err := http.Get("http://" + addr + "/"); err == nil {
			res.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("caddy did not listen on %s within %v:\n%s", addr, startTimeout, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &Caddy{url: "http://" + addr}
}

// binary finds caddy, installing Debian's package when it is missing.
func binary() (string, error) {
	if p, err := exec.LookPath("caddy"); err == nil {
		return p, nil
	}
	present := func() bool { _, err := exec.LookPath("caddy"); return err == nil }
	if err := debpkg.Install(present, "caddy"); err != nil {
		return "", fmt.Errorf("caddy (Debian package caddy) is needed: %w", err)
	}
	p, err := exec.LookPath("caddy")
	if err != nil {
		return "", errors.New("caddy was installed but is not on PATH (Debian package caddy)")
	}
	return p, nil
}

// syncBuilder collects Caddy's output; safe to read while Caddy writes.
type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuilder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuilder) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
