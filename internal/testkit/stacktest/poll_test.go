package stacktest

import (
	"fmt"
	"testing"
	"time"
)

// fatalRecorder is a testing.TB whose Fatalf records instead of stopping
// the goroutine, so a failing Eventually can be observed.
type fatalRecorder struct {
	testing.TB
	fatal string
	calls int
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.calls++
	r.fatal = fmt.Sprintf(format, args...)
}

func TestEventually(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		trueAfter int // cond returns true from this call on; 0 = never
		msg       []any
		wantFatal string // "" = must succeed
	}{
		{name: "true at once", trueAfter: 1},
		{name: "true after a few polls", trueAfter: 20},
		{name: "never true, with a formatted message", msg: []any{"row %d projected", 7}, wantFatal: "condition not met within 50ms: row 7 projected"},
		{name: "never true, with values", msg: []any{42, "x"}, wantFatal: "condition not met within 50ms: 42 x"},
		{name: "never true, without a message", wantFatal: "condition not met within 50ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			timeout := 50 * time.Millisecond
			if tt.wantFatal == "" {
				timeout = time.Minute // success must not depend on the machine's speed
			}
			rec := &fatalRecorder{TB: t}
			calls := 0
			begin := time.Now()
			Eventually(rec, timeout, func() bool {
				calls++
				return tt.trueAfter > 0 && calls >= tt.trueAfter
			}, tt.msg...)
			elapsed := time.Since(begin)
			if tt.wantFatal == "" {
				if rec.calls != 0 {
					t.Fatalf("Eventually failed: %s", rec.fatal)
				}
				if calls != tt.trueAfter {
					t.Errorf("cond called %d times, want %d (stop at the first true)", calls, tt.trueAfter)
				}
				return
			}
			if rec.calls != 1 || rec.fatal != tt.wantFatal {
				t.Errorf("Fatalf called %d times with %q, want once with %q", rec.calls, rec.fatal, tt.wantFatal)
			}
			if elapsed < 50*time.Millisecond || elapsed > time.Second {
				t.Errorf("gave up after %v, want about 50ms", elapsed)
			}
			if calls < 2 {
				t.Errorf("cond called %d times, want a poll and a last check at the deadline", calls)
			}
		})
	}
}

func TestEventuallyChecksAtTheDeadline(t *testing.T) {
	t.Parallel()
	rec := &fatalRecorder{TB: t}
	deadline := time.Now().Add(30 * time.Millisecond)
	Eventually(rec, 30*time.Millisecond, func() bool { return !time.Now().Before(deadline) })
	if rec.calls != 0 {
		t.Errorf("condition that turns true exactly at the deadline was reported as failed: %s", rec.fatal)
	}
}
