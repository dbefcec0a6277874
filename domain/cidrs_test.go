package domain

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestNormalizeCIDRs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   []string
		want []string
		bad  bool
	}{
		{name: "none means any network", in: nil, want: nil},
		{name: "a bare address is a host prefix", in: []string{"203.0.113.7", "2001:db8::1"}, want: []string{"203.0.113.7/32", "2001:db8::1/128"}},
		{name: "host bits are masked, order and duplicates do not matter", in: []string{"10.1.2.3/8", "10.0.0.0/8", "192.0.2.0/24"}, want: []string{"10.0.0.0/8", "192.0.2.0/24"}},
		{name: "an IPv4-mapped prefix is IPv4", in: []string{"::ffff:192.0.2.0/120"}, want: []string{"192.0.2.0/24"}},
		{name: "garbage is refused", in: []string{"10.0.0.0/33"}, bad: true},
		{name: "a zone is refused", in: []string{"fe80::1%eth0"}, bad: true},
		{name: "too many are refused", in: slices.Repeat([]string{"10.0.0.0/8"}, MaxCIDRs+1), bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NormalizeCIDRs(tc.in)
			if tc.bad {
				if !errors.Is(err, ErrInvalidArgument) {
					t.Fatalf("NormalizeCIDRs(%q) = %v, %v; want ErrInvalidArgument", tc.in, got, err)
				}
				return
			}
			if err != nil || !slices.Equal(CIDRStrings(got), tc.want) {
				t.Fatalf("NormalizeCIDRs(%q) = %v, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestCIDRsWithinAndAllowsAddr(t *testing.T) {
	t.Parallel()
	ps := func(s ...string) []netip.Prefix {
		p, err := NormalizeCIDRs(s)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if !CIDRsWithin(ps("10.1.0.0/16"), ps("10.0.0.0/8")) || CIDRsWithin(ps("10.0.0.0/8"), ps("10.1.0.0/16")) {
		t.Error("a narrower prefix must be within a wider one, and not the reverse")
	}
	if !CIDRsWithin(ps("10.0.0.0/8"), nil) || CIDRsWithin(nil, ps("10.0.0.0/8")) {
		t.Error("every set is within any network; any network is within no limited set")
	}
	if !AllowsAddr(ps("10.0.0.0/8"), netip.MustParseAddr("::ffff:10.9.9.9")) || AllowsAddr(ps("10.0.0.0/8"), netip.MustParseAddr("11.0.0.1")) {
		t.Error("AllowsAddr decides by containment, IPv4-mapped addresses as IPv4")
	}
	if !AllowsAddr(nil, netip.MustParseAddr("192.0.2.1")) {
		t.Error("no limit allows every address")
	}
}

func TestSetAllowedCIDRsRecordsAndReplays(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy()
	m := Meta{Actor: "token:01JDTEST"}
	now := t0
	tok, _, err := IssueToken(p, nil, IssueRequest{Owner: "o", AllowedCIDRs: []string{"10.0.0.0/8"}}, m, now, seededEntropy(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := tok.SetAllowedCIDRs([]string{"10.0.0.0/8"}, m, now); err != nil || len(tok.Changes()) != 1 {
		t.Fatalf("setting the same networks again = %v with %d changes; want nothing recorded", err, len(tok.Changes()))
	}
	if err := tok.SetAllowedCIDRs([]string{"10.1.0.0/16"}, m, now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	replayed, err := TokenFromHistory(tok.Changes())
	if err != nil {
		t.Fatal(err)
	}
	if got := CIDRStrings(replayed.AllowedCIDRs()); !slices.Equal(got, []string{"10.1.0.0/16"}) {
		t.Fatalf("replayed networks = %q", got)
	}
	if err := tok.Revoke("", m, now.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := tok.SetAllowedCIDRs(nil, m, now.Add(3*time.Second)); !errors.Is(err, ErrTokenRevoked) {
		t.Fatalf("on a revoked token: %v; want ErrTokenRevoked", err)
	}
	rot, _, err := IssueToken(p, nil, IssueRequest{Owner: "o", AllowedCIDRs: []string{"192.0.2.0/24"}}, m, now, seededEntropy(2))
	if err != nil {
		t.Fatal(err)
	}
	next, _, err := Rotate(p, nil, rot, 0, nil, m, now, seededEntropy(3))
	if err != nil {
		t.Fatal(err)
	}
	if got := CIDRStrings(next.AllowedCIDRs()); !slices.Equal(got, []string{"192.0.2.0/24"}) {
		t.Fatalf("a rotated token's networks = %q; want its predecessor's", got)
	}
}
