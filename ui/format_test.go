package ui

import (
	"testing"
	"time"
)

// TestPhrases: the relative times the pages show, as the products people
// compare tokenledger with word them.
func TestPhrases(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name string
		got  Phrase
		want string
	}{
		{"never used", lastUsed(time.Time{}, now), "never used"},
		{"used seconds ago", lastUsed(now.Add(-10*time.Second), now), "last used a few seconds ago"},
		{"used 3 minutes ago", lastUsed(now.Add(-3*time.Minute-20*time.Second), now), "last used 3 minutes ago"},
		{"used 1 hour ago", lastUsed(now.Add(-61*time.Minute), now), "last used 1 hour ago"},
		{"used 5 days ago", lastUsed(now.Add(-5*24*time.Hour-time.Hour), now), "last used 5 days ago"},
		{"does not expire", expiry(time.Time{}, now), "does not expire"},
		{"expires in 12 days", expiry(now.Add(12*24*time.Hour+time.Hour), now), "expires in 12 days"},
		{"expired 2 days ago", expiry(now.Add(-2*24*time.Hour-time.Minute), now), "expired 2 days ago"},
		{"expires in 3 months", expiry(now.Add(100*24*time.Hour), now), "expires in 3 months"},
		{"expires in 1 year", expiry(now.Add(400*24*time.Hour), now), "expires in 1 year"},
	} {
		if c.got.Text != c.want {
			t.Errorf("%s: %q, want %q", c.name, c.got.Text, c.want)
		}
	}
	if p := lastUsed(now.Add(-3*time.Minute), now); p.When.Exact != "2026-12-04 11:57:00 UTC" || p.When.ISO != "2026-12-04T11:57:00Z" {
		t.Errorf("exact time %q / %q, want 2026-12-04 11:57:00 UTC / 2026-12-04T11:57:00Z", p.When.Exact, p.When.ISO)
	}
}
