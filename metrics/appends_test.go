package metrics

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/eventstore"
)

func TestObserveAppend(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name                   string
		err                    error
		conflicts, otherErrors float64
	}{
		{name: "a successful append counts neither a conflict nor an error"},
		{
			name:      "a wrapped eventstore.ErrConflict counts a conflict, not an error",
			err:       fmt.Errorf("append token 01J: %w", eventstore.ErrConflict),
			conflicts: 1,
		},
		{
			name:        "any other error counts an error, not a conflict",
			err:         fmt.Errorf("append token 01J: %w", eventstore.ErrOutcomeUnknown),
			otherErrors: 1,
		},
		{
			name:        "an error that only reads like a conflict is not one",
			err:         errors.New(eventstore.ErrConflict.Error()),
			otherErrors: 1,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := New(discardLogger())
			m.ObserveAppend(OpRevoke, 30*time.Microsecond, tc.err)
			f := scrape(t, m)
			h := f.histogram(t, "tokenledger_append_duration_seconds", labels{"op": OpRevoke})
			if h.GetSampleCount() != 1 {
				t.Errorf("append duration counts %d appends, want 1", h.GetSampleCount())
			}
			if below, at := bucket(t, h, 25e-6), bucket(t, h, 50e-6); below != 0 || at != 1 {
				t.Errorf("a 30 µs append: buckets le=25µs %d and le=50µs %d, want 0 and 1", below, at)
			}
			for _, c := range []struct {
				name string
				want float64
			}{
				{"tokenledger_append_conflicts_total", tc.conflicts},
				{"tokenledger_append_errors_total", tc.otherErrors},
			} {
				if c.want == 0 {
					if _, ok := f.find(c.name, labels{"op": OpRevoke}); ok {
						t.Errorf("%s has a series, want none", c.name)
					}
					continue
				}
				f.wantValue(t, c.name, labels{"op": OpRevoke}, c.want)
			}
		})
	}
}

func TestObserveRetry(t *testing.T) {
	t.Parallel()
	m := New(discardLogger())
	m.ObserveRetry(OpRotate)
	m.ObserveRetry(OpRotate)
	m.ObserveRetry(OpIssue)
	f := scrape(t, m)
	f.wantValue(t, "tokenledger_append_retries_total", labels{"op": OpRotate}, 2)
	f.wantValue(t, "tokenledger_append_retries_total", labels{"op": OpIssue}, 1)
}
