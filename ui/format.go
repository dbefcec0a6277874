package ui

import (
	"strconv"
	"time"
)

// When is an instant as a page shows it: Text in words relative to now
// ("3 minutes ago", "in 12 days"), Exact for the hover title (UTC, to the
// second: "2026-12-04 11:57:00 UTC"), ISO for the <time> element's
// datetime (RFC 3339). The zero When (Set false) is "no instant".
type When struct {
	Set   bool
	Text  string
	Exact string
	ISO   string
}

// at describes t relative to now; the zero t is the zero When.
func at(t, now time.Time) When {
	if t.IsZero() {
		return When{}
	}
	// One Format for both forms: a token list formats thousands of them.
	iso := t.UTC().Truncate(time.Second).Format(time.RFC3339)
	w := When{Set: true, ISO: iso, Exact: iso[:10] + " " + iso[11:19] + " UTC"}
	if d := t.Sub(now); d > 0 {
		w.Text = "in " + span(d)
	} else {
		w.Text = span(-d) + " ago"
	}
	return w
}

// lastUsed is the phrase of a token's last use: "last used 3 minutes ago"
// or "never used".
func lastUsed(t, now time.Time) Phrase {
	if t.IsZero() {
		return Phrase{Text: "never used"}
	}
	w := at(t, now)
	return Phrase{Text: "last used " + w.Text, When: w}
}

// expiry is the phrase of a token's expiry: "expires in 12 days", "expired
// 2 days ago" or "does not expire".
func expiry(t, now time.Time) Phrase {
	if t.IsZero() {
		return Phrase{Text: "does not expire"}
	}
	w := at(t, now)
	if t.After(now) {
		return Phrase{Text: "expires " + w.Text, When: w}
	}
	return Phrase{Text: "expired " + w.Text, When: w}
}

// Phrase is a sentence about an instant, and the instant (unset when the
// phrase names none, as "never used").
type Phrase struct {
	Text string
	When When
}

// span says a positive duration in the largest unit that fits, rounded
// down: "a few seconds", "1 minute", "5 hours", "12 days", "3 months",
// "2 years".
func span(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d < 45*time.Second:
		return "a few seconds"
	case d < 90*time.Second:
		return "1 minute"
	case d < time.Hour:
		return count(int(d/time.Minute), "minute")
	case d < 2*time.Hour:
		return "1 hour"
	case d < 2*day:
		return count(int(d/time.Hour), "hour")
	case d < 60*day:
		return count(int(d/day), "day")
	case d < 365*day:
		return count(int(d/(30*day)), "month")
	default:
		return count(int(d/(365*day)), "year")
	}
}

func count(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}
