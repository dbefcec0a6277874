package consumers_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/consumers"
	"github.com/tokenledger/tokenledger/domain"
)

// extensions returns the expiry changes recorded for token id, checking
// that each is a session extension recorded by the usage consumer.
func (e *usageEnv) extensions(id domain.TokenID) []time.Time {
	e.t.Helper()
	history, err := e.store.LoadToken(context.Background(), id)
	if err != nil {
		e.t.Fatalf("load token %s: %v", id, err)
	}
	var out []time.Time
	for _, ev := range history {
		if ev.Type != domain.TypeTokenExpirySet {
			continue
		}
		d := ev.Data.(domain.TokenExpirySet)
		if d.Reason != domain.ExpirySessionExtended || ev.Actor != consumers.SessionSlideActor || !strings.HasPrefix(ev.CorrelationID, "usage:") || d.ExpiresAt == nil {
			e.t.Errorf("token %s: expiry change %+v by %q (correlation %q), want a session extension by %q",
				id, d, ev.Actor, ev.CorrelationID, consumers.SessionSlideActor)
			continue
		}
		out = append(out, *d.ExpiresAt)
	}
	return out
}

// expiry returns token id's expiry as its history gives it.
func (e *usageEnv) expiry(id domain.TokenID) time.Time {
	e.t.Helper()
	history, err := e.store.LoadToken(context.Background(), id)
	if err != nil {
		e.t.Fatalf("load token %s: %v", id, err)
	}
	tok, err := domain.TokenFromHistory(history)
	if err != nil {
		e.t.Fatal(err)
	}
	at, _ := tok.ExpiresAt()
	return at
}

// use appends one use of each of ids at the instant at and waits until the
// consumer has applied it and slid the sessions.
func (e *usageEnv) use(r *usageRun, at time.Time, ids ...domain.TokenID) {
	e.t.Helper()
	events := make([]domain.Envelope, len(ids))
	for i, id := range ids {
		events[i] = useEvent(e.t, id, 1, at, at, "")
	}
	waitSlid(e.t, r.w, e.appendUses(events...))
}

// TestUsageConsumerSlidesSessions uses sessions at given instants and
// checks the extensions recorded in the lifecycle stream: a session slides
// to its last use plus its idle timeout, never past its absolute expiry,
// only by more than the policy's step, never from a use stamped after now,
// and never back to life once expired. Each case runs with the session in
// the read model (its lifetime read from there first) and without (its
// history alone decides).
func TestUsageConsumerSlidesSessions(t *testing.T) {
	t.Parallel()
	type step struct {
		now, use time.Duration // after the issue
	}
	const idle = 30 * time.Minute
	cases := []struct {
		name  string
		req   domain.IssueRequest
		steps []step
		// want are the expiries the extensions set, after the issue.
		want []time.Duration
	}{
		{
			name:  "a session used continuously slides with every use",
			req:   domain.IssueRequest{Kind: domain.KindSession},
			steps: []step{{5 * time.Minute, 5 * time.Minute}, {10 * time.Minute, 10 * time.Minute}, {15 * time.Minute, 14 * time.Minute}, {40 * time.Minute, 40 * time.Minute}},
			want:  []time.Duration{5*time.Minute + idle, 10*time.Minute + idle, 14*time.Minute + idle, 40*time.Minute + idle},
		},
		{
			name:  "never past the absolute expiry",
			req:   domain.IssueRequest{Kind: domain.KindSession, ExpiresIn: time.Hour},
			steps: []step{{20 * time.Minute, 20 * time.Minute}, {45 * time.Minute, 45 * time.Minute}, {55 * time.Minute, 55 * time.Minute}, {59 * time.Minute, 59 * time.Minute}},
			want:  []time.Duration{20*time.Minute + idle, time.Hour},
		},
		{
			name: "debounced: no extension that moves the expiry by the step or less",
			req:  domain.IssueRequest{Kind: domain.KindSession},
			steps: []step{
				{30 * time.Second, 30 * time.Second}, // +30 s
				{60 * time.Second, 60 * time.Second}, // +60 s, exactly the step
				{90 * time.Second, 90 * time.Second}, // +90 s
				{2 * time.Minute, 2 * time.Minute},   // +30 s after the last extension
			},
			want: []time.Duration{90*time.Second + idle},
		},
		{
			// The regression case: under the default 1 min step, a
			// session with a 5 s idle timeout used every second never
			// slid and expired while in use. It is debounced by half its
			// idle timeout instead: each use that moves the expiry by
			// more than 2.5 s slides it, every third second.
			name: "an idle timeout shorter than the step slides by half of it",
			req:  domain.IssueRequest{Kind: domain.KindSession, IdleTimeout: 5 * time.Second},
			steps: []step{
				{1 * time.Second, 1 * time.Second}, {2 * time.Second, 2 * time.Second}, {3 * time.Second, 3 * time.Second},
				{4 * time.Second, 4 * time.Second}, {5 * time.Second, 5 * time.Second}, {6 * time.Second, 6 * time.Second},
				{7 * time.Second, 7 * time.Second}, {8 * time.Second, 8 * time.Second}, {9 * time.Second, 9 * time.Second},
			},
			want: []time.Duration{8 * time.Second, 11 * time.Second, 14 * time.Second},
		},
		{
			name:  "a use stamped after now slides from now",
			req:   domain.IssueRequest{Kind: domain.KindSession},
			steps: []step{{5 * time.Minute, 20 * time.Minute}},
			want:  []time.Duration{5*time.Minute + idle},
		},
		{
			name:  "an expired session is not revived by a late use",
			req:   domain.IssueRequest{Kind: domain.KindSession},
			steps: []step{{40 * time.Minute, 29 * time.Minute}, {45 * time.Minute, 45 * time.Minute}},
			want:  nil,
		},
	}
	for _, tc := range cases {
		for _, projected := range []bool{true, false} {
			name := tc.name + "/not in the read model"
			if projected {
				name = tc.name + "/in the read model"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				e := newUsageEnv(t, nil)
				issuedAt := e.clock.Now()
				tok := e.issue(tc.req, projected)
				r := e.start(e.config())
				for _, s := range tc.steps {
					e.clock.Set(issuedAt.Add(s.now))
					e.use(r, issuedAt.Add(s.use), tok.ID())
				}
				got := e.extensions(tok.ID())
				if len(got) != len(tc.want) {
					t.Fatalf("%d extensions %v, want %d", len(got), got, len(tc.want))
				}
				for i, w := range tc.want {
					if !got[i].Equal(issuedAt.Add(w)) {
						t.Errorf("extension %d to %s, want %s (issue + %s)", i, got[i], issuedAt.Add(w), w)
					}
				}
				wantExpiry, _ := tok.ExpiresAt()
				if n := len(tc.want); n > 0 {
					wantExpiry = issuedAt.Add(tc.want[n-1])
				}
				if got := e.expiry(tok.ID()); !got.Equal(wantExpiry) {
					t.Errorf("expiry %s, want %s", got, wantExpiry)
				}
				if st := r.w.Stats(); st.Extensions != uint64(len(tc.want)) || st.ExtensionErrors != 0 {
					t.Errorf("stats %+v: want %d extensions and no errors", st, len(tc.want))
				}
			})
		}
	}
}

// TestUsageConsumerNeverExtendsAPITokens is the regression test for fixed
// lifetimes: an api token used continuously, in the same batches as a
// session that does slide, keeps the expiry it was issued with, and the
// consumer does not even attempt an extension (which the domain would
// refuse, counted as an extension error).
func TestUsageConsumerNeverExtendsAPITokens(t *testing.T) {
	t.Parallel()
	for _, projected := range []bool{true, false} {
		name := "not in the read model"
		if projected {
			name = "in the read model"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newUsageEnv(t, nil)
			issuedAt := e.clock.Now()
			api := e.issue(domain.IssueRequest{ExpiresIn: time.Hour}, projected)
			session := e.issue(domain.IssueRequest{Kind: domain.KindSession}, projected)
			r := e.start(e.config())
			for i := 1; i <= 11; i++ {
				now := e.clock.Set
				now(issuedAt.Add(time.Duration(i) * 5 * time.Minute))
				e.use(r, e.clock.Now(), api.ID(), session.ID())
			}
			if got := e.extensions(api.ID()); len(got) != 0 {
				t.Errorf("the api token's expiry was changed by use: %v", got)
			}
			if got, want := e.expiry(api.ID()), issuedAt.Add(time.Hour); !got.Equal(want) {
				t.Errorf("api token expiry %s, want %s as issued", got, want)
			}
			if got := e.extensions(session.ID()); len(got) != 11 {
				t.Errorf("the session used alongside slid %d times, want 11", len(got))
			}
			if st := r.w.Stats(); st.ExtensionErrors != 0 || st.Extensions != 11 {
				t.Errorf("stats %+v: want 11 extensions (the session's) and no errors", st)
			}
		})
	}
}
