package stacktest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// maxPollInterval caps the pause between two checks in Eventually.
const maxPollInterval = 20 * time.Millisecond

// Eventually calls cond until it returns true and fails the test with
// tb.Fatalf if it has not done so within timeout. cond is called at once,
// then after pauses growing from 1 ms to 20 ms, and a last time at the
// deadline. msgAndArgs, if given, describe what was awaited: a format string
// followed by its arguments, or any values to print.
//
// Like tb.Fatalf, Eventually must be called from the goroutine running the
// test. cond runs on that goroutine too and must not block for long.
func Eventually(tb testing.TB, timeout time.Duration, cond func() bool, msgAndArgs ...any) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	pause := time.Millisecond
	timer := time.NewTimer(pause)
	defer timer.Stop()
	for {
		if cond() {
			return
		}
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		timer.Reset(min(pause, left))
		<-timer.C
		pause = min(2*pause, maxPollInterval)
	}
	if what := describe(msgAndArgs); what != "" {
		tb.Fatalf("condition not met within %v: %s", timeout, what)
		return
	}
	tb.Fatalf("condition not met within %v", timeout)
}

// describe formats Eventually's msgAndArgs.
func describe(msgAndArgs []any) string {
	if len(msgAndArgs) == 0 {
		return ""
	}
	if format, ok := msgAndArgs[0].(string); ok {
		return fmt.Sprintf(format, msgAndArgs[1:]...)
	}
	return strings.TrimSuffix(fmt.Sprintln(msgAndArgs...), "\n")
}

// Lazy is a description for Eventually that is computed only when the
// condition failed: it prints as what its function returns then (the last
// state seen, a process's log).
type Lazy func() string

// String returns what f returns.
func (f Lazy) String() string { return f() }

// Poll calls cond until it is true, ctx ends or timeout passes; for
// goroutines other than the test's, where Eventually cannot fail the
// test.
func Poll(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("condition not met within %v: %w", timeout, ctx.Err())
		case <-tick.C:
		}
	}
}
