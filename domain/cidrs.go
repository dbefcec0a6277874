package domain

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// MaxCIDRs is the largest number of networks a token may be limited to.
const MaxCIDRs = 32

// NormalizeCIDRs checks the networks a token may be used from and returns
// them in canonical form: each a CIDR prefix ("10.0.0.0/8",
// "2001:db8::/32") or a single address (taken as a /32 or /128), masked
// to its prefix (an IPv4-mapped IPv6 address is taken as IPv4), sorted
// and de-duplicated, in a new slice. None means any network. There may be
// at most MaxCIDRs. Errors wrap ErrInvalidArgument.
func NormalizeCIDRs(cidrs []string) ([]netip.Prefix, error) {
	if len(cidrs) > MaxCIDRs {
		return nil, fmt.Errorf("%w: %d allowed networks, at most %d", ErrInvalidArgument, len(cidrs), MaxCIDRs)
	}
	out := make([]netip.Prefix, 0, len(cidrs))
	for _, s := range cidrs {
		p, err := parseCIDR(s)
		if err != nil {
			return nil, fmt.Errorf("%w: allowed network %q: %v", ErrInvalidArgument, truncateForError(s), err)
		}
		out = append(out, p)
	}
	slices.SortFunc(out, comparePrefixes)
	return slices.Compact(out), nil
}

func parseCIDR(s string) (netip.Prefix, error) {
	if len(s) > 64 {
		return netip.Prefix{}, errors.New("too long")
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		a, aerr := netip.ParseAddr(s)
		if aerr != nil || a.Zone() != "" {
			return netip.Prefix{}, errors.New("not a CIDR prefix nor an IP address")
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// comparePrefixes orders prefixes by address, then by length.
func comparePrefixes(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// CIDRStrings returns the prefixes in their text form, nil for none.
func CIDRStrings(ps []netip.Prefix) []string {
	if len(ps) == 0 {
		return nil
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// CIDRsWithin reports whether every network of inner lies within a network
// of outer: limiting a token to inner then narrows, never widens, where it
// may be used from. No networks means any network, so every set is within
// an empty outer, and an empty inner is within only an empty outer.
func CIDRsWithin(inner, outer []netip.Prefix) bool {
	if len(outer) == 0 {
		return true
	}
	if len(inner) == 0 {
		return false
	}
	for _, in := range inner {
		if !slices.ContainsFunc(outer, func(out netip.Prefix) bool {
			return out.Bits() <= in.Bits() && out.Contains(in.Addr())
		}) {
			return false
		}
	}
	return true
}

// AllowsAddr reports whether a use from addr is allowed by the networks
// cidrs (none: any address). An IPv4-mapped IPv6 address counts as IPv4.
func AllowsAddr(cidrs []netip.Prefix, addr netip.Addr) bool {
	if len(cidrs) == 0 {
		return true
	}
	addr = addr.Unmap()
	for _, p := range cidrs {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// AllowedCIDRs returns the networks the token may be used from, sorted, in
// a new slice; none means any network.
func (t *Token) AllowedCIDRs() []netip.Prefix { return slices.Clone(t.st.cidrs) }

// SetAllowedCIDRs limits the token to the networks cidrs (see
// NormalizeCIDRs; none lifts the limit). Setting the networks the token
// has already records nothing and succeeds. A revoked token refuses
// (ErrTokenRevoked). Records TokenCIDRsSet. Who may widen the limit is a
// matter of authorization (see CIDRsWithin). Errors wrap ErrNotFound,
// ErrInvalidArgument or ErrTokenRevoked.
func (t *Token) SetAllowedCIDRs(cidrs []string, m Meta, now time.Time) error {
	if err := t.setAllowedCIDRs(cidrs, m, now); err != nil {
		return t.wrap("set allowed networks of", err)
	}
	return nil
}

func (t *Token) setAllowedCIDRs(cidrs []string, m Meta, now time.Time) error {
	if err := t.exists(); err != nil {
		return err
	}
	if err := m.Validate(); err != nil {
		return err
	}
	if err := checkNow(now); err != nil {
		return err
	}
	if t.st.revoked {
		return ErrTokenRevoked
	}
	ps, err := NormalizeCIDRs(cidrs)
	if err != nil {
		return err
	}
	if slices.Equal(ps, t.st.cidrs) {
		return nil
	}
	set := CIDRStrings(ps)
	if set == nil {
		set = []string{}
	}
	return t.record(TokenCIDRsSet{AllowedCIDRs: set}, m, NormalizeTime(now))
}

func (t *Token) applyCIDRsSet(d TokenCIDRsSet) {
	if t.st.revoked {
		return
	}
	t.st.cidrs = parseStoredCIDRs(d.AllowedCIDRs)
}

// parseStoredCIDRs parses the networks of a decoded event, which
// normalize has checked.
func parseStoredCIDRs(cidrs []string) []netip.Prefix {
	if len(cidrs) == 0 {
		return nil
	}
	ps, _ := NormalizeCIDRs(cidrs)
	return ps
}

// checkStoredCIDRs refuses networks of a stored event that no command can
// have recorded: malformed, too many, or not in canonical form.
func checkStoredCIDRs(cidrs []string) error {
	if len(cidrs) == 0 {
		return nil
	}
	ps, err := NormalizeCIDRs(cidrs)
	if err != nil {
		return err
	}
	if !slices.Equal(CIDRStrings(ps), cidrs) {
		return errors.New("allowed networks not in canonical form")
	}
	return nil
}
