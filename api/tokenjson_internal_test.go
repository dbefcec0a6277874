package api

import (
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/audit"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/projections"
	"github.com/tokenledger/tokenledger/sdk"
)

// TestAppendTokenJSON requires the hand encoding of a token to be exactly
// encoding/json's, for tokens of every shape and strings that need
// escapes.
func TestAppendTokenJSON(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 22, 10, 0, 3, 123456000, time.UTC)
	whole := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	str := func(s string) *string { return &s }
	idle := sdk.Duration(90 * time.Minute)
	cases := []struct {
		name string
		tok  sdk.Token
	}{
		{"zero", sdk.Token{}},
		{"api token", sdk.Token{ID: "01KA0000000000000000000000", Owner: "alice", Name: "ci", Scopes: []string{"read", "write"},
			Kind: "api", Status: "active", CreatedAt: at, ExpiresAt: &whole, UseCount: 42, LastUsedAt: &at}},
		{"empty scopes", sdk.Token{Scopes: []string{}, CreatedAt: at}},
		{"session, revoked, rotated", sdk.Token{ID: "x", Kind: "session", Status: "revoked", CreatedAt: at, IdleTimeout: &idle,
			AbsoluteExpiresAt: &whole, RevokedAt: &at, RevokedReason: str("leaked"), OwnerRevoked: true, UsagePartial: true,
			RotatedFrom: str("a"), RotatedTo: str("b"), Family: str("a")}},
		{"escapes", sdk.Token{Owner: "o\"w\\n<e>&r\n\t\r\b\f\x01\x1f", Name: "ünïcode \u2028\u2029 é", Scopes: []string{"a b", "\x7f", "bad \xff utf8 \xc3"},
			RevokedReason: str("</script>")}},
		{"networks and addresses", sdk.Token{AllowedCIDRs: []string{"10.0.0.0/8", "2001:db8::/32"},
			LastUsedIPs: []sdk.UsedAddr{{Addr: "192.0.2.1", LastUsedAt: at}, {Addr: "<::1>", LastUsedAt: whole}}}},
		{"time zone", sdk.Token{CreatedAt: time.Date(2026, 1, 1, 0, 0, 0, 1, time.FixedZone("x", 3600))}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			want, err := json.Marshal(tc.tok)
			if err != nil {
				t.Fatal(err)
			}
			if got := appendTokenJSON(nil, &tc.tok); string(got) != string(want) {
				t.Fatalf("hand encoding\n got %s\nwant %s", got, want)
			}
		})
	}
}

// TestWriteStateIsTheMarshalledState requires the state answer, written
// in parts, to be the marshalled sdk.StateAt.
func TestWriteStateIsTheMarshalledState(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 22, 10, 0, 3, 0, time.UTC)
	for _, n := range []int{0, 1, 3000} {
		snap := audit.Snapshot{At: at, Sequence: uint64(n) + 7}
		want := sdk.StateAt{At: at, Sequence: snap.Sequence, Items: []sdk.Token{}}
		for i := range n {
			id, err := domain.NewTokenID(at.Add(time.Duration(i)*time.Millisecond), nil)
			if err != nil {
				t.Fatal(err)
			}
			row := projections.TokenRow{ID: id, Owner: "alice", Name: "token with a longer name", Scopes: []string{"read"}, Kind: domain.KindAPI,
				Status: domain.StatusActive, CreatedAt: at, ExpiresAt: at.Add(time.Hour), UseCount: uint64(i)}
			snap.Tokens = append(snap.Tokens, row)
			want.Items = append(want.Items, tokenFromRow(row))
		}
		wantJSON, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		writeState(rec, snap)
		if got := rec.Body.String(); got != string(wantJSON)+"\n" {
			t.Fatalf("%d tokens: the answer (%d bytes) is not the marshalled state (%d bytes)", n, len(got), len(wantJSON)+1)
		}
		if ct := rec.Header().Get("Content-Type"); ct != contentJSON {
			t.Fatalf("content type %q", ct)
		}
	}
}
