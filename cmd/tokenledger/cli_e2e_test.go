package main

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/internal/testkit/apitest"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/sdk"
)

// secretPattern finds the secrets a command printed.
var secretPattern = regexp.MustCompile(domain.SecretPattern)

// cliRun is one finished run of the binary and the real-clock interval it
// ran in: its relative times are told from an instant within.
type cliRun struct {
	result
	before, after time.Time
}

// oneOf returns the texts f gives for the two ends of the run, for a
// check that must hold whichever instant the command read.
func (r cliRun) oneOf(f func(now time.Time) string) []string {
	return []string{f(r.before), f(r.after)}
}

// secretTokenID is the id of the token a printed secret belongs to.
func secretTokenID(t *testing.T, secret string) string {
	t.Helper()
	id, err := domain.ParseSecret(secret)
	if err != nil {
		t.Fatalf("printed secret: %v", err)
	}
	return id.String()
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// TestCLIAgainstServer runs the built binary's token and owner commands
// against a real API node (real NATS and PostgreSQL behind it) as an admin
// would, and checks each effect through the API: a secret is printed once
// and works, times read as people read them, and bad input fails with one
// line on stderr and appends no event. The server's clock is a manual one
// started at the real time and never advanced here; the binary reads the
// real clock.
func TestCLIAgainstServer(t *testing.T) {
	t.Parallel()
	// Built first, so that the server's clock, which starts with the stack
	// and stands still, stays close to the real one the binary reads.
	if _, err := buildBinary(); err != nil {
		t.Fatalf("build tokenledger: %v", err)
	}
	s := apitest.Start(t, apitest.Options{})
	ctx := context.Background()
	api, err := sdk.New(s.URL, sdk.WithToken(s.Admin))
	if err != nil {
		t.Fatal(err)
	}
	server := "TOKENLEDGER_SERVER=" + s.URL
	asAdmin := []string{server, tokenEnv + "=" + s.Admin}

	runWith := func(t *testing.T, env []string, stdin string, args ...string) cliRun {
		t.Helper()
		before := time.Now()
		res := runBinaryStdin(t, env, stdin, args...)
		return cliRun{result: res, before: before, after: time.Now()}
	}
	// run runs the binary as the admin and fails the test unless it
	// succeeds quietly.
	run := func(t *testing.T, args ...string) cliRun {
		t.Helper()
		r := runWith(t, asAdmin, "", args...)
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("tokenledger %s: exit code %d, stderr %q", strings.Join(args, " "), r.code, r.stderr)
		}
		if strings.Contains(r.stdout, s.Admin) {
			t.Errorf("tokenledger %s printed the caller's token", strings.Join(args, " "))
		}
		return r
	}
	// printedSecret returns the one secret in out, failing unless there is
	// exactly one, printed once.
	printedSecret := func(t *testing.T, out string) string {
		t.Helper()
		found := secretPattern.FindAllString(out, -1)
		if len(found) != 1 {
			t.Fatalf("output holds %d secrets, want one printed once:\n%s", len(found), out)
		}
		return found[0]
	}
	authOwner := func(t *testing.T, secret string) (string, error) {
		t.Helper()
		res, err := api.Auth(ctx, secret, "")
		return res.Owner, err
	}
	wantRefused := func(t *testing.T, what, secret string) {
		t.Helper()
		if _, err := authOwner(t, secret); !errors.Is(err, sdk.ErrInvalidToken) {
			t.Errorf("%s: /v1/auth answered %v, want invalid_token", what, err)
		}
	}
	get := func(t *testing.T, id string) sdk.Token {
		t.Helper()
		tok, err := api.Get(ctx, id)
		if err != nil {
			t.Fatalf("get %s: %v", id, err)
		}
		return tok
	}
	// listLine returns the line of `token list` about id.
	listLine := func(t *testing.T, id string) (string, cliRun) {
		t.Helper()
		s.WaitProjected(t)
		r := run(t, "token", "list", "--owner", "alice")
		for line := range strings.Lines(r.stdout) {
			if strings.HasPrefix(line, id+" ") {
				return line, r
			}
		}
		t.Fatalf("token list lacks %s:\n%s", id, r.stdout)
		return "", r
	}

	// issue, as a table: the secret once, and it works.
	r := run(t, "token", "issue", "--owner", "alice", "--name", "ci", "--scope", "repo:read", "--scope", "repo:write")
	if !strings.HasPrefix(r.stdout, "Token (shown once, store it now): tlk_") {
		t.Errorf("issue does not start with the secret:\n%s", r.stdout)
	}
	ciSecret := printedSecret(t, r.stdout)
	ciID := secretTokenID(t, ciSecret)
	if owner, err := authOwner(t, ciSecret); err != nil || owner != "alice" {
		t.Fatalf("the printed secret at /v1/auth: owner %q, %v; want alice", owner, err)
	}
	for _, want := range []string{"ID:               " + ciID + "\n", "Owner:            alice\n", "Scopes:           repo:read,repo:write\n", "Last used:        never used\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("issue output lacks %q:\n%s", want, r.stdout)
		}
	}

	// issue, as JSON: one document of sdk.IssuedToken.
	r = run(t, "token", "issue", "--owner", "alice", "--name", "deploy", "--scope", "deploy", "--output", "json")
	var deploy sdk.IssuedToken
	if err := json.Unmarshal([]byte(r.stdout), &deploy); err != nil {
		t.Fatalf("issue --output json: %v\n%s", err, r.stdout)
	}
	if printedSecret(t, r.stdout) != deploy.Secret || deploy.Owner != "alice" || deploy.Name != "deploy" || deploy.Status != "active" {
		t.Errorf("issue --output json: %s", r.stdout)
	}

	t.Run("list tells never used and the expiry", func(t *testing.T) {
		line, r := listLine(t, deploy.ID)
		if !strings.Contains(line, "never used") {
			t.Errorf("a fresh token's line lacks \"never used\": %q", line)
		}
		if want := r.oneOf(func(now time.Time) string { return expiryText(deploy.ExpiresAt, now) }); !containsAny(line, want) {
			t.Errorf("line %q lacks one of %q", line, want)
		}
		if !strings.Contains(line, "expires in 30 days") {
			t.Errorf("line %q does not tell the 30-day default lifetime as 30 days", line)
		}
		if strings.Contains(r.stdout, domain.SecretPrefix) {
			t.Errorf("token list printed a secret:\n%s", r.stdout)
		}
	})

	// The JSON secret works too; used only now, so that the list above saw
	// a token nobody had used (a use reaches the read model within a flush).
	if owner, err := authOwner(t, deploy.Secret); err != nil || owner != "alice" {
		t.Fatalf("the JSON secret at /v1/auth: owner %q, %v; want alice", owner, err)
	}

	t.Run("list and show tell the last use", func(t *testing.T) {
		for range 3 {
			if _, err := authOwner(t, ciSecret); err != nil {
				t.Fatal(err)
			}
		}
		stacktest.Eventually(t, 30*time.Second, func() bool {
			tok, err := api.Get(ctx, ciID)
			return err == nil && tok.UseCount > 0
		}, "the uses of the ci token did not reach the read model")
		used := get(t, ciID)
		line, lr := listLine(t, ciID)
		if want := lr.oneOf(func(now time.Time) string { return lastUsedText(used.LastUsedAt, now) }); !containsAny(line, want) || !strings.Contains(line, "last used ") {
			t.Errorf("line %q lacks one of %q", line, want)
		}
		r := run(t, "token", "show", ciID)
		for _, want := range []string{"ID:               " + ciID + "\n", "Owner:            alice\n", "Name:             ci\n",
			"Use count:        " + strconv.FormatUint(used.UseCount, 10) + "\n", "Last used:        " + used.LastUsedAt.UTC().Format(time.RFC3339) + " ("} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("show lacks %q:\n%s", want, r.stdout)
			}
		}
		if strings.Contains(r.stdout, domain.SecretPrefix) {
			t.Errorf("token show printed a secret:\n%s", r.stdout)
		}
	})

	t.Run("expire --in 1h", func(t *testing.T) {
		before := s.LastSequence(t)
		r := run(t, "token", "expire", ciID, "--in", "1h")
		tok := get(t, ciID)
		lo, hi := r.before.Add(time.Hour).Truncate(time.Second), r.after.Add(time.Hour)
		if tok.ExpiresAt == nil || tok.ExpiresAt.Before(lo) || tok.ExpiresAt.After(hi) {
			t.Errorf("expires_at %v, want within [%v, %v]", tok.ExpiresAt, lo, hi)
		}
		if want := r.oneOf(func(now time.Time) string { return expiryText(tok.ExpiresAt, now) }); !containsAny(r.stdout, want) {
			t.Errorf("expire output lacks one of %q:\n%s", want, r.stdout)
		}
		if after := s.LastSequence(t); after != before+1 {
			t.Errorf("expire appended %d events, want 1", after-before)
		}
	})

	var successor string
	t.Run("rotate --grace 10m", func(t *testing.T) {
		r := run(t, "token", "rotate", ciID, "--grace", "10m")
		successor = printedSecret(t, r.stdout)
		if owner, err := authOwner(t, successor); err != nil || owner != "alice" {
			t.Fatalf("the new secret at /v1/auth: owner %q, %v; want alice", owner, err)
		}
		if _, err := authOwner(t, ciSecret); err != nil {
			t.Errorf("the old secret during its grace: %v", err)
		}
		old := get(t, ciID)
		if want := s.Clock.Now().Add(10 * time.Minute); old.ExpiresAt == nil || !old.ExpiresAt.Equal(want) {
			t.Errorf("the old token expires at %v, want the server's now + 10m = %v", old.ExpiresAt, want)
		}
		newID := secretTokenID(t, successor)
		if old.RotatedTo == nil || *old.RotatedTo != newID {
			t.Errorf("the old token's rotated_to %v, want %s", old.RotatedTo, newID)
		}
		if !strings.Contains(r.stdout, "The previous token "+ciID+" expires in ") {
			t.Errorf("rotate does not tell when the old token expires:\n%s", r.stdout)
		}
	})

	t.Run("revoke with a reason", func(t *testing.T) {
		r := run(t, "token", "revoke", deploy.ID, "--reason", "leaked in a log")
		if r.stdout != "Token "+deploy.ID+" revoked.\n" {
			t.Errorf("revoke printed %q", r.stdout)
		}
		tok := get(t, deploy.ID)
		if tok.Status != "revoked" || tok.RevokedReason == nil || *tok.RevokedReason != "leaked in a log" {
			t.Errorf("after revoke: status %s, reason %v", tok.Status, tok.RevokedReason)
		}
		wantRefused(t, "the revoked token", deploy.Secret)
	})

	t.Run("revoke --secret-stdin, without credentials", func(t *testing.T) {
		if successor == "" {
			t.Fatal("no secret to revoke: the rotation failed")
		}
		r := runWith(t, []string{server}, "  "+successor+"\n", "token", "revoke", "--secret-stdin")
		if r.code != 0 || r.stderr != "" || !strings.HasPrefix(r.stdout, "Revocation recorded.") {
			t.Fatalf("exit code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
		if strings.Contains(r.stdout, successor) {
			t.Error("the revoked secret was printed")
		}
		wantRefused(t, "the token revoked by its secret", successor)
	})

	t.Run("owner revoke", func(t *testing.T) {
		r := run(t, "token", "issue", "--owner", "carol", "--output", "json")
		var carol sdk.IssuedToken
		if err := json.Unmarshal([]byte(r.stdout), &carol); err != nil {
			t.Fatal(err)
		}
		until := time.Now().Add(time.Hour).UTC().Truncate(time.Second).Format(time.RFC3339)
		r = run(t, "owner", "revoke", "carol", "--until", until, "--reason", "offboarded")
		for _, want := range []string{"Owner carol: every token issued before ", "No new token until " + until + " (", "Reason: offboarded\n"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("owner revoke lacks %q:\n%s", want, r.stdout)
			}
		}
		wantRefused(t, "carol's token", carol.Secret)
		r = runWith(t, asAdmin, "", "token", "issue", "--owner", "carol")
		if r.code == 0 || !strings.Contains(r.stderr, "owner_blocked") {
			t.Errorf("issue for a blocked owner: exit code %d, stderr %q", r.code, r.stderr)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		unknown, err := domain.NewTokenID(s.Clock.Now(), nil)
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name string
			env  []string
			args []string
			// want is in the one line of stderr.
			want string
		}{
			{"an expiry that is not RFC 3339", asAdmin, []string{"token", "issue", "--owner", "alice", "--expires-at", "next tuesday"}, `invalid argument "next tuesday" for "--expires-at"`},
			{"an expiry in the past", asAdmin, []string{"token", "issue", "--owner", "alice", "--expires-at", "2001-01-01T00:00:00Z"}, "policy_violation"},
			{"an empty scope", asAdmin, []string{"token", "issue", "--owner", "alice", "--scope", ""}, "--scope: empty scope"},
			{"a scope the flag cannot parse", asAdmin, []string{"token", "issue", "--owner", "alice", "--scope", `repo"read`}, `invalid argument "repo\"read" for "--scope"`},
			{"a scope the server refuses", asAdmin, []string{"token", "issue", "--owner", "alice", "--scope", "repo read"}, "invalid_request"},
			{"show an unknown id", asAdmin, []string{"token", "show", unknown.String()}, "not_found"},
			{"expire an unknown id", asAdmin, []string{"token", "expire", unknown.String(), "--in", "1h"}, "not_found"},
			{"revoke an unknown id", asAdmin, []string{"token", "revoke", unknown.String(), "--reason", "x"}, "not_found"},
			{"rotate an unknown id", asAdmin, []string{"token", "rotate", unknown.String()}, "not_found"},
			{"an id that is not one", asAdmin, []string{"token", "revoke", "not-an-id"}, "invalid_request"},
			{"no TOKENLEDGER_TOKEN, issue", []string{server}, []string{"token", "issue", "--owner", "alice"}, "TOKENLEDGER_TOKEN is not set"},
			{"no TOKENLEDGER_TOKEN, owner revoke", []string{server}, []string{"owner", "revoke", "alice"}, "TOKENLEDGER_TOKEN is not set"},
			{"a revoked caller", []string{server, tokenEnv + "=" + deploy.Secret}, []string{"token", "issue", "--name", "x"}, "unauthorized"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				before := s.LastSequence(t)
				r := runWith(t, tt.env, "", tt.args...)
				if r.code == 0 {
					t.Errorf("exit code 0, want a failure")
				}
				if !strings.HasPrefix(r.stderr, "tokenledger: ") || !strings.HasSuffix(r.stderr, "\n") || strings.Count(r.stderr, "\n") != 1 {
					t.Errorf("stderr %q, want one line starting \"tokenledger: \"", r.stderr)
				}
				if !strings.Contains(r.stderr, tt.want) {
					t.Errorf("stderr %q lacks %q", r.stderr, tt.want)
				}
				if r.stdout != "" {
					t.Errorf("stdout %q, want nothing", secretPattern.ReplaceAllString(r.stdout, "tlk_[a secret]"))
				}
				if strings.Contains(r.stderr, domain.SecretPrefix) {
					t.Errorf("stderr holds a secret: %q", r.stderr)
				}
				if after := s.LastSequence(t); after != before {
					t.Errorf("the stream grew from %d to %d", before, after)
				}
			})
		}
	})
}
