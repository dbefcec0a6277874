package domain

import (
	"fmt"
	"strings"
	"time"
)

// ParseTime reads an instant as people and the API write it, the same
// wherever a time is taken:
//
//   - RFC 3339: "2026-12-31T23:59:00Z", "2026-12-31T23:59:00+01:00";
//   - a date: "2026-12-31", midnight UTC;
//   - "now";
//   - a time relative to now: a sign and a duration as ParseDuration reads
//     it, "-2h" (two hours ago), "+30d" (thirty days from now).
//
// now is the instant "now" and relative times are counted from. The result
// is in UTC.
func ParseTime(s string, now time.Time) (time.Time, error) {
	switch {
	case s == "":
		return time.Time{}, fmt.Errorf("empty time: %s", timeForms)
	case strings.EqualFold(s, "now"):
		return now.UTC(), nil
	case s[0] == '-' || s[0] == '+':
		d, err := parseDayDuration(s)
		if err != nil {
			return time.Time{}, fmt.Errorf("time %q: %s", s, timeForms)
		}
		return now.Add(d).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("time %q: %s", s, timeForms)
}

// timeForms names the forms ParseTime reads, for its errors.
const timeForms = `want an RFC 3339 time (2026-12-31T23:59:00Z), a date (2026-12-31), "now", or a time relative to now ("-2h", "+30d")`
