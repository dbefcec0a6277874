package projections_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/internal/testkit/projectionstest"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/migrations"
	"github.com/tokenledger/tokenledger/projections"
)

func TestMain(m *testing.M) { stacktest.Main(m) }

const live = "read_model"

// newStore returns a ReadModel over a fresh, migrated database, and the pool.
func newStore(tb testing.TB, opts ...projections.Option) (*projections.ReadModel, *pgxpool.Pool) {
	tb.Helper()
	ctx := context.Background()
	pool := stacktest.PostgresPool(tb)
	conn, err := pool.Acquire(ctx)
	if err != nil {
		tb.Fatalf("acquire: %v", err)
	}
	defer conn.Release()
	if err := migrations.Migrate(ctx, conn.Conn()); err != nil {
		tb.Fatalf("migrate: %v", err)
	}
	return projections.New(pool, opts...), pool
}

func apply(tb testing.TB, s *projections.ReadModel, events ...domain.Envelope) int {
	tb.Helper()
	n, err := s.ApplyBatch(context.Background(), live, events)
	if err != nil {
		tb.Fatalf("apply batch: %v", err)
	}
	return n
}

// dump returns the projection's tables and checkpoints as text, row by
// row in key order: equal dumps mean equal tables.
func dump(tb testing.TB, pool *pgxpool.Pool) string {
	tb.Helper()
	var b strings.Builder
	for _, q := range []string{
		`SELECT t::text FROM tokens t ORDER BY id`,
		`SELECT o::text FROM owner_revocations o ORDER BY owner`,
		`SELECT name || ' ' || last_seq FROM projection_checkpoints ORDER BY name`,
	} {
		rows, err := pool.Query(context.Background(), q)
		if err != nil {
			tb.Fatalf("dump: %v", err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			tb.Fatalf("dump: %v", err)
		}
		b.WriteString(strings.Join(lines, "\n"))
		b.WriteString("\n--\n")
	}
	return b.String()
}

// stream builds hand-written histories: each event gets the next sequence
// and an instant one minute after the previous one.
type stream struct {
	events []domain.Envelope
	now    time.Time
}

func newStream() *stream { return &stream{now: time.Date(2031, 3, 4, 5, 6, 7, 891011000, time.UTC)} }

func (s *stream) add(kind domain.AggregateKind, aggID, actor string, data domain.Event) domain.Envelope {
	s.now = s.now.Add(time.Minute)
	id, err := domain.NewEventID(s.now, nil)
	if err != nil {
		panic(err)
	}
	e := domain.Envelope{
		ID: id, Type: data.EventType(), AggregateKind: kind, AggregateID: aggID, Actor: actor,
		Time: s.now, Schema: 1, Data: data, Sequence: uint64(len(s.events) + 1),
	}
	s.events = append(s.events, e)
	return e
}

func (s *stream) token(id domain.TokenID, data domain.Event) domain.Envelope {
	return s.add(domain.AggregateToken, id.String(), "user:alice", data)
}

func (s *stream) tokenBy(id domain.TokenID, actor string, data domain.Event) domain.Envelope {
	return s.add(domain.AggregateToken, id.String(), actor, data)
}

func (s *stream) owner(o domain.OwnerID, data domain.OwnerTokensRevoked) domain.Envelope {
	data.Owner = o
	if data.RevokedBefore.IsZero() {
		data.RevokedBefore = s.now.Add(time.Minute)
	}
	return s.add(domain.AggregateOwner, string(o), "admin:root", data)
}

func (s *stream) last() uint64 { return uint64(len(s.events)) }

func newID(tb testing.TB) domain.TokenID {
	tb.Helper()
	id, err := domain.NewTokenID(time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC), nil)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

func hash(b byte) domain.SecretHash {
	var h domain.SecretHash
	for i := range h {
		h[i] = b + byte(i)
	}
	return h
}

func ptr[T any](v T) *T { return &v }

func apiIssued(owner domain.OwnerID, h byte, expires *time.Time) domain.TokenIssued {
	return domain.TokenIssued{Owner: owner, Name: "ci", Scopes: []string{"read", "write"}, Kind: domain.KindAPI, SecretHash: hash(h), ExpiresAt: expires}
}

func get(tb testing.TB, s *projections.ReadModel, id domain.TokenID) projections.TokenRow {
	tb.Helper()
	r, err := s.Get(context.Background(), id)
	if err != nil {
		tb.Fatalf("get %s: %v", id, err)
	}
	return r
}

// TestEventEffects checks what each event does to the tables, including
// the events a fold must ignore, against explicit expectations and against
// domain.State's fold of the same events.
func TestEventEffects(t *testing.T) {
	t.Parallel()
	exp := time.Date(2031, 6, 1, 0, 0, 0, 0, time.UTC)
	type check func(t *testing.T, s *projections.ReadModel, st *stream, ids []domain.TokenID)
	cases := []struct {
		name  string
		build func(st *stream, ids []domain.TokenID)
		check check
	}{
		{
			name: "issued inserts every column, unused and active",
			build: func(st *stream, ids []domain.TokenID) {
				st.token(ids[0], domain.TokenIssued{
					Owner: "alice", Name: "laptop", Scopes: []string{"a", "b:c"}, Kind: domain.KindSession,
					SecretHash: hash(1), ExpiresAt: ptr(exp), IdleTimeout: 1800, AbsoluteExpiresAt: ptr(exp.Add(time.Hour)),
					RotatedFrom: &ids[1],
				})
			},
			check: func(t *testing.T, s *projections.ReadModel, st *stream, ids []domain.TokenID) {
				r := get(t, s, ids[0])
				want := projections.TokenRow{
					ID: ids[0], Owner: "alice", Name: "laptop", Scopes: []string{"a", "b:c"}, Kind: domain.KindSession,
					SecretHash: hash(1), CreatedAt: st.events[0].Time, ExpiresAt: exp, IdleTimeout: 30 * time.Minute,
					AbsoluteExpiresAt: exp.Add(time.Hour), RotatedFrom: ids[1], IssuedSeq: 1, LastSeq: 1,
				}
				if d := projectionstest.DiffToken(want, r); d != "" {
					t.Error(d)
				}
				if r.Status != domain.StatusActive || r.StatusError() != nil {
					t.Errorf("status %s (%v), want active", r.Status, r.StatusError())
				}
			},
		},
		{
			name: "expiry_set sets the expiry and the successor; nil clears the expiry",
			build: func(st *stream, ids []domain.TokenID) {
				st.token(ids[0], apiIssued("alice", 1, nil))
				st.token(ids[0], domain.TokenExpirySet{ExpiresAt: ptr(exp), Reason: domain.ExpiryRotated, RotatedTo: &ids[1]})
				st.token(ids[0], domain.TokenExpirySet{ExpiresAt: nil, Reason: domain.ExpirySetByCaller})
			},
			check: func(t *testing.T, s *projections.ReadModel, st *stream, ids []domain.TokenID) {
				r := get(t, s, ids[0])
				if !r.ExpiresAt.IsZero() || r.RotatedTo != ids[1] || r.LastSeq != 3 {
					t.Errorf("expires_at %v, rotated_to %s, last_seq %d; want never, %s, 3", r.ExpiresAt, r.RotatedTo, r.LastSeq, ids[1])
				}
			},
		},
		{
			name: "expiry_set after revoke is ignored but moves last_seq",
			build: func(st *stream, ids []domain.TokenID) {
				st.token(ids[0], apiIssued("alice", 1, ptr(exp)))
				st.token(ids[0], domain.TokenRevoked{Reason: "leaked"})
				st.token(ids[0], domain.TokenExpirySet{ExpiresAt: nil, Reason: domain.ExpirySetByCaller})
			},
			check: func(t *testing.T, s *projections.ReadModel, st *stream, ids []domain.TokenID) {
				r := get(t, s, ids[0])
				if !r.ExpiresAt.Equal(exp) || r.LastSeq != 3 || r.Status != domain.StatusRevoked {
					t.Errorf("expires_at %v, last_seq %d, status %s; want %v, 3, revoked", r.ExpiresAt, r.LastSeq, r.Status, exp)
				}
			},
		},
		{
			name: "the first revocation wins",
			build: func(st *stream, ids []domain.TokenID) {
				st.token(ids[0], apiIssued("alice", 1, nil))
				st.tokenBy(ids[0], "user:first", domain.TokenRevoked{Reason: "first"})
				st.tokenBy(ids[0], "user:second", domain.TokenRevoked{Reason: "second"})
			},
			check: func(t *testing.T, s *projections.ReadModel, st *stream, ids []domain.TokenID) {
				r := get(t, s, ids[0])
				if !r.RevokedAt.Equal(st.events[1].Time) || r.RevokedReason != "first" || r.RevokedBy != "user:first" || r.LastSeq != 3 {
					t.Errorf("revoked %v %q by %q, last_seq %d; want the first revocation, last_seq 3", r.RevokedAt, r.RevokedReason, r.RevokedBy, r.LastSeq)
				}
				if !errors.Is(r.StatusError(), domain.ErrTokenRevoked) {
					t.Errorf("status error %v, want %v", r.StatusError(), domain.ErrTokenRevoked)
				}
			},
		},
		{
			name: "used adds counts, keeps the latest use, and changes no status after a revoke",
			build: func(st *stream, ids []domain.TokenID) {
				st.token(ids[0], apiIssued("alice", 1, ptr(exp)))
				st.token(ids[0], domain.TokenUsed{Count: 5, FirstAt: exp.Add(-3 * time.Hour), LastAt: exp.Add(-2 * time.Hour)})
				st.token(ids[0], domain.TokenRevoked{})
				st.token(ids[0], domain.TokenUsed{Count: 2, FirstAt: exp.Add(-4 * time.Hour), LastAt: exp.Add(-3 * time.Hour)})
			},
			check: func(t *testing.T, s *projections.ReadModel, st *stream, ids []domain.TokenID) {
				r := get(t, s, ids[0])
				if r.UseCount != 7 || !r.LastUsedAt.Equal(exp.Add(-2*time.Hour)) || r.Status != domain.StatusRevoked || !r.ExpiresAt.Equal(exp) || r.LastSeq != 4 {
					t.Errorf("use_count %d, last_used_at %v, status %s, expires_at %v, last_seq %d", r.UseCount, r.LastUsedAt, r.Status, r.ExpiresAt, r.LastSeq)
				}
			},
		},
		{
			name: "a second issued for an id is ignored but moves last_seq",
			build: func(st *stream, ids []domain.TokenID) {
				st.token(ids[0], apiIssued("alice", 1, nil))
				st.token(ids[0], domain.TokenIssued{Owner: "mallory", Name: "evil", Scopes: []string{"admin"}, Kind: domain.KindAPI, SecretHash: hash(2)})
			},
			check: func(t *testing.T, s *projections.ReadModel, st *stream, ids []domain.TokenID) {
				r := get(t, s, ids[0])
				if r.Owner != "alice" || r.Name != "ci" || r.SecretHash != hash(1) || r.IssuedSeq != 1 || r.LastSeq != 2 {
					t.Errorf("row %+v, want the first issue with last_seq 2", r)
				}
			},
		},
		{
			name: "events of tokens never issued leave no row",
			build: func(st *stream, ids []domain.TokenID) {
				st.token(ids[0], domain.TokenUsed{Count: 1, FirstAt: exp, LastAt: exp})
				st.token(ids[0], domain.TokenRevoked{})
				st.token(ids[0], domain.TokenExpirySet{ExpiresAt: ptr(exp), Reason: domain.ExpirySetByCaller})
				st.token(ids[1], apiIssued("alice", 1, nil))
			},
			check: func(t *testing.T, s *projections.ReadModel, st *stream, ids []domain.TokenID) {
				if _, err := s.Get(context.Background(), ids[0]); !errors.Is(err, domain.ErrNotFound) {
					t.Errorf("get unknown token: %v, want %v", err, domain.ErrNotFound)
				}
				if r := get(t, s, ids[1]); r.IssuedSeq != 4 {
					t.Errorf("issued_seq %d, want 4", r.IssuedSeq)
				}
			},
		},
		{
			name: "an owner revocation covers the tokens issued before it in the stream",
			build: func(st *stream, ids []domain.TokenID) {
				st.token(ids[0], apiIssued("alice", 1, nil))
				st.token(ids[2], apiIssued("bob", 3, nil))
				st.owner("alice", domain.OwnerTokensRevoked{Reason: "compromised"})
				st.token(ids[1], apiIssued("alice", 2, nil))
			},
			check: func(t *testing.T, s *projections.ReadModel, st *stream, ids []domain.TokenID) {
				before, after, other := get(t, s, ids[0]), get(t, s, ids[1]), get(t, s, ids[2])
				if before.Status != domain.StatusRevoked || !before.OwnerRevoked || !errors.Is(before.StatusError(), domain.ErrOwnerRevoked) || !before.RevokedAt.IsZero() {
					t.Errorf("token issued before: status %s, owner revoked %v, error %v, revoked_at %v", before.Status, before.OwnerRevoked, before.StatusError(), before.RevokedAt)
				}
				if after.Status != domain.StatusActive || after.OwnerRevoked {
					t.Errorf("token issued after: status %s, owner revoked %v", after.Status, after.OwnerRevoked)
				}
				if other.Status != domain.StatusActive {
					t.Errorf("token of another owner: status %s", other.Status)
				}
				o, err := s.GetOwnerRevocation(context.Background(), "alice")
				if err != nil {
					t.Fatal(err)
				}
				if !before.OwnerRevokedAt.Equal(st.events[2].Time) || before.OwnerRevokedReason != "compromised" || !after.OwnerRevokedAt.IsZero() {
					t.Errorf("owner revocation told: before %v %q, after %v", before.OwnerRevokedAt, before.OwnerRevokedReason, after.OwnerRevokedAt)
				}
				want := projections.OwnerRevocationRow{Owner: "alice", RevokedBefore: st.events[2].Time, RevokedBeforeSeq: 3, Reason: "compromised", LastSeq: 3,
					Revocations: []projections.RevocationEntry{{Sequence: 3, At: st.events[2].Time, Reason: "compromised"}}}
				if d := projectionstest.DiffOwner(want, o); d != "" {
					t.Error(d)
				}
				if _, err := s.GetOwnerRevocation(context.Background(), "bob"); !errors.Is(err, domain.ErrNotFound) {
					t.Errorf("owner without revocation: %v, want %v", err, domain.ErrNotFound)
				}
			},
		},
		{
			name: "until covers tokens created before it; the later until and the latest reason win",
			build: func(st *stream, ids []domain.TokenID) {
				st.owner("alice", domain.OwnerTokensRevoked{Until: ptr(st.now.Add(10 * time.Minute)), Reason: "ban"})
				st.owner("alice", domain.OwnerTokensRevoked{Until: ptr(st.now.Add(2 * time.Minute)), Reason: "shorter"})
				st.owner("alice", domain.OwnerTokensRevoked{Reason: "again"})
				st.token(ids[0], apiIssued("alice", 1, nil)) // created before until: covered
				st.now = st.now.Add(time.Hour)
				st.token(ids[1], apiIssued("alice", 2, nil)) // after until: not covered
			},
			check: func(t *testing.T, s *projections.ReadModel, st *stream, ids []domain.TokenID) {
				o, err := s.GetOwnerRevocation(context.Background(), "alice")
				if err != nil {
					t.Fatal(err)
				}
				if !o.Until.Equal(st.events[0].Time.Add(9*time.Minute)) || o.Reason != "again" || o.RevokedBeforeSeq != 3 || o.LastSeq != 3 {
					t.Errorf("owner row %+v: want the first until, the last reason and sequence", o)
				}
				// The first revocation covers it (by its until): it is the one
				// that revoked the token, whatever came after.
				if r := get(t, s, ids[0]); r.Status != domain.StatusRevoked || !r.OwnerRevoked ||
					!r.OwnerRevokedAt.Equal(st.events[0].Time) || r.OwnerRevokedReason != "ban" {
					t.Errorf("token created before until: status %s, revoked by %v %q", r.Status, r.OwnerRevokedAt, r.OwnerRevokedReason)
				}
				if len(o.Revocations) != 3 || o.Revocations[1].Reason != "shorter" || o.Revocations[2].Sequence != 3 {
					t.Errorf("revocations %+v: want all three in stream order", o.Revocations)
				}
				if r := get(t, s, ids[1]); r.Status != domain.StatusActive {
					t.Errorf("token created after until: status %s", r.Status)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := domain.NewManualClock(time.Date(2031, 5, 1, 0, 0, 0, 0, time.UTC))
			s, _ := newStore(t, projections.WithClock(clock))
			st := newStream()
			ids := []domain.TokenID{newID(t), newID(t), newID(t)}
			tc.build(st, ids)
			if n := apply(t, s, st.events...); n != len(st.events) {
				t.Fatalf("applied %d events, want %d", n, len(st.events))
			}
			tc.check(t, s, st, ids)
			projectionstest.RequireMatchesState(t, s, live, projectionstest.Fold(st.events), st.last(), clock.Now())
		})
	}
}

// TestStatusAtTheExpiryInstant checks the boundary: expired at the expiry
// instant, active a microsecond before.
func TestStatusAtTheExpiryInstant(t *testing.T) {
	t.Parallel()
	exp := time.Date(2031, 6, 1, 0, 0, 0, 0, time.UTC)
	clock := domain.NewManualClock(exp.Add(-time.Microsecond))
	s, _ := newStore(t, projections.WithClock(clock))
	st := newStream()
	id := newID(t)
	st.token(id, apiIssued("alice", 1, ptr(exp)))
	apply(t, s, st.events...)

	if r := get(t, s, id); r.Status != domain.StatusActive {
		t.Errorf("a microsecond before expiry: %s, want active", r.Status)
	}
	clock.Set(exp)
	r := get(t, s, id)
	if r.Status != domain.StatusExpired || !errors.Is(r.StatusError(), domain.ErrTokenExpired) {
		t.Errorf("at expiry: %s (%v), want expired", r.Status, r.StatusError())
	}
	for _, tc := range []struct {
		status domain.TokenStatus
		at     time.Time
		listed bool
	}{
		{domain.StatusActive, exp.Add(-time.Microsecond), true},
		{domain.StatusExpired, exp.Add(-time.Microsecond), false},
		{domain.StatusActive, exp, false},
		{domain.StatusExpired, exp, true},
	} {
		page, err := s.List(context.Background(), projections.ListFilter{Status: tc.status, Now: tc.at})
		if err != nil {
			t.Fatal(err)
		}
		if listed := len(page.Items) == 1; listed != tc.listed {
			t.Errorf("list %s at %s: listed %v, want %v", tc.status, tc.at.Format(time.RFC3339Nano), listed, tc.listed)
		}
	}
	page, err := s.List(context.Background(), projections.ListFilter{ExpiringWithin: time.Hour, Now: exp.Add(-time.Microsecond)})
	if err != nil || len(page.Items) != 1 {
		t.Errorf("expiring within an hour, a microsecond before expiry: %d items (%v), want 1", len(page.Items), err)
	}
	projectionstest.RequireMatchesState(t, s, live, projectionstest.Fold(st.events), 1, exp)
}

// TestRedeliveryChangesNothing applies the same events again, and batches
// overlapping the applied ones: the tables and the checkpoint stay as they
// were, and only the new events of an overlapping batch are applied.
func TestRedeliveryChangesNothing(t *testing.T) {
	t.Parallel()
	h := projectionstest.RandomHistory(7, projectionstest.HistoryConfig{Tokens: 30, Owners: 3, Events: 200, Odd: true})
	events := h.Events
	cases := []struct {
		name string
		run  func(t *testing.T, s *projections.ReadModel, pool *pgxpool.Pool)
	}{
		{"the same batch twice", func(t *testing.T, s *projections.ReadModel, pool *pgxpool.Pool) {
			apply(t, s, events...)
			before := dump(t, pool)
			if n := apply(t, s, events...); n != 0 {
				t.Errorf("re-delivery applied %d events", n)
			}
			if after := dump(t, pool); after != before {
				t.Errorf("re-delivery changed the tables:\nbefore %s\nafter %s", before, after)
			}
		}},
		{"overlapping batches", func(t *testing.T, s *projections.ReadModel, pool *pgxpool.Pool) {
			if n := apply(t, s, events[:120]...); n != 120 {
				t.Fatalf("applied %d, want 120", n)
			}
			if n := apply(t, s, events[60:150]...); n != 30 {
				t.Errorf("overlapping batch applied %d, want 30", n)
			}
			if n := apply(t, s, events[10:20]...); n != 0 {
				t.Errorf("old batch applied %d, want 0", n)
			}
			if n := apply(t, s, events[149:]...); n != len(events)-150 {
				t.Errorf("last batch applied %d, want %d", n, len(events)-150)
			}
		}},
		{"one event at a time, each delivered twice", func(t *testing.T, s *projections.ReadModel, pool *pgxpool.Pool) {
			for i := range events {
				apply(t, s, events[i])
				apply(t, s, events[max(i-1, 0):i+1]...)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, pool := newStore(t)
			tc.run(t, s, pool)
			projectionstest.RequireMatchesState(t, s, live, projectionstest.Fold(events), uint64(len(events)), time.Time{})
			seq, err := s.Checkpoint(context.Background(), live)
			if err != nil || seq != uint64(len(events)) {
				t.Errorf("checkpoint %d (%v), want %d", seq, err, len(events))
			}
		})
	}
}

// TestOutOfOrderBatchWritesNothing checks that a batch whose sequences do
// not increase is refused before anything is written.
func TestOutOfOrderBatchWritesNothing(t *testing.T) {
	t.Parallel()
	st := newStream()
	a, b := newID(t), newID(t)
	st.token(a, apiIssued("alice", 1, nil))
	st.token(b, apiIssued("alice", 2, nil))
	st.token(a, domain.TokenRevoked{})
	ev := st.events
	zero := ev[2]
	zero.Sequence = 0
	cases := []struct {
		name   string
		events []domain.Envelope
	}{
		{"decreasing", []domain.Envelope{ev[0], ev[2], ev[1]}},
		{"repeated", []domain.Envelope{ev[0], ev[1], ev[1]}},
		{"zero sequence", []domain.Envelope{ev[0], ev[1], zero}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, pool := newStore(t)
			empty := dump(t, pool)
			_, err := s.ApplyBatch(context.Background(), live, tc.events)
			if !errors.Is(err, projections.ErrOutOfOrder) {
				t.Fatalf("apply: %v, want %v", err, projections.ErrOutOfOrder)
			}
			if got := dump(t, pool); got != empty {
				t.Errorf("a refused batch wrote:\n%s", got)
			}
		})
	}
}

// TestRandomHistoriesMatchTheFold applies random histories (valid
// commands plus odd events) in random batch sizes, sometimes re-delivering
// a batch, and compares the tables with domain.State's fold after every
// few batches.
func TestRandomHistoriesMatchTheFold(t *testing.T) {
	t.Parallel()
	for seed := range uint64(4) {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			t.Parallel()
			h := projectionstest.RandomHistory(seed, projectionstest.HistoryConfig{Tokens: 100, Owners: 10, Events: 1200, Odd: seed%2 == 1})
			clock := domain.NewManualClock(h.End)
			s, pool := newStore(t, projections.WithClock(clock))
			rng := rand.New(rand.NewPCG(seed, 1))
			state := domain.NewState()
			applied := 0
			for i, batch := 0, 0; applied < len(h.Events); batch++ {
				size := []int{1, 2, 7, 50, 100, 300}[rng.IntN(6)]
				end := min(applied+size, len(h.Events))
				events := h.Events[applied:end]
				var n int
				var err error
				if batch%3 == 2 {
					n, err = applyInTx(t, s, pool, events)
				} else {
					n, err = s.ApplyBatch(context.Background(), live, events)
				}
				if err != nil || n != len(events) {
					t.Fatalf("batch %d: applied %d of %d: %v", batch, n, len(events), err)
				}
				if rng.IntN(4) == 0 {
					if n := apply(t, s, events...); n != 0 {
						t.Fatalf("batch %d re-delivered: applied %d", batch, n)
					}
				}
				for _, e := range events {
					state.Apply(e)
				}
				applied = end
				if i++; i%5 == 0 || applied == len(h.Events) {
					projectionstest.RequireMatchesState(t, s, live, state, uint64(applied), clock.Now())
				}
			}
			// Statuses at other instants: before the end, and long after
			// (when every expiring token has expired).
			for _, at := range []time.Time{h.End.Add(-48 * time.Hour), h.End.Add(400 * 24 * time.Hour)} {
				clock.Set(at)
				projectionstest.RequireMatchesState(t, s, live, state, uint64(len(h.Events)), at)
			}
		})
	}
}

func applyInTx(tb testing.TB, s *projections.ReadModel, pool *pgxpool.Pool, events []domain.Envelope) (int, error) {
	tb.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	n, err := s.ApplyBatchTx(ctx, tx, live, events)
	if err != nil {
		return 0, err
	}
	return n, tx.Commit(ctx)
}

// TestApplyBatchTxRollbackLeavesNothing checks that the caller's rollback
// undoes the rows and the checkpoint together.
func TestApplyBatchTxRollbackLeavesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, pool := newStore(t)
	st := newStream()
	st.token(newID(t), apiIssued("alice", 1, nil))
	empty := dump(t, pool)
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.ApplyBatchTx(ctx, tx, live, st.events); err != nil || n != 1 {
		t.Fatalf("apply in tx: %d, %v", n, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, pool); got != empty {
		t.Errorf("rolled back batch left:\n%s", got)
	}
}

// TestConcurrentApplyOfOneProjection runs several appliers of the same
// projection over overlapping batches at once: each event is applied
// exactly once.
func TestConcurrentApplyOfOneProjection(t *testing.T) {
	t.Parallel()
	h := projectionstest.RandomHistory(11, projectionstest.HistoryConfig{Tokens: 50, Owners: 5, Events: 600})
	s, _ := newStore(t)
	const workers = 4
	errs := make(chan error, workers)
	total := make(chan int, workers)
	for w := range workers {
		go func() {
			sum := 0
			for start := 0; start < len(h.Events); start += 40 {
				lo := max(start-w*10, 0)
				n, err := s.ApplyBatch(context.Background(), live, h.Events[lo:min(start+40, len(h.Events))])
				if err != nil {
					errs <- err
					return
				}
				sum += n
			}
			errs <- nil
			total <- sum
		}()
	}
	sum := 0
	for range workers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		sum += <-total
	}
	if sum != len(h.Events) {
		t.Errorf("appliers applied %d events in all, want each of %d once", sum, len(h.Events))
	}
	projectionstest.RequireMatchesState(t, s, live, projectionstest.Fold(h.Events), uint64(len(h.Events)), time.Time{})
}

// TestApplyNextRefusesAGap checks that ApplyNext applies only a batch that
// continues the checkpoint, and that concurrent followers of the stream,
// each reading from its own position, apply every event exactly once.
func TestApplyNextRefusesAGap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := projectionstest.RandomHistory(12, projectionstest.HistoryConfig{Tokens: 50, Owners: 5, Events: 600})
	s, _ := newStore(t)
	res, err := s.ApplyNext(ctx, live, h.Events[:100])
	if err != nil || res.Checkpoint != 100 || res.Applied != 100 {
		t.Fatalf("ApplyNext of events 1..100 = %+v, %v; want checkpoint 100, 100 applied", res, err)
	}
	res, err = s.ApplyNext(ctx, live, h.Events[150:200])
	if !errors.Is(err, projections.ErrGap) || res.Checkpoint != 100 {
		t.Fatalf("ApplyNext of events 151..200 after checkpoint 100 = %+v, %v; want ErrGap at checkpoint 100", res, err)
	}
	if cp, err := s.Checkpoint(ctx, live); err != nil || cp != 100 {
		t.Fatalf("checkpoint %d, %v after a refused batch; want 100", cp, err)
	}

	const workers = 3
	errs := make(chan error, workers)
	total := make(chan int, workers)
	for w := range workers {
		go func() {
			// A follower reads on from where it stands, in batches of its
			// own size, and starts again at the checkpoint after a gap.
			sum, next := 0, 100+w*7
			for next < len(h.Events) {
				res, err := s.ApplyNext(ctx, live, h.Events[next:min(next+20+w*5, len(h.Events))])
				switch {
				case errors.Is(err, projections.ErrGap):
					next = int(res.Checkpoint)
					continue
				case err != nil:
					errs <- err
					return
				}
				sum += res.Applied
				next = min(next+20+w*5, len(h.Events))
			}
			errs <- nil
			total <- sum
		}()
	}
	sum := 100
	for range workers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		sum += <-total
	}
	if sum != len(h.Events) {
		t.Errorf("followers applied %d events in all, want each of %d once", sum, len(h.Events))
	}
	projectionstest.RequireMatchesState(t, s, live, projectionstest.Fold(h.Events), uint64(len(h.Events)), time.Time{})
}

// TestUseCountSaturates checks that counts beyond a bigint stop at its
// maximum instead of failing the batch.
func TestUseCountSaturates(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	st := newStream()
	id := newID(t)
	st.token(id, apiIssued("alice", 1, nil))
	st.token(id, domain.TokenUsed{Count: 1 << 62, FirstAt: st.now, LastAt: st.now})
	st.token(id, domain.TokenUsed{Count: 1 << 62, FirstAt: st.now, LastAt: st.now})
	apply(t, s, st.events...)
	if r := get(t, s, id); r.UseCount != 1<<63-1 {
		t.Errorf("use_count %d, want %d", r.UseCount, uint64(1<<63-1))
	}
}
