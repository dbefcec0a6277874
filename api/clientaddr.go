package api

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// clientAddr is the request's client address without its port, as usage
// records it and allowed networks are checked against: the connection's
// peer, or, when the peer is a trusted proxy (Config.TrustedProxies), the
// client the proxies name in X-Forwarded-For or else Forwarded.
func (s *Server) clientAddr(r *http.Request) string {
	host := r.RemoteAddr
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		host = h
	}
	if len(s.trustedProxies) == 0 {
		return host
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !s.trusted(peer) {
		return host
	}
	if a, ok := s.forwardedClient(r.Header.Values("X-Forwarded-For"), xffAddrs); ok {
		return a.String()
	}
	if a, ok := s.forwardedClient(r.Header.Values("Forwarded"), forwardedAddrs); ok {
		return a.String()
	}
	return host
}

// trusted reports whether a is in a trusted proxy's network.
func (s *Server) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range s.trustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwardedClient walks the addresses the header values list (each proxy
// appends the address it received the request from) from the right: the
// first one that is not a trusted proxy is the client. Addresses left of
// it were written by the client itself and prove nothing. If every one is
// a trusted proxy, the left-most is the client; a malformed entry ends the
// walk (ok false if it comes first).
func (s *Server) forwardedClient(values []string, addrs func(string) []string) (netip.Addr, bool) {
	var list []string
	for _, v := range values {
		list = append(list, addrs(v)...)
	}
	var last netip.Addr
	for i := len(list) - 1; i >= 0; i-- {
		a, err := parseForwardedAddr(list[i])
		if err != nil {
			return last, last.IsValid()
		}
		a = a.Unmap()
		if !s.trusted(a) {
			return a, true
		}
		last = a
	}
	return last, last.IsValid()
}

// xffAddrs splits an X-Forwarded-For value: addresses separated by commas.
func xffAddrs(v string) []string {
	parts := strings.Split(v, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// forwardedAddrs returns the for= node of each element of a Forwarded
// value (RFC 7239): elements separated by commas, pairs by semicolons.
func forwardedAddrs(v string) []string {
	var out []string
	for _, elem := range strings.Split(v, ",") {
		node := ""
		for _, pair := range strings.Split(elem, ";") {
			k, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
			if ok && strings.EqualFold(k, "for") {
				node = strings.Trim(val, `"`)
			}
		}
		out = append(out, node)
	}
	return out
}

// parseForwardedAddr parses an address as proxies write it: bare, with a
// port, or bracketed IPv6 with or without a port.
func parseForwardedAddr(s string) (netip.Addr, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr(), nil
	}
	return netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
}
