package domain

import (
	"math"
	"strings"
	"testing"
	"time"
)

// Lifetimes are thought of in days: ParseDuration reads days and weeks,
// alone or with Go's units, next to Go durations and whole seconds.
func TestParseDuration(t *testing.T) {
	t.Parallel()
	good := map[string]time.Duration{
		"3600":    time.Hour,
		"0":       0,
		"720h":    720 * time.Hour,
		"1h30m":   90 * time.Minute,
		".5h":     30 * time.Minute,
		"30d":     30 * Day,
		"2w":      14 * Day,
		"1d12h":   36 * time.Hour,
		"1w2d":    9 * Day,
		"1w2d3h":  9*Day + 3*time.Hour,
		"0d":      0,
		"-2h":     -2 * time.Hour,
		"-30d":    -30 * Day,
		"+1d":     Day,
		"1d0.5h":  Day + 30*time.Minute,
		"106751d": 106751 * Day,
	}
	for in, want := range good {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	bad := []string{"", "d", "w", "1.5d", "1d.5h", "1d-2h", "--1h", "+-1h", "-", "30 d", "30days", "1y", "abc", "1h1d", "106752d", "9223372036854775807w"}
	for _, in := range bad {
		if got, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v; want an error", in, got)
		} else if in != "" && !strings.Contains(err.Error(), "30d") {
			t.Errorf("ParseDuration(%q): %v does not name the accepted forms", in, err)
		}
	}
	if _, err := ParseDuration("9223372036854775807"); err == nil {
		t.Errorf("ParseDuration(MaxInt64 seconds) = nil error; want out of range")
	}
	if d, err := ParseDuration("15250w"); err != nil || d != 15250*Week || d > math.MaxInt64 {
		t.Errorf("ParseDuration(15250w) = %v, %v", d, err)
	}
}

// One time parser reads RFC 3339, dates, "now" and times relative to now.
func TestParseTime(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 10, 0, 3, 0, time.UTC)
	good := map[string]time.Time{
		"2026-12-31T23:59:00Z":      time.Date(2026, 12, 31, 23, 59, 0, 0, time.UTC),
		"2026-12-31T23:59:00+01:00": time.Date(2026, 12, 31, 22, 59, 0, 0, time.UTC),
		"2026-12-31T23:59:00.5Z":    time.Date(2026, 12, 31, 23, 59, 0, 5e8, time.UTC),
		"2026-12-31":                time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC),
		"now":                       now,
		"NOW":                       now,
		"-2h":                       now.Add(-2 * time.Hour),
		"+30d":                      now.Add(30 * Day),
		"-1w":                       now.Add(-Week),
		"+1d12h":                    now.Add(36 * time.Hour),
	}
	for in, want := range good {
		got, err := ParseTime(in, now)
		if err != nil || !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("ParseTime(%q) = %v, %v; want %v in UTC", in, got, err, want)
		}
	}
	for _, in := range []string{"", "yesterday", "2h", "30d", "2026-13-01", "2026-12-31 10:00", "+", "-x", "12/31/2026"} {
		if got, err := ParseTime(in, now); err == nil {
			t.Errorf("ParseTime(%q) = %v; want an error", in, got)
		} else if !strings.Contains(err.Error(), "RFC 3339") {
			t.Errorf("ParseTime(%q): %v does not name the accepted forms", in, err)
		}
	}
}
