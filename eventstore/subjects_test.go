package eventstore_test

import (
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
)

func TestOwnerToken(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 256)
	longSum := sha256.Sum256([]byte(long))
	cases := []struct {
		name  string
		owner domain.OwnerID
		want  string
	}{
		{"letters, digits and dash are kept", "Alice-42", "Alice-42"},
		{"dot is escaped", "a.b", "a_2Eb"},
		{"underscore is escaped so escapes stay unambiguous", "a_2Eb", "a_5F2Eb"},
		{"space", "a b", "a_20b"},
		{"e-mail address", "alice@example.com", "alice_40example_2Ecom"},
		{"wildcards", "*>", "_2A_3E"},
		{"non-ASCII bytes each escaped, uppercase hex", "é", "_C3_A9"},
		{"escaped length exactly 200 is kept", domain.OwnerID(strings.Repeat(".", 66) + "ab"), strings.Repeat("_2E", 66) + "ab"},
		{"escaped length 201 is hashed", domain.OwnerID(strings.Repeat(".", 67)), "_h" + sha(strings.Repeat(".", 67))},
		{"long plain owner is hashed", domain.OwnerID(long), "_h" + hex.EncodeToString(longSum[:])},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := eventstore.OwnerToken(tc.owner); got != tc.want {
				t.Fatalf("OwnerToken(%q) = %q, want %q", tc.owner, got, tc.want)
			}
		})
	}
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// decodeOwnerToken inverts OwnerToken for escaped (not hashed) forms.
func decodeOwnerToken(tok string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(tok); i++ {
		if tok[i] != '_' {
			b.WriteByte(tok[i])
			continue
		}
		if i+2 >= len(tok) {
			return "", false
		}
		v, err := hex.DecodeString(tok[i+1 : i+3])
		if err != nil || strings.ToUpper(tok[i+1:i+3]) != tok[i+1:i+3] {
			return "", false
		}
		b.Write(v)
		i += 2
	}
	return b.String(), true
}

// checkOwnerToken checks the properties that make OwnerToken injective and
// subject-safe for one owner.
func checkOwnerToken(t *testing.T, owner string) string {
	t.Helper()
	tok := eventstore.OwnerToken(domain.OwnerID(owner))
	if owner == "" {
		if tok != "" {
			t.Fatalf("OwnerToken(\"\") = %q", tok)
		}
		return tok
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			t.Fatalf("OwnerToken(%q) = %q contains %q", owner, tok, c)
		}
	}
	if hashed, ok := strings.CutPrefix(tok, "_h"); ok {
		if hashed != sha(owner) {
			t.Fatalf("OwnerToken(%q) = %q, not the owner's hash", owner, tok)
		}
		return tok
	}
	if len(tok) > 200 {
		t.Fatalf("OwnerToken(%q) is %d bytes, escaped forms are at most 200", owner, len(tok))
	}
	back, ok := decodeOwnerToken(tok)
	if !ok || back != owner {
		t.Fatalf("OwnerToken(%q) = %q decodes to %q (%v)", owner, tok, back, ok)
	}
	return tok
}

func TestOwnerTokenInjectiveOnTrickyAndRandomOwners(t *testing.T) {
	t.Parallel()
	seen := map[string]string{}
	add := func(owner string) {
		tok := checkOwnerToken(t, owner)
		if prev, dup := seen[tok]; dup && prev != owner {
			t.Fatalf("owners %q and %q share the token %q", prev, owner, tok)
		}
		seen[tok] = owner
	}
	for _, o := range trickyOwners() {
		add(string(o))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []rune("ab.-_ *>é日\u00a0_2E5F")
	for range 50_000 {
		n := 1 + rng.IntN(90)
		var b strings.Builder
		for range n {
			b.WriteRune(alphabet[rng.IntN(len(alphabet))])
		}
		add(b.String())
	}
	for range 2_000 {
		raw := make([]byte, 1+rng.IntN(256))
		for i := range raw {
			raw[i] = byte(rng.IntN(256))
		}
		add(string(raw))
	}
}

func FuzzOwnerToken(f *testing.F) {
	for _, o := range trickyOwners() {
		f.Add(string(o), "a.b")
	}
	f.Add("a_2Eb", "a.b")
	f.Add("_h", "x")
	f.Fuzz(func(t *testing.T, a, b string) {
		ta, tb := checkOwnerToken(t, a), checkOwnerToken(t, b)
		if a != b && ta == tb {
			t.Fatalf("owners %q and %q share the token %q", a, b, ta)
		}
	})
}

func TestEventName(t *testing.T) {
	t.Parallel()
	cases := []struct {
		typ     domain.EventType
		want    string
		wantErr bool
	}{
		{domain.TypeTokenIssued, "issued_v1", false},
		{domain.TypeTokenExpirySet, "expiry_set_v1", false},
		{domain.TypeOwnerTokensRevoked, "tokens_revoked_v1", false},
		{"noprefix", "", true},
		{"token.", "", true},
		{"token.with space.v1", "", true},
		{"token.*.v1", "", true},
	}
	for _, tc := range cases {
		t.Run(string(tc.typ), func(t *testing.T) {
			t.Parallel()
			got, err := eventstore.EventName(tc.typ)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("EventName(%q) = %q, %v; want %q, error %v", tc.typ, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestSubjects(t *testing.T) {
	t.Parallel()
	s := eventstore.NewSubjects("tl")
	id, err := domain.ParseTokenID("01J0000000000000000000000A")
	if err != nil {
		t.Fatal(err)
	}
	subj, err := s.TokenSubject(id, domain.TypeTokenIssued)
	if err != nil {
		t.Fatal(err)
	}
	owner, err := s.OwnerSubject("a.b", domain.TypeOwnerTokensRevoked)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ got, want string }{
		{subj, "tl.token.01J0000000000000000000000A.issued_v1"},
		{s.TokenFilter(id), "tl.token.01J0000000000000000000000A.*"},
		{owner, "tl.owner.a_2Eb.tokens_revoked_v1"},
		{s.OwnerFilter("a.b"), "tl.owner.a_2Eb.*"},
		{s.UsageSubject(id), "tl.usage.01J0000000000000000000000A"},
		{s.UsageFilter(), "tl.usage.>"},
		{strings.Join(s.Lifecycle(), " "), "tl.token.> tl.owner.>"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	if _, err := s.OwnerSubject("", domain.TypeOwnerTokensRevoked); err == nil {
		t.Error("empty owner accepted")
	}
	if _, err := s.OwnerSubject(domain.OwnerID(strings.Repeat("x", 257)), domain.TypeOwnerTokensRevoked); err == nil {
		t.Error("owner over 256 bytes accepted")
	}
	if !utf8.ValidString(owner) {
		t.Error("subject is not valid UTF-8")
	}
}
