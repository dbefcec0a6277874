package export

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestAppendTimeWritesTheLayout: appendTime writes what AppendFormat writes
// with timeLayout, for instants of every year and zone, and parseTime reads
// it back.
func TestAppendTimeWritesTheLayout(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(14, 1))
	times := []time.Time{
		{},
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 4, 21, 0, 0, 123456789, time.FixedZone("x", -5*3600)),
	}
	for range 10000 {
		sec := rng.Int64N(400000*365*86400) - 200000*365*86400
		times = append(times, time.Unix(sec, rng.Int64N(1e9)).In(time.FixedZone("z", rng.IntN(2*86400)-86400)))
	}
	for _, tm := range times {
		got, want := string(appendTime(nil, tm)), tm.UTC().Format(timeLayout)
		if got != want {
			t.Fatalf("appendTime(%v) = %s, want %s", tm, got, want)
		}
		if y := tm.UTC().Year(); y < 1 || y > 9999 {
			continue
		}
		back, err := parseTime([]byte(got))
		if err != nil || !back.Equal(tm.Truncate(time.Microsecond)) {
			t.Fatalf("parseTime(%s) = %v, %v, want %v", got, back, err, tm.Truncate(time.Microsecond))
		}
	}
}
