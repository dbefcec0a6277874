package expiry_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/expiry"
	"github.com/tokenledger/tokenledger/ledger"
)

// TestInactivityPolicyOnceAcrossTwoSchedulersAndARestart: under a 30 day
// inactivity policy, two schedulers (one replaced halfway) pass every 6
// hours for 45 days. A token never used is warned 7 days and 1 day before
// its 30th day from the issue and revoked on it (reason inactive, by
// policy); a token used on day 10 is counted from that use; a token that
// expires first gets nothing from the policy. Every event once, with the
// derived ids.
func TestInactivityPolicyOnceAcrossTwoSchedulersAndARestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	start := time.Now().UTC().Truncate(time.Hour)
	w := newWorld(t, start)
	svc := w.ledger()
	issue := func(req domain.IssueRequest) domain.TokenID {
		t.Helper()
		iss, err := svc.Issue(ctx, admin, req, "")
		if err != nil {
			t.Fatal(err)
		}
		return iss.Token.ID()
	}
	idle := issue(domain.IssueRequest{Owner: "o1", NeverExpires: true})
	used := issue(domain.IssueRequest{Owner: "o2", ExpiresIn: 90 * domain.Day})
	short := issue(domain.IssueRequest{Owner: "o1", ExpiresIn: 20 * domain.Day})
	w.project()

	scheduler := func() *expiry.Scheduler {
		cfg := expiry.DefaultConfig()
		cfg.Clock, cfg.Inactivity = w.clock, 30*domain.Day
		s, err := expiry.New(w.pool, w.ledger(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := scheduler(), scheduler()
	usedAt := start.Add(10 * domain.Day)
	end := start.Add(45 * domain.Day)
	for now := start; !now.After(end); now = w.clock.Advance(6 * time.Hour) {
		switch now.Sub(start) {
		case 10 * domain.Day:
			recordUse(t, w, used, usedAt)
		case 20 * domain.Day:
			a = scheduler() // a restart
		}
		var wg sync.WaitGroup
		for _, s := range []*expiry.Scheduler{a, b} {
			wg.Go(func() {
				if _, err := s.RunOnce(ctx); err != nil {
					t.Errorf("pass at %s: %v", now, err)
				}
			})
		}
		wg.Wait()
		w.project()
	}

	got := map[domain.TokenID][]string{}
	if _, err := w.store.Read(ctx, 1, func(e domain.Envelope) error {
		id, _ := e.TokenID()
		switch d := e.Data.(type) {
		case domain.TokenExpiring:
			if d.Reason != domain.ExpiringByInactivity {
				return nil
			}
			got[id] = append(got[id], d.Lead.Duration().String())
			if want := domain.ExpiryNoticeID(e.Type, id, domain.ExpiringByInactivity, d.Lead.Duration(), d.ExpiresAt); e.ID != want {
				t.Errorf("token %s: warning id %s, want the derived %s", id, e.ID, want)
			}
		case domain.TokenRevoked:
			got[id] = append(got[id], "revoked:"+d.Reason)
		default:
			return nil
		}
		if e.Actor != ledger.InactivityActor {
			t.Errorf("event %s of token %s recorded by %q, want %q", e.Type, id, e.Actor, ledger.InactivityActor)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		id   domain.TokenID
		due  time.Time
		want []string
	}{
		{"never used", idle, start.Add(30 * domain.Day), []string{"168h0m0s", "24h0m0s", "revoked:inactive"}},
		{"used on day 10", used, usedAt.Add(30 * domain.Day), []string{"168h0m0s", "24h0m0s", "revoked:inactive"}},
		{"expiring first", short, time.Time{}, nil},
	} {
		if !slices.Equal(got[c.id], c.want) {
			t.Errorf("%s: %v, want %v", c.name, got[c.id], c.want)
		}
		if c.due.IsZero() {
			continue
		}
		events, err := w.store.LoadToken(ctx, c.id)
		if err != nil {
			t.Fatal(err)
		}
		last := events[len(events)-1]
		if last.ID != domain.InactivityRevocationID(c.id, c.due) || last.Time.Before(c.due) {
			t.Errorf("%s: revocation %s at %s, want id %s at or after %s", c.name, last.ID, last.Time, domain.InactivityRevocationID(c.id, c.due), c.due)
		}
	}
}

// recordUse records a use of token id at `at` as a validator's usage
// report does (a batch in the usage stream), and applies the usage stream
// to the read model, as the usage consumer does.
func recordUse(t *testing.T, w *world, id domain.TokenID, at time.Time) {
	t.Helper()
	ctx := context.Background()
	batch, err := domain.RecordUsage([]domain.TokenUse{{Token: id, Count: 1, FirstAt: at, LastAt: at}}, domain.Meta{Actor: "validator:test"}, at, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.store.AppendUsage(ctx, batch...); err != nil {
		t.Fatal(err)
	}
	var events []domain.Envelope
	if _, err := w.store.ReadUsage(ctx, 1, func(e domain.Envelope) error {
		events = append(events, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.proj.ApplyUsageBatch(ctx, "usage", events); err != nil {
		t.Fatal(err)
	}
}
