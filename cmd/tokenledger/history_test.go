package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/audit"
	"github.com/tokenledger/tokenledger/internal/testkit/apitest"
	"github.com/tokenledger/tokenledger/sdk"
)

// TestHistoryCommand runs the built binary's history command against a real
// API node: the table is the readable timeline, --output json is the API's
// event list, and misuse fails with one line and a non-zero exit code.
func TestHistoryCommand(t *testing.T) {
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
	if err := api.Revoke(ctx, a.ID, "leaked"); err != nil {
		t.Fatal(err)
	}
	if _, err := api.RevokeOwner(ctx, "alice", sdk.OwnerRevokeRequest{Reason: "compromised"}); err != nil {
		t.Fatal(err)
	}
	bob, err := api.Issue(ctx, sdk.IssueRequest{Owner: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	s.WaitProjected(t)
	last := s.LastSequence(t)

	server := "TOKENLEDGER_SERVER=" + s.URL
	asAdmin := []string{server, tokenEnv + "=" + s.Admin}
	when := a.CreatedAt.UTC().Format(audit.TimeLayout)
	admin := "token:" + s.AdminID.String() + " (owner admin)"
	issued := when + "  issued by " + admin + ` for owner alice, name "ci", scopes repo:read, expires ` + a.ExpiresAt.UTC().Format(audit.TimeLayout)
	revoked := when + "  revoked by " + admin + ", reason: leaked"

	t.Run("a token as a table", func(t *testing.T) {
		t.Parallel()
		// TOKENLEDGER_OWNER must not reach --owner: it is a request flag.
		r := runBinary(t, append(asAdmin, "TOKENLEDGER_OWNER=bob"), "history", "--token", a.ID)
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("exit code %d, stderr %q", r.code, r.stderr)
		}
		if want := issued + "\n" + revoked + "\n\nComplete up to stream sequence " + fmt.Sprint(last) + ".\n"; r.stdout != want {
			t.Errorf("stdout\n%s\nwant\n%s", r.stdout, want)
		}
	})

	t.Run("an owner as a table", func(t *testing.T) {
		t.Parallel()
		r := runBinary(t, asAdmin, "history", "--owner", "alice")
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("exit code %d, stderr %q", r.code, r.stderr)
		}
		body, tail, _ := strings.Cut(r.stdout, "\n\n")
		if want := "Complete up to stream sequence " + fmt.Sprint(last) + ".\n"; tail != want {
			t.Errorf("last line %q, want %q", tail, want)
		}
		lines := strings.Split(body, "\n")
		subject := "token " + a.ID
		want := []struct{ subject, text string }{
			{subject, strings.TrimPrefix(issued, when+"  ")},
			{subject, strings.TrimPrefix(revoked, when+"  ")},
			{"owner alice", "all tokens revoked by " + admin + ", reason: compromised"},
		}
		if len(lines) != len(want) {
			t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), r.stdout)
		}
		for i, w := range want {
			fields := strings.SplitN(lines[i], "  ", 2)
			if fields[0] != when {
				t.Errorf("line %d starts %q, want the time %s", i, fields[0], when)
			}
			rest := strings.TrimLeft(fields[1], " ")
			if !strings.HasPrefix(rest, w.subject+"  ") || strings.TrimLeft(strings.TrimPrefix(rest, w.subject), " ") != w.text {
				t.Errorf("line %d\n %q\nwant subject %q and text %q", i, lines[i], w.subject, w.text)
			}
		}
	})

	t.Run("json is the API's answer", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			args []string
			api  func() (sdk.EventList, error)
		}{
			{[]string{"history", "--token", a.ID, "--output", "json"}, func() (sdk.EventList, error) { return api.Events(ctx, a.ID) }},
			{[]string{"history", "--owner", "alice", "--output", "json"}, func() (sdk.EventList, error) { return api.OwnerEvents(ctx, "alice") }},
		} {
			r := runBinary(t, asAdmin, tc.args...)
			if r.code != 0 {
				t.Fatalf("%v: exit code %d, stderr %q", tc.args, r.code, r.stderr)
			}
			var got sdk.EventList
			if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
				t.Fatalf("%v: stdout is not one JSON document: %v\n%s", tc.args, err, r.stdout)
			}
			want, err := tc.api()
			if err != nil {
				t.Fatal(err)
			}
			// Marshalling compacts the raw payloads the printer indented.
			g, _ := json.Marshal(got)
			w, _ := json.Marshal(want)
			if string(g) != string(w) || len(got.Items) == 0 {
				t.Errorf("%v printed\n%s\nthe API answers\n%s", tc.args, g, w)
			}
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
			{"neither flag", asAdmin, []string{"history"}, "give exactly one of --token ID and --owner OWNER"},
			{"both flags", asAdmin, []string{"history", "--token", a.ID, "--owner", "alice"}, "give exactly one of --token ID and --owner OWNER"},
			{"no caller's token", []string{server}, []string{"history", "--owner", "alice"}, tokenEnv + " is not set"},
			{"another owner's history", []string{server, tokenEnv + "=" + bob.Secret}, []string{"history", "--owner", "alice"}, "forbidden"},
			{"an unknown token", asAdmin, []string{"history", "--token", "01KAMQ4Z8V4N6Y2K5T7W9X0A1E"}, "not_found"},
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

// TestTimelineOfAPIEvents: events decoded from the API's JSON (without the
// secret's hash) read as the audit package tells the stored ones.
func TestTimelineOfAPIEvents(t *testing.T) {
	t.Parallel()
	events := []sdk.Event{
		{Sequence: 3, ID: "01KAMQ5Z8V4N6Y2K5T7W9X0A1F", Type: "token.issued.v1", Time: time.Date(2026, 11, 22, 10, 0, 3, 0, time.UTC),
			Actor: "admin:bootstrap", AggregateKind: "token", AggregateID: "01KAMQ2Z8V4N6Y2K5T7W9X0A1B", Schema: 1,
			Data: json.RawMessage(`{"owner":"alice","name":"ci","scopes":["repo:read"],"kind":"api","expires_at":null}`)},
		{Sequence: 4, ID: "01KAMQ5Z8V4N6Y2K5T7W9X0A1G", Type: "token.revoked.v1", Time: time.Date(2026, 11, 22, 11, 0, 3, 0, time.UTC),
			Actor: "token:01KAMQ2Z8V4N6Y2K5T7W9X0A1B", AggregateKind: "token", AggregateID: "01KAMQ2Z8V4N6Y2K5T7W9X0A1B", Schema: 1,
			Data: json.RawMessage(`{"reason":"leaked"}`)},
		{Sequence: 9, ID: "01KAMQ5Z8V4N6Y2K5T7W9X0A1H", Type: "token.frozen.v2", Time: time.Date(2026, 11, 22, 12, 0, 3, 0, time.UTC),
			Actor: "user:root", AggregateKind: "token", AggregateID: "01KAMQ2Z8V4N6Y2K5T7W9X0A1B", Schema: 2,
			Data: json.RawMessage(`{"until":"later"}`)},
	}
	var b strings.Builder
	p := printer{w: &b}
	if err := p.history(sdk.EventList{Items: events}, nil, false); err != nil {
		t.Fatal(err)
	}
	want := `2026-11-22 10:00:03  issued by admin:bootstrap for owner alice, name "ci", scopes repo:read, does not expire
2026-11-22 11:00:03  revoked by token:01KAMQ2Z8V4N6Y2K5T7W9X0A1B (owner alice), reason: leaked
2026-11-22 12:00:03  token.frozen.v2 by user:root
`
	if b.String() != want {
		t.Errorf("timeline\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	if err := p.history(sdk.EventList{}, nil, true); err != nil || b.String() != "No events.\n" {
		t.Errorf("an empty history printed %q, %v", b.String(), err)
	}
}

// TestHistoryOwnerBeyondTheProjection: `history --owner` shows every token
// of the owner, also those issued after the projector stopped, and names
// the stream sequence it is complete up to.
func TestHistoryOwnerBeyondTheProjection(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	ctx := context.Background()
	api, err := sdk.New(s.URL, sdk.WithToken(s.Admin))
	if err != nil {
		t.Fatal(err)
	}
	s.StopProjector(t)
	var ids []string
	for range 4 {
		tok, err := api.Issue(ctx, sdk.IssueRequest{Owner: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, tok.ID)
	}
	last := s.LastSequence(t)

	r := runBinary(t, []string{"TOKENLEDGER_SERVER=" + s.URL, tokenEnv + "=" + s.Admin}, "history", "--owner", "alice")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit code %d, stderr %q", r.code, r.stderr)
	}
	for _, id := range ids {
		if !strings.Contains(r.stdout, "token "+id+"  ") {
			t.Errorf("token %s missing from\n%s", id, r.stdout)
		}
	}
	if want := fmt.Sprintf("\n\nComplete up to stream sequence %d.\n", last); !strings.HasSuffix(r.stdout, want) {
		t.Errorf("stdout\n%s\nwant it to end with %q", r.stdout, want)
	}
}

// TestTokenRevokedByItsOwnerCommands: for a token revoked by an owner-wide
// revocation, `history --token` ends with that revocation and `token show`
// tells when and why it was revoked.
func TestTokenRevokedByItsOwnerCommands(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	ctx := context.Background()
	api, err := sdk.New(s.URL, sdk.WithToken(s.Admin))
	if err != nil {
		t.Fatal(err)
	}
	a, err := api.Issue(ctx, sdk.IssueRequest{Owner: "alice", Name: "ci"})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := api.RevokeOwner(ctx, "alice", sdk.OwnerRevokeRequest{Reason: "compromised"})
	if err != nil {
		t.Fatal(err)
	}
	asAdmin := []string{"TOKENLEDGER_SERVER=" + s.URL, tokenEnv + "=" + s.Admin}

	r := runBinary(t, asAdmin, "history", "--token", a.ID)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("history: exit code %d, stderr %q", r.code, r.stderr)
	}
	body, _, _ := strings.Cut(r.stdout, "\n\n")
	lines := strings.Split(body, "\n")
	want := rev.RevokedBefore.UTC().Format(audit.TimeLayout) + "  all tokens revoked by token:" + s.AdminID.String() + " (owner admin), reason: compromised"
	if len(lines) != 2 || lines[1] != want {
		t.Errorf("history\n%s\nwant its last event %q", r.stdout, want)
	}

	r = runBinary(t, asAdmin, "token", "show", a.ID)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("token show: exit code %d, stderr %q", r.code, r.stderr)
	}
	for _, w := range []string{"Status:", "Revoked:", "Revoked reason:", "Owner revoked:"} {
		line := ""
		for l := range strings.Lines(r.stdout) {
			if strings.HasPrefix(l, w) {
				line = strings.TrimSpace(strings.TrimPrefix(l, w))
			}
		}
		switch w {
		case "Status:":
			if line != "revoked" {
				t.Errorf("%s %q, want revoked", w, line)
			}
		case "Revoked:":
			if !strings.HasPrefix(line, rev.RevokedBefore.UTC().Format(time.RFC3339)) {
				t.Errorf("%s %q, want the owner revocation's instant %s", w, line, rev.RevokedBefore.UTC().Format(time.RFC3339))
			}
		case "Revoked reason:":
			if line != "compromised" {
				t.Errorf("%s %q, want compromised", w, line)
			}
		case "Owner revoked:":
			if line != "yes" {
				t.Errorf("%s %q, want yes", w, line)
			}
		}
	}
}
