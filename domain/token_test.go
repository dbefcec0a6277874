package domain

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestIssueTokenRejectsInvalidInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		req   IssueRequest
		owner *Owner
		meta  Meta
		now   time.Time
	}{
		{name: "empty owner", req: IssueRequest{Owner: ""}},
		{name: "owner with NUL", req: IssueRequest{Owner: "ali\x00ce"}},
		{name: "owner with newline", req: IssueRequest{Owner: "alice\nbob"}},
		{name: "owner with DEL", req: IssueRequest{Owner: "alice\x7f"}},
		{name: "owner not UTF-8", req: IssueRequest{Owner: "al\xffice"}},
		{name: "owner of 10,000 characters", req: IssueRequest{Owner: OwnerID(strings.Repeat("a", 10000))}},
		{name: "owner one byte too long", req: IssueRequest{Owner: OwnerID(strings.Repeat("é", 128) + "a")}},
		{name: "owner history of someone else", req: IssueRequest{Owner: "alice"}, owner: NewOwner("bob")},
		{name: "name too long", req: IssueRequest{Owner: "alice", Name: strings.Repeat("n", MaxNameLen+1)}},
		{name: "name with control character", req: IssueRequest{Owner: "alice", Name: "ci\abot"}},
		{name: "name not UTF-8", req: IssueRequest{Owner: "alice", Name: "\xc3\x28"}},
		{name: "empty scope", req: IssueRequest{Owner: "alice", Scopes: []string{"read", ""}}},
		{name: "scope with space", req: IssueRequest{Owner: "alice", Scopes: []string{"read write"}}},
		{name: "scope with double quote", req: IssueRequest{Owner: "alice", Scopes: []string{`re"ad`}}},
		{name: "scope with backslash", req: IssueRequest{Owner: "alice", Scopes: []string{`re\ad`}}},
		{name: "scope with DEL", req: IssueRequest{Owner: "alice", Scopes: []string{"read\x7f"}}},
		{name: "scope with tab", req: IssueRequest{Owner: "alice", Scopes: []string{"read\t"}}},
		{name: "scope with non-ASCII", req: IssueRequest{Owner: "alice", Scopes: []string{"lés"}}},
		{name: "scope too long", req: IssueRequest{Owner: "alice", Scopes: []string{strings.Repeat("s", MaxScopeLen+1)}}},
		{name: "too many scopes", req: IssueRequest{Owner: "alice", Scopes: manyScopes(MaxScopes + 1)}},
		{name: "unknown kind", req: IssueRequest{Owner: "alice", Kind: "bearer"}},
		{name: "expires in and expires at", req: IssueRequest{Owner: "alice", ExpiresIn: time.Hour, ExpiresAt: ptr(t0.Add(time.Hour))}},
		{name: "expires in and never", req: IssueRequest{Owner: "alice", ExpiresIn: time.Hour, NeverExpires: true}},
		{name: "expires at and never", req: IssueRequest{Owner: "alice", ExpiresAt: ptr(t0.Add(time.Hour)), NeverExpires: true}},
		{name: "negative expires in", req: IssueRequest{Owner: "alice", ExpiresIn: -time.Hour}},
		{name: "expires at beyond year 9999", req: IssueRequest{Owner: "alice", ExpiresAt: ptr(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC))}},
		{name: "idle timeout on an api token", req: IssueRequest{Owner: "alice", IdleTimeout: time.Hour}},
		{name: "negative idle timeout", req: IssueRequest{Owner: "alice", Kind: KindSession, IdleTimeout: -time.Hour}},
		{name: "fractional idle timeout", req: IssueRequest{Owner: "alice", Kind: KindSession, IdleTimeout: 1500 * time.Millisecond}},
		{name: "zero rotated-from id", req: IssueRequest{Owner: "alice", RotatedFrom: &TokenID{}}},
		{name: "no actor", req: IssueRequest{Owner: "alice"}, meta: Meta{}},
		{name: "actor with NUL", req: IssueRequest{Owner: "alice"}, meta: Meta{Actor: "admin\x00"}},
		{name: "correlation id too long", req: IssueRequest{Owner: "alice"}, meta: Meta{Actor: "a", CorrelationID: strings.Repeat("c", MaxCorrelationIDLen+1)}},
		{name: "zero now", req: IssueRequest{Owner: "alice"}, now: time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := tc.meta
			if tc.name != "no actor" && m.Actor == "" {
				m = testMeta
			}
			now := tc.now
			if tc.name != "zero now" {
				now = t0
			}
			tok, secret, err := IssueToken(DefaultPolicy(), tc.owner, tc.req, m, now, nil)
			wantErr(t, err, ErrInvalidArgument)
			if errors.Is(err, ErrPolicyViolation) {
				t.Fatalf("malformed input reported as a policy violation: %v", err)
			}
			if tok != nil || !secret.IsZero() {
				t.Fatal("a refused issue returned a token or a secret")
			}
		})
	}
}

func manyScopes(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "scope:" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	return out
}

func TestIssueTokenAcceptsBoundaryInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		req  IssueRequest
	}{
		{"empty name and no scopes", IssueRequest{Owner: "alice"}},
		{"longest name", IssueRequest{Owner: "alice", Name: strings.Repeat("n", MaxNameLen)}},
		{"longest owner", IssueRequest{Owner: OwnerID(strings.Repeat("é", MaxOwnerLen/2))}},
		{"owner with dots, spaces, wildcards and emoji", IssueRequest{Owner: "team.ops > *all* 🚀"}},
		{"most scopes", IssueRequest{Owner: "alice", Scopes: manyScopes(MaxScopes)}},
		{"longest scope", IssueRequest{Owner: "alice", Scopes: []string{strings.Repeat("s", MaxScopeLen)}}},
		{"every scope punctuation", IssueRequest{Owner: "alice", Scopes: []string{"!#$%&'()*+,-./:;<=>?@[]^_`{|}~"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tok, _ := issue(t, DefaultPolicy(), nil, tc.req, t0)
			if tok.Owner() != tc.req.Owner || tok.Name() != tc.req.Name {
				t.Fatalf("token has owner %q name %q", tok.Owner(), tok.Name())
			}
		})
	}
}

func TestIssueTokenSortsAndDeduplicatesScopes(t *testing.T) {
	t.Parallel()
	in := []string{"write", "admin:x", "read", "write", "read"}
	tok, _ := issue(t, DefaultPolicy(), nil, IssueRequest{Scopes: in}, t0)
	want := []string{"admin:x", "read", "write"}
	if got := tok.Scopes(); !slices.Equal(got, want) {
		t.Fatalf("Scopes() = %q, want %q", got, want)
	}
	if in[0] != "write" {
		t.Fatal("IssueToken reordered the caller's slice")
	}
	tok.Scopes()[0] = "mutated"
	if tok.Scopes()[0] != "admin:x" {
		t.Fatal("Scopes() exposes the token's own slice")
	}
	if !tok.HasScope("read") || tok.HasScope("delete") {
		t.Fatal("HasScope is wrong")
	}
	issued := tok.Changes()[0].Data.(TokenIssued)
	if !slices.Equal(issued.Scopes, want) {
		t.Fatalf("event scopes = %q, want %q", issued.Scopes, want)
	}
}

func TestIssueTokenLifetime(t *testing.T) {
	t.Parallel()
	def := DefaultPolicy()
	allowNever := def
	allowNever.AllowNeverExpires = true
	shortDefault := def
	shortDefault.DefaultLifetime = 2 * time.Hour
	// now has nanoseconds and a zone, to check normalisation.
	now := t0.Add(123456789 * time.Nanosecond).In(time.FixedZone("UTC+2", 2*3600))
	n := NormalizeTime(now)
	tests := []struct {
		name   string
		policy Policy
		req    IssueRequest
		want   error
		// expected state when accepted; zero expiry means never
		expiresAt, absolute time.Time
		idle                time.Duration
	}{
		{name: "api default lifetime when no expiry given", policy: def, req: IssueRequest{},
			expiresAt: n.Add(30 * 24 * time.Hour)},
		{name: "api default lifetime follows the policy", policy: shortDefault, req: IssueRequest{},
			expiresAt: n.Add(2 * time.Hour)},
		{name: "api expires in", policy: def, req: IssueRequest{ExpiresIn: time.Hour},
			expiresAt: n.Add(time.Hour)},
		{name: "api expires at, normalised", policy: def, req: IssueRequest{ExpiresAt: ptr(n.Add(time.Hour + 999).In(now.Location()))},
			expiresAt: n.Add(time.Hour)},
		{name: "api expiry at exactly the max lifetime", policy: def, req: IssueRequest{ExpiresAt: ptr(n.Add(def.MaxLifetime))},
			expiresAt: n.Add(def.MaxLifetime)},
		{name: "api expiry a microsecond beyond the max lifetime", policy: def,
			req: IssueRequest{ExpiresAt: ptr(n.Add(def.MaxLifetime + time.Microsecond))}, want: ErrPolicyViolation},
		{name: "api expires in beyond the max lifetime", policy: def, req: IssueRequest{ExpiresIn: def.MaxLifetime + time.Second},
			want: ErrPolicyViolation},
		{name: "api expiry now", policy: def, req: IssueRequest{ExpiresAt: ptr(n)}, want: ErrPolicyViolation},
		{name: "api expiry within the current microsecond", policy: def, req: IssueRequest{ExpiresAt: ptr(n.Add(500))},
			want: ErrPolicyViolation},
		{name: "api expiry in the past", policy: def, req: IssueRequest{ExpiresAt: ptr(n.Add(-time.Hour))}, want: ErrPolicyViolation},
		{name: "api never expires refused by default", policy: def, req: IssueRequest{NeverExpires: true}, want: ErrPolicyViolation},
		{name: "api never expires when allowed", policy: allowNever, req: IssueRequest{NeverExpires: true}},
		{name: "session defaults", policy: def, req: IssueRequest{Kind: KindSession},
			expiresAt: n.Add(30 * time.Minute), absolute: n.Add(24 * time.Hour), idle: 30 * time.Minute},
		{name: "session cap follows a shorter default lifetime", policy: shortDefault, req: IssueRequest{Kind: KindSession},
			expiresAt: n.Add(30 * time.Minute), absolute: n.Add(2 * time.Hour), idle: 30 * time.Minute},
		{name: "session own idle timeout", policy: def, req: IssueRequest{Kind: KindSession, IdleTimeout: 2 * time.Hour},
			expiresAt: n.Add(2 * time.Hour), absolute: n.Add(24 * time.Hour), idle: 2 * time.Hour},
		{name: "session idle timeout beyond the session max lifetime", policy: def,
			req: IssueRequest{Kind: KindSession, IdleTimeout: 25 * time.Hour}, want: ErrPolicyViolation},
		{name: "session cap shorter than the idle timeout", policy: def, req: IssueRequest{Kind: KindSession, ExpiresIn: 10 * time.Minute},
			expiresAt: n.Add(10 * time.Minute), absolute: n.Add(10 * time.Minute), idle: 30 * time.Minute},
		{name: "session cap at exactly the session max lifetime", policy: def,
			req:       IssueRequest{Kind: KindSession, ExpiresAt: ptr(n.Add(24 * time.Hour))},
			expiresAt: n.Add(30 * time.Minute), absolute: n.Add(24 * time.Hour), idle: 30 * time.Minute},
		{name: "session cap beyond the session max lifetime", policy: def,
			req: IssueRequest{Kind: KindSession, ExpiresAt: ptr(n.Add(24*time.Hour + time.Microsecond))}, want: ErrPolicyViolation},
		{name: "session cap in the past", policy: def, req: IssueRequest{Kind: KindSession, ExpiresAt: ptr(n.Add(-time.Minute))},
			want: ErrPolicyViolation},
		{name: "session never expires even when allowed", policy: allowNever, req: IssueRequest{Kind: KindSession, NeverExpires: true},
			want: ErrPolicyViolation},
		{name: "bound caps the api default lifetime", policy: def, req: IssueRequest{NotAfter: ptr(n.Add(2 * time.Hour))},
			expiresAt: n.Add(2 * time.Hour)},
		{name: "bound later than the api default lifetime", policy: def, req: IssueRequest{NotAfter: ptr(n.Add(40 * 24 * time.Hour))},
			expiresAt: n.Add(30 * 24 * time.Hour)},
		{name: "api expiry at exactly the bound", policy: def,
			req:       IssueRequest{ExpiresAt: ptr(n.Add(2 * time.Hour)), NotAfter: ptr(n.Add(2 * time.Hour))},
			expiresAt: n.Add(2 * time.Hour)},
		{name: "api expiry a microsecond beyond the bound", policy: def,
			req: IssueRequest{ExpiresAt: ptr(n.Add(2*time.Hour + time.Microsecond)), NotAfter: ptr(n.Add(2 * time.Hour))}, want: ErrLifetimeBound},
		{name: "api expires in beyond the bound", policy: def,
			req: IssueRequest{ExpiresIn: 720 * time.Hour, NotAfter: ptr(n.Add(2 * time.Hour))}, want: ErrLifetimeBound},
		{name: "policy refusal comes before the bound", policy: def,
			req: IssueRequest{ExpiresIn: def.MaxLifetime + time.Hour, NotAfter: ptr(n.Add(2 * time.Hour))}, want: ErrPolicyViolation},
		{name: "never expires beyond any bound", policy: allowNever,
			req: IssueRequest{NeverExpires: true, NotAfter: ptr(n.Add(2 * time.Hour))}, want: ErrLifetimeBound},
		{name: "bound that has passed leaves no default lifetime", policy: def, req: IssueRequest{NotAfter: ptr(n)},
			want: ErrLifetimeBound},
		{name: "bound caps the session default cap", policy: def, req: IssueRequest{Kind: KindSession, NotAfter: ptr(n.Add(2 * time.Hour))},
			expiresAt: n.Add(30 * time.Minute), absolute: n.Add(2 * time.Hour), idle: 30 * time.Minute},
		{name: "bound shorter than the session idle timeout", policy: def, req: IssueRequest{Kind: KindSession, NotAfter: ptr(n.Add(10 * time.Minute))},
			expiresAt: n.Add(10 * time.Minute), absolute: n.Add(10 * time.Minute), idle: 30 * time.Minute},
		{name: "session cap beyond the bound", policy: def,
			req: IssueRequest{Kind: KindSession, ExpiresIn: 3 * time.Hour, NotAfter: ptr(n.Add(2 * time.Hour))}, want: ErrLifetimeBound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.req.Owner = "alice"
			tok, _, err := IssueToken(tc.policy, nil, tc.req, testMeta, now, nil)
			wantErr(t, err, tc.want)
			if tc.want != nil {
				if tok != nil {
					t.Fatal("refused issue returned a token")
				}
				return
			}
			gotExp, expires := tok.ExpiresAt()
			if expires != !tc.expiresAt.IsZero() || !gotExp.Equal(tc.expiresAt) {
				t.Errorf("ExpiresAt() = %v, %v; want %v", gotExp, expires, tc.expiresAt)
			}
			gotAbs, capped := tok.AbsoluteExpiresAt()
			if capped != !tc.absolute.IsZero() || !gotAbs.Equal(tc.absolute) {
				t.Errorf("AbsoluteExpiresAt() = %v, %v; want %v", gotAbs, capped, tc.absolute)
			}
			if tok.IdleTimeout() != tc.idle {
				t.Errorf("IdleTimeout() = %s, want %s", tok.IdleTimeout(), tc.idle)
			}
			wantKind := tc.req.Kind
			if wantKind == "" {
				wantKind = KindAPI
			}
			if tok.Kind() != wantKind {
				t.Errorf("Kind() = %q, want %q", tok.Kind(), wantKind)
			}
			// The event carries the same lifetime the state shows.
			replayed, err := TokenFromHistory(tok.Changes())
			if err != nil {
				t.Fatal(err)
			}
			sameTokenState(t, replayed, tok)
		})
	}
}

func TestIssueTokenRecordsOneIssuedEvent(t *testing.T) {
	t.Parallel()
	clock := NewManualClock(t0.Add(987654321 * time.Nanosecond))
	now := clock.Now().In(time.FixedZone("EST", -5*3600))
	rotatedFrom, err := NewTokenID(t0, nil)
	if err != nil {
		t.Fatal(err)
	}
	req := IssueRequest{Owner: "alice", Name: "ci", Scopes: []string{"read"}, ExpiresIn: time.Hour, RotatedFrom: &rotatedFrom}
	tok, secret, err := IssueToken(DefaultPolicy(), NewOwner("alice"), req, testMeta, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	changes := tok.Changes()
	if len(changes) != 1 {
		t.Fatalf("%d changes, want 1", len(changes))
	}
	e := changes[0]
	n := NormalizeTime(now)
	want := Envelope{
		ID: e.ID, Type: TypeTokenIssued, AggregateKind: AggregateToken, AggregateID: tok.ID().String(),
		Actor: testMeta.Actor, Time: n, Schema: 1, CorrelationID: testMeta.CorrelationID,
		Data: TokenIssued{
			Owner: "alice", Name: "ci", Scopes: []string{"read"}, Kind: KindAPI, SecretHash: secret.Hash(),
			ExpiresAt: ptr(n.Add(time.Hour)), RotatedFrom: &rotatedFrom,
		},
	}
	if e.ID.IsZero() || !reflect.DeepEqual(e, want) {
		t.Fatalf("issued event = %+v\nwant %+v", e, want)
	}
	switch {
	case secret.TokenID() != tok.ID():
		t.Error("the secret embeds another token id")
	case !tok.SecretHash().Equal(HashSecret(secret.Reveal())):
		t.Error("the token's hash is not the secret's")
	case !tok.CreatedAt().Equal(n) || tok.CreatedAt().Location() != time.UTC:
		t.Errorf("CreatedAt() = %v, want %v in UTC", tok.CreatedAt(), n)
	case !tok.ID().Time().Equal(n.Truncate(time.Millisecond)):
		t.Errorf("id time %v, want %v", tok.ID().Time(), n.Truncate(time.Millisecond))
	case tok.Version() != 0 || tok.IssuedSequence() != 0:
		t.Error("a pending token has a sequence")
	case tok.UseCount() != 0:
		t.Error("a new token has uses")
	}
	if _, used := tok.LastUsedAt(); used {
		t.Error("a new token was used")
	}
	if _, revoked := tok.RevokedAt(); revoked {
		t.Error("a new token is revoked")
	}
	if from, ok := tok.RotatedFrom(); !ok || from != rotatedFrom {
		t.Errorf("RotatedFrom() = %s, %v", from, ok)
	}
	if tok.Status(n, nil) != StatusActive {
		t.Errorf("Status = %s", tok.Status(n, nil))
	}
}

func TestSetExpiry(t *testing.T) {
	t.Parallel()
	def := DefaultPolicy()
	allowNever := def
	allowNever.AllowNeverExpires = true
	later := t0.Add(10 * 24 * time.Hour) // now, for the commands
	tests := []struct {
		name    string
		kind    TokenKind
		policy  Policy
		at      *time.Time
		revoked bool
		want    error
	}{
		{name: "shorten", kind: KindAPI, policy: def, at: ptr(later.Add(time.Hour))},
		{name: "extend within the max lifetime", kind: KindAPI, policy: def, at: ptr(later.Add(100 * 24 * time.Hour))},
		{name: "exactly the max lifetime from creation", kind: KindAPI, policy: def, at: ptr(t0.Add(def.MaxLifetime))},
		{name: "beyond the max lifetime from creation", kind: KindAPI, policy: def, at: ptr(t0.Add(def.MaxLifetime + time.Microsecond)), want: ErrPolicyViolation},
		{name: "now", kind: KindAPI, policy: def, at: ptr(later), want: ErrPolicyViolation},
		{name: "in the past", kind: KindAPI, policy: def, at: ptr(later.Add(-time.Second)), want: ErrPolicyViolation},
		{name: "out of range", kind: KindAPI, policy: def, at: ptr(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)), want: ErrInvalidArgument},
		{name: "never, not allowed", kind: KindAPI, policy: def, at: nil, want: ErrPolicyViolation},
		{name: "never, allowed", kind: KindAPI, policy: allowNever, at: nil},
		{name: "revoked", kind: KindAPI, policy: def, at: ptr(later.Add(time.Hour)), revoked: true, want: ErrTokenRevoked},
		{name: "session, in the past", kind: KindSession, policy: def, at: ptr(t0.Add(20 * time.Hour)), want: ErrPolicyViolation},
		{name: "session never, even if allowed", kind: KindSession, policy: allowNever, at: nil, want: ErrPolicyViolation},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := IssueRequest{Kind: tc.kind}
			if tc.kind == KindAPI {
				req.ExpiresIn = 20 * 24 * time.Hour
			}
			tok, _ := issue(t, def, nil, req, t0)
			if tc.revoked {
				if err := tok.Revoke("", testMeta, t0); err != nil {
					t.Fatal(err)
				}
			}
			before := tok.Changes()
			beforeExp, beforeOK := tok.ExpiresAt()
			err := tok.SetExpiry(tc.policy, tc.at, testMeta, later)
			wantErr(t, err, tc.want)
			if tc.want != nil {
				if len(tok.Changes()) != len(before) {
					t.Fatal("a refused SetExpiry recorded an event")
				}
				if exp, ok := tok.ExpiresAt(); ok != beforeOK || !exp.Equal(beforeExp) {
					t.Fatal("a refused SetExpiry changed the expiry")
				}
				return
			}
			e := lastChange(t, tok.Changes())
			d, ok := e.Data.(TokenExpirySet)
			if !ok || d.Reason != ExpirySetByCaller || d.RotatedTo != nil {
				t.Fatalf("recorded %+v, want TokenExpirySet{Reason: set}", e.Data)
			}
			exp, expires := tok.ExpiresAt()
			if tc.at == nil {
				if expires || d.ExpiresAt != nil {
					t.Fatalf("token still expires at %v", exp)
				}
				return
			}
			if !expires || !exp.Equal(*tc.at) || !d.ExpiresAt.Equal(*tc.at) {
				t.Fatalf("ExpiresAt() = %v, want %v", exp, *tc.at)
			}
		})
	}
}

// TestSetExpiryOfASessionIsBoundByItsCap covers a session's cap, which is
// not the api max lifetime.
func TestSetExpiryOfASessionIsBoundByItsCap(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy()
	tok, _ := issue(t, p, nil, IssueRequest{Kind: KindSession}, t0)
	capAt, _ := tok.AbsoluteExpiresAt()
	now := t0.Add(time.Minute)
	wantErr(t, tok.SetExpiry(p, ptr(capAt.Add(time.Microsecond)), testMeta, now), ErrPolicyViolation)
	wantErr(t, tok.SetExpiry(p, ptr(capAt), testMeta, now), nil)
	if got := expiry(t, tok); !got.Equal(capAt) {
		t.Fatalf("expiry %v, want the cap %v", got, capAt)
	}
	wantErr(t, tok.SetExpiry(p, ptr(now.Add(time.Second)), testMeta, now), nil)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestExtends(t *testing.T) {
	t.Parallel()
	allowNever := DefaultPolicy()
	allowNever.AllowNeverExpires = true
	expiring, _ := issue(t, allowNever, nil, IssueRequest{ExpiresIn: time.Hour}, t0)
	never, _ := issue(t, allowNever, nil, IssueRequest{NeverExpires: true}, t0)
	exp := expiry(t, expiring)
	tests := []struct {
		name string
		tok  *Token
		at   *time.Time
		want bool
	}{
		{"later", expiring, ptr(exp.Add(time.Microsecond)), true},
		{"same", expiring, ptr(exp), false},
		{"same within a microsecond", expiring, ptr(exp.Add(999)), false},
		{"earlier", expiring, ptr(exp.Add(-time.Hour)), false},
		{"never is latest", expiring, nil, true},
		{"anything from never", never, ptr(exp.Add(1000 * time.Hour)), false},
		{"never from never", never, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.tok.Extends(tc.at); got != tc.want {
				t.Fatalf("Extends = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRevoke(t *testing.T) {
	t.Parallel()
	clock := NewManualClock(t0)
	tok, _ := issue(t, DefaultPolicy(), nil, IssueRequest{}, clock.Now())
	now := clock.Advance(time.Hour)

	wantErr(t, tok.Revoke(strings.Repeat("r", MaxReasonLen+1), testMeta, now), ErrInvalidArgument)
	wantErr(t, tok.Revoke("leaked\x00", testMeta, now), ErrInvalidArgument)
	wantErr(t, tok.Revoke("leaked", Meta{}, now), ErrInvalidArgument)
	if len(tok.Changes()) != 1 {
		t.Fatal("a refused revoke recorded an event")
	}

	by := Meta{Actor: "token:owner", CorrelationID: "req-2"}
	wantErr(t, tok.Revoke(strings.Repeat("r", MaxReasonLen), by, now), nil)
	e := lastChange(t, tok.Changes())
	if d, ok := e.Data.(TokenRevoked); !ok || d.Reason != strings.Repeat("r", MaxReasonLen) || e.Actor != by.Actor {
		t.Fatalf("recorded %+v", e)
	}
	at, revoked := tok.RevokedAt()
	if !revoked || !at.Equal(now) || tok.RevokedBy() != by.Actor || tok.RevokedReason() != strings.Repeat("r", MaxReasonLen) {
		t.Fatalf("revoked state: %v %v %q %q", at, revoked, tok.RevokedBy(), tok.RevokedReason())
	}

	// Idempotent: a second revoke succeeds, records nothing, changes nothing.
	wantErr(t, tok.Revoke("again", Meta{Actor: "someone-else"}, clock.Advance(time.Hour)), nil)
	if len(tok.Changes()) != 2 {
		t.Fatalf("second revoke recorded an event: %d changes", len(tok.Changes()))
	}
	at2, _ := tok.RevokedAt()
	if !at2.Equal(at) || tok.RevokedBy() != by.Actor || tok.RevokedReason() != strings.Repeat("r", MaxReasonLen) {
		t.Fatal("second revoke changed the revocation")
	}
	wantErr(t, tok.Check(clock.Now(), nil), ErrTokenRevoked)
}

// TestRevokedIsTerminal checks every way a revoked token could come back,
// both as a command (refused) and as an event applied anyway (ignored).
func TestRevokedIsTerminal(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy()
	p.AllowNeverExpires = true
	tests := []struct {
		name string
		kind TokenKind
		// act runs a command on the revoked token; want is its error.
		act  func(tok *Token, now time.Time) error
		want error
	}{
		{"set expiry later", KindAPI, func(tok *Token, now time.Time) error {
			return tok.SetExpiry(p, ptr(now.Add(100*24*time.Hour)), testMeta, now)
		}, ErrTokenRevoked},
		{"set expiry never", KindAPI, func(tok *Token, now time.Time) error { return tok.SetExpiry(p, nil, testMeta, now) }, ErrTokenRevoked},
		{"rotate", KindAPI, func(tok *Token, now time.Time) error {
			_, _, err := Rotate(p, nil, tok, time.Hour, nil, testMeta, now, nil)
			return err
		}, ErrTokenRevoked},
		{"extend session", KindSession, func(tok *Token, now time.Time) error {
			_, err := tok.ExtendSession(now, 0, testMeta, now)
			return err
		}, ErrTokenRevoked},
		{"record use", KindAPI, func(tok *Token, now time.Time) error {
			return tok.RecordUse(5, now.Add(-time.Minute), now, "10.0.0.1", testMeta, now)
		}, nil},
		{"record use of a session", KindSession, func(tok *Token, now time.Time) error {
			return tok.RecordUse(5, now.Add(-time.Minute), now, "", testMeta, now)
		}, nil},
		{"revoke again", KindAPI, func(tok *Token, now time.Time) error { return tok.Revoke("again", testMeta, now) }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := NewManualClock(t0)
			tok, _ := issue(t, p, nil, IssueRequest{Kind: tc.kind}, clock.Now())
			wantErr(t, tok.Revoke("compromised", testMeta, clock.Advance(time.Minute)), nil)
			revokedAt, _ := tok.RevokedAt()
			exp := expiry(t, tok)
			now := clock.Advance(time.Minute)
			wantErr(t, tc.act(tok, now), tc.want)
			if tok.Status(now, nil) != StatusRevoked || tok.Check(now, nil) != ErrTokenRevoked {
				t.Fatalf("token is %s after %s", tok.Status(now, nil), tc.name)
			}
			if got := expiry(t, tok); !got.Equal(exp) {
				t.Fatalf("expiry moved from %v to %v", exp, got)
			}
			if at, _ := tok.RevokedAt(); !at.Equal(revokedAt) || tok.RevokedReason() != "compromised" {
				t.Fatal("the revocation changed")
			}
		})
	}

	t.Run("events applied after revoked are ignored", func(t *testing.T) {
		t.Parallel()
		tok, _ := issue(t, p, nil, IssueRequest{Kind: KindSession}, t0)
		exp := expiry(t, tok)
		wantErr(t, tok.Revoke("compromised", testMeta, t0.Add(time.Minute)), nil)
		id := tok.ID().String()
		later := t0.Add(2 * time.Minute)
		for _, e := range []Envelope{
			envelopeFor(t, AggregateToken, id, TokenExpirySet{ExpiresAt: ptr(t0.Add(5 * time.Hour)), Reason: ExpirySessionExtended}, later),
			envelopeFor(t, AggregateToken, id, TokenExpirySet{Reason: ExpirySetByCaller}, later),
			envelopeFor(t, AggregateToken, id, TokenRevoked{Reason: "second"}, later),
			envelopeFor(t, AggregateToken, id, TokenUsed{Count: 3, FirstAt: later, LastAt: later}, later),
		} {
			tok.Apply(e)
		}
		if got := expiry(t, tok); !got.Equal(exp) {
			t.Fatalf("expiry moved to %v", got)
		}
		if tok.RevokedReason() != "compromised" || tok.Status(later, nil) != StatusRevoked {
			t.Fatal("revocation changed")
		}
		if last, _ := tok.LastUsedAt(); !last.Equal(later) || tok.UseCount() != 3 {
			t.Fatalf("a late use must still count: %v %d", last, tok.UseCount())
		}
	})
}

// envelopeFor builds an envelope as a command would, for Apply tests.
func envelopeFor(t *testing.T, kind AggregateKind, id string, data Event, at time.Time) Envelope {
	t.Helper()
	e, err := newEnvelope(kind, id, data, testMeta, at)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestRotate(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy()
	clock := NewManualClock(t0)
	owner := NewOwner("alice")
	old, _ := issue(t, p, owner, IssueRequest{Name: "deploy", Scopes: []string{"b", "a"}, ExpiresIn: 200 * 24 * time.Hour}, clock.Now())
	now := clock.Advance(24 * time.Hour)

	tok, secret, err := Rotate(p, owner, old, time.Hour, nil, Meta{Actor: "token:x"}, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Owner() != "alice" || tok.Name() != "deploy" || !slices.Equal(tok.Scopes(), []string{"a", "b"}) || tok.Kind() != KindAPI {
		t.Fatalf("new token differs in shape: %q %q %q %q", tok.Owner(), tok.Name(), tok.Scopes(), tok.Kind())
	}
	if from, ok := tok.RotatedFrom(); !ok || from != old.ID() {
		t.Fatalf("RotatedFrom() = %s, %v", from, ok)
	}
	if secret.TokenID() != tok.ID() || tok.ID() == old.ID() {
		t.Fatal("the new secret does not belong to a new token")
	}
	// The new token gets the default lifetime from now, not the old one's.
	if got, want := expiry(t, tok), now.Add(p.DefaultLifetime); !got.Equal(want) {
		t.Fatalf("new expiry %v, want %v", got, want)
	}
	e := lastChange(t, old.Changes())
	d, ok := e.Data.(TokenExpirySet)
	if !ok || d.Reason != ExpiryRotated || d.RotatedTo == nil || *d.RotatedTo != tok.ID() || !d.ExpiresAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("old recorded %+v", e.Data)
	}
	if to, ok := old.RotatedTo(); !ok || to != tok.ID() {
		t.Fatalf("RotatedTo() = %s, %v", to, ok)
	}
	if old.Status(now.Add(time.Hour-time.Microsecond), nil) != StatusActive || old.Status(now.Add(time.Hour), nil) != StatusExpired {
		t.Fatal("old token is not usable exactly during the grace")
	}
	_, _, err = Rotate(p, owner, old, 0, nil, testMeta, now, nil)
	wantErr(t, err, ErrPolicyViolation)
}

// TestRotateWithinABound checks that a bound caps the successor's
// lifetime: a token with two hours left that rotates itself under its own
// expiry as the bound gets a successor that expires when it would have,
// not one with the policy's default lifetime.
func TestRotateWithinABound(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy()
	old, _ := issue(t, p, nil, IssueRequest{ExpiresIn: 2 * time.Hour}, t0)
	bound := expiry(t, old)
	now := t0.Add(time.Minute)
	tok, _, err := Rotate(p, nil, old, 0, &bound, testMeta, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := expiry(t, tok); !got.Equal(bound) {
		t.Fatalf("successor expires at %v, want the bound %v", got, bound)
	}
	if got := expiry(t, old); !got.Equal(now) {
		t.Fatalf("old token expires at %v, want %v (no grace)", got, now)
	}

	passed := now
	old2, _ := issue(t, p, nil, IssueRequest{}, t0)
	_, _, err = Rotate(p, nil, old2, 0, &passed, testMeta, now, nil)
	wantErr(t, err, ErrLifetimeBound)
	if len(old2.Changes()) != 1 {
		t.Fatalf("a refused rotation recorded %d events on the old token", len(old2.Changes())-1)
	}
}

func TestRotateNeverExtendsTheOldToken(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy()
	p.AllowNeverExpires = true
	tests := []struct {
		name    string
		req     IssueRequest
		grace   time.Duration
		wantOld func(now time.Time) time.Time
	}{
		{"grace shorter than the remaining lifetime", IssueRequest{ExpiresIn: 48 * time.Hour}, time.Hour,
			func(now time.Time) time.Time { return now.Add(time.Hour) }},
		{"grace longer than the remaining lifetime", IssueRequest{ExpiresIn: 2 * time.Hour}, 72 * time.Hour,
			func(time.Time) time.Time { return t0.Add(2 * time.Hour) }},
		{"no grace", IssueRequest{}, 0, func(now time.Time) time.Time { return now }},
		{"never-expiring token gets the grace", IssueRequest{NeverExpires: true}, time.Hour,
			func(now time.Time) time.Time { return now.Add(time.Hour) }},
		{"session", IssueRequest{Kind: KindSession, IdleTimeout: 2 * time.Hour}, 24 * time.Hour,
			func(time.Time) time.Time { return t0.Add(2 * time.Hour) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			old, _ := issue(t, p, nil, tc.req, t0)
			now := t0.Add(30 * time.Minute)
			tok, _, err := Rotate(p, nil, old, tc.grace, nil, testMeta, now, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := expiry(t, old), tc.wantOld(now); !got.Equal(want) {
				t.Fatalf("old expiry %v, want %v", got, want)
			}
			// A rotation issues like a fresh issue without expiry.
			want, _, err := IssueToken(p, nil, IssueRequest{Owner: old.Owner(), Kind: old.Kind(), IdleTimeout: old.IdleTimeout()}, testMeta, now, nil)
			if err != nil {
				t.Fatal(err)
			}
			gotExp, _ := tok.ExpiresAt()
			wantExp, _ := want.ExpiresAt()
			gotAbs, _ := tok.AbsoluteExpiresAt()
			wantAbs, _ := want.AbsoluteExpiresAt()
			if !gotExp.Equal(wantExp) || !gotAbs.Equal(wantAbs) || tok.IdleTimeout() != old.IdleTimeout() {
				t.Fatalf("new lifetime %v/%v/%s, want %v/%v/%s", gotExp, gotAbs, tok.IdleTimeout(), wantExp, wantAbs, old.IdleTimeout())
			}
			if _, ok := tok.ExpiresAt(); !ok {
				t.Fatal("rotation inherited never-expires")
			}
		})
	}
}

func TestRotateRefusals(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy()
	tests := []struct {
		name  string
		setup func(t *testing.T, old *Token, owner *Owner) time.Time // returns now
		grace time.Duration
		want  error
	}{
		{"negative grace", func(*testing.T, *Token, *Owner) time.Time { return t0.Add(time.Minute) }, -time.Second, ErrInvalidArgument},
		{"revoked", func(t *testing.T, old *Token, _ *Owner) time.Time {
			wantErr(t, old.Revoke("", testMeta, t0), nil)
			return t0.Add(time.Minute)
		}, 0, ErrTokenRevoked},
		{"expired", func(*testing.T, *Token, *Owner) time.Time { return t0.Add(p.DefaultLifetime) }, 0, ErrTokenExpired},
		{"owner revoked", func(t *testing.T, _ *Token, owner *Owner) time.Time {
			wantErr(t, owner.RevokeTokens(nil, "", testMeta, t0.Add(time.Minute)), nil)
			return t0.Add(2 * time.Minute)
		}, 0, ErrOwnerRevoked},
		{"owner blocked", func(t *testing.T, old *Token, owner *Owner) time.Time {
			// The old token is stored before the ban is, so only the ban's
			// until speaks; the old token was created before until, so it is
			// covered too.
			wantErr(t, owner.RevokeTokens(ptr(t0.Add(time.Hour)), "", testMeta, t0.Add(time.Minute)), nil)
			return t0.Add(2 * time.Minute)
		}, 0, ErrOwnerRevoked},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var s stream
			owner := NewOwner("alice")
			old, _ := issue(t, p, owner, IssueRequest{}, t0)
			s.store(t, old)
			now := tc.setup(t, old, owner)
			before := len(old.Changes())
			tok, secret, err := Rotate(p, owner, old, tc.grace, nil, testMeta, now, nil)
			wantErr(t, err, tc.want)
			if tok != nil || !secret.IsZero() || len(old.Changes()) != before {
				t.Fatal("a refused rotation recorded something")
			}
		})
	}
}

func TestRotateOfAnUnblockedOwnerStillChecksTheBan(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy()
	var s stream
	owner := NewOwner("alice")
	wantErr(t, owner.RevokeTokens(ptr(t0.Add(time.Hour)), "ban", testMeta, t0), nil)
	s.store(t, owner)
	// Issued without the owner's history during the ban (as a racing issue
	// would be): the token counts as revoked, and it cannot be rotated
	// into a fresh one.
	old, _ := issue(t, p, nil, IssueRequest{}, t0.Add(time.Minute))
	s.store(t, old)
	_, _, err := Rotate(p, owner, old, 0, nil, testMeta, t0.Add(2*time.Hour), nil)
	wantErr(t, err, ErrOwnerRevoked)
}

func TestRecordUse(t *testing.T) {
	t.Parallel()
	clock := NewManualClock(t0)
	tok, _ := issue(t, DefaultPolicy(), nil, IssueRequest{}, clock.Now())
	exp := expiry(t, tok)
	first, last := clock.Advance(time.Minute), clock.Advance(time.Minute)
	now := clock.Advance(time.Second)

	invalid := []struct {
		name        string
		count       uint64
		first, last time.Time
		addr        string
		meta        Meta
	}{
		{"zero count", 0, first, last, "", testMeta},
		{"last before first", 1, last, first, "", testMeta},
		{"zero first", 1, time.Time{}, last, "", testMeta},
		{"last beyond year 9999", 1, first, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), "", testMeta},
		{"client address too long", 1, first, last, strings.Repeat("1", MaxClientAddrLen+1), testMeta},
		{"client address with NUL", 1, first, last, "10.0.0.1\x00", testMeta},
		{"no actor", 1, first, last, "", Meta{}},
	}
	for _, tc := range invalid {
		wantErr(t, tok.RecordUse(tc.count, tc.first, tc.last, tc.addr, tc.meta, now), ErrInvalidArgument)
	}
	if len(tok.Changes()) != 1 {
		t.Fatal("refused uses recorded events")
	}

	wantErr(t, tok.RecordUse(3, first, last, "[2001:db8::1]:443", testMeta, now), nil)
	d := lastChange(t, tok.Changes()).Data.(TokenUsed)
	if d.Count != 3 || !d.FirstAt.Equal(first) || !d.LastAt.Equal(last) || d.ClientAddr != "[2001:db8::1]:443" {
		t.Fatalf("recorded %+v", d)
	}
	// A use reported late, with an earlier last use, adds its count but
	// does not move LastUsedAt back.
	wantErr(t, tok.RecordUse(2, first.Add(-time.Hour), first, "", testMeta, now), nil)
	gotLast, used := tok.LastUsedAt()
	if !used || !gotLast.Equal(last) || tok.UseCount() != 5 {
		t.Fatalf("LastUsedAt %v %v, UseCount %d; want %v, 5", gotLast, used, tok.UseCount(), last)
	}
	if got := expiry(t, tok); !got.Equal(exp) {
		t.Fatalf("use moved the expiry from %v to %v", exp, got)
	}
	// Uses of an expired token are recorded and revive nothing.
	after := exp.Add(time.Minute)
	wantErr(t, tok.RecordUse(1, exp, exp, "", testMeta, after), nil)
	if tok.Status(after, nil) != StatusExpired {
		t.Fatal("a use revived an expired token")
	}
}

// TestAPITokensAreNeverExtendedByUse is the fixed-lifetime regression test:
// however much an api token is used, its expiry stays where it was set.
func TestAPITokensAreNeverExtendedByUse(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy()
	clock := NewManualClock(t0)
	tok, _ := issue(t, p, nil, IssueRequest{ExpiresIn: 2 * time.Hour}, clock.Now())
	exp := expiry(t, tok)
	for range 20 {
		now := clock.Advance(5 * time.Minute)
		wantErr(t, tok.RecordUse(100, now.Add(-time.Minute), now, "", testMeta, now), nil)
		extended, err := tok.ExtendSession(now, 0, testMeta, now)
		wantErr(t, err, ErrInvalidArgument)
		if extended {
			t.Fatal("an api token was extended")
		}
	}
	if got := expiry(t, tok); !got.Equal(exp) {
		t.Fatalf("expiry moved from %v to %v", exp, got)
	}
	wantErr(t, tok.Check(exp, nil), ErrTokenExpired)
	wantErr(t, tok.Check(exp.Add(-time.Microsecond), nil), nil)
}

func TestExtendSession(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy() // idle 30m, cap 24h
	step := time.Minute
	base := t0.Add(30 * time.Minute) // expiry right after issue
	tests := []struct {
		name     string
		lastUse  time.Duration // after t0
		now      time.Duration // after t0
		step     time.Duration
		want     bool
		wantExp  time.Time
		wantErr  error
		prepared func(t *testing.T, tok *Token)
	}{
		{name: "use well after issue slides", lastUse: 10 * time.Minute, now: 10 * time.Minute, step: step,
			want: true, wantExp: t0.Add(40 * time.Minute)},
		{name: "move within the step is debounced", lastUse: 30 * time.Second, now: 30 * time.Second, step: step,
			want: false, wantExp: base},
		{name: "move of exactly the step is debounced", lastUse: time.Minute, now: time.Minute, step: step,
			want: false, wantExp: base},
		{name: "move just beyond the step slides", lastUse: time.Minute + time.Microsecond, now: 2 * time.Minute, step: step,
			want: true, wantExp: base.Add(time.Minute + time.Microsecond)},
		{name: "zero step slides on any move", lastUse: time.Microsecond, now: time.Second, step: 0,
			want: true, wantExp: base.Add(time.Microsecond)},
		{name: "use before the expiry reported after it does not revive", lastUse: 29 * time.Minute, now: 31 * time.Minute, step: step,
			want: false, wantExp: base},
		{name: "at the expiry instant it does not revive", lastUse: 29 * time.Minute, now: 30 * time.Minute, step: step,
			want: false, wantExp: base},
		{name: "a use in the future counts as now", lastUse: 5 * time.Hour, now: 10 * time.Minute, step: step,
			want: true, wantExp: t0.Add(40 * time.Minute)},
		{name: "older use than the current expiry basis", lastUse: -time.Hour, now: time.Minute, step: step,
			want: false, wantExp: base},
		{name: "never past the cap", lastUse: 23*time.Hour + 50*time.Minute, now: 23*time.Hour + 50*time.Minute, step: step,
			want: true, wantExp: t0.Add(24 * time.Hour),
			prepared: func(t *testing.T, tok *Token) {
				wantErr(t, tok.SetExpiry(p, ptr(t0.Add(23*time.Hour+55*time.Minute)), testMeta, t0), nil)
			}},
		{name: "at the cap nothing moves", lastUse: 23*time.Hour + 55*time.Minute, now: 23*time.Hour + 55*time.Minute, step: 0,
			want: false, wantExp: t0.Add(24 * time.Hour),
			prepared: func(t *testing.T, tok *Token) {
				wantErr(t, tok.SetExpiry(p, ptr(t0.Add(24*time.Hour)), testMeta, t0), nil)
			}},
		{name: "rotated session does not slide", lastUse: 10 * time.Minute, now: 10 * time.Minute, step: step,
			want: false, wantExp: t0.Add(20 * time.Minute),
			prepared: func(t *testing.T, tok *Token) {
				if _, _, err := Rotate(p, nil, tok, 20*time.Minute, nil, testMeta, t0, nil); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "revoked session is refused", lastUse: 10 * time.Minute, now: 10 * time.Minute, step: step,
			wantErr: ErrTokenRevoked, wantExp: base,
			prepared: func(t *testing.T, tok *Token) { wantErr(t, tok.Revoke("", testMeta, t0), nil) }},
		{name: "negative step", lastUse: 10 * time.Minute, now: 10 * time.Minute, step: -time.Second,
			wantErr: ErrInvalidArgument, wantExp: base},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tok, _ := issue(t, p, nil, IssueRequest{Kind: KindSession}, t0)
			if tc.prepared != nil {
				tc.prepared(t, tok)
			}
			before := len(tok.Changes())
			got, err := tok.ExtendSession(t0.Add(tc.lastUse), tc.step, Meta{Actor: "system:session-slide"}, t0.Add(tc.now))
			wantErr(t, err, tc.wantErr)
			if got != tc.want {
				t.Fatalf("ExtendSession = %v, want %v", got, tc.want)
			}
			if recorded := len(tok.Changes()) - before; recorded != boolInt(tc.want) {
				t.Fatalf("recorded %d events, want %d", recorded, boolInt(tc.want))
			}
			if tc.want {
				d := lastChange(t, tok.Changes()).Data.(TokenExpirySet)
				if d.Reason != ExpirySessionExtended || !d.ExpiresAt.Equal(tc.wantExp) {
					t.Fatalf("recorded %+v", d)
				}
			}
			if gotExp := expiry(t, tok); !gotExp.Equal(tc.wantExp) {
				t.Fatalf("expiry %v, want %v", gotExp, tc.wantExp)
			}
		})
	}
	t.Run("zero last use", func(t *testing.T) {
		t.Parallel()
		tok, _ := issue(t, p, nil, IssueRequest{Kind: KindSession}, t0)
		_, err := tok.ExtendSession(time.Time{}, 0, testMeta, t0)
		wantErr(t, err, ErrInvalidArgument)
	})
}

// TestShortIdleSessionSlidesWhileUsed is the regression test for sessions
// whose idle timeout is not longer than the extension step: issued with a
// 5 s idle timeout under the default 1 min step and used every second, it
// must stay usable, each extension moving the expiry by more than half the
// idle timeout (the debounce SessionSlideStep gives it), and expire 5 s
// after its last use.
func TestShortIdleSessionSlidesWhileUsed(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy()
	const idle = 5 * time.Second
	clock := NewManualClock(t0)
	tok, _ := issue(t, p, nil, IssueRequest{Kind: KindSession, IdleTimeout: idle}, clock.Now())
	extensions := 0
	prev := expiry(t, tok)
	for range 60 {
		now := clock.Advance(time.Second)
		if err := tok.Check(now, nil); err != nil {
			t.Fatalf("session in use every second refused at %v after %d extensions: %v", now.Sub(t0), extensions, err)
		}
		ok, err := tok.ExtendSession(now, p.SessionExtendStep, testMeta, now)
		wantErr(t, err, nil)
		if !ok {
			continue
		}
		extensions++
		got := expiry(t, tok)
		if !got.Equal(now.Add(idle)) || got.Sub(prev) <= idle/2 {
			t.Fatalf("extension at %v to %v (from %v), want to %v, a move of more than %v", now.Sub(t0), got, prev, now.Add(idle), idle/2)
		}
		prev = got
	}
	if extensions < 60/3 || extensions > 60/2 {
		t.Errorf("%d extensions in 60 s of use, want one every 3 s (a move of more than 2.5 s)", extensions)
	}
	last := clock.Now()
	wantErr(t, tok.Check(last.Add(idle-time.Microsecond), nil), nil)
	wantErr(t, tok.Check(last.Add(idle), nil), ErrTokenExpired)
}

func TestSessionSlideStep(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ step, idle, want time.Duration }{
		{time.Minute, 30 * time.Minute, time.Minute},
		{time.Minute, 2 * time.Minute, time.Minute},
		{time.Minute, 119 * time.Second, 59500 * time.Millisecond},
		{time.Minute, time.Minute, 30 * time.Second},
		{time.Minute, 5 * time.Second, 2500 * time.Millisecond},
		{0, 5 * time.Second, 0},
	} {
		if got := SessionSlideStep(tc.step, tc.idle); got != tc.want {
			t.Errorf("SessionSlideStep(%v, %v) = %v, want %v", tc.step, tc.idle, got, tc.want)
		}
	}
}

// TestSessionSlidesUpToItsCapAndNoFurther uses a session continuously and
// checks that it ends at its absolute cap, and that a session left idle
// expires after its idle timeout and stays expired.
func TestSessionSlidesUpToItsCapAndNoFurther(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy()
	clock := NewManualClock(t0)
	tok, _ := issue(t, p, nil, IssueRequest{Kind: KindSession}, clock.Now())
	capAt, _ := tok.AbsoluteExpiresAt()
	extensions := 0
	for {
		now := clock.Advance(7 * time.Minute)
		if tok.Check(now, nil) != nil {
			break
		}
		wantErr(t, tok.RecordUse(1, now, now, "", testMeta, now), nil)
		ok, err := tok.ExtendSession(now, p.SessionExtendStep, testMeta, now)
		wantErr(t, err, nil)
		if ok {
			extensions++
		}
		if exp := expiry(t, tok); exp.After(capAt) {
			t.Fatalf("expiry %v past the cap %v", exp, capAt)
		}
	}
	if end := clock.Now(); end.Before(capAt.Add(-p.SessionExtendStep-7*time.Minute)) || end.After(capAt.Add(7*time.Minute)) {
		t.Fatalf("session in constant use ended at %v, cap %v", end, capAt)
	}
	if extensions == 0 || extensions > int(24*time.Hour/(7*time.Minute)) {
		t.Fatalf("%d extensions", extensions)
	}
	// Nothing brings it back.
	now := clock.Advance(time.Minute)
	ok, err := tok.ExtendSession(now, 0, testMeta, now)
	if ok || err != nil || tok.Status(now, nil) != StatusExpired {
		t.Fatalf("expired session revived: %v %v %s", ok, err, tok.Status(now, nil))
	}

	idle, _ := issue(t, p, nil, IssueRequest{Kind: KindSession}, clock.Now())
	now = clock.Advance(p.SessionIdleTimeout)
	if idle.Status(now, nil) != StatusExpired {
		t.Fatal("idle session did not expire after its idle timeout")
	}
	if ok, _ := idle.ExtendSession(now, 0, testMeta, now); ok {
		t.Fatal("idle session revived")
	}
}

func TestCommandsOnATokenNotIssued(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy()
	for _, tok := range []*Token{nil, {}} {
		wantErr(t, tok.SetExpiry(p, ptr(t0.Add(time.Hour)), testMeta, t0), ErrNotFound)
		wantErr(t, tok.Revoke("", testMeta, t0), ErrNotFound)
		wantErr(t, tok.RecordUse(1, t0, t0, "", testMeta, t0), ErrNotFound)
		_, err := tok.ExtendSession(t0, 0, testMeta, t0)
		wantErr(t, err, ErrNotFound)
		_, _, err = Rotate(p, nil, tok, 0, nil, testMeta, t0, nil)
		wantErr(t, err, ErrNotFound)
		wantErr(t, tok.Check(t0, nil), ErrNotFound)
		if tok.Status(t0, nil) != "" {
			t.Fatal("a token never issued has a status")
		}
	}
}

func TestStatusAndCheck(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy()
	p.AllowNeverExpires = true
	var s stream
	owner := NewOwner("alice")
	before, _ := issue(t, p, owner, IssueRequest{ExpiresIn: time.Hour}, t0)
	never, _ := issue(t, p, owner, IssueRequest{NeverExpires: true}, t0)
	revoked, _ := issue(t, p, owner, IssueRequest{ExpiresIn: time.Hour}, t0)
	wantErr(t, revoked.Revoke("", testMeta, t0), nil)
	s.store(t, before, never, revoked)
	wantErr(t, owner.RevokeTokens(nil, "", testMeta, t0.Add(time.Minute)), nil)
	s.store(t, owner)
	after, _ := issue(t, p, owner, IssueRequest{ExpiresIn: time.Hour}, t0.Add(2*time.Minute))
	s.store(t, after)
	bob := NewOwner("bob")
	exp := t0.Add(time.Hour)

	tests := []struct {
		name  string
		tok   *Token
		now   time.Time
		owner *Owner
		want  error
	}{
		{"active without owner history", before, t0, nil, nil},
		{"a microsecond before expiry", before, exp.Add(-time.Microsecond), nil, nil},
		{"at the expiry instant", before, exp, nil, ErrTokenExpired},
		{"after expiry", before, exp.Add(time.Hour), nil, ErrTokenExpired},
		{"never expires, far future", never, t0.Add(100 * 365 * 24 * time.Hour), nil, nil},
		{"revoked beats expired", revoked, exp.Add(time.Hour), owner, ErrTokenRevoked},
		{"owner revoked a token issued before", before, t0.Add(3 * time.Minute), owner, ErrOwnerRevoked},
		{"owner revoked a never-expiring token", never, t0.Add(3 * time.Minute), owner, ErrOwnerRevoked},
		{"owner revocation beats expiry", before, exp.Add(time.Hour), owner, ErrOwnerRevoked},
		{"token issued after the owner revocation", after, t0.Add(3 * time.Minute), owner, nil},
		{"another owner's history does not apply", before, t0.Add(3 * time.Minute), bob, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.tok.Check(tc.now, tc.owner)
			if err != tc.want {
				t.Fatalf("Check = %v, want exactly %v", err, tc.want)
			}
			want := map[error]TokenStatus{nil: StatusActive, ErrTokenExpired: StatusExpired, ErrTokenRevoked: StatusRevoked, ErrOwnerRevoked: StatusRevoked}[tc.want]
			if got := tc.tok.Status(tc.now, tc.owner); got != want {
				t.Fatalf("Status = %s, want %s", got, want)
			}
		})
	}
}

func TestCheckAllocatesNothing(t *testing.T) {
	var s stream
	owner := NewOwner("alice")
	tok, _ := issue(t, DefaultPolicy(), owner, IssueRequest{}, t0)
	s.store(t, tok)
	wantErr(t, owner.RevokeTokens(nil, "", testMeta, t0), nil)
	s.store(t, owner)
	if n := testing.AllocsPerRun(100, func() { _ = tok.Check(t0, owner) }); n != 0 {
		t.Errorf("Check allocates %.0f times", n)
	}
}

func TestTokenApply(t *testing.T) {
	t.Parallel()
	tok, _ := issue(t, DefaultPolicy(), nil, IssueRequest{}, t0)
	issued := tok.Changes()[0]
	id := tok.ID().String()
	other, _ := issue(t, DefaultPolicy(), nil, IssueRequest{}, t0)
	used := func(seq uint64, n uint64) Envelope {
		e := envelopeFor(t, AggregateToken, id, TokenUsed{Count: n, FirstAt: t0, LastAt: t0.Add(time.Duration(seq) * time.Second)}, t0)
		e.Sequence = seq
		return e
	}

	t.Run("events before issued are ignored", func(t *testing.T) {
		t.Parallel()
		var fresh Token
		fresh.Apply(used(3, 1))
		if fresh.st.issued || fresh.UseCount() != 0 || fresh.Version() != 0 {
			t.Fatal("an event before issued was applied")
		}
	})
	t.Run("sequences set Version and IssuedSequence, pending events keep them", func(t *testing.T) {
		t.Parallel()
		var fresh Token
		e := issued
		e.Sequence = 7
		fresh.Apply(e)
		if fresh.IssuedSequence() != 7 || fresh.Version() != 7 {
			t.Fatalf("IssuedSequence %d Version %d", fresh.IssuedSequence(), fresh.Version())
		}
		fresh.Apply(used(9, 2))
		fresh.Apply(used(0, 3))
		if fresh.Version() != 9 || fresh.IssuedSequence() != 7 || fresh.UseCount() != 5 {
			t.Fatalf("Version %d IssuedSequence %d UseCount %d", fresh.Version(), fresh.IssuedSequence(), fresh.UseCount())
		}
	})
	t.Run("a second issued is ignored", func(t *testing.T) {
		t.Parallel()
		var fresh Token
		fresh.Apply(issued)
		again := envelopeFor(t, AggregateToken, id, TokenIssued{Owner: "mallory", Kind: KindAPI, SecretHash: SecretHash{1}}, t0.Add(time.Hour))
		again.Sequence = 12
		fresh.Apply(again)
		if fresh.Owner() != "alice" || fresh.SecretHash() != tok.SecretHash() || !fresh.CreatedAt().Equal(t0) {
			t.Fatal("a second issued changed the token")
		}
		if fresh.Version() != 12 {
			t.Fatalf("Version %d, want 12: every stored event of the token counts", fresh.Version())
		}
	})
	t.Run("events of other aggregates are ignored", func(t *testing.T) {
		t.Parallel()
		var fresh Token
		fresh.Apply(issued)
		foreign := envelopeFor(t, AggregateToken, other.ID().String(), TokenRevoked{}, t0)
		foreign.Sequence = 20
		fresh.Apply(foreign)
		ownerEvent := envelopeFor(t, AggregateOwner, "alice", OwnerTokensRevoked{Owner: "alice", RevokedBefore: t0}, t0)
		ownerEvent.Sequence = 21
		fresh.Apply(ownerEvent)
		if _, revoked := fresh.RevokedAt(); revoked || fresh.Version() != 0 {
			t.Fatal("a foreign event was applied")
		}
	})
	t.Run("pointer payloads apply like values", func(t *testing.T) {
		t.Parallel()
		var fresh Token
		e := issued
		d := e.Data.(TokenIssued)
		e.Data = &d
		fresh.Apply(e)
		r := envelopeFor(t, AggregateToken, id, &TokenRevoked{Reason: "p"}, t0)
		fresh.Apply(r)
		if !fresh.st.issued || fresh.RevokedReason() != "p" {
			t.Fatal("pointer payloads were not applied")
		}
	})
	t.Run("use count saturates", func(t *testing.T) {
		t.Parallel()
		var fresh Token
		fresh.Apply(issued)
		fresh.Apply(used(0, ^uint64(0)-1))
		fresh.Apply(used(0, 5))
		if fresh.UseCount() != ^uint64(0) {
			t.Fatalf("UseCount %d", fresh.UseCount())
		}
	})
	t.Run("applying its own event keeps the token's scopes private", func(t *testing.T) {
		t.Parallel()
		var fresh Token
		e := issued
		d := e.Data.(TokenIssued)
		d.Scopes = []string{"a"}
		e.Data = d
		fresh.Apply(e)
		d.Scopes[0] = "mutated"
		if fresh.Scopes()[0] != "a" {
			t.Fatal("the token shares its scopes with the event")
		}
	})
}

func TestTokenFromHistory(t *testing.T) {
	t.Parallel()
	var s stream
	p := DefaultPolicy()
	tok, _ := issue(t, p, nil, IssueRequest{Kind: KindSession}, t0)
	wantErr(t, tok.RecordUse(2, t0, t0.Add(time.Minute), "", testMeta, t0.Add(time.Minute)), nil)
	if _, err := tok.ExtendSession(t0.Add(10*time.Minute), time.Minute, testMeta, t0.Add(10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	wantErr(t, tok.Revoke("done", testMeta, t0.Add(11*time.Minute)), nil)
	other, _ := issue(t, p, nil, IssueRequest{}, t0)
	s.store(t, tok, other)
	history := s.of(AggregateToken, tok.ID().String())

	got, err := TokenFromHistory(history)
	if err != nil {
		t.Fatal(err)
	}
	sameTokenState(t, got, tok)
	if got.Version() != 4 || got.IssuedSequence() != 1 || len(got.Changes()) != 0 {
		t.Fatalf("Version %d IssuedSequence %d Changes %d", got.Version(), got.IssuedSequence(), len(got.Changes()))
	}

	swap := func(i, j int) []Envelope {
		h := slices.Clone(history)
		h[i], h[j] = h[j], h[i]
		return h
	}
	mismatched := slices.Clone(history)
	mismatched[1].Type = TypeTokenRevoked
	ownerEvent := envelopeFor(t, AggregateOwner, "alice", OwnerTokensRevoked{Owner: "alice", RevokedBefore: t0}, t0)
	tests := []struct {
		name   string
		events []Envelope
		want   error
	}{
		{"no events", nil, ErrNotFound},
		{"first is not issued", history[1:], ErrCorruptEvent},
		{"first is an owner event", append([]Envelope{ownerEvent}, history...), ErrCorruptEvent},
		{"event of another token", append(slices.Clone(history), s.of(AggregateToken, other.ID().String())...), ErrCorruptEvent},
		{"owner event in the middle", append(slices.Clone(history[:2]), ownerEvent), ErrCorruptEvent},
		{"sequences out of order", swap(1, 2), ErrCorruptEvent},
		{"type and payload disagree", mismatched, ErrCorruptEvent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := TokenFromHistory(tc.events)
			wantErr(t, err, tc.want)
			if got != nil {
				t.Fatal("a refused history returned a token")
			}
		})
	}
}

func TestMarkStored(t *testing.T) {
	t.Parallel()
	tok, _ := issue(t, DefaultPolicy(), nil, IssueRequest{}, t0)
	wantErr(t, tok.Revoke("", testMeta, t0), nil)
	wantErr(t, tok.MarkStored(5), ErrInvalidArgument)
	wantErr(t, tok.MarkStored(5, 5), ErrInvalidArgument)
	wantErr(t, tok.MarkStored(0, 1), ErrInvalidArgument)
	if len(tok.Changes()) != 2 || tok.Version() != 0 {
		t.Fatal("a refused MarkStored changed the token")
	}
	wantErr(t, tok.MarkStored(5, 9), nil)
	if tok.IssuedSequence() != 5 || tok.Version() != 9 || len(tok.Changes()) != 0 {
		t.Fatalf("IssuedSequence %d Version %d Changes %d", tok.IssuedSequence(), tok.Version(), len(tok.Changes()))
	}
	wantErr(t, tok.RecordUse(1, t0, t0, "", testMeta, t0), nil)
	wantErr(t, tok.MarkStored(9), ErrInvalidArgument)
	wantErr(t, tok.MarkStored(10), nil)
	if tok.Version() != 10 || tok.IssuedSequence() != 5 {
		t.Fatal("MarkStored of a later event moved IssuedSequence")
	}
}
