package domain

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Seconds is a duration stored as a whole number of seconds, the form used
// in events and in the API.
type Seconds int64

// SecondsOf converts d, truncating to whole seconds.
func SecondsOf(d time.Duration) Seconds { return Seconds(d / time.Second) }

// Duration converts s back to a time.Duration.
func (s Seconds) Duration() time.Duration { return time.Duration(s) * time.Second }

// UnmarshalJSON accepts only a non-negative whole number.
func (s *Seconds) UnmarshalJSON(b []byte) error {
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("seconds: %w", err)
	}
	if n < 0 {
		return fmt.Errorf("seconds: %d is negative", n)
	}
	*s = Seconds(n)
	return nil
}

// Day and Week are the units ParseDuration adds to Go's: "d" is 24 hours and
// "w" 7 days, whatever the calendar says (no daylight-saving shifts).
const (
	Day  = 24 * time.Hour
	Week = 7 * Day
)

// ParseDuration reads a length of time as people and the API write it:
//
//   - a whole number of seconds: "3600";
//   - a Go duration: "720h", "1h30m", "90s";
//   - days and weeks, alone or with Go's units: "30d", "2w", "1d12h",
//     "1w2d". A day is 24 hours, a week 7 days; their counts are whole.
//
// A leading sign is allowed, as time.ParseDuration allows it; callers that
// need a positive duration check it. The error names the input and the
// forms accepted.
func ParseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("empty duration: want a duration such as \"30d\", \"720h\" or whole seconds")
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n > math.MaxInt64/int64(time.Second) || n < math.MinInt64/int64(time.Second) {
			return 0, fmt.Errorf("duration %d seconds is out of range", n)
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := parseDayDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q: want a duration such as \"30d\", \"2w\", \"1d12h\", \"720h\" or whole seconds", s)
	}
	return d, nil
}

// parseDayDuration reads a Go duration in which whole days ("d") and
// weeks ("w") may stand before Go's own units.
func parseDayDuration(s string) (time.Duration, error) {
	malformed := errors.New("malformed duration")
	rest, neg := s, false
	if rest != "" && (rest[0] == '-' || rest[0] == '+') {
		neg, rest = rest[0] == '-', rest[1:]
	}
	if rest == "" || rest[0] == '-' || rest[0] == '+' {
		return 0, malformed
	}
	var days int64
	sawDays := false
	for {
		i := 0
		for i < len(rest) && isDigit(rest[i]) {
			i++
		}
		if i == 0 || i == len(rest) || (rest[i] != 'd' && rest[i] != 'w') {
			break
		}
		n, err := strconv.ParseInt(rest[:i], 10, 64)
		if err != nil {
			return 0, err
		}
		if rest[i] == 'w' {
			if n > math.MaxInt64/7 {
				return 0, malformed
			}
			n *= 7
		}
		if days > math.MaxInt64-n {
			return 0, malformed
		}
		days, sawDays, rest = days+n, true, rest[i+1:]
	}
	var d time.Duration
	if rest != "" {
		// After a day count only Go units may follow, not a fraction or a
		// sign: "1d.5h" and "1d-2h" are typos.
		if sawDays && !isDigit(rest[0]) {
			return 0, malformed
		}
		var err error
		if d, err = time.ParseDuration(rest); err != nil {
			return 0, err
		}
	}
	if days > int64(math.MaxInt64-d)/int64(Day) {
		return 0, malformed
	}
	d += time.Duration(days) * Day
	if neg {
		d = -d
	}
	return d, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
