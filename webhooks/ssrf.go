package webhooks

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// ErrRefusedTarget: a webhook URL names, or resolves to, an address
// deliveries may not go to (loopback, private, link-local, ...), or is not
// an http(s) URL.
var ErrRefusedTarget = errors.New("refused webhook target")

// refusedPrefixes are the address ranges no delivery goes to unless
// AllowPrivateTargets: besides what netip's predicates name (loopback,
// private, link-local, multicast, unspecified), "this network", shared
// address space (carrier-grade NAT), benchmarking, reserved and the
// IPv6 discard, documentation, 6to4 and Teredo ranges, which can hide an
// internal address.
var refusedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("100::/64"),
	netip.MustParsePrefix("2001::/32"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("2002::/16"),
}

// checkAddr refuses the addresses a delivery may not go to.
func checkAddr(a netip.Addr) error {
	a = a.Unmap()
	if a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return fmt.Errorf("%w: %s is a loopback, private, link-local, multicast or unspecified address", ErrRefusedTarget, a)
	}
	for _, p := range refusedPrefixes {
		if p.Contains(a) {
			return fmt.Errorf("%w: %s is in the reserved range %s", ErrRefusedTarget, a, p)
		}
	}
	return nil
}

// ValidateURL checks a webhook URL at registration: http or https, a host,
// no user information, and, when the host is an address, one deliveries
// may go to (unless allowPrivate). A host name is checked again at every
// delivery, against the addresses it resolves to then.
func ValidateURL(raw string, allowPrivate bool) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrRefusedTarget, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%w: the URL must be http:// or https://", ErrRefusedTarget)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("%w: the URL has no host", ErrRefusedTarget)
	case u.User != nil:
		return nil, fmt.Errorf("%w: the URL must not carry credentials", ErrRefusedTarget)
	case len(raw) > 2048:
		return nil, fmt.Errorf("%w: the URL is longer than 2048 bytes", ErrRefusedTarget)
	}
	if a, err := netip.ParseAddr(u.Hostname()); err == nil && !allowPrivate {
		if err := checkAddr(a); err != nil {
			return nil, err
		}
	}
	return u, nil
}

// newClient returns the HTTP client of deliveries: no proxy, no
// redirects followed, timeout per attempt, and, unless allowPrivate, a
// dialer that checks every address it connects to, after resolution, so a
// name that resolves to an internal address (or is made to, between
// registration and delivery) is refused.
func newClient(timeout time.Duration, allowPrivate bool, conns int) *http.Client {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.Control = func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: cannot read the address %q", ErrRefusedTarget, address)
			}
			return checkAddr(ap.Addr())
		}
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		// As many as deliveries go at once: each keeps its connection.
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
