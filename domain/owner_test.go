package domain

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestRevokeTokensRecordsOneEvent(t *testing.T) {
	t.Parallel()
	clock := NewManualClock(t0.Add(1500 * time.Nanosecond))
	o := NewOwner("team.ops *")
	now := clock.Now()
	until := now.Add(time.Hour)
	wantErr(t, o.RevokeTokens(&until, "account compromised", testMeta, now), nil)
	changes := o.Changes()
	if len(changes) != 1 {
		t.Fatalf("%d changes, want 1", len(changes))
	}
	e := changes[0]
	n := NormalizeTime(now)
	want := Envelope{
		ID: e.ID, Type: TypeOwnerTokensRevoked, AggregateKind: AggregateOwner, AggregateID: "team.ops *",
		Actor: testMeta.Actor, Time: n, Schema: 1, CorrelationID: testMeta.CorrelationID,
		Data: OwnerTokensRevoked{Owner: "team.ops *", RevokedBefore: n, Until: ptr(NormalizeTime(until)), Reason: "account compromised"},
	}
	if !reflect.DeepEqual(e, want) {
		t.Fatalf("event = %+v\nwant %+v", e, want)
	}
	if at, ok := o.RevokedBefore(); !ok || !at.Equal(n) {
		t.Fatalf("RevokedBefore() = %v, %v", at, ok)
	}
	if u, ok := o.Until(); !ok || !u.Equal(NormalizeTime(until)) {
		t.Fatalf("Until() = %v, %v", u, ok)
	}
	if o.Reason() != "account compromised" || o.RevokedBeforeSequence() != 0 || o.Version() != 0 {
		t.Fatalf("Reason %q, sequence %d, version %d", o.Reason(), o.RevokedBeforeSequence(), o.Version())
	}
	wantErr(t, o.MarkStored(41), nil)
	if o.RevokedBeforeSequence() != 41 || o.Version() != 41 || len(o.Changes()) != 0 {
		t.Fatalf("after MarkStored: sequence %d, version %d", o.RevokedBeforeSequence(), o.Version())
	}
}

func TestRevokeTokensRejectsInvalidInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		owner  OwnerID
		until  *time.Time
		reason string
		meta   Meta
	}{
		{"until now", "alice", ptr(t0), "", testMeta},
		{"until in the past", "alice", ptr(t0.Add(-time.Hour)), "", testMeta},
		{"until within the current microsecond", "alice", ptr(t0.Add(999)), "", testMeta},
		{"until beyond year 9999", "alice", ptr(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)), "", testMeta},
		{"reason too long", "alice", nil, strings.Repeat("r", MaxReasonLen+1), testMeta},
		{"reason with control character", "alice", nil, "a\x1bb", testMeta},
		{"empty owner", "", nil, "", testMeta},
		{"owner with NUL", "a\x00", nil, "", testMeta},
		{"owner not UTF-8", "\xff", nil, "", testMeta},
		{"no actor", "alice", nil, "", Meta{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := NewOwner(tc.owner)
			wantErr(t, o.RevokeTokens(tc.until, tc.reason, tc.meta, t0), ErrInvalidArgument)
			if len(o.Changes()) != 0 {
				t.Fatal("a refused revocation recorded an event")
			}
			if _, ok := o.RevokedBefore(); ok {
				t.Fatal("a refused revocation changed the owner")
			}
		})
	}
}

// TestOwnerWatermarkFollowsStreamOrder: which tokens a revocation covers is
// decided by the order of events in the stream, not by clocks.
func TestOwnerWatermarkFollowsStreamOrder(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy()
	var s stream
	owner := NewOwner("alice")
	early, _ := issue(t, p, nil, IssueRequest{}, t0)
	// Created on a clock that runs ahead, but stored before the revocation.
	aheadClock, _ := issue(t, p, nil, IssueRequest{}, t0.Add(time.Hour))
	s.store(t, early, aheadClock)
	wantErr(t, owner.RevokeTokens(nil, "logout everywhere", testMeta, t0.Add(time.Minute)), nil)
	s.store(t, owner)
	// Created on a clock that lags, but stored after the revocation.
	behindClock, _ := issue(t, p, nil, IssueRequest{}, t0)
	late, _ := issue(t, p, nil, IssueRequest{}, t0.Add(2*time.Minute))
	s.store(t, behindClock, late)
	bobs, _ := issue(t, p, nil, IssueRequest{Owner: "bob"}, t0)
	s.store(t, bobs)

	tests := []struct {
		name string
		tok  *Token
		want bool
	}{
		{"issued before, by sequence", early, true},
		{"issued before by sequence though created later", aheadClock, true},
		{"issued after by sequence though created earlier", behindClock, false},
		{"issued after", late, false},
		{"another owner's token issued before", bobs, false},
		{"nil token", nil, false},
		{"token never issued", &Token{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := owner.Covers(tc.tok); got != tc.want {
				t.Fatalf("Covers = %v, want %v", got, tc.want)
			}
		})
	}
	if owner.Blocks(t0.Add(time.Minute)) {
		t.Fatal("a revocation without until blocks new tokens")
	}
	var none *Owner
	if none.Covers(early) || none.Blocks(t0) {
		t.Fatal("a nil owner covers or blocks")
	}
}

func TestOwnerLatestRevocationWins(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy()
	var s stream
	owner := NewOwner("alice")
	a, _ := issue(t, p, nil, IssueRequest{}, t0)
	s.store(t, a)
	longBan := t0.Add(48 * time.Hour)
	wantErr(t, owner.RevokeTokens(&longBan, "first", testMeta, t0.Add(time.Minute)), nil)
	s.store(t, owner)
	b, _ := issue(t, p, nil, IssueRequest{}, t0.Add(49*time.Hour))
	s.store(t, b)
	if owner.Covers(b) {
		t.Fatal("a token issued after the first revocation and its ban is covered")
	}
	wantErr(t, owner.RevokeTokens(ptr(t0.Add(50*time.Hour)), "second", testMeta, t0.Add(49*time.Hour+time.Minute)), nil)
	// A later revocation with a shorter ban does not shorten the current one.
	wantErr(t, owner.RevokeTokens(ptr(t0.Add(49*time.Hour+30*time.Minute)), "third", testMeta, t0.Add(49*time.Hour+2*time.Minute)), nil)
	wantErr(t, owner.RevokeTokens(nil, "fourth", testMeta, t0.Add(49*time.Hour+3*time.Minute)), nil)
	s.store(t, owner)
	c, _ := issue(t, p, nil, IssueRequest{}, t0.Add(51*time.Hour))
	s.store(t, c)

	if !owner.Covers(a) || !owner.Covers(b) || owner.Covers(c) {
		t.Fatalf("Covers a=%v b=%v c=%v; want true true false", owner.Covers(a), owner.Covers(b), owner.Covers(c))
	}
	if u, _ := owner.Until(); !u.Equal(t0.Add(50 * time.Hour)) {
		t.Fatalf("Until = %v, want the later ban", u)
	}
	if owner.Reason() != "fourth" || owner.RevokedBeforeSequence() != owner.Version() {
		t.Fatalf("Reason %q, watermark %d, version %d", owner.Reason(), owner.RevokedBeforeSequence(), owner.Version())
	}
	rebuilt, err := OwnerFromHistory("alice", s.of(AggregateOwner, "alice"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rebuilt.st, owner.st) {
		t.Fatalf("rebuilt owner %+v, live %+v", rebuilt.st, owner.st)
	}
}

// TestOwnerRevocationOf: the revocation that revoked a token is the first
// one, in stream order, that covers it; later ones change nothing for it.
func TestOwnerRevocationOf(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy()
	var s stream
	owner := NewOwner("alice")
	a, _ := issue(t, p, nil, IssueRequest{}, t0)
	s.store(t, a)
	first := Meta{Actor: "token:first", CorrelationID: "req-1"}
	wantErr(t, owner.RevokeTokens(nil, "first", first, t0.Add(time.Minute)), nil)
	s.store(t, owner)
	b, _ := issue(t, p, nil, IssueRequest{}, t0.Add(time.Hour))
	s.store(t, b)
	wantErr(t, owner.RevokeTokens(nil, "second", testMeta, t0.Add(2*time.Hour)), nil)
	s.store(t, owner)
	c, _ := issue(t, p, nil, IssueRequest{}, t0.Add(3*time.Hour))
	s.store(t, c)
	bob, _ := issue(t, p, nil, IssueRequest{Owner: "bob"}, t0)
	s.store(t, bob)

	revs := owner.Revocations()
	if len(revs) != 2 || revs[0].Reason != "first" || revs[1].Reason != "second" || revs[0].Sequence == 0 || revs[1].Sequence <= revs[0].Sequence {
		t.Fatalf("Revocations() = %+v", revs)
	}
	for _, tc := range []struct {
		name   string
		tok    *Token
		reason string
	}{
		{"issued before both: the first", a, "first"},
		{"issued between them: the second", b, "second"},
		{"issued after both: none", c, ""},
		{"another owner's: none", bob, ""},
	} {
		r, ok := owner.RevocationOf(tc.tok)
		if ok != owner.Covers(tc.tok) || r.Reason != tc.reason {
			t.Errorf("%s: RevocationOf = %+v, %v (Covers %v), want reason %q", tc.name, r, ok, owner.Covers(tc.tok), tc.reason)
		}
	}
	if r, _ := owner.RevocationOf(a); r.Actor != first.Actor || !r.At.Equal(NormalizeTime(t0.Add(time.Minute))) {
		t.Errorf("RevocationOf(a) = %+v, want the first revocation's actor and instant", r)
	}
	rebuilt, err := OwnerFromHistory("alice", s.of(AggregateOwner, "alice"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rebuilt.Revocations(), revs) {
		t.Fatalf("rebuilt revocations %+v, live %+v", rebuilt.Revocations(), revs)
	}
}

// TestOwnerUntilBlocksAndCovers: a ban refuses new tokens until it ends and
// revokes any token created before it ends, whatever its sequence.
func TestOwnerUntilBlocksAndCovers(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy()
	var s stream
	owner := NewOwner("alice")
	until := t0.Add(time.Hour)
	wantErr(t, owner.RevokeTokens(&until, "ban", testMeta, t0), nil)
	s.store(t, owner)

	tests := []struct {
		name string
		now  time.Time
		want error
	}{
		{"during the ban", t0.Add(time.Minute), ErrOwnerBlocked},
		{"a microsecond before it ends", until.Add(-time.Microsecond), ErrOwnerBlocked},
		{"when it ends", until, nil},
		{"after it ends", until.Add(time.Hour), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tok, secret, err := IssueToken(p, owner, IssueRequest{Owner: "alice"}, testMeta, tc.now, nil)
			wantErr(t, err, tc.want)
			if tc.want != nil && (tok != nil || !secret.IsZero()) {
				t.Fatal("a blocked issue returned a token")
			}
			if owner.Blocks(tc.now) != (tc.want != nil) {
				t.Fatalf("Blocks = %v", owner.Blocks(tc.now))
			}
		})
	}
	// Issued without the owner's history (racing the ban): covered while
	// created before until, even though stored after the revocation.
	racing, _ := issue(t, p, nil, IssueRequest{}, until.Add(-time.Microsecond))
	after, _ := issue(t, p, nil, IssueRequest{}, until)
	s.store(t, racing, after)
	if !owner.Covers(racing) {
		t.Fatal("a token created during the ban is not covered")
	}
	if owner.Covers(after) {
		t.Fatal("a token created when the ban ended is covered")
	}
	wantErr(t, racing.Check(until.Add(time.Minute), owner), ErrOwnerRevoked)
}

// TestOwnerCoversPendingEvents pins how unstored (sequence zero) events
// behave: as they will once appended.
func TestOwnerCoversPendingEvents(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy()
	tests := []struct {
		name                                string
		storeToken, revoke, storeRevocation bool
		want                                bool
	}{
		{"no revocation, stored token", true, false, false, false},
		{"no revocation, pending token", false, false, false, false},
		{"pending revocation covers a stored token", true, true, false, true},
		{"stored revocation does not cover a pending token", false, true, true, false},
		{"both pending: fail closed", false, true, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var s stream
			owner := NewOwner("alice")
			tok, _ := issue(t, p, nil, IssueRequest{}, t0)
			if tc.storeToken {
				s.store(t, tok)
			}
			if tc.revoke {
				wantErr(t, owner.RevokeTokens(nil, "", testMeta, t0.Add(time.Minute)), nil)
			}
			if tc.storeRevocation {
				s.store(t, owner)
			}
			if got := owner.Covers(tok); got != tc.want {
				t.Fatalf("Covers = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestOwnerFromHistory(t *testing.T) {
	t.Parallel()
	var s stream
	owner := NewOwner("alice")
	wantErr(t, owner.RevokeTokens(nil, "one", testMeta, t0), nil)
	wantErr(t, owner.RevokeTokens(nil, "two", testMeta, t0.Add(time.Minute)), nil)
	s.store(t, owner)
	history := s.of(AggregateOwner, "alice")
	tok, _ := issue(t, DefaultPolicy(), nil, IssueRequest{}, t0)
	s.store(t, tok)

	got, err := OwnerFromHistory("alice", history)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.st, owner.st) {
		t.Fatalf("rebuilt %+v, live %+v", got.st, owner.st)
	}
	empty, err := OwnerFromHistory("bob", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := empty.RevokedBefore(); ok || empty.Version() != 0 {
		t.Fatal("an owner without history has a revocation")
	}

	bobs := envelopeFor(t, AggregateOwner, "bob", OwnerTokensRevoked{Owner: "bob", RevokedBefore: t0}, t0)
	mismatched := history[0]
	mismatched.Data = TokenRevoked{}
	tests := []struct {
		name   string
		id     OwnerID
		events []Envelope
		want   error
	}{
		{"invalid id", "", nil, ErrInvalidArgument},
		{"another owner's event", "alice", append([]Envelope{bobs}, history...), ErrCorruptEvent},
		{"a token event", "alice", append(history[:1:1], s.of(AggregateToken, tok.ID().String())...), ErrCorruptEvent},
		{"sequences out of order", "alice", []Envelope{history[1], history[0]}, ErrCorruptEvent},
		{"type and payload disagree", "alice", []Envelope{mismatched}, ErrCorruptEvent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o, err := OwnerFromHistory(tc.id, tc.events)
			wantErr(t, err, tc.want)
			if o != nil {
				t.Fatal("a refused history returned an owner")
			}
		})
	}
}

func TestOwnerApplyIgnoresOtherAggregates(t *testing.T) {
	t.Parallel()
	o := NewOwner("alice")
	o.Apply(envelopeFor(t, AggregateOwner, "bob", OwnerTokensRevoked{Owner: "bob", RevokedBefore: t0}, t0))
	tok, _ := issue(t, DefaultPolicy(), nil, IssueRequest{}, t0)
	o.Apply(tok.Changes()[0])
	if _, ok := o.RevokedBefore(); ok || o.Version() != 0 {
		t.Fatal("a foreign event was applied")
	}
	ptrEvent := envelopeFor(t, AggregateOwner, "alice", &OwnerTokensRevoked{Owner: "alice", RevokedBefore: t0}, t0)
	ptrEvent.Sequence = 3
	o.Apply(ptrEvent)
	if o.RevokedBeforeSequence() != 3 || o.Version() != 3 {
		t.Fatal("a pointer payload was not applied")
	}
}

// TestRevokeFamilyRecordsOneEvent: a rotated-out secret presented after its
// grace revokes its whole rotation family with one owner event, which every
// reader of the owner honours: Check and Status of every member issued
// before it, FamilyRevocationOf (the reuse included), a State fold (whose
// members then ignore a later expiry change, as after any revocation) and
// an owner rebuilt from its history. Another family, and a token of the
// family issued after the event, are not covered; a second revocation of
// the family records nothing.
func TestRevokeFamilyRecordsOneEvent(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy()
	var s stream
	owner := NewOwner("alice")
	a, _ := issue(t, p, owner, IssueRequest{}, t0)
	s.store(t, a)
	b, _, err := Rotate(p, owner, a, 0, nil, testMeta, t0.Add(time.Minute), nil)
	wantErr(t, err, nil)
	s.store(t, b, a)
	c, _, err := Rotate(p, owner, b, time.Hour, nil, testMeta, t0.Add(2*time.Minute), nil)
	wantErr(t, err, nil)
	s.store(t, c, b)
	other, _ := issue(t, p, owner, IssueRequest{}, t0)
	s.store(t, other)
	if a.Family() != a.ID() || b.Family() != a.ID() || c.Family() != a.ID() {
		t.Fatalf("families %s %s %s, want %s", a.Family(), b.Family(), c.Family(), a.ID())
	}

	now := t0.Add(3 * time.Minute)
	reuse := SecretReuse{Token: a.ID(), ClientAddr: "203.0.113.9", Route: "GET /v1/auth"}
	// b is within its grace: no reuse.
	wantErr(t, owner.RevokeFamily(b, SecretReuse{Token: b.ID()}, testMeta, now), ErrInvalidArgument)
	wantErr(t, owner.RevokeFamily(a, SecretReuse{Token: b.ID()}, testMeta, now), ErrInvalidArgument)
	wantErr(t, owner.RevokeFamily(a, reuse, testMeta, now), nil)
	changes := owner.Changes()
	if len(changes) != 1 || changes[0].Type != TypeOwnerFamilyRevoked {
		t.Fatalf("changes %+v, want one %s", changes, TypeOwnerFamilyRevoked)
	}
	// Pending, it already covers the stored members (failing closed).
	wantErr(t, c.Check(now, owner), ErrTokenRevoked)
	s.store(t, owner)
	wantErr(t, owner.RevokeFamily(a, reuse, testMeta, now), nil)
	if n := len(owner.Changes()); n != 0 {
		t.Fatalf("a second revocation of the family recorded %d events", n)
	}

	for _, tok := range []*Token{a, b, c} {
		wantErr(t, tok.Check(now, owner), ErrTokenRevoked)
		if st := tok.Status(now, owner); st != StatusRevoked {
			t.Errorf("token %s: status %s, want revoked", tok.ID(), st)
		}
		r, ok := owner.FamilyRevocationOf(tok)
		if !ok || r.Family != a.ID() || r.Reason != ReasonRotatedSecretReused || r.Reuse != reuse || r.Sequence == 0 || r.Actor != testMeta.Actor {
			t.Errorf("FamilyRevocationOf(%s) = %+v, %v", tok.ID(), r, ok)
		}
	}
	wantErr(t, other.Check(now, owner), nil)
	if _, ok := owner.FamilyRevocationOf(other); ok {
		t.Error("another family is covered")
	}

	// A token of the family issued after the revocation in the stream
	// (which no command records: a revoked token cannot rotate) is not
	// covered.
	late := &Token{}
	lateID, err := NewTokenID(now, nil)
	wantErr(t, err, nil)
	lateEvent := envelopeFor(t, AggregateToken, lateID.String(), TokenIssued{Owner: "alice", Kind: KindAPI, SecretHash: HashSecret("late"), Scopes: []string{}, Family: ptr(a.ID())}, now)
	s.seq++
	lateEvent.Sequence = s.seq
	s.events = append(s.events, lateEvent)
	late.Apply(lateEvent)
	wantErr(t, late.Check(now, owner), nil)

	// An expiry change after the revocation, as a race could store.
	exp := envelopeFor(t, AggregateToken, c.ID().String(), TokenExpirySet{ExpiresAt: ptr(NormalizeTime(now.Add(48 * time.Hour))), Reason: ExpirySetByCaller}, now)
	s.seq++
	exp.Sequence = s.seq
	s.events = append(s.events, exp)

	st := NewState()
	for _, e := range s.events {
		st.Apply(e)
	}
	for _, tok := range []*Token{a, b, c} {
		folded, _ := st.Token(tok.ID())
		at, ok := folded.RevokedAt()
		if !ok || !at.Equal(NormalizeTime(now)) || folded.RevokedReason() != ReasonRotatedSecretReused || folded.RevokedBy() != testMeta.Actor {
			t.Errorf("folded %s: revoked %v at %s, reason %q, by %q", tok.ID(), ok, at, folded.RevokedReason(), folded.RevokedBy())
		}
		wantErr(t, st.Check(tok.ID(), now), ErrTokenRevoked)
	}
	if folded, _ := st.Token(c.ID()); !folded.st.expiresAt.Equal(c.st.expiresAt) {
		t.Errorf("folded expiry of %s moved after the revocation: %s", c.ID(), folded.st.expiresAt)
	}
	wantErr(t, st.Check(other.ID(), now), nil)
	wantErr(t, st.Check(lateID, now), nil)

	rebuilt, err := OwnerFromHistory("alice", s.of(AggregateOwner, "alice"))
	wantErr(t, err, nil)
	if !reflect.DeepEqual(rebuilt.FamilyRevocations(), owner.FamilyRevocations()) || len(rebuilt.FamilyRevocations()) != 1 {
		t.Fatalf("rebuilt family revocations %+v, live %+v", rebuilt.FamilyRevocations(), owner.FamilyRevocations())
	}
}
