package expiry_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenledger/tokenledger/app"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/expiry"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/ledger"
	"github.com/tokenledger/tokenledger/projections"
	"github.com/tokenledger/tokenledger/stack"
)

func TestMain(m *testing.M) { stacktest.Main(m) }

// world is one event store and one read model, with writers that each
// have a connection of their own, under one manual clock.
type world struct {
	t     *testing.T
	srv   *stack.NATS
	pool  *pgxpool.Pool
	clock *domain.ManualClock
	proj  *projections.ReadModel
	store *eventstore.Store
}

func newWorld(t *testing.T, start time.Time) *world {
	t.Helper()
	url := stacktest.PostgresURL(t)
	if _, err := app.Migrate(context.Background(), url); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	w := &world{t: t, srv: stacktest.NATS(t), pool: pool, clock: domain.NewManualClock(start), proj: projections.New(pool)}
	w.store = w.openStore()
	return w
}

func (w *world) openStore() *eventstore.Store {
	w.t.Helper()
	// A short duplicate window: the store's deduplication must not be
	// what keeps a notice from being recorded twice.
	cfg := eventstore.DefaultConfig()
	cfg.DuplicateWindow = 200 * time.Millisecond
	store, err := eventstore.Open(context.Background(), stacktest.Conn(w.t, w.srv), domain.NewDefaultRegistry(), cfg)
	if err != nil {
		w.t.Fatalf("open event store: %v", err)
	}
	w.t.Cleanup(func() { _ = store.Close() })
	return store
}

// ledger returns a ledger service on a connection of its own.
func (w *world) ledger() *ledger.Service {
	w.t.Helper()
	svc, err := ledger.New(ledger.Config{Store: w.openStore(), Projections: w.proj, Policy: policy(), Clock: w.clock})
	if err != nil {
		w.t.Fatal(err)
	}
	return svc
}

// scheduler returns a scheduler with a ledger of its own.
func (w *world) scheduler() *expiry.Scheduler {
	w.t.Helper()
	cfg := expiry.DefaultConfig()
	cfg.Clock = w.clock
	s, err := expiry.New(w.pool, w.ledger(), cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	return s
}

// project applies the stream to the read model.
func (w *world) project() {
	w.t.Helper()
	ctx := context.Background()
	cp, err := w.proj.Checkpoint(ctx, "lifecycle")
	if err != nil {
		w.t.Fatal(err)
	}
	var events []domain.Envelope
	if _, err := w.store.Read(ctx, cp+1, func(e domain.Envelope) error {
		events = append(events, e)
		return nil
	}); err != nil {
		w.t.Fatal(err)
	}
	if len(events) > 0 {
		if _, err := w.proj.ApplyBatch(ctx, "lifecycle", events); err != nil {
			w.t.Fatal(err)
		}
	}
}

// notices reads every expiry notice in the stream.
func (w *world) notices() []domain.Envelope {
	w.t.Helper()
	var out []domain.Envelope
	if _, err := w.store.Read(context.Background(), 1, func(e domain.Envelope) error {
		if e.Type == domain.TypeTokenExpiring || e.Type == domain.TypeTokenExpired {
			out = append(out, e)
		}
		return nil
	}); err != nil {
		w.t.Fatal(err)
	}
	return out
}

func policy() domain.Policy {
	p := domain.DefaultPolicy()
	p.AllowNeverExpires = true
	return p
}

var admin = ledger.Caller{Owner: "ops", Scopes: []string{ledger.ScopeAdmin}}

// TestEveryLeadOnceAcrossTwoSchedulersAndARestart: tokens expiring at
// various offsets; two schedulers, each with its own ledger and
// connection, pass at the same instants while the clock walks past every
// expiry; one of them is replaced halfway (a restart); at the end the
// watermarks are set back to the start (a replay). Every token gets the
// notices due for it exactly once: each lead time shorter than its life
// (a longer one came before the issue), and token.expired once. Tokens that do
// not expire, sessions and revoked tokens get none.
func TestEveryLeadOnceAcrossTwoSchedulersAndARestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	start := time.Now().UTC().Truncate(time.Hour)
	w := newWorld(t, start)
	svc := w.ledger()

	lives := []time.Duration{6 * time.Hour, 30 * time.Hour, 3 * domain.Day, 7 * domain.Day, 10 * domain.Day, 31 * domain.Day, 45 * domain.Day}
	life := map[domain.TokenID]time.Duration{}
	for i, d := range lives {
		iss, err := svc.Issue(ctx, admin, domain.IssueRequest{Owner: domain.OwnerID(fmt.Sprintf("o%d", i%3)), ExpiresIn: d}, "")
		if err != nil {
			t.Fatal(err)
		}
		life[iss.Token.ID()] = d
	}
	silent := map[domain.TokenID]string{}
	never, err := svc.Issue(ctx, admin, domain.IssueRequest{Owner: "o0", NeverExpires: true}, "")
	if err != nil {
		t.Fatal(err)
	}
	silent[never.Token.ID()] = "does not expire"
	session, err := svc.Issue(ctx, admin, domain.IssueRequest{Owner: "o1", Kind: domain.KindSession}, "")
	if err != nil {
		t.Fatal(err)
	}
	silent[session.Token.ID()] = "session"
	revoked, err := svc.Issue(ctx, admin, domain.IssueRequest{Owner: "o2", ExpiresIn: 2 * domain.Day}, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Revoke(ctx, admin, revoked.Token.ID(), "done", ""); err != nil {
		t.Fatal(err)
	}
	silent[revoked.Token.ID()] = "revoked"
	w.project()

	a, b := w.scheduler(), w.scheduler()
	end := start.Add(46 * domain.Day)
	for now := start; !now.After(end); now = w.clock.Advance(6 * time.Hour) {
		if now.Sub(start) == 20*domain.Day {
			a = w.scheduler() // a restart: a new scheduler, with only what the database holds
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
	}
	if _, err := w.pool.Exec(ctx, `UPDATE expiry_watermarks SET through = $1`, start); err != nil {
		t.Fatal(err)
	}
	if p, err := w.scheduler().RunOnce(ctx); err != nil || p.Recorded != 0 {
		t.Fatalf("a pass over everything again recorded %d notices (%v), want 0", p.Recorded, err)
	}

	got := map[domain.TokenID][]string{}
	for _, e := range w.notices() {
		id, _ := e.TokenID()
		switch d := e.Data.(type) {
		case domain.TokenExpiring:
			got[id] = append(got[id], d.Lead.Duration().String())
			if want := domain.ExpiryNoticeID(e.Type, id, domain.ExpiringByExpiry, d.Lead.Duration(), d.ExpiresAt); e.ID != want {
				t.Errorf("token %s: notice id %s, want the derived %s", id, e.ID, want)
			}
		case domain.TokenExpired:
			got[id] = append(got[id], "expired")
			if e.Time.Before(d.ExpiresAt) {
				t.Errorf("token %s: expired announced at %s, before its expiry %s", id, e.Time, d.ExpiresAt)
			}
		}
		if e.Actor != ledger.ExpiryActor {
			t.Errorf("notice %s recorded by %q", e.ID, e.Actor)
		}
	}
	for id, d := range life {
		var want []string
		for _, l := range domain.DefaultExpiryLeads {
			if l < d {
				want = append(want, l.String())
			}
		}
		want = append(want, "expired")
		if !slices.Equal(got[id], want) {
			t.Errorf("token living %s: notices %v, want %v", d, got[id], want)
		}
	}
	for id, why := range silent {
		if len(got[id]) > 0 {
			t.Errorf("%s token: notices %v, want none", why, got[id])
		}
	}
}

// TestNoticeChangesNoValidation: a token announced as expiring is still
// valid, and one announced as expired was expired already; the read
// model's status does not move with the notices.
func TestNoticeChangesNoValidation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	start := time.Now().UTC().Truncate(time.Hour)
	w := newWorld(t, start)
	svc := w.ledger()
	iss, err := svc.Issue(ctx, admin, domain.IssueRequest{Owner: "o", ExpiresIn: 36 * time.Hour}, "")
	if err != nil {
		t.Fatal(err)
	}
	w.project()
	s := w.scheduler()
	if _, err := s.RunOnce(ctx); err != nil { // sets the watermarks at the issue
		t.Fatal(err)
	}
	w.clock.Advance(12 * time.Hour) // 12 h left of 36 h: the 1 day notice is due
	if p, err := s.RunOnce(ctx); err != nil || p.Recorded != 1 {
		t.Fatalf("pass recorded %d (%v), want the 1 day notice", p.Recorded, err)
	}
	v, err := svc.Get(ctx, admin, iss.Token.ID())
	if err != nil || v.Status != domain.StatusActive {
		t.Fatalf("after the expiring notice: status %q (%v), want active", v.Status, err)
	}
	w.project()
	row, err := w.proj.Get(ctx, iss.Token.ID())
	if err != nil || row.Status != domain.StatusActive {
		t.Fatalf("read model after the notice: %+v (%v)", row, err)
	}
}
