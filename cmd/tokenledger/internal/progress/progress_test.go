package progress

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
)

func TestRendering(t *testing.T) {
	t.Parallel()
	opts := Options{Label: "rebuild", Unit: "events", Width: 10}
	for _, tc := range []struct {
		name     string
		sample   Sample
		bar      string
		line     string
		fraction float64
	}{
		{
			name:     "half way: rate and time left",
			sample:   Sample{Done: 500_000, Total: 1_000_000, Rate: 125_000, Left: 4 * time.Second},
			bar:      "rebuild [=====>    ]  50%  500,000/1,000,000 events  125,000 events/s  ETA 4s",
			line:     "rebuild: 500,000/1,000,000 events (50%), 125,000 events/s, ETA 4s",
			fraction: 0.5,
		},
		{
			name:     "no rate yet: time left unknown",
			sample:   Sample{Done: 0, Total: 10, Left: -1},
			bar:      "rebuild [>         ]   0%  0/10 events  0 events/s  ETA ?",
			line:     "rebuild: 0/10 events (0%), 0 events/s, ETA ?",
			fraction: 0,
		},
		{
			name:     "past the total: the bar stays full",
			sample:   Sample{Done: 12, Total: 10, Rate: 3, Left: 0},
			bar:      "rebuild [==========] 100%  12/10 events  3 events/s  ETA 0s",
			line:     "rebuild: 12/10 events (100%), 3 events/s, ETA 0s",
			fraction: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := Bar(tc.sample, opts); got != tc.bar {
				t.Errorf("Bar:\n got %q\nwant %q", got, tc.bar)
			}
			if got := Line(tc.sample, opts); got != tc.line {
				t.Errorf("Line:\n got %q\nwant %q", got, tc.line)
			}
			if got := tc.sample.Fraction(); got != tc.fraction {
				t.Errorf("Fraction = %v, want %v", got, tc.fraction)
			}
		})
	}
}

// The rate follows the recent pace, not the average since the start, and
// the time left is derived from it.
func TestSamplerRateFollowsRecentPace(t *testing.T) {
	t.Parallel()
	m := NewMeter(1_000_000)
	s := sampler{m: m}
	// 10 s at 1,000/s, then 10 s at 10,000/s.
	for sec := 1; sec <= 20; sec++ {
		if sec <= 10 {
			m.Add(1_000)
		} else {
			m.Add(10_000)
		}
		s.sampleAt(time.Duration(sec) * time.Second)
	}
	got := s.sampleAt(20 * time.Second)
	if got.Done != 110_000 {
		t.Fatalf("done %d, want 110000", got.Done)
	}
	if got.Rate < 9_000 || got.Rate > 11_000 {
		t.Errorf("rate %.0f/s, want about 10,000/s (the last seconds' pace)", got.Rate)
	}
	if want := 110_000.0 / 20; got.Average != want {
		t.Errorf("average %.0f/s, want %.0f/s", got.Average, want)
	}
	wantLeft := time.Duration(float64(890_000) / got.Rate * float64(time.Second))
	if got.Left != wantLeft {
		t.Errorf("time left %v, want %v", got.Left, wantLeft)
	}
	if len(s.hist) > 8 {
		t.Errorf("sampler keeps %d readings, want only those of the last %v", len(s.hist), rateWindow)
	}
}

// lockedBuffer is a bytes.Buffer safe to read while a reporter writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestReporter(t *testing.T) {
	t.Parallel()
	t.Run("lines when not on a terminal", func(t *testing.T) {
		t.Parallel()
		var out lockedBuffer
		m := NewMeter(100)
		r := Start(&out, m, Options{Label: "rebuild", Unit: "events", Interval: time.Millisecond})
		m.Set(40)
		stacktest.Eventually(t, 10*time.Second, func() bool {
			return strings.Contains(out.String(), "rebuild: 40/100 events (40%)")
		}, "a progress line for 40 of 100 events; got %q", out.String())
		last := r.Stop()
		if last.Done != 40 || last.Total != 100 {
			t.Errorf("last sample %d/%d, want 40/100", last.Done, last.Total)
		}
		text := out.String()
		if strings.Contains(text, "\r") || strings.Contains(text, "\x1b") {
			t.Errorf("plain output holds terminal control characters: %q", text)
		}
		r.Stop()
		if out.String() != text {
			t.Error("a second Stop wrote again")
		}
	})
	t.Run("a bar redrawn in place on a terminal", func(t *testing.T) {
		t.Parallel()
		var out lockedBuffer
		m := NewMeter(10)
		r := Start(&out, m, Options{Label: "rebuild", Unit: "events", Terminal: true, Width: 10})
		m.Set(10)
		r.Stop()
		text := out.String()
		if !strings.HasPrefix(text, "\r") || !strings.HasSuffix(text, "\n") {
			t.Errorf("terminal output %q: want redraws starting with \\r and a final newline", text)
		}
		if !strings.Contains(text, "rebuild [==========] 100%  10/10 events") {
			t.Errorf("final bar missing from %q", text)
		}
		if strings.Count(text, "\n") != 1 {
			t.Errorf("terminal output %q: want a single line", text)
		}
	})
	t.Run("a log line written during a bar gets a line of its own", func(t *testing.T) {
		t.Parallel()
		var out lockedBuffer
		m := NewMeter(10)
		r := Start(&out, m, Options{Label: "rebuild", Terminal: true, Width: 10})
		m.Set(5)
		stacktest.Eventually(t, 10*time.Second, func() bool {
			return strings.Contains(out.String(), "5/10")
		}, "a bar at 5 of 10")
		if _, err := r.Write([]byte("level=INFO msg=hello\n")); err != nil {
			t.Fatal(err)
		}
		r.Stop()
		text := out.String()
		i := strings.Index(text, "level=INFO msg=hello\n")
		if i < 0 {
			t.Fatalf("log line missing from %q", text)
		}
		if !strings.HasSuffix(text[:i], "\r\x1b[K") {
			t.Errorf("the bar was not cleared before the log line: %q", text[:i])
		}
		if !strings.HasPrefix(text[i+len("level=INFO msg=hello\n"):], "\r") {
			t.Errorf("the bar was not drawn again after the log line: %q", text)
		}
	})
	t.Run("a log line written without a terminal is passed through", func(t *testing.T) {
		t.Parallel()
		var out lockedBuffer
		r := Start(&out, NewMeter(10), Options{Interval: time.Hour})
		if _, err := r.Write([]byte("hello\n")); err != nil {
			t.Fatal(err)
		}
		r.Stop()
		if got := out.String(); got != "hello\n" {
			t.Errorf("output %q, want the line alone", got)
		}
	})
}

func TestIsTerminal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if IsTerminal(f) {
		t.Error("a regular file is taken for a terminal")
	}
	if IsTerminal(nil) {
		t.Error("no file is taken for a terminal")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if IsTerminal(w) {
		t.Error("a pipe is taken for a terminal")
	}
	tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0)
	if err == nil {
		defer tty.Close()
		if !IsTerminal(tty) {
			t.Error("/dev/tty is not taken for a terminal")
		}
		t.Setenv("TERM", "dumb")
		if IsTerminal(tty) {
			t.Error("TERM=dumb is taken for a terminal")
		}
	}
}
