package domain

import (
	"errors"
	"testing"
	"time"
)

var noticeMeta = Meta{Actor: "system:expiry"}

// announceAt calls AnnounceExpiry and returns the event recorded, if any.
func announceAt(t *testing.T, tok *Token, owner *Owner, now time.Time) *Envelope {
	t.Helper()
	before := len(tok.Changes())
	ok, err := tok.AnnounceExpiry(owner, DefaultExpiryLeads, noticeMeta, now)
	if err != nil {
		t.Fatalf("AnnounceExpiry at %s: %v", now, err)
	}
	changes := tok.Changes()
	if ok != (len(changes) == before+1) {
		t.Fatalf("AnnounceExpiry reported %v but recorded %d events", ok, len(changes)-before)
	}
	if !ok {
		return nil
	}
	return &changes[len(changes)-1]
}

func TestAnnounceExpiryEveryLeadOnceThenExpired(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy()
	tok, _ := issue(t, p, nil, IssueRequest{Owner: "alice", ExpiresIn: 40 * Day}, t0)
	exp, _ := tok.ExpiresAt()
	var got []string
	// Walk the clock in hours across the whole life and a day past it:
	// each lead fires once, at the first step at or after its instant.
	for now := t0; now.Before(exp.Add(Day)); now = now.Add(time.Hour) {
		e := announceAt(t, tok, nil, now)
		if e == nil {
			continue
		}
		switch d := e.Data.(type) {
		case TokenExpiring:
			if due := exp.Add(-d.Lead.Duration()); now.Before(due) || !now.Before(due.Add(time.Hour)) {
				t.Errorf("lead %s announced at %s, due %s", d.Lead.Duration(), now, due)
			}
			if e.ID != ExpiryNoticeID(TypeTokenExpiring, tok.ID(), ExpiringByExpiry, d.Lead.Duration(), exp) {
				t.Errorf("expiring event id %s is not the deterministic one", e.ID)
			}
			got = append(got, d.Lead.Duration().String())
		case TokenExpired:
			if now.Before(exp) || !d.ExpiresAt.Equal(exp) {
				t.Errorf("expired announced at %s for %s, expiry %s", now, d.ExpiresAt, exp)
			}
			got = append(got, "expired")
		}
		// Deciding again at the same instant records nothing.
		if again := announceAt(t, tok, nil, now); again != nil {
			t.Fatalf("announced %s twice at %s", again.Type, now)
		}
	}
	want := []string{(30 * Day).String(), (7 * Day).String(), Day.String(), "expired"}
	if len(got) != len(want) {
		t.Fatalf("announced %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("announced %v, want %v", got, want)
		}
	}
}

func TestAnnounceExpiryReplayedHistoryKnowsItsNotices(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy()
	tok, _ := issue(t, p, nil, IssueRequest{Owner: "alice", ExpiresIn: 10 * Day}, t0)
	now := t0.Add(4 * Day) // 6 days left: the 7 day lead is due
	if announceAt(t, tok, nil, now) == nil {
		t.Fatal("nothing announced 6 days before the expiry")
	}
	// A second writer that loaded the same history (with the notice)
	// records nothing; one that loaded it without the notice records
	// the same event, id and all.
	replayed, err := TokenFromHistory(tok.Changes())
	if err != nil {
		t.Fatal(err)
	}
	if e := announceAt(t, replayed, nil, now.Add(time.Minute)); e != nil {
		t.Fatalf("a replayed token announced %s again", e.Type)
	}
	first, err := TokenFromHistory(tok.Changes()[:1])
	if err != nil {
		t.Fatal(err)
	}
	e := announceAt(t, first, nil, now.Add(time.Minute))
	if e == nil || e.ID != tok.Changes()[1].ID {
		t.Fatalf("a second writer recorded %+v, want the event id %s", e, tok.Changes()[1].ID)
	}
}

func TestAnnounceExpiryNothingToAnnounce(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy()
	p.AllowNeverExpires = true
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T) (*Token, *Owner)
	}{
		{"a token that does not expire", func(t *testing.T) (*Token, *Owner) {
			tok, _ := issue(t, p, nil, IssueRequest{Owner: "alice", NeverExpires: true}, t0)
			return tok, nil
		}},
		{"a session, whose expiry slides", func(t *testing.T) (*Token, *Owner) {
			tok, _ := issue(t, p, nil, IssueRequest{Owner: "alice", Kind: KindSession}, t0)
			return tok, nil
		}},
		{"a revoked token", func(t *testing.T) (*Token, *Owner) {
			tok, _ := issue(t, p, nil, IssueRequest{Owner: "alice", ExpiresIn: Day}, t0)
			if err := tok.Revoke("done", noticeMeta, t0); err != nil {
				t.Fatal(err)
			}
			return tok, nil
		}},
		{"a token its owner revoked", func(t *testing.T) (*Token, *Owner) {
			owner := NewOwner("alice")
			tok, _ := issue(t, p, owner, IssueRequest{Owner: "alice", ExpiresIn: Day}, t0)
			if err := owner.RevokeTokens(nil, "compromised", noticeMeta, t0); err != nil {
				t.Fatal(err)
			}
			return tok, owner
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tok, owner := tc.setup(t)
			for _, now := range []time.Time{t0.Add(time.Hour), t0.Add(2 * Day), t0.Add(400 * Day)} {
				if e := announceAt(t, tok, owner, now); e != nil {
					t.Fatalf("announced %s at %s", e.Type, now)
				}
			}
		})
	}
}

func TestAnnounceExpiryNeverAtIssue(t *testing.T) {
	t.Parallel()
	// Lives as long as a lead time or shorter: the leads that had come
	// before the issue are never announced, the shorter ones are.
	for life, want := range map[time.Duration][]time.Duration{
		30 * Day:       {7 * Day, Day},
		5 * Day:        {Day},
		Day:            nil,
		12 * time.Hour: nil,
	} {
		tok, _ := issue(t, DefaultPolicy(), nil, IssueRequest{Owner: "alice", ExpiresIn: life}, t0)
		var got []time.Duration
		for now := t0; now.Before(t0.Add(life)); now = now.Add(time.Hour) {
			if e := announceAt(t, tok, nil, now); e != nil {
				got = append(got, e.Data.(TokenExpiring).Lead.Duration())
			}
		}
		if len(got) != len(want) || (len(got) > 0 && (got[0] != want[0] || got[len(got)-1] != want[len(want)-1])) {
			t.Errorf("life %s: announced %v, want %v", life, got, want)
		}
	}
}

func TestAnnounceExpiryChangesNoDecision(t *testing.T) {
	t.Parallel()
	tok, _ := issue(t, DefaultPolicy(), nil, IssueRequest{Owner: "alice", ExpiresIn: 2 * Day}, t0)
	for _, now := range []time.Time{t0.Add(Day + time.Hour), t0.Add(3 * Day)} {
		before := tok.Check(now, nil)
		if announceAt(t, tok, nil, now) == nil {
			t.Fatalf("nothing announced at %s", now)
		}
		if after := tok.Check(now, nil); !errors.Is(after, before) && after != before {
			t.Fatalf("Check at %s: %v before the notice, %v after", now, before, after)
		}
	}
	if got, _ := tok.ExpiresAt(); !got.Equal(t0.Add(2 * Day)) {
		t.Fatalf("expiry moved to %s", got)
	}
}

func TestAnnounceExpiryNewExpiryNewNotices(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy()
	tok, _ := issue(t, p, nil, IssueRequest{Owner: "alice", ExpiresIn: 10 * Day}, t0)
	now := t0.Add(4 * Day)
	first := announceAt(t, tok, nil, now)
	if first == nil {
		t.Fatal("nothing announced")
	}
	if err := tok.SetExpiry(p, ptr(t0.Add(9*Day)), noticeMeta, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	second := announceAt(t, tok, nil, now.Add(2*time.Minute))
	if second == nil || second.ID == first.ID {
		t.Fatalf("the new expiry was not announced on its own: %+v", second)
	}
}

func TestValidateExpiryLeads(t *testing.T) {
	t.Parallel()
	for name, leads := range map[string][]time.Duration{
		"none":       nil,
		"zero":       {0},
		"negative":   {-Day},
		"fractional": {1500 * time.Millisecond},
		"twice":      {Day, Day},
	} {
		if err := ValidateExpiryLeads(leads); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", name, err)
		}
	}
	if err := ValidateExpiryLeads(DefaultExpiryLeads); err != nil {
		t.Errorf("defaults: %v", err)
	}
}
