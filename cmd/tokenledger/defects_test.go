package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tokenledger/tokenledger/internal/testkit/apitest"
	"github.com/tokenledger/tokenledger/sdk"
)

// An unknown subcommand is a typo: it fails, naming what it resembles,
// instead of printing the group's help and succeeding.
func TestUnknownSubcommandFailsWithASuggestion(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"token", "lst"}, `unknown command "lst" for "tokenledger token": did you mean list?`},
		{[]string{"tokn"}, `unknown command "tokn" for "tokenledger": did you mean token?`},
		{[]string{"owner", "revok", "alice"}, `unknown command "revok" for "tokenledger owner": did you mean revoke?`},
		{[]string{"token", "zzz"}, `unknown command "zzz" for "tokenledger token": run "tokenledger token --help"`},
	} {
		r := runBinary(t, nil, tt.args...)
		if r.code == 0 || r.stdout != "" || !strings.Contains(r.stderr, tt.want) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("tokenledger %s: exit code %d, stdout %q, stderr %q; want a one-line failure with %q",
				strings.Join(tt.args, " "), r.code, r.stdout, r.stderr, tt.want)
		}
	}
	if r := runBinary(t, nil, "token"); r.code != 0 || !strings.Contains(r.stdout, "Available Commands:") {
		t.Errorf("tokenledger token: exit code %d, stdout %q; want its help", r.code, r.stdout)
	}
}

// --help names the TOKENLEDGER_* variable of every configuration flag, and
// of none of the request flags (which take none).
func TestHelpNamesEachFlagsVariable(t *testing.T) {
	t.Parallel()
	var walk func(cmd *cobra.Command)
	walk = func(cmd *cobra.Command) {
		cmd.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if named := strings.Contains(f.Usage, "["+envName(f.Name)+"]"); named == isRequestFlag(f) {
				t.Errorf("%s --%s: usage %q (request flag: %v)", cmd.CommandPath(), f.Name, f.Usage, isRequestFlag(f))
			}
		})
		for _, sub := range cmd.Commands() {
			walk(sub)
		}
	}
	walk(newRootCommand())
	r := runBinary(t, nil, "serve", "--help")
	for _, want := range []string{"[TOKENLEDGER_POSTGRES_URL]", "[TOKENLEDGER_DEFAULT_LIFETIME]", "[TOKENLEDGER_LOG_LEVEL]"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("serve --help lacks %s:\n%s", want, r.stdout)
		}
	}
	if r := runBinary(t, nil, "token", "issue", "--help"); strings.Contains(r.stdout, "[TOKENLEDGER_NAME]") || !strings.Contains(r.stdout, "[TOKENLEDGER_SERVER]") {
		t.Errorf("token issue --help: request flags take no variable, --server does:\n%s", r.stdout)
	}
}

// A secret read from stdin is checked locally: garbage fails, and nothing
// reaches the server (which would answer "recorded" for any string).
func TestRevokeSecretStdinChecksTheFormat(t *testing.T) {
	t.Parallel()
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		requests.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	for _, stdin := range []string{"garbage\n", "tlk_01JD8XK2M3N4P5Q6R7S8T9V0WX_thisisnotasecret\n"} {
		r := runBinaryStdin(t, []string{"TOKENLEDGER_SERVER=" + srv.URL}, stdin, "token", "revoke", "--secret-stdin")
		if r.code == 0 || !strings.Contains(r.stderr, "stdin does not hold a tokenledger secret") || strings.Contains(r.stderr, strings.TrimSpace(stdin)) {
			t.Errorf("stdin %q: exit code %d, stdout %q, stderr %q", stdin, r.code, r.stdout, r.stderr)
		}
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("the server got %d requests for malformed secrets", n)
	}
}

// A command that needs PostgreSQL names the flag and the variable that
// set it.
func TestPostgresURLErrorNamesFlagAndVariable(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"serve", "project"} {
		r := runBinary(t, nil, cmd)
		if r.code == 0 || !strings.Contains(r.stderr, "--postgres-url") || !strings.Contains(r.stderr, "TOKENLEDGER_POSTGRES_URL") {
			t.Errorf("%s without a PostgreSQL URL: exit code %d, stderr %q", cmd, r.code, r.stderr)
		}
	}
}

// JSON logs write durations as people read them ("1.5s"), as the text
// logs do, not as nanoseconds.
func TestJSONLogsWriteDurationsWithTheirUnit(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	g := globalFlags{logLevel: "info", logFormat: "json"}
	log, err := g.newLoggerTo(&b)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("x", slog.Duration("took", 1500*time.Millisecond), slog.Group("g", slog.Duration("wait", 250*time.Millisecond)))
	var rec struct {
		Took string
		G    struct{ Wait string }
	}
	if err := json.Unmarshal(b.Bytes(), &rec); err != nil || rec.Took != "1.5s" || rec.G.Wait != "250ms" {
		t.Errorf("log line %s (%v); want took \"1.5s\" and g.wait \"250ms\"", b.String(), err)
	}
}

// Completion offers the values of --output and --status, not file names.
func TestCompletionOffersFlagValues(t *testing.T) {
	t.Parallel()
	for flag, want := range map[string]string{"--status": "active\nexpired\nrevoked\n:4\n", "--output": "table\njson\n:4\n", "--log-format": "text\njson\n:4\n"} {
		r := runBinary(t, nil, "__complete", "token", "list", flag, "")
		if r.code != 0 || !strings.HasPrefix(r.stdout, want) {
			t.Errorf("completing token list %s: exit code %d, stdout %q; want %q", flag, r.code, r.stdout, want)
		}
	}
}

// `token list --help` tells the order tokens come in, and they come in it;
// a policy error names the rule once.
func TestListOrderAndPolicyErrorsAsTheySay(t *testing.T) {
	t.Parallel()
	if _, err := buildBinary(); err != nil {
		t.Fatalf("build tokenledger: %v", err)
	}
	s := apitest.Start(t, apitest.Options{})
	env := []string{"TOKENLEDGER_SERVER=" + s.URL, tokenEnv + "=" + s.Admin}
	if r := runBinary(t, nil, "token", "list", "--help"); !strings.Contains(r.stdout, "oldest first") {
		t.Errorf("token list --help does not say oldest first:\n%s", r.stdout)
	}
	var ids []string
	for range 3 {
		r := runBinary(t, env, "token", "issue", "--owner", "dora", "--output", "json")
		var tok sdk.IssuedToken
		if err := json.Unmarshal([]byte(r.stdout), &tok); err != nil {
			t.Fatalf("issue: %v: %s %s", err, r.stdout, r.stderr)
		}
		ids = append(ids, tok.ID)
		s.Clock.Advance(time.Second)
	}
	s.WaitProjected(t)
	r := runBinary(t, env, "token", "list", "--owner", "dora")
	var listed []string
	for line := range strings.Lines(r.stdout) {
		if f := strings.Fields(line); len(f) > 0 && f[0] != "ID" {
			listed = append(listed, f[0])
		}
	}
	if strings.Join(listed, " ") != strings.Join(ids, " ") {
		t.Errorf("token list printed %v, want the order of issue (oldest first) %v", listed, ids)
	}

	r = runBinary(t, env, "token", "issue", "--owner", "dora", "--expires-in", "3650d")
	if r.code == 0 || strings.Count(r.stderr, "policy") != 1 || !strings.Contains(r.stderr, "policy_violation: expiry ") || strings.Contains(r.stderr, "for owner") {
		t.Errorf("a lifetime beyond the policy: exit code %d, stderr %q; want the code and the rule, once", r.code, r.stderr)
	}
}

// Every error that came from the server, or from failing to reach it,
// names the server: a CLI pointed at another instance says so.
func TestCLIErrorsNameTheServer(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error":{"code":"not_found","message":"no such token"}}`))
	}))
	t.Cleanup(srv.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	token := tokenEnv + "=tlk_x"
	for _, tt := range []struct {
		server string
		args   []string
	}{
		{srv.URL, []string{"token", "show", "01JD8XK2M3N4P5Q6R7S8T9V0WX"}},
		{srv.URL, []string{"history", "--token", "01JD8XK2M3N4P5Q6R7S8T9V0WX"}},
		{closed.URL, []string{"token", "list"}},
		{closed.URL, []string{"owner", "revoke", "alice"}},
		{closed.URL, []string{"state", "--at", "now"}},
	} {
		r := runBinary(t, []string{"TOKENLEDGER_SERVER=" + tt.server, token}, tt.args...)
		if want := "(server " + tt.server + ")"; r.code == 0 || !strings.Contains(r.stderr, want) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("tokenledger %s: exit code %d, stderr %q; want one line naming %s", strings.Join(tt.args, " "), r.code, r.stderr, want)
		}
	}
}
