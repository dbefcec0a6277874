package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/migrations"
)

func TestMain(m *testing.M) { stacktest.Main(m) }

// result is how a finished tokenledger process ended.
type result struct {
	stdout, stderr string
	code           int
}

// runBinary runs tokenledger with args and extra environment variables to
// the end (at most two minutes).
func runBinary(t *testing.T, env []string, args ...string) result {
	t.Helper()
	bin, err := buildBinary()
	if err != nil {
		t.Fatalf("build tokenledger: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(cleanEnv(), env...)
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

// cleanEnv is the test's environment without TOKENLEDGER_* and OTEL_*
// variables, so that only what a test sets configures the process.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envPrefix) && !strings.HasPrefix(kv, "OTEL_") {
			env = append(env, kv)
		}
	}
	return env
}

func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	url := stacktest.PostgresURL(t)

	first := runBinary(t, nil, "migrate", "--postgres-url", url)
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	current, latest, err := migrations.Status(context.Background(), conn)
	if err != nil || current != latest || latest < 1 {
		t.Fatalf("schema after migrate: version %d of %d (%v); migrate exited %d:\n%s", current, latest, err, first.code, first.stderr)
	}
	if want := fmt.Sprintf("schema version %d (migrated from 0)\n", latest); first.code != 0 || first.stdout != want {
		t.Fatalf("first migrate: exit %d, stdout %q, want %q; stderr:\n%s", first.code, first.stdout, want, first.stderr)
	}
	// Idempotent, and the URL may come from the environment.
	second := runBinary(t, []string{"TOKENLEDGER_POSTGRES_URL=" + url}, "migrate")
	if want := fmt.Sprintf("schema version %d (up to date)\n", latest); second.code != 0 || second.stdout != want {
		t.Fatalf("second migrate: exit %d, stdout %q, want %q; stderr:\n%s", second.code, second.stdout, want, second.stderr)
	}
}

// A bad --postgres-url fails with a non-zero exit and one line on stderr
// that says what went wrong, without the password.
func TestMigrateCommandBadURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no url", []string{"migrate"}, "--postgres-url (TOKENLEDGER_POSTGRES_URL) must be set"},
		{"malformed", []string{"migrate", "--postgres-url", "postgres://u:hunter2@localhost:notaport/db"}, "cannot parse"},
		{"nobody listening", []string{"migrate", "--postgres-url", "postgres://u:hunter2@127.0.0.1:1/db?connect_timeout=5"}, "connect to postgres"},
		{"not a url", []string{"migrate", "--postgres-url", "mysql://u:hunter2@127.0.0.1/db"}, "postgres"},
		{"bad timeout", []string{"migrate", "--postgres-url", "postgres://127.0.0.1/db", "--migrate-timeout", "0s"}, "--migrate-timeout 0s must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runBinary(t, nil, tc.args...)
			if r.code == 0 {
				t.Fatalf("exit 0, stdout %q", r.stdout)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
			msg := strings.TrimSuffix(r.stderr, "\n")
			if strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "tokenledger: ") {
				t.Errorf("stderr is not one line starting with \"tokenledger: \":\n%s", r.stderr)
			}
			if !strings.Contains(msg, tc.want) {
				t.Errorf("stderr %q does not say %q", msg, tc.want)
			}
			if strings.Contains(msg, "hunter2") {
				t.Errorf("stderr shows the password: %q", msg)
			}
		})
	}
}
