package domain

import (
	"slices"
	"testing"
	"time"
)

func TestStateFold(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy()
	var s stream
	clock := NewManualClock(t0)
	alice := NewOwner("alice")
	a, _ := issue(t, p, alice, IssueRequest{}, clock.Now())
	b, _ := issue(t, p, alice, IssueRequest{Kind: KindSession}, clock.Advance(time.Second))
	c, _ := issue(t, p, nil, IssueRequest{Owner: "bob"}, clock.Advance(time.Second))
	s.store(t, c, b, a)
	wantErr(t, b.RecordUse(3, clock.Now(), clock.Now(), "", testMeta, clock.Now()), nil)
	wantErr(t, c.Revoke("", testMeta, clock.Advance(time.Minute)), nil)
	s.store(t, b, c)
	wantErr(t, alice.RevokeTokens(nil, "", testMeta, clock.Advance(time.Minute)), nil)
	s.store(t, alice)
	d, _ := issue(t, p, alice, IssueRequest{}, clock.Advance(time.Minute))
	s.store(t, d)

	st := NewState()
	// Events for tokens never issued, and owner events that are not
	// revocations, are ignored.
	ghost, _ := issue(t, p, nil, IssueRequest{}, t0)
	wantErr(t, ghost.Revoke("", testMeta, t0), nil)
	st.Apply(ghost.Changes()[1])
	st.Apply(envelopeFor(t, AggregateToken, ghost.ID().String(), TokenUsed{Count: 1, FirstAt: t0, LastAt: t0}, t0))
	st.Apply(Envelope{AggregateKind: AggregateOwner, AggregateID: "carol", Type: "owner.unknown.v1"})
	st.Apply(Envelope{AggregateKind: "tenant", AggregateID: "x"})
	if st.Len() != 0 {
		t.Fatalf("Len = %d after events of tokens never issued", st.Len())
	}
	if _, ok := st.Owner("carol"); ok {
		t.Fatal("an owner was created by an unknown event")
	}
	for _, e := range s.events {
		st.Apply(e)
	}

	if st.Len() != 4 {
		t.Fatalf("Len = %d, want 4", st.Len())
	}
	for _, live := range []*Token{a, b, c, d} {
		got, ok := st.Token(live.ID())
		if !ok {
			t.Fatalf("token %s missing", live.ID())
		}
		sameTokenState(t, got, live)
	}
	if _, ok := st.Token(ghost.ID()); ok {
		t.Fatal("a token never issued is in the state")
	}
	o, ok := st.Owner("alice")
	if !ok || o.RevokedBeforeSequence() != alice.RevokedBeforeSequence() {
		t.Fatal("owner alice not folded")
	}
	if _, ok := st.Owner("bob"); ok {
		t.Fatal("bob has no owner events")
	}

	var ids []TokenID
	for tok := range st.Tokens() {
		ids = append(ids, tok.ID())
	}
	want := []TokenID{a.ID(), b.ID(), c.ID(), d.ID()}
	if !slices.Equal(ids, want) {
		t.Fatalf("Tokens() order %v, want %v", ids, want)
	}
	for tok := range st.Tokens() {
		_ = tok
		break // stopping early must not panic
	}
	var owners []OwnerID
	for o := range st.Owners() {
		owners = append(owners, o.ID())
	}
	if !slices.Equal(owners, []OwnerID{"alice"}) {
		t.Fatalf("Owners() = %v", owners)
	}

	now := clock.Now()
	checks := []struct {
		name   string
		id     TokenID
		want   error
		status TokenStatus
	}{
		{"covered by the owner revocation", a.ID(), ErrOwnerRevoked, StatusRevoked},
		{"session covered by the owner revocation", b.ID(), ErrOwnerRevoked, StatusRevoked},
		{"revoked by itself", c.ID(), ErrTokenRevoked, StatusRevoked},
		{"issued after the owner revocation", d.ID(), nil, StatusActive},
		{"never issued", ghost.ID(), ErrNotFound, ""},
	}
	for _, tc := range checks {
		if err := st.Check(tc.id, now); err != tc.want {
			t.Errorf("%s: Check = %v, want %v", tc.name, err, tc.want)
		}
		status, ok := st.Status(tc.id, now)
		if status != tc.status || ok != (tc.want != ErrNotFound) {
			t.Errorf("%s: Status = %s, %v; want %s", tc.name, status, ok, tc.status)
		}
	}
}

// TestStateAtAnInstant replays the stream up to an instant, as "state at T"
// does, and sees each token as it was then.
func TestStateAtAnInstant(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy()
	var s stream
	clock := NewManualClock(t0)
	tok, _ := issue(t, p, nil, IssueRequest{ExpiresIn: 48 * time.Hour}, clock.Now())
	s.store(t, tok)
	wantErr(t, tok.SetExpiry(p, ptr(t0.Add(24*time.Hour)), testMeta, clock.Advance(time.Hour)), nil)
	s.store(t, tok)
	wantErr(t, tok.Revoke("rotated out", testMeta, clock.Advance(time.Hour)), nil)
	s.store(t, tok)

	at := func(instant time.Time) *State {
		st := NewState()
		for _, e := range s.events {
			if e.Time.After(instant) {
				break
			}
			st.Apply(e)
		}
		return st
	}
	tests := []struct {
		name    string
		instant time.Time
		status  TokenStatus
		expires time.Time
	}{
		{"right after issue", t0, StatusActive, t0.Add(48 * time.Hour)},
		{"after the expiry was shortened", t0.Add(90 * time.Minute), StatusActive, t0.Add(24 * time.Hour)},
		{"after revocation", t0.Add(2 * time.Hour), StatusRevoked, t0.Add(24 * time.Hour)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := at(tc.instant)
			status, ok := st.Status(tok.ID(), tc.instant)
			if !ok || status != tc.status {
				t.Fatalf("status %s, %v; want %s", status, ok, tc.status)
			}
			got, _ := st.Token(tok.ID())
			if exp := expiry(t, got); !exp.Equal(tc.expires) {
				t.Fatalf("expiry %v, want %v", exp, tc.expires)
			}
		})
	}
	if _, ok := at(t0.Add(-time.Second)).Token(tok.ID()); ok {
		t.Fatal("the token exists before it was issued")
	}
}
