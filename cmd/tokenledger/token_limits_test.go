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
