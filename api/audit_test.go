package api_test

import (
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/internal/testkit/apitest"
	"github.com/tokenledger/tokenledger/sdk"
)

// TestOwnerEventsRoute drives GET /v1/owners/{owner}/events end to end: the
// owner's history is its owner-wide events and every event of its tokens,
// in stream order, for an admin or a token of the owner, and nobody else.
func TestOwnerEventsRoute(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	admin := s.Admin

	a := issue(t, s, admin, sdk.IssueRequest{Owner: "alice", Name: "ci", Scopes: []string{"repo:read"}})
	at := s.Clock.Now().Add(24 * time.Hour).Truncate(time.Second)
	if res := do(t, s, req{method: "PATCH", path: "/v1/tokens/" + a.ID, secret: admin, body: sdk.SetExpiryRequest{ExpiresAt: &at}}); res.status != http.StatusOK {
		t.Fatalf("set expiry: %d %s", res.status, res.body)
	}
	if res := do(t, s, req{method: "POST", path: "/v1/owners/alice/revoke", secret: admin, body: sdk.OwnerRevokeRequest{Reason: "compromised"}}); res.status != http.StatusOK {
		t.Fatalf("revoke owner: %d %s", res.status, res.body)
	}
	// Issued after the owner-wide revocation, so it still works.
	own := issue(t, s, admin, sdk.IssueRequest{Owner: "alice", Name: "laptop"})
	bob := issue(t, s, admin, sdk.IssueRequest{Owner: "bob"})
	s.WaitProjected(t)

	// The expected history, from the tokens' histories (a's holds the
	// owner-wide revocation that revoked it, which the owner's history
	// holds once).
	var want []sdk.Event
	for _, id := range []string{a.ID, own.ID} {
		res := do(t, s, req{method: "GET", path: "/v1/tokens/" + id + "/events", secret: admin})
		var list sdk.EventList
		res.decode(t, &list)
		for _, e := range list.Items {
			if e.AggregateKind == "token" {
				want = append(want, e)
			}
		}
	}
	slices.SortFunc(want, func(x, y sdk.Event) int { return int(x.Sequence) - int(y.Sequence) })

	tests := []struct {
		name   string
		path   string
		secret string
		status int
		code   string
	}{
		{"an admin", "/v1/owners/alice/events", admin, http.StatusOK, ""},
		{"a token of the owner", "/v1/owners/alice/events", own.Secret, http.StatusOK, ""},
		{"a token of another owner", "/v1/owners/alice/events", bob.Secret, http.StatusForbidden, sdk.CodeForbidden},
		{"no credentials", "/v1/owners/alice/events", "", http.StatusUnauthorized, sdk.CodeUnauthorized},
		{"an owner the API refuses", "/v1/owners/a.b/events", admin, http.StatusBadRequest, sdk.CodeInvalidRequest},
		{"an unknown parameter", "/v1/owners/alice/events?tokens=true", admin, http.StatusBadRequest, sdk.CodeInvalidRequest},
		{"the wrong method", "/v1/owners/alice/events", admin, http.StatusMethodNotAllowed, sdk.CodeMethodNotAllowed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := "GET"
			if tc.status == http.StatusMethodNotAllowed {
				method = "DELETE"
			}
			res := do(t, s, req{method: method, path: tc.path, secret: tc.secret})
			if res.status != tc.status {
				t.Fatalf("%d %s, want %d", res.status, res.body, tc.status)
			}
			if tc.code != "" {
				if got := res.errorCode(t); got != tc.code {
					t.Errorf("code %q, want %q", got, tc.code)
				}
				return
			}
			if strings.Contains(string(res.body), "secret_sha256") {
				t.Errorf("the history shows the secret's hash: %s", res.body)
			}
			var got sdk.EventList
			res.decode(t, &got)
			if len(got.Items) != len(want)+1 {
				t.Fatalf("%d events, want %d of the tokens and 1 of the owner: %s", len(got.Items), len(want)+1, res.body)
			}
			var tokens []sdk.Event
			owner := 0
			for i, e := range got.Items {
				if i > 0 && e.Sequence <= got.Items[i-1].Sequence {
					t.Errorf("event %d at sequence %d after %d: not in stream order", i, e.Sequence, got.Items[i-1].Sequence)
				}
				switch {
				case e.AggregateKind == "owner" && e.AggregateID == "alice" && e.Type == "owner.tokens_revoked.v1":
					owner++
					if !strings.Contains(string(e.Data), `"compromised"`) {
						t.Errorf("owner event %s lacks its reason", e.Data)
					}
				default:
					tokens = append(tokens, e)
				}
			}
			if owner != 1 {
				t.Errorf("%d owner events, want 1", owner)
			}
			if !reflect.DeepEqual(tokens, want) {
				t.Errorf("token events\n got %+v\nwant %+v", tokens, want)
			}
		})
	}

	t.Run("an owner without history", func(t *testing.T) {
		res := do(t, s, req{method: "GET", path: "/v1/owners/" + url.PathEscape("team/nobody") + "/events", secret: admin})
		var got sdk.EventList
		if res.status == http.StatusOK {
			res.decode(t, &got)
		}
		if res.status != http.StatusOK || got.Items == nil || len(got.Items) != 0 || got.Sequence < s.LastSequence(t) {
			t.Errorf("%d %s, want 200, no events and the stream's last sequence", res.status, res.body)
		}
	})

	t.Run("an unknown token's history", func(t *testing.T) {
		res := do(t, s, req{method: "GET", path: "/v1/tokens/01KAMQ4Z8V4N6Y2K5T7W9X0A1E/events", secret: admin})
		if res.status != http.StatusNotFound || res.errorCode(t) != sdk.CodeNotFound {
			t.Errorf("%d %s, want 404 not_found", res.status, res.body)
		}
	})
}

// TestOwnerEventsBeyondTheProjection: an owner's history is complete up to
// the sequence it names even when the projector lags behind the stream:
// tokens it has not projected yet are found in the stream.
func TestOwnerEventsBeyondTheProjection(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	admin := s.Admin
	projected := issue(t, s, admin, sdk.IssueRequest{Owner: "alice", Name: "projected"})
	s.WaitProjected(t)
	s.StopProjector(t)

	want := map[string]bool{projected.ID: true}
	for i := range 6 {
		tok := issue(t, s, admin, sdk.IssueRequest{Owner: "alice", Name: fmt.Sprint("lagging ", i)})
		want[tok.ID] = true
	}
	issue(t, s, admin, sdk.IssueRequest{Owner: "bob"})
	last := issue(t, s, admin, sdk.IssueRequest{Owner: "alice", Name: "last"})
	want[last.ID] = true
	lastSeq := s.LastSequence(t)

	for _, secret := range []string{admin, last.Secret} {
		res := do(t, s, req{method: "GET", path: "/v1/owners/alice/events", secret: secret})
		if res.status != http.StatusOK {
			t.Fatalf("%d %s", res.status, res.body)
		}
		var got sdk.EventList
		res.decode(t, &got)
		issued := map[string]bool{}
		for _, e := range got.Items {
			if e.AggregateKind != "token" {
				t.Errorf("unexpected event %+v", e)
			}
			if e.Type == "token.issued.v1" {
				issued[e.AggregateID] = true
			}
			if e.Sequence > got.Sequence {
				t.Errorf("event at %d after the history's sequence %d", e.Sequence, got.Sequence)
			}
		}
		if !reflect.DeepEqual(issued, want) {
			t.Errorf("issued events of %d tokens, want the %d of alice: %v", len(issued), len(want), issued)
		}
		if got.Sequence < lastSeq {
			t.Errorf("history complete up to %d, want at least the last issue's %d", got.Sequence, lastSeq)
		}
	}
}

// TestTokenRevokedByItsOwner: a token revoked by an owner-wide revocation
// has that revocation in its history, and its metadata tells the
// revocation's instant and reason, alike from the ledger (GET
// /v1/tokens/{id}) and from the read model (GET /v1/tokens). The first
// revocation that covers a token is the one that revoked it; a token
// revoked by itself before, or issued after, has none.
func TestTokenRevokedByItsOwner(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	admin := s.Admin
	revokeOwner := func(reason string) sdk.OwnerRevocation {
		t.Helper()
		res := do(t, s, req{method: "POST", path: "/v1/owners/alice/revoke", secret: admin, body: sdk.OwnerRevokeRequest{Reason: reason}})
		if res.status != http.StatusOK {
			t.Fatalf("revoke owner: %d %s", res.status, res.body)
		}
		var out sdk.OwnerRevocation
		res.decode(t, &out)
		return out
	}
	early := issue(t, s, admin, sdk.IssueRequest{Owner: "alice", Name: "early"})
	self := issue(t, s, admin, sdk.IssueRequest{Owner: "alice", Name: "self"})
	if res := do(t, s, req{method: "DELETE", path: "/v1/tokens/" + self.ID, secret: admin, body: sdk.RevokeRequest{Reason: "leaked"}}); res.status != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", res.status, res.body)
	}
	s.Clock.Advance(time.Minute)
	first := revokeOwner("compromised")
	s.Clock.Advance(time.Minute)
	middle := issue(t, s, admin, sdk.IssueRequest{Owner: "alice", Name: "middle"})
	s.Clock.Advance(time.Minute)
	second := revokeOwner("offboarded")
	late := issue(t, s, admin, sdk.IssueRequest{Owner: "alice", Name: "late"})
	s.WaitProjected(t)

	tests := []struct {
		name   string
		id     string
		at     *time.Time
		reason string
		// owner is the reason of the owner event the history ends with.
		owner string
	}{
		{"revoked by the first revocation", early.ID, &first.RevokedBefore, "compromised", "compromised"},
		{"revoked by itself before", self.ID, nil, "leaked", ""},
		{"revoked by the second revocation", middle.ID, &second.RevokedBefore, "offboarded", "offboarded"},
		{"issued after both", late.ID, nil, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := do(t, s, req{method: "GET", path: "/v1/tokens/" + tc.id + "/events", secret: admin})
			var h sdk.EventList
			res.decode(t, &h)
			var owner []sdk.Event
			for _, e := range h.Items {
				if e.AggregateKind == "owner" {
					owner = append(owner, e)
				}
			}
			switch {
			case tc.owner == "" && len(owner) != 0:
				t.Errorf("history holds owner events %+v, want none", owner)
			case tc.owner != "" && (len(owner) != 1 || owner[0].Type != "owner.tokens_revoked.v1" ||
				!strings.Contains(string(owner[0].Data), `"`+tc.owner+`"`) || h.Items[len(h.Items)-1].ID != owner[0].ID):
				t.Errorf("history %s\nwant it to end with the revocation %q", res.body, tc.owner)
			}
			if h.Sequence < s.LastSequence(t) {
				t.Errorf("history complete up to %d, want %d", h.Sequence, s.LastSequence(t))
			}

			var fromLedger sdk.Token
			do(t, s, req{method: "GET", path: "/v1/tokens/" + tc.id, secret: admin}).decode(t, &fromLedger)
			var page sdk.TokenPage
			do(t, s, req{method: "GET", path: "/v1/tokens?owner=alice&limit=100", secret: admin}).decode(t, &page)
			var fromList *sdk.Token
			for i := range page.Items {
				if page.Items[i].ID == tc.id {
					fromList = &page.Items[i]
				}
			}
			if fromList == nil {
				t.Fatal("not in the list")
			}
			for where, tok := range map[string]sdk.Token{"GET /v1/tokens/{id}": fromLedger, "GET /v1/tokens": *fromList} {
				switch {
				case tc.reason == "" && (tok.RevokedAt != nil || tok.RevokedReason != nil || tok.Status != "active"):
					t.Errorf("%s: %s revoked at %v, want an active token", where, tok.Status, tok.RevokedAt)
				case tc.reason != "" && (tok.Status != "revoked" || tok.RevokedAt == nil || tok.RevokedReason == nil || *tok.RevokedReason != tc.reason):
					t.Errorf("%s: %s, revoked at %v reason %v, want revoked with reason %q", where, tok.Status, tok.RevokedAt, tok.RevokedReason, tc.reason)
				case tc.at != nil && !tok.RevokedAt.Equal(*tc.at):
					t.Errorf("%s: revoked at %v, want the revocation's %v", where, tok.RevokedAt, *tc.at)
				}
			}
		})
	}
}

// TestStateRoute drives GET /v1/state end to end over the stack's manual
// clock: the state at an earlier instant shows tokens as they were then,
// the state now agrees with the live listing, and only admins may ask.
func TestStateRoute(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	admin := s.Admin
	stateAt := func(t *testing.T, secret string, query string) resp {
		t.Helper()
		return do(t, s, req{method: "GET", path: "/v1/state?" + query, secret: secret})
	}

	a := issue(t, s, admin, sdk.IssueRequest{Owner: "alice", Name: "ci", Scopes: []string{"repo:read"}, ExpiresIn: ptr(sdk.Duration(2 * time.Hour))})
	t0 := s.Clock.Now()
	t1 := s.Clock.Advance(30 * time.Minute)
	if res := do(t, s, req{method: "DELETE", path: "/v1/tokens/" + a.ID, secret: admin, body: sdk.RevokeRequest{Reason: "leaked"}}); res.status != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", res.status, res.body)
	}
	t2 := s.Clock.Advance(30 * time.Minute)
	b := issue(t, s, admin, sdk.IssueRequest{Owner: "alice", Name: "short", ExpiresIn: ptr(sdk.Duration(time.Hour))})
	issue(t, s, admin, sdk.IssueRequest{Owner: "bob"})
	t3 := s.Clock.Advance(2 * time.Hour)
	s.WaitProjected(t)

	query := func(at time.Time, owner string) string {
		q := url.Values{"at": {at.UTC().Format(time.RFC3339Nano)}}
		if owner != "" {
			q.Set("owner", owner)
		}
		return q.Encode()
	}
	type want struct {
		id, status string
		revoked    bool
	}
	tests := []struct {
		name string
		at   time.Time
		want []want
	}{
		{"before anything of alice", t0.Add(-time.Second), nil},
		{"at the issue", t0, []want{{a.ID, "active", false}}},
		{"after the revocation", t1.Add(time.Second), []want{{a.ID, "revoked", true}}},
		{"with the second token", t2.Add(time.Minute), []want{{a.ID, "revoked", true}, {b.ID, "active", false}}},
		{"after the second token expired", t3, []want{{a.ID, "revoked", true}, {b.ID, "expired", false}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := stateAt(t, admin, query(tc.at, "alice"))
			if res.status != http.StatusOK {
				t.Fatalf("%d %s", res.status, res.body)
			}
			var got sdk.StateAt
			res.decode(t, &got)
			if !got.At.Equal(tc.at) {
				t.Errorf("at %s, want %s", got.At, tc.at)
			}
			if len(got.Items) != len(tc.want) {
				t.Fatalf("%d tokens, want %d: %s", len(got.Items), len(tc.want), res.body)
			}
			for i, w := range tc.want {
				g := got.Items[i]
				if g.ID != w.id || g.Status != w.status || (g.RevokedAt != nil) != w.revoked || g.Owner != "alice" {
					t.Errorf("token %d: %s %s revoked_at %v, want %s %s revoked %v", i, g.ID, g.Status, g.RevokedAt, w.id, w.status, w.revoked)
				}
				if w.revoked && (g.RevokedReason == nil || *g.RevokedReason != "leaked") {
					t.Errorf("token %s: revoked reason %v, want leaked", g.ID, g.RevokedReason)
				}
			}
		})
	}

	t.Run("now agrees with the live listing", func(t *testing.T) {
		res := stateAt(t, admin, query(s.Clock.Now(), "alice"))
		var got sdk.StateAt
		res.decode(t, &got)
		live := do(t, s, req{method: "GET", path: "/v1/tokens?owner=alice", secret: admin})
		var page sdk.TokenPage
		live.decode(t, &page)
		if !reflect.DeepEqual(got.Items, page.Items) {
			t.Errorf("state now\n %+v\nlive listing\n %+v", got.Items, page.Items)
		}
		if last := s.LastSequence(t); got.Sequence != last {
			t.Errorf("sequence %d, want the stream's last, %d", got.Sequence, last)
		}
	})

	t.Run("every owner", func(t *testing.T) {
		var got sdk.StateAt
		stateAt(t, admin, query(t3, "")).decode(t, &got)
		owners := map[string]int{}
		for _, it := range got.Items {
			owners[it.Owner]++
		}
		if owners["alice"] != 2 || owners["bob"] != 1 || owners["admin"] != 1 {
			t.Errorf("tokens per owner %v, want alice 2, bob 1, admin 1", owners)
		}
	})

	refusals := []struct {
		name   string
		secret string
		query  string
		status int
		code   string
	}{
		{"a token without ledger:admin", a.Secret, query(t3, ""), http.StatusForbidden, sdk.CodeForbidden},
		{"no credentials", "", query(t3, ""), http.StatusUnauthorized, sdk.CodeUnauthorized},
		{"no instant", admin, "", http.StatusBadRequest, sdk.CodeInvalidRequest},
		{"an instant in no form the API reads", admin, "at=yesterday", http.StatusBadRequest, sdk.CodeInvalidRequest},
		{"a duration without a sign (not a time)", admin, "at=2h", http.StatusBadRequest, sdk.CodeInvalidRequest},
		{"an owner the API refuses", admin, query(t3, "a.b"), http.StatusBadRequest, sdk.CodeInvalidRequest},
		{"an unknown parameter", admin, query(t3, "") + "&status=active", http.StatusBadRequest, sdk.CodeInvalidRequest},
		{"a repeated instant", admin, query(t3, "") + "&" + query(t2, ""), http.StatusBadRequest, sdk.CodeInvalidRequest},
	}
	// a's secret was revoked above; a fresh token of alice asks instead.
	refusals[0].secret = issue(t, s, admin, sdk.IssueRequest{Owner: "alice", Name: "asker"}).Secret
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			res := stateAt(t, tc.secret, tc.query)
			if res.status != tc.status {
				t.Fatalf("%d %s, want %d", res.status, res.body, tc.status)
			}
			if got := res.errorCode(t); got != tc.code {
				t.Errorf("code %q, want %q", got, tc.code)
			}
		})
	}
}
