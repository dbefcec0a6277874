package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/sdk"
)

// TestUsageSparkline: one character per bucket of the period, blank for
// none, the busiest bucket the highest bar, any use at least the lowest.
func TestUsageSparkline(t *testing.T) {
	from := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	u := sdk.UsageSeries{Granularity: "hour", From: from, To: from.Add(6 * time.Hour), Items: []sdk.UsageBucket{
		{Start: from.Add(time.Hour), Count: 1},
		{Start: from.Add(3 * time.Hour), Count: 800},
		{Start: from.Add(4 * time.Hour), Count: 400},
	}}
	if got, want := sparkline(u, time.Hour), " ▁ █▄ "; got != want {
		t.Errorf("sparkline %q, want %q", got, want)
	}
	var b bytes.Buffer
	if err := writeUsage(&b, u); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !strings.HasPrefix(out, "1201 uses per hour from 2026-12-01") || strings.Count(out, "\n") != 5 {
		t.Errorf("usage output:\n%s", out)
	}
}

// TestTokenDetailNetworksAndAddresses: token show lists a token's allowed
// networks and its last client addresses, one per line, latest first.
func TestTokenDetailNetworksAndAddresses(t *testing.T) {
	now := time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)
	tok := sdk.Token{ID: "01JDBBBBBBBBBBBBBBBBBBBBBB", CreatedAt: now, AllowedCIDRs: []string{"10.0.0.0/8", "2001:db8::/32"},
		LastUsedIPs: []sdk.UsedAddr{{Addr: "10.1.2.3", LastUsedAt: now.Add(-time.Minute)}, {Addr: "2001:db8::1", LastUsedAt: now.Add(-time.Hour)}}}
	var b bytes.Buffer
	if err := writeTokenDetail(&b, tok, now); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"Networks:         10.0.0.0/8, 2001:db8::/32\n" +
		"Used from:        10.1.2.3 2026-11-15T11:59:00Z (1 minute ago)\n" +
		"                  2001:db8::1 2026-11-15T11:00:00Z (1 hour ago)\n"
	if !strings.HasSuffix(b.String(), want) {
		t.Errorf("show view\n got:\n%s\nwant it to end with:\n%s", b.String(), want)
	}
}
