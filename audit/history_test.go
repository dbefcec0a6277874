package audit_test

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/audit"
	"github.com/tokenledger/tokenledger/domain"
)

// at is an instant of the scripted histories, on 2026-11-22 plus offsets.
func at(d time.Duration) time.Time {
	return time.Date(2026, 11, 22, 10, 0, 3, 0, time.UTC).Add(d)
}

func mustTokenID(t *testing.T, s string) domain.TokenID {
	t.Helper()
	id, err := domain.ParseTokenID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// envelope builds a stored event by hand.
func envelope(t *testing.T, kind domain.AggregateKind, aggID, actor string, when time.Time, seq uint64, data domain.Event) domain.Envelope {
	t.Helper()
	id, err := domain.NewEventID(when, nil)
	if err != nil {
		t.Fatal(err)
	}
	return domain.Envelope{ID: id, Type: data.EventType(), AggregateKind: kind, AggregateID: aggID,
		Actor: actor, Time: when, Schema: 1, Data: data, Sequence: seq}
}

// unknownEvent is a payload of a type this version does not know.
type unknownEvent struct{}

func (unknownEvent) EventType() domain.EventType { return "token.frozen.v1" }

// TestTimelineSentences tells one event of every kind, and the odd ones, as
// the sentence a person reads.
func TestTimelineSentences(t *testing.T) {
	t.Parallel()
	const (
		tokenA = "01KAMQ2Z8V4N6Y2K5T7W9X0A1B"
		tokenB = "01KAMQ3Z8V4N6Y2K5T7W9X0A1C"
		admin  = "01KAMQ1Z8V4N6Y2K5T7W9X0A1D"
		nobody = "01KAMQ4Z8V4N6Y2K5T7W9X0A1E"
	)
	a, b := mustTokenID(t, tokenA), mustTokenID(t, tokenB)
	exp := at(30 * 24 * time.Hour)
	cap := at(24 * time.Hour)
	until := at(72 * time.Hour)
	owners := func(id domain.TokenID) (domain.OwnerID, bool) {
		if id.String() == admin {
			return "admin", true
		}
		return "", false
	}
	tests := []struct {
		name  string
		actor string
		kind  domain.AggregateKind
		data  domain.Event
		want  string
	}{
		{"an api token issued by an admin token", "token:" + admin, domain.AggregateToken,
			domain.TokenIssued{Owner: "alice", Name: "ci", Scopes: []string{"repo:read", "repo:write"}, Kind: domain.KindAPI, SecretHash: domain.HashSecret("x"), ExpiresAt: &exp},
			`issued by token:` + admin + ` (owner admin) for owner alice, name "ci", scopes repo:read repo:write, expires 2026-12-22 10:00:03`},
		{"a token without expiry, name or scopes, by a bootstrap", "admin:bootstrap", domain.AggregateToken,
			domain.TokenIssued{Owner: "svc", Kind: domain.KindAPI, SecretHash: domain.HashSecret("x")},
			`issued by admin:bootstrap for owner svc, no scopes, does not expire`},
		{"a session issued by a rotation", "token:" + tokenA, domain.AggregateToken,
			domain.TokenIssued{Owner: "alice", Kind: domain.KindSession, SecretHash: domain.HashSecret("x"), Scopes: []string{"read"},
				ExpiresAt: ptr(at(30 * time.Minute)), IdleTimeout: 1800, AbsoluteExpiresAt: &cap, RotatedFrom: &b},
			`issued by token:` + tokenA + ` (owner alice) for owner alice, rotated from ` + tokenB + `, scopes read, session with idle timeout 30m0s and absolute expiry 2026-11-23 10:00:03, expires 2026-11-22 10:30:03`},
		{"an expiry set by its owner", "token:" + tokenA, domain.AggregateToken,
			domain.TokenExpirySet{ExpiresAt: &exp, Reason: domain.ExpirySetByCaller},
			`expiry set to 2026-12-22 10:00:03 (reason: set) by token:` + tokenA + ` (owner alice)`},
		{"an expiry removed", "token:" + admin, domain.AggregateToken,
			domain.TokenExpirySet{Reason: domain.ExpirySetByCaller},
			`expiry removed (does not expire) (reason: set) by token:` + admin + ` (owner admin)`},
		{"a rotation", "token:" + admin, domain.AggregateToken,
			domain.TokenExpirySet{ExpiresAt: &cap, Reason: domain.ExpiryRotated, RotatedTo: &b},
			`expiry set to 2026-11-23 10:00:03 (reason: rotated, rotated to ` + tokenB + `) by token:` + admin + ` (owner admin)`},
		{"a session slid", "system:session-slide", domain.AggregateToken,
			domain.TokenExpirySet{ExpiresAt: &cap, Reason: domain.ExpirySessionExtended},
			`expiry set to 2026-11-23 10:00:03 (reason: session_extended) by system:session-slide`},
		{"a revocation with a reason", "token:" + admin, domain.AggregateToken,
			domain.TokenRevoked{Reason: "leaked"},
			`revoked by token:` + admin + ` (owner admin), reason: leaked`},
		{"a family revoked with one event for a reused rotated-out secret", "system:reuse-detection", domain.AggregateOwner,
			domain.OwnerFamilyRevoked{Owner: "alice", Family: b, Reason: domain.ReasonRotatedSecretReused, Reuse: &domain.SecretReuse{Token: a, ClientAddr: "203.0.113.9", Route: "GET /v1/auth"}},
			`rotation family ` + tokenB + ` revoked by system:reuse-detection, reason: rotated_secret_reused (the rotated-out secret of ` + tokenA + ` was presented from 203.0.113.9 at GET /v1/auth)`},
		{"a member revoked for a reused rotated-out secret, one event per member", "system:reuse-detection", domain.AggregateToken,
			domain.TokenRevoked{Reason: domain.ReasonRotatedSecretReused, Reuse: &domain.SecretReuse{Token: b, ClientAddr: "203.0.113.9", Route: "/v1/auth"}},
			`revoked by system:reuse-detection, reason: rotated_secret_reused (the rotated-out secret of ` + tokenB + ` was presented from 203.0.113.9 at /v1/auth)`},
		{"a token issued by a rotation of a family", "token:" + tokenA, domain.AggregateToken,
			domain.TokenIssued{Owner: "alice", Kind: domain.KindAPI, SecretHash: domain.HashSecret("x"), Scopes: []string{"read"}, ExpiresAt: &exp, RotatedFrom: &b, Family: &b},
			`issued by token:` + tokenA + ` (owner alice) for owner alice, rotated from ` + tokenB + `, family ` + tokenB + `, scopes read, expires 2026-12-22 10:00:03`},
		{"a revocation by an unknown token", "token:" + nobody, domain.AggregateToken,
			domain.TokenRevoked{},
			`revoked by token:` + nobody},
		{"a revocation by the secret's holder", "secret-holder", domain.AggregateToken,
			domain.TokenRevoked{Reason: "found in a log"},
			`revoked by secret-holder, reason: found in a log`},
		{"a reason with control characters is quoted", "token:not-an-id", domain.AggregateToken,
			domain.TokenRevoked{Reason: "a\x1b[2Jb"},
			`revoked by token:not-an-id, reason: "a\x1b[2Jb"`},
		{"an owner revocation with a ban", "token:" + admin, domain.AggregateOwner,
			domain.OwnerTokensRevoked{Owner: "alice", RevokedBefore: at(0), Until: &until, Reason: "compromised"},
			`all tokens revoked by token:` + admin + ` (owner admin), reason: compromised, no new tokens until 2026-11-25 10:00:03`},
		{"an owner revocation without reason", "user:root", domain.AggregateOwner,
			domain.OwnerTokensRevoked{Owner: "alice", RevokedBefore: at(0)},
			`all tokens revoked by user:root`},
		{"uses over a span", "system:validator", domain.AggregateToken,
			domain.TokenUsed{Count: 12, FirstAt: at(0), LastAt: at(time.Hour), ClientAddr: "10.0.0.1"},
			`used 12 times between 2026-11-22 10:00:03 and 2026-11-22 11:00:03 from 10.0.0.1`},
		{"uses at one instant", "system:validator", domain.AggregateToken,
			domain.TokenUsed{Count: 3, FirstAt: at(0), LastAt: at(0)},
			`used 3 times at 2026-11-22 10:00:03`},
		{"one use", "system:validator", domain.AggregateToken,
			domain.TokenUsed{Count: 1, FirstAt: at(0), LastAt: at(0), ClientAddr: "2001:db8::1"},
			`used once at 2026-11-22 10:00:03 from 2001:db8::1`},
		{"an event of an unknown type", "token:" + admin, domain.AggregateToken,
			unknownEvent{},
			`token.frozen.v1 by token:` + admin + ` (owner admin)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			aggID := a.String()
			if tc.kind == domain.AggregateOwner {
				aggID = "alice"
			}
			// The issue of token A names its owner, so actors that are
			// token A resolve without asking.
			issued := envelope(t, domain.AggregateToken, tokenA, "admin:bootstrap", at(-time.Hour), 1,
				domain.TokenIssued{Owner: "alice", Kind: domain.KindAPI, SecretHash: domain.HashSecret("y")})
			e := envelope(t, tc.kind, aggID, tc.actor, at(time.Minute), 7, tc.data)
			got := audit.Timeline([]domain.Envelope{issued, e}, owners)
			if len(got) != 2 {
				t.Fatalf("%d entries, want 2", len(got))
			}
			en := got[1]
			if en.Text != tc.want {
				t.Errorf("text\n got %s\nwant %s", en.Text, tc.want)
			}
			if want := "2026-11-22 10:01:03  " + tc.want; en.String() != want {
				t.Errorf("String() = %q, want %q", en.String(), want)
			}
			if en.Sequence != 7 || en.Type != tc.data.EventType() || !en.Time.Equal(at(time.Minute)) || en.Subject != string(tc.kind)+" "+aggID {
				t.Errorf("entry %+v does not carry the event's sequence, type, time and subject", en)
			}
			if !strings.HasPrefix(en.Actor, tc.actor) && !strings.HasPrefix(en.Actor, `"`) {
				t.Errorf("actor %q does not start with the recorded %q", en.Actor, tc.actor)
			}
		})
	}
}

// TestTimelineAsksOncePerToken: the owner of an acting token is looked up
// once per Timeline call, however many events it caused, and not at all
// when the events themselves tell it.
func TestTimelineAsksOncePerToken(t *testing.T) {
	t.Parallel()
	const admin = "01KAMQ1Z8V4N6Y2K5T7W9X0A1D"
	asked := map[string]int{}
	owners := func(id domain.TokenID) (domain.OwnerID, bool) {
		asked[id.String()]++
		return "", false
	}
	var events []domain.Envelope
	for i := range 5 {
		events = append(events, envelope(t, domain.AggregateToken, "01KAMQ2Z8V4N6Y2K5T7W9X0A1B", "token:"+admin, at(time.Duration(i)*time.Minute), uint64(i+1), domain.TokenRevoked{}))
	}
	for _, en := range audit.Timeline(events, owners) {
		if en.Actor != "token:"+admin {
			t.Errorf("actor %q, want the recorded one when its owner is unknown", en.Actor)
		}
	}
	if asked[admin] != 1 || len(asked) != 1 {
		t.Errorf("asked %v, want the admin token once", asked)
	}
}

// TestHistoryOfTokenAndOwner scripts a small history in a real event store
// and read model, then reads the timeline of one token (loaded from the
// store, actors resolved through it) and of its owner (all its tokens and
// its owner-wide events, merged in stream order), line by line.
func TestHistoryOfTokenAndOwner(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	ctx := context.Background()
	policy := domain.DefaultPolicy()
	policy.AllowNeverExpires = true
	by := func(actor string) domain.Meta { return domain.Meta{Actor: actor, CorrelationID: "req-1"} }

	alice, adminOwner := domain.NewOwner("alice"), domain.NewOwner("admin")
	admin, _, err := domain.IssueToken(policy, adminOwner, domain.IssueRequest{Owner: "admin", Name: "bootstrap", Scopes: []string{"ledger:admin"}, NeverExpires: true}, by("admin:bootstrap"), at(0), nil)
	if err != nil {
		t.Fatal(err)
	}
	l.issue(admin, adminOwner)
	asAdmin := by("token:" + admin.ID().String())

	a, _, err := domain.IssueToken(policy, alice, domain.IssueRequest{Owner: "alice", Name: "ci", Scopes: []string{"repo:write", "repo:read"}, ExpiresIn: 30 * 24 * time.Hour}, asAdmin, at(time.Minute), nil)
	if err != nil {
		t.Fatal(err)
	}
	l.issue(a, alice)
	if err := a.SetExpiry(policy, ptr(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)), by("token:"+a.ID().String()), at(2*time.Hour+time.Minute)); err != nil {
		t.Fatal(err)
	}
	l.change(a)
	l.use(a, 12, at(3*time.Hour), "10.0.0.1", by("system:validator"), at(4*time.Hour))
	b, _, err := domain.Rotate(policy, alice, a, time.Hour, nil, asAdmin, at(24*time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	l.rotate(a, b, alice)
	if err := a.Revoke("leaked", asAdmin, at(24*time.Hour+30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	l.change(a)
	s, _, err := domain.IssueToken(policy, alice, domain.IssueRequest{Owner: "alice", Kind: domain.KindSession, IdleTimeout: 30 * time.Minute}, by("token:"+b.ID().String()), at(25*time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	l.issue(s, alice)
	if err := s.Revoke("", by("secret-holder"), at(25*time.Hour+10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	l.change(s)
	unknown := "token:01KAMQ4Z8V4N6Y2K5T7W9X0A1E"
	if err := alice.RevokeTokens(ptr(time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)), "compromised", by(unknown), at(47*time.Hour)); err != nil {
		t.Fatal(err)
	}
	l.revokeOwner(alice)

	adminActor := "token:" + admin.ID().String() + " (owner admin)"
	lineA := map[string]string{
		"issued":  "2026-11-22 10:01:03  issued by " + adminActor + ` for owner alice, name "ci", scopes repo:read repo:write, expires 2026-12-22 10:01:03`,
		"set":     "2026-11-22 12:01:03  expiry set to 2026-12-01 00:00:00 (reason: set) by token:" + a.ID().String() + " (owner alice)",
		"rotated": "2026-11-23 10:00:03  expiry set to 2026-11-23 11:00:03 (reason: rotated, rotated to " + b.ID().String() + ") by " + adminActor,
		"revoked": "2026-11-23 10:30:03  revoked by " + adminActor + ", reason: leaked",
	}

	t.Run("token", func(t *testing.T) {
		t.Parallel()
		events, err := l.store.LoadToken(ctx, a.ID())
		if err != nil {
			t.Fatal(err)
		}
		want := []string{lineA["issued"], lineA["set"], lineA["rotated"], lineA["revoked"]}
		checkLines(t, audit.Timeline(events, audit.StoreOwners(ctx, l.store)), want)
	})

	t.Run("owner", func(t *testing.T) {
		t.Parallel()
		h, err := audit.OwnerHistory(ctx, l.store, l.read, lifecycleName, "alice")
		if err != nil {
			t.Fatal(err)
		}
		entries := audit.Timeline(h.Events, audit.NewReader(l.store, l.read, lifecycleName).Owners(ctx))
		want := []string{
			lineA["issued"], lineA["set"], lineA["rotated"],
			"2026-11-23 10:00:03  issued by " + adminActor + " for owner alice, rotated from " + a.ID().String() + ", family " + a.ID().String() + `, name "ci", scopes repo:read repo:write, expires 2026-12-23 10:00:03`,
			lineA["revoked"],
			"2026-11-23 11:00:03  issued by token:" + b.ID().String() + " (owner alice) for owner alice, no scopes, session with idle timeout 30m0s and absolute expiry 2026-11-24 11:00:03, expires 2026-11-23 11:30:03",
			"2026-11-23 11:10:03  revoked by secret-holder",
			"2026-11-24 09:00:03  all tokens revoked by " + unknown + ", reason: compromised, no new tokens until 2026-11-25 00:00:00",
		}
		checkLines(t, entries, want)
		subjects := []string{"token " + a.ID().String(), "token " + a.ID().String(), "token " + a.ID().String(), "token " + b.ID().String(),
			"token " + a.ID().String(), "token " + s.ID().String(), "token " + s.ID().String(), "owner alice"}
		for i, en := range entries {
			if i < len(subjects) && en.Subject != subjects[i] {
				t.Errorf("entry %d: subject %q, want %q", i, en.Subject, subjects[i])
			}
			if i > 0 && en.Sequence <= entries[i-1].Sequence {
				t.Errorf("entry %d: sequence %d after %d: not in stream order", i, en.Sequence, entries[i-1].Sequence)
			}
		}
	})

	t.Run("token revoked by its owner", func(t *testing.T) {
		t.Parallel()
		// a (and s) were revoked by themselves before the owner-wide
		// revocation, which changed nothing for them; it revoked b.
		h, err := audit.TokenHistory(ctx, l.store, a.ID())
		if err != nil {
			t.Fatal(err)
		}
		checkLines(t, audit.Timeline(h.Events, audit.StoreOwners(ctx, l.store)),
			[]string{lineA["issued"], lineA["set"], lineA["rotated"], lineA["revoked"]})
		h, err = audit.TokenHistory(ctx, l.store, b.ID())
		if err != nil {
			t.Fatal(err)
		}
		checkLines(t, audit.Timeline(h.Events, audit.StoreOwners(ctx, l.store)), []string{
			"2026-11-23 10:00:03  issued by " + adminActor + " for owner alice, rotated from " + a.ID().String() + ", family " + a.ID().String() + `, name "ci", scopes repo:read repo:write, expires 2026-12-23 10:00:03`,
			"2026-11-24 09:00:03  all tokens revoked by " + unknown + ", reason: compromised, no new tokens until 2026-11-25 00:00:00",
		})
		if h.Owner != "alice" || h.Sequence != l.last() {
			t.Errorf("history of owner %q up to %d, want alice up to %d", h.Owner, h.Sequence, l.last())
		}
	})

	t.Run("owner without events", func(t *testing.T) {
		t.Parallel()
		h, err := audit.OwnerHistory(ctx, l.store, l.read, lifecycleName, "nobody")
		if err != nil || len(h.Events) != 0 || h.Sequence != l.last() {
			t.Fatalf("history of an owner without events: %d events up to %d, %v", len(h.Events), h.Sequence, err)
		}
	})
}

// hexHash matches a SHA-256 written in hex, as token.issued stores it.
var hexHash = regexp.MustCompile(`[0-9a-fA-F]{64}`)

// checkLines compares entries with the lines wanted, and checks no entry
// shows a secret's hash.
func checkLines(t *testing.T, entries []audit.Entry, want []string) {
	t.Helper()
	for i := range max(len(entries), len(want)) {
		var g, w string
		if i < len(entries) {
			g = entries[i].String()
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			t.Errorf("line %d\n got %s\nwant %s", i, g, w)
		}
	}
	for _, en := range entries {
		if hexHash.MatchString(en.Text) {
			t.Errorf("entry %q shows a hash", en.Text)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestOwnerHistoryBeyondTheCheckpoint: with the projection stopped at some
// point, an owner's history still holds every event of every token of the
// owner up to the sequence it names: those the read model lists and those
// issued after its checkpoint, found in the stream.
func TestOwnerHistoryBeyondTheCheckpoint(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	ctx := context.Background()
	policy := domain.DefaultPolicy()
	m := domain.Meta{Actor: "admin:test", CorrelationID: "req-1"}
	alice, bob := domain.NewOwner("alice"), domain.NewOwner("bob")
	issue := func(o *domain.Owner, offset time.Duration) *domain.Token {
		t.Helper()
		tok, _, err := domain.IssueToken(policy, o, domain.IssueRequest{Owner: o.ID()}, m, at(offset), nil)
		if err != nil {
			t.Fatal(err)
		}
		l.issue(tok, o)
		return tok
	}
	history := func(t *testing.T) audit.History {
		t.Helper()
		h, err := audit.OwnerHistory(ctx, l.store, l.read, lifecycleName, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if h.Sequence != l.last() {
			t.Errorf("history complete up to %d, want the stream's last sequence %d", h.Sequence, l.last())
		}
		return h
	}
	// want is alice's events in l.lifecycle, in stream order.
	want := func() []domain.Envelope {
		mine := map[string]bool{}
		var out []domain.Envelope
		for _, e := range l.lifecycle {
			if d, ok := e.Data.(domain.TokenIssued); ok && d.Owner == "alice" {
				mine[e.AggregateID] = true
			}
			if mine[e.AggregateID] && e.AggregateKind == domain.AggregateToken || e.AggregateKind == domain.AggregateOwner && e.AggregateID == "alice" {
				out = append(out, e)
			}
		}
		return out
	}
	check := func(t *testing.T, name string) {
		t.Helper()
		h := history(t)
		w := want()
		if len(h.Events) != len(w) {
			t.Fatalf("%s: %d events, want %d", name, len(h.Events), len(w))
		}
		for i := range w {
			if h.Events[i].ID != w[i].ID || h.Events[i].Sequence != w[i].Sequence {
				t.Errorf("%s: event %d is %s at %d, want %s at %d", name, i, h.Events[i].Type, h.Events[i].Sequence, w[i].Type, w[i].Sequence)
			}
		}
	}

	a := issue(alice, 0)
	issue(bob, time.Second)
	check(t, "all projected")

	l.lagging = true
	if err := a.SetExpiry(policy, ptr(at(time.Hour)), m, at(time.Minute)); err != nil {
		t.Fatal(err)
	}
	l.change(a)
	check(t, "no token issued after the checkpoint")

	for i := range 5 {
		issue(alice, time.Duration(2+i)*time.Minute)
	}
	issue(bob, 10*time.Minute)
	if err := alice.RevokeTokens(nil, "compromised", m, at(11*time.Minute)); err != nil {
		t.Fatal(err)
	}
	l.revokeOwner(alice)
	issue(alice, 12*time.Minute)
	check(t, "tokens issued after the checkpoint")
	if n := len(history(t).Events); n != 9 {
		t.Errorf("%d events, want alice's 7 issues, 1 expiry and 1 revocation", n)
	}
}

// TestTokenHistoryShowsTheFamilyRevocation: the one owner.family_revoked
// event that revoked a rotation family is in the history of every member
// it revoked, naming the reused token, the client address and the route;
// a member revoked by itself before it does not show it, and an
// owner-wide revocation after it, which changed nothing, is left out.
func TestTokenHistoryShowsTheFamilyRevocation(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	ctx := context.Background()
	policy := domain.DefaultPolicy()
	m := domain.Meta{Actor: "user:root", CorrelationID: "req-1"}
	alice := domain.NewOwner("alice")
	a, _, err := domain.IssueToken(policy, alice, domain.IssueRequest{Owner: "alice", Name: "ci"}, m, at(0), nil)
	if err != nil {
		t.Fatal(err)
	}
	l.issue(a, alice)
	b, _, err := domain.Rotate(policy, alice, a, 0, nil, m, at(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	l.rotate(a, b, alice)
	c, _, err := domain.Rotate(policy, alice, b, time.Hour, nil, m, at(2*time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	l.rotate(b, c, alice)
	if err := b.Revoke("lost", m, at(2*time.Hour+time.Minute)); err != nil {
		t.Fatal(err)
	}
	l.change(b)
	reuse := domain.SecretReuse{Token: a.ID(), ClientAddr: "203.0.113.9", Route: "GET /v1/auth"}
	if err := alice.RevokeFamily(a, reuse, domain.Meta{Actor: "system:reuse-detection"}, at(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	l.revokeOwner(alice)
	if err := alice.RevokeTokens(nil, "compromised", m, at(4*time.Hour)); err != nil {
		t.Fatal(err)
	}
	l.revokeOwner(alice)

	line := "2026-11-22 13:00:03  rotation family " + a.ID().String() + " revoked by system:reuse-detection, reason: rotated_secret_reused (the rotated-out secret of " + a.ID().String() + " was presented from 203.0.113.9 at GET /v1/auth)"
	for _, tc := range []struct {
		name string
		tok  *domain.Token
		want bool
	}{
		{"the reused token", a, true},
		{"a member revoked by itself before", b, false},
		{"the live member", c, true},
	} {
		h, err := audit.TokenHistory(ctx, l.store, tc.tok.ID())
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, e := range audit.Timeline(h.Events, nil) {
			lines = append(lines, e.String())
		}
		if got := slices.Contains(lines, line); got != tc.want {
			t.Errorf("%s: history holds the family revocation: %v, want %v\n%s", tc.name, got, tc.want, strings.Join(lines, "\n"))
		}
		for _, l := range lines {
			if strings.Contains(l, "all tokens revoked") {
				t.Errorf("%s: the owner-wide revocation after the family's is in the history: %s", tc.name, l)
			}
		}
	}
}
