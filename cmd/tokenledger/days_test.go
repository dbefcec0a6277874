package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/internal/testkit/apitest"
	"github.com/tokenledger/tokenledger/sdk"
)

// The policy's lifetimes are configured in days as well: the flags and
// their TOKENLEDGER_* variables read "30d" and "2w".
func TestConfigurationDurationsInDays(t *testing.T) {
	t.Setenv(envName("max-lifetime"), "2w")
	root := newRootCommand()
	serve, _, err := root.Find([]string{"serve"})
	if err != nil {
		t.Fatal(err)
	}
	if err := serve.ParseFlags([]string{"--default-lifetime", "30d", "--session-max-lifetime", "1d12h"}); err != nil {
		t.Fatalf("--default-lifetime 30d: %v", err)
	}
	if err := applyEnv(serve); err != nil {
		t.Fatalf("TOKENLEDGER_MAX_LIFETIME=2w: %v", err)
	}
	for flag, want := range map[string]time.Duration{"default-lifetime": 30 * domain.Day, "max-lifetime": 14 * domain.Day, "session-max-lifetime": 36 * time.Hour} {
		if got := serve.Flags().Lookup(flag).Value.String(); got != want.String() {
			t.Errorf("--%s = %s, want %s", flag, got, want)
		}
	}
	if err := serve.ParseFlags([]string{"--default-lifetime", "1.5d"}); err == nil {
		t.Error("--default-lifetime 1.5d was accepted")
	}
}

// export's --from and --to read times as every command does.
func TestExportTimesAsEveryCommand(t *testing.T) {
	before := time.Now()
	for in, check := range map[string]func(time.Time) bool{
		"2026-01-02":           func(t time.Time) bool { return t.Equal(time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)) },
		"2026-01-02T15:04:05Z": func(t time.Time) bool { return t.Equal(time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)) },
		"now": func(t time.Time) bool {
			return !t.Before(before.Truncate(time.Microsecond)) && t.Equal(t.Truncate(time.Microsecond))
		},
		"-30d": func(t time.Time) bool {
			return t.Sub(before.Add(-30*domain.Day)) >= -time.Microsecond && t.Sub(before) < -29*domain.Day
		},
	} {
		got, err := exportParseTime("--from", in)
		if err != nil || !check(got) {
			t.Errorf("--from %s: %v, %v", in, got, err)
		}
	}
	if _, err := exportParseTime("--from", "yesterday"); err == nil || !strings.Contains(err.Error(), "--from") {
		t.Errorf("--from yesterday: %v, want an error naming the flag", err)
	}
}

// The built binary takes lifetimes in days and times as people write them
// ("now", a date, "-2h", "+30d") in every command that takes one.
func TestCLIDaysAndTimes(t *testing.T) {
	t.Parallel()
	if _, err := buildBinary(); err != nil {
		t.Fatalf("build tokenledger: %v", err)
	}
	s := apitest.Start(t, apitest.Options{})
	env := []string{"TOKENLEDGER_SERVER=" + s.URL, tokenEnv + "=" + s.Admin}
	run := func(t *testing.T, args ...string) string {
		t.Helper()
		r := runBinaryStdin(t, env, "", args...)
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("tokenledger %s: exit code %d, stderr %q", strings.Join(args, " "), r.code, r.stderr)
		}
		return r.stdout
	}
	issued := func(t *testing.T, args ...string) sdk.IssuedToken {
		t.Helper()
		var tok sdk.IssuedToken
		out := run(t, append([]string{"token", "issue", "--owner", "alice", "--output", "json"}, args...)...)
		if err := json.Unmarshal([]byte(out), &tok); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return tok
	}
	within := func(got *time.Time, want time.Time) bool {
		return got != nil && got.Sub(want).Abs() < time.Minute
	}

	for arg, d := range map[string]time.Duration{"30d": 30 * domain.Day, "2w": 14 * domain.Day, "1d12h": 36 * time.Hour} {
		if tok := issued(t, "--expires-in", arg); !within(tok.ExpiresAt, s.Clock.Now().Add(d)) {
			t.Errorf("--expires-in %s: expires_at %v, want about %v", arg, tok.ExpiresAt, s.Clock.Now().Add(d))
		}
	}
	if tok := issued(t, "--expires-at", "+3d"); !within(tok.ExpiresAt, time.Now().Add(3*domain.Day)) {
		t.Errorf("--expires-at +3d: expires_at %v", tok.ExpiresAt)
	}
	session := issued(t, "--kind", "session", "--idle-timeout", "1d")
	if session.IdleTimeout == nil || time.Duration(*session.IdleTimeout) != domain.Day {
		t.Errorf("--idle-timeout 1d: idle_timeout %v", session.IdleTimeout)
	}
	tok := issued(t)
	run(t, "token", "expire", tok.ID, "--in", "1w")
	run(t, "token", "expire", tok.ID, "--at", "+2d")
	run(t, "token", "rotate", tok.ID, "--grace", "1d")
	run(t, "token", "list", "--unused-for", "30d", "--expiring-within", "1w")
	run(t, "owner", "revoke", "carol", "--until", "+30d")
	s.WaitProjected(t)
	for _, at := range []string{"now", "-2h", "2026-01-01", time.Now().UTC().Format(time.RFC3339)} {
		if out := run(t, "state", "--at", at); !strings.HasPrefix(out, "Tokens as they were at ") {
			t.Errorf("state --at %s printed %q", at, out)
		}
	}
	for _, args := range [][]string{{"token", "issue", "--expires-in", "30days"}, {"state", "--at", "yesterday"}, {"owner", "revoke", "carol", "--until", "next week"}} {
		if r := runBinaryStdin(t, env, "", args...); r.code == 0 || !strings.Contains(r.stderr, "want ") {
			t.Errorf("tokenledger %s: exit code %d, stderr %q", strings.Join(args, " "), r.code, r.stderr)
		}
	}
}
