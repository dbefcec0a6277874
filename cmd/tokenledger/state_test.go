package main

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/internal/testkit/apitest"
	"github.com/tokenledger/tokenledger/sdk"
)

// TestStateCommand runs the built binary's state command against a real API
// node whose clock is moved between changes: the table shows the tokens as
// they were at --at, --output json is the API's answer, and misuse fails
// with one line.
func TestStateCommand(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	ctx := context.Background()
	api, err := sdk.New(s.URL, sdk.WithToken(s.Admin))
	if err != nil {
		t.Fatal(err)
	}
	a, err := api.Issue(ctx, sdk.IssueRequest{Owner: "alice", Name: "ci", Scopes: []string{"repo:read"}})
	if err != nil {
		t.Fatal(err)
	}
	before := s.Clock.Advance(time.Hour)
	if err := api.Revoke(ctx, a.ID, "leaked"); err != nil {
		t.Fatal(err)
	}
	s.Clock.Advance(time.Hour)
	b, err := api.Issue(ctx, sdk.IssueRequest{Owner: "alice", Name: "later"})
	if err != nil {
		t.Fatal(err)
	}
	server := "TOKENLEDGER_SERVER=" + s.URL
	asAdmin := []string{server, tokenEnv + "=" + s.Admin}
	at := before.Add(-time.Minute).UTC().Format(time.RFC3339)

	t.Run("table", func(t *testing.T) {
		t.Parallel()
		r := runBinary(t, asAdmin, "state", "--at", at, "--owner", "alice")
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("exit code %d, stderr %q", r.code, r.stderr)
		}
		lines := strings.Split(r.stdout, "\n")
		if len(lines) < 4 || !strings.HasPrefix(lines[0], "Tokens as they were at "+at+" (stream sequence ") || !strings.HasSuffix(lines[0], "): 1 token") {
			t.Fatalf("stdout\n%s\nwant a header naming %s and 1 token", r.stdout, at)
		}
		row := lines[3]
		for _, want := range []string{a.ID, "alice", "ci", "active", "never used", "expires in 30 days"} {
			if !strings.Contains(row, want) {
				t.Errorf("row %q lacks %q (statuses and times as of --at)", row, want)
			}
		}
		if strings.Contains(r.stdout, b.ID) {
			t.Errorf("the state before its issue shows token %s:\n%s", b.ID, r.stdout)
		}
	})

	t.Run("json is the API's answer", func(t *testing.T) {
		t.Parallel()
		now := s.Clock.Now().UTC().Format(time.RFC3339Nano)
		r := runBinary(t, asAdmin, "state", "--at", now, "--output", "json")
		if r.code != 0 {
			t.Fatalf("exit code %d, stderr %q", r.code, r.stderr)
		}
		var got sdk.StateAt
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("stdout is not one JSON document: %v\n%s", err, r.stdout)
		}
		atNow, _ := time.Parse(time.RFC3339Nano, now)
		want, err := api.StateAt(ctx, atNow, "")
		if err != nil {
			t.Fatal(err)
		}
		// The admin's own use may be counted between the two calls.
		for _, st := range []*sdk.StateAt{&got, &want} {
			for i := range st.Items {
				if st.Items[i].ID == s.AdminID.String() {
					st.Items[i].LastUsedAt, st.Items[i].UseCount = nil, 0
				}
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("printed\n%+v\nthe API answers\n%+v", got, want)
		}
		statuses := map[string]string{}
		for _, it := range got.Items {
			statuses[it.ID] = it.Status
		}
		if statuses[a.ID] != "revoked" || statuses[b.ID] != "active" {
			t.Errorf("statuses now %v, want %s revoked and %s active", statuses, a.ID, b.ID)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name string
			env  []string
			args []string
			want string
		}{
			// TOKENLEDGER_AT must not reach --at: it is a request flag.
			{"no instant", append(asAdmin, "TOKENLEDGER_AT=2026-01-01T00:00:00Z"), []string{"state"}, "--at TIME is required"},
			{"not an instant", asAdmin, []string{"state", "--at", "yesterday"}, "want an RFC 3339 time"},
			{"no caller's token", []string{server}, []string{"state", "--at", at}, tokenEnv + " is not set"},
			{"a caller without ledger:admin", []string{server, tokenEnv + "=" + b.Secret}, []string{"state", "--at", at}, "forbidden"},
		}
		for _, tc := range tests {
			r := runBinary(t, tc.env, tc.args...)
			if r.code == 0 || r.stdout != "" {
				t.Errorf("%s: exit code %d, stdout %q; want a failure that prints nothing", tc.name, r.code, r.stdout)
			}
			if strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("%s: stderr %q, want one line with %q", tc.name, r.stderr, tc.want)
			}
		}
	})
}
