package consumers_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tokenledger/tokenledger/consumers"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/migrations"
	"github.com/tokenledger/tokenledger/projections"
	"github.com/tokenledger/tokenledger/stack"
)

// usageEnv is one usage test's world: its own JetStream server and event
// store, a migrated database, a manual clock and the policy sessions
// follow.
type usageEnv struct {
	t      testing.TB
	srv    *stack.NATS
	js     jetstream.JetStream
	store  *eventstore.Store
	pool   *pgxpool.Pool
	proj   *projections.ReadModel
	clock  *domain.ManualClock
	policy domain.Policy
	logs   *usageLogs
	// uses holds every usage event appended, in stream order.
	uses []domain.Envelope
}

// newUsageEnv builds a usageEnv on pool (nil: a fresh database of the
// shared cluster).
func newUsageEnv(t testing.TB, pool *pgxpool.Pool) *usageEnv {
	t.Helper()
	return newUsageEnvWith(t, pool, eventstore.DefaultConfig())
}

// newUsageEnvWith is newUsageEnv with an event store configured by
// storeCfg.
func newUsageEnvWith(t testing.TB, pool *pgxpool.Pool, storeCfg eventstore.Config) *usageEnv {
	t.Helper()
	ctx := context.Background()
	srv := stacktest.NATS(t)
	nc := stacktest.Conn(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	store, err := eventstore.Open(ctx, nc, domain.NewDefaultRegistry(), storeCfg)
	if err != nil {
		t.Fatalf("open event store: %v", err)
	}
	t.Cleanup(func() { _ = store.Close() })
	if pool == nil {
		pool = stacktest.PostgresPool(t)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	err = migrations.Migrate(ctx, conn.Conn())
	conn.Release()
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	e := &usageEnv{
		t: t, srv: srv, js: js, store: store, pool: pool,
		clock:  domain.NewManualClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)),
		policy: domain.DefaultPolicy(),
		logs:   &usageLogs{},
	}
	e.proj = projections.New(pool, projections.WithClock(e.clock))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("usage consumer logs:\n%s", e.logs.tail(60))
		}
	})
	return e
}

// config is a test configuration: small batches and quick retries.
func (e *usageEnv) config() consumers.UsageConfig {
	return consumers.UsageConfig{
		Name:         "usage",
		BatchSize:    100,
		MaxWait:      50 * time.Millisecond,
		Policy:       e.policy,
		Clock:        e.clock,
		RetryInitial: 10 * time.Millisecond,
		RetryMax:     200 * time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// usageRun is a consumer whose Run runs in a goroutine.
type usageRun = workerRun[*consumers.UsageConsumer]

// start runs a consumer with cfg, stops it at cleanup, and waits until it
// consumes.
func (e *usageEnv) start(cfg consumers.UsageConfig) *usageRun {
	e.t.Helper()
	c, err := consumers.NewUsageConsumer(e.store, e.proj, cfg)
	if err != nil {
		e.t.Fatalf("new usage consumer: %v", err)
	}
	return runWorker(e.t, "usage consumer", c)
}

// useEvent returns a token.used event of token id.
func useEvent(t testing.TB, id domain.TokenID, count uint64, first, last time.Time, addr string) domain.Envelope {
	t.Helper()
	eid, err := domain.NewEventID(last, nil)
	if err != nil {
		t.Fatal(err)
	}
	return domain.Envelope{
		ID: eid, Type: domain.TypeTokenUsed, AggregateKind: domain.AggregateToken, AggregateID: id.String(),
		Actor: "validator:test", Time: domain.NormalizeTime(last), Schema: 1,
		Data: domain.TokenUsed{Count: count, FirstAt: domain.NormalizeTime(first), LastAt: domain.NormalizeTime(last), ClientAddr: addr},
	}
}

// appendUses appends usage events to the usage stream and returns their
// last sequence.
func (e *usageEnv) appendUses(events ...domain.Envelope) uint64 {
	e.t.Helper()
	stored, err := e.store.AppendUsage(context.Background(), events...)
	if err != nil {
		e.t.Fatalf("append usage: %v", err)
	}
	e.uses = append(e.uses, stored...)
	return stored[len(stored)-1].Sequence
}

// usageLast returns the usage stream's last sequence.
func (e *usageEnv) usageLast() uint64 {
	e.t.Helper()
	info, err := e.store.State(context.Background(), eventstore.Usage)
	if err != nil {
		e.t.Fatalf("usage stream info: %v", err)
	}
	return info.Last
}

// waitSlid waits until c has applied the usage stream through seq and
// finished sliding the sessions of those batches.
func waitSlid(t testing.TB, c *consumers.UsageConsumer, seq uint64) {
	t.Helper()
	stacktest.Eventually(t, time.Minute, func() bool { return c.Stats().SlidThrough >= seq },
		"usage consumer through sequence %d", seq)
}

// expectedUsage folds usage events as the usage table must hold them.
func expectedUsage(events []domain.Envelope) map[domain.TokenID]projections.Usage {
	out := make(map[domain.TokenID]projections.Usage)
	for _, e := range events {
		for id, d := range domain.Uses(e) {
			foldUse(out, id, d)
		}
	}
	return out
}

// foldUse adds one use of token id to the fold out.
func foldUse(out map[domain.TokenID]projections.Usage, id domain.TokenID, d domain.TokenUsed) {
	u, ok := out[id]
	if !ok {
		u = projections.Usage{TokenID: id, FirstAt: d.FirstAt, LastAt: d.LastAt}
	}
	u.Count += d.Count
	if d.FirstAt.Before(u.FirstAt) {
		u.FirstAt = d.FirstAt
	}
	if !ok || !d.LastAt.Before(u.LastAt) {
		u.LastAt, u.ClientAddr = d.LastAt, d.ClientAddr
	}
	out[id] = u
}

// requireUsageMatches fails the test unless the usage table holds exactly
// the fold of the usage events appended.
func (e *usageEnv) requireUsageMatches() {
	e.t.Helper()
	want := expectedUsage(e.uses)
	var rows int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM token_usage`).Scan(&rows); err != nil {
		e.t.Fatalf("count usage rows: %v", err)
	}
	if rows != len(want) {
		e.t.Errorf("token_usage holds %d rows, want %d", rows, len(want))
	}
	for id, w := range want {
		got, err := e.proj.GetUsage(context.Background(), id)
		if err != nil {
			e.t.Errorf("usage of %s: %v", id, err)
			continue
		}
		if got != w {
			e.t.Errorf("usage of %s:\n got %+v\nwant %+v", id, got, w)
		}
	}
}

// randomUses returns n usage events spread over ids, with random counts,
// times and addresses.
func randomUses(t testing.TB, rng *rand.Rand, ids []domain.TokenID, n int, base time.Time) []domain.Envelope {
	t.Helper()
	out := make([]domain.Envelope, n)
	for i := range out {
		last := base.Add(time.Duration(rng.IntN(86400)) * time.Second)
		first := last.Add(-time.Duration(rng.IntN(60)) * time.Second)
		addr := ""
		if rng.IntN(3) > 0 {
			addr = fmt.Sprintf("198.51.100.%d", rng.IntN(256))
		}
		out[i] = useEvent(t, ids[rng.IntN(len(ids))], uint64(1+rng.IntN(20)), first, last, addr)
	}
	return out
}

// issue issues a token of kind through the domain and appends it to the
// lifecycle stream; when project is set its events are also applied to
// the read model, as the lifecycle projector would.
func (e *usageEnv) issue(req domain.IssueRequest, project bool) *domain.Token {
	e.t.Helper()
	if req.Owner == "" {
		req.Owner = "alice"
	}
	tok, _, err := domain.IssueToken(e.policy, nil, req, domain.Meta{Actor: "user:test"}, e.clock.Now(), nil)
	if err != nil {
		e.t.Fatalf("issue: %v", err)
	}
	stored, err := e.store.Append(context.Background(), eventstore.ExpectOwner(req.Owner, 0), tok.Changes()...)
	if err != nil {
		e.t.Fatalf("append issue: %v", err)
	}
	seqs := make([]uint64, len(stored))
	for i, s := range stored {
		seqs[i] = s.Sequence
	}
	if err := tok.MarkStored(seqs...); err != nil {
		e.t.Fatal(err)
	}
	if project {
		if _, err := e.proj.ApplyBatch(context.Background(), "lifecycle", stored); err != nil {
			e.t.Fatalf("project issue: %v", err)
		}
	}
	return tok
}

// statementStats reads, from pg_stat_statements, how many times the usage
// upsert ran in this test's database and how many rows it wrote.
func (e *usageEnv) statementStats() (calls, rows int64) {
	e.t.Helper()
	err := e.pool.QueryRow(context.Background(), `SELECT coalesce(sum(calls), 0)::bigint, coalesce(sum(rows), 0)::bigint
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND query LIKE '%INSERT INTO token_usage AS cur%'`).Scan(&calls, &rows)
	if err != nil {
		e.t.Fatalf("read pg_stat_statements: %v", err)
	}
	return calls, rows
}

// TestUsageConsumerWritesOneStatementPerBatch appends N uses of M tokens,
// some of which the read model does not hold (yet), before the consumer
// starts, so that its batches are the stream cut in BatchSize pieces.
// After it catches up the usage table must hold exactly each token's sum
// of counts and latest use, with one write statement per batch and per
// batch at most one row per distinct token — counted by the consumer and,
// independently, by PostgreSQL (pg_stat_statements, pg_stat_user_tables).
// Then uses keep coming while it runs, and the same must hold.
func TestUsageConsumerWritesOneStatementPerBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newUsageEnv(t, nil)
	if _, err := e.pool.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err != nil {
		t.Fatalf("pg_stat_statements: %v", err)
	}
	const tokens, issued, uses = 60, 40, 2500
	ids := make([]domain.TokenID, tokens)
	for i := range ids {
		if i < issued {
			ids[i] = e.issue(domain.IssueRequest{Name: fmt.Sprint(i)}, true).ID()
			continue
		}
		id, err := domain.NewTokenID(e.clock.Now(), nil)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	rng := rand.New(rand.NewPCG(1, 1))
	e.appendUses(randomUses(t, rng, ids, uses, e.clock.Now())...)

	cfg := e.config()
	cfg.BatchSize = 300
	cfg.MaxWait = time.Second
	r := e.start(cfg)
	waitSlid(t, r.w, uses)
	e.requireUsageMatches()

	// The batches were the stream in pieces of BatchSize events.
	wantBatches, wantRows := 0, 0
	for from := 0; from < uses; from += cfg.BatchSize {
		distinct := make(map[string]bool)
		for _, ev := range e.uses[from:min(from+cfg.BatchSize, uses)] {
			distinct[ev.AggregateID] = true
		}
		wantBatches++
		wantRows += len(distinct)
	}
	st := r.w.Stats()
	calls, rows := e.statementStats()
	if st.Batches != uint64(wantBatches) || st.Statements != uint64(wantBatches) || calls != int64(wantBatches) {
		t.Errorf("batches %d, statements %d (PostgreSQL counted %d); want %d each", st.Batches, st.Statements, calls, wantBatches)
	}
	if st.Events != uses || st.Rows != uint64(wantRows) || rows != int64(wantRows) {
		t.Errorf("events %d, rows %d (PostgreSQL counted %d); want %d events, %d rows (distinct tokens per batch)",
			st.Events, st.Rows, rows, uses, wantRows)
	}
	requireTableWrites(t, e.pool, wantRows)

	// Usage before issue is kept: the tokens not in the read model have
	// their usage rows, and once a token's row arrives Get shows its use.
	late := e.issue(domain.IssueRequest{Name: "late"}, false)
	lateUse := useEvent(t, late.ID(), 5, e.clock.Now(), e.clock.Now(), "")
	waitSlid(t, r.w, e.appendUses(lateUse))
	if _, err := e.proj.Get(ctx, late.ID()); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("get before the token is projected: %v", err)
	}
	history, err := e.store.LoadToken(ctx, late.ID())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.proj.ApplyBatch(ctx, "lifecycle", history); err != nil {
		t.Fatal(err)
	}
	if row, err := e.proj.Get(ctx, late.ID()); err != nil || row.UseCount != 5 || !row.LastUsedAt.Equal(lateUse.Data.(domain.TokenUsed).LastAt) {
		t.Errorf("get after the token is projected: %+v, %v; want its 5 uses", row, err)
	}

	// Live: uses arrive in bursts while the consumer runs.
	for range 20 {
		e.appendUses(randomUses(t, rng, ids, 1+rng.IntN(150), e.clock.Now())...)
	}
	waitSlid(t, r.w, e.usageLast())
	e.requireUsageMatches()
	st = r.w.Stats()
	calls, rows = e.statementStats()
	if st.Statements != uint64(calls) || st.Rows != uint64(rows) || st.Statements != st.Batches {
		t.Errorf("consumer counted %d statements and %d rows in %d batches, PostgreSQL %d statements and %d rows", st.Statements, st.Rows, st.Batches, calls, rows)
	}
	if st.Rows >= st.Events {
		t.Errorf("%d rows written for %d events: uses of a token in one batch were not coalesced", st.Rows, st.Events)
	}
	requireTableWrites(t, e.pool, int(st.Rows))
}

// TestUsageConsumerFoldsBatchesAndTokenUsedAlike: a usage stream holding
// both forms of usage — token.used events, one per token and flush, as
// validators wrote them before, and usage batches, one per flush — is
// projected to the totals of the uses themselves, whichever form each
// flush took: per token the count, the first and last use and the last
// client address, with one statement per consumer batch.
func TestUsageConsumerFoldsBatchesAndTokenUsedAlike(t *testing.T) {
	t.Parallel()
	e := newUsageEnv(t, nil)
	ids := make([]domain.TokenID, 400)
	for i := range ids {
		id, err := domain.NewTokenID(e.clock.Now(), nil)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	rng := rand.New(rand.NewPCG(12, 5))
	want := map[domain.TokenID]projections.Usage{}
	var batches, single int
	flush := func(at time.Time) {
		var uses []domain.TokenUse
		for _, i := range rng.Perm(len(ids))[:1+rng.IntN(120)] {
			last := at.Add(-time.Duration(rng.IntN(1000)) * time.Millisecond)
			u := domain.TokenUse{Token: ids[i], Count: uint64(1 + rng.IntN(30)), FirstAt: last.Add(-time.Duration(rng.IntN(5000)) * time.Microsecond), LastAt: last}
			if rng.IntN(4) > 0 {
				u.ClientAddr = fmt.Sprintf("203.0.113.%d:%d", rng.IntN(256), 1024+rng.IntN(60000))
			}
			uses = append(uses, u)
			foldUse(want, u.Token, domain.TokenUsed{Count: u.Count, FirstAt: domain.NormalizeTime(u.FirstAt), LastAt: domain.NormalizeTime(u.LastAt), ClientAddr: u.ClientAddr})
		}
		if rng.IntN(2) == 0 {
			events, err := domain.RecordUsage(uses, domain.Meta{Actor: "system:validator"}, at, 0)
			if err != nil {
				t.Fatal(err)
			}
			batches += len(events)
			e.appendUses(events...)
			return
		}
		events := make([]domain.Envelope, len(uses))
		for i, u := range uses {
			events[i] = useEvent(t, u.Token, u.Count, u.FirstAt, u.LastAt, u.ClientAddr)
		}
		single += len(events)
		e.appendUses(events...)
	}
	at := e.clock.Now()
	for range 30 {
		at = at.Add(time.Second)
		flush(at)
	}
	if batches == 0 || single == 0 {
		t.Fatalf("%d batches and %d token.used events: the stream must hold both", batches, single)
	}

	cfg := e.config()
	cfg.BatchSize = 64
	r := e.start(cfg)
	// Uses keep coming, in both forms, while the consumer runs.
	for range 10 {
		at = at.Add(time.Second)
		flush(at)
	}
	waitSlid(t, r.w, e.usageLast())
	e.requireUsageMatches()
	if got := expectedUsage(e.uses); len(got) != len(want) {
		t.Fatalf("the stream's fold has %d tokens, the uses %d", len(got), len(want))
	}
	for id, w := range want {
		got, err := e.proj.GetUsage(context.Background(), id)
		if err != nil || got != w {
			t.Errorf("usage of %s:\n got %+v, %v\nwant %+v", id, got, err, w)
		}
	}
	if st := r.w.Stats(); st.Statements != st.Batches || st.Rows > uint64(len(ids))*st.Batches {
		t.Errorf("stats %+v: want one statement per batch and rows ≤ distinct tokens", st)
	}
	t.Logf("%d usage batches and %d token.used events for %d tokens", batches, single, len(want))
}

// requireTableWrites waits until PostgreSQL's table statistics (reported
// with a delay of up to a second or so) count exactly want rows inserted
// or updated in token_usage.
func requireTableWrites(t *testing.T, pool *pgxpool.Pool, want int) {
	t.Helper()
	var got int
	stacktest.Eventually(t, 30*time.Second, func() bool {
		err := pool.QueryRow(context.Background(),
			`SELECT coalesce(sum(n_tup_ins + n_tup_upd), 0)::int FROM pg_stat_user_tables WHERE relname = 'token_usage'`).Scan(&got)
		return err == nil && got == want
	}, "%v", stacktest.Lazy(func() string { return fmt.Sprintf("token_usage rows inserted or updated: %d, want %d", got, want) }))
}

// TestUsageConsumerCountsEveryUseOnceAcrossRestarts stops and restarts
// consumers of the usage projection in the ways a deployment does, and
// checks that every use is counted exactly once.
func TestUsageConsumerCountsEveryUseOnceAcrossRestarts(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		run  func(t *testing.T, e *usageEnv, ids []domain.TokenID, rng *rand.Rand)
	}{
		{
			name: "stopped mid-stream and restarted",
			run: func(t *testing.T, e *usageEnv, ids []domain.TokenID, rng *rand.Rand) {
				e.appendUses(randomUses(t, rng, ids, 1500, e.clock.Now())...)
				cfg := e.config()
				cfg.BatchSize = 50
				first := e.start(cfg)
				stacktest.Eventually(t, time.Minute, func() bool { return first.w.Stats().Events >= 300 }, "300 events applied")
				if err := first.stop(); err != nil {
					t.Fatal(err)
				}
				if n := first.w.Stats().Events; n >= 1500 {
					t.Fatalf("the first consumer applied all %d events before it was stopped", n)
				}
				e.appendUses(randomUses(t, rng, ids, 500, e.clock.Now())...)
				second := e.start(cfg)
				waitSlid(t, second.w, e.usageLast())
				if got := first.w.Stats().Events + second.w.Stats().Events; got != 2000 {
					t.Errorf("the two consumers applied %d events, want 2000", got)
				}
			},
		},
		{
			name: "two consumers at once",
			run: func(t *testing.T, e *usageEnv, ids []domain.TokenID, rng *rand.Rand) {
				cfg := e.config()
				cfg.BatchSize = 40
				a, b := e.start(cfg), e.start(cfg)
				for range 30 {
					e.appendUses(randomUses(t, rng, ids, 1+rng.IntN(100), e.clock.Now())...)
				}
				last := e.usageLast()
				// Each consumer counts a batch just after committing it, so
				// the counts can trail the checkpoint for a moment; a count
				// above last would be an event applied twice.
				applied := func() uint64 { return a.w.Stats().Events + b.w.Stats().Events }
				stacktest.Eventually(t, time.Minute, func() bool {
					cp, err := e.proj.Checkpoint(context.Background(), "usage")
					return err == nil && cp == last && applied() >= last
				}, "checkpoint at %d and every event counted", last)
				if got := applied(); got != last {
					t.Errorf("the two consumers applied %d events, want each of %d once", got, last)
				}
			},
		},
		{
			name: "a consumer died after committing",
			run: func(t *testing.T, e *usageEnv, ids []domain.TokenID, rng *rand.Rand) {
				cfg := e.config()
				e.appendUses(randomUses(t, rng, ids, 500, e.clock.Now())...)
				// Events 1..150 are committed, as by a consumer killed
				// right after its commit.
				if _, err := e.proj.ApplyUsageBatch(context.Background(), "usage", e.uses[:150]); err != nil {
					t.Fatal(err)
				}
				second := e.start(cfg)
				waitSlid(t, second.w, e.usageLast())
				if st := second.w.Stats(); st.Events != 350 || st.Redelivered != 0 {
					t.Errorf("stats %+v: want the 350 events after the checkpoint applied, and none read twice", st)
				}
			},
		},
		{
			name: "a durable consumer holds undelivered events",
			run: func(t *testing.T, e *usageEnv, ids []domain.TokenID, rng *rand.Rand) {
				ctx := context.Background()
				e.appendUses(randomUses(t, rng, ids, 600, e.clock.Now())...)
				// A consumer of the usage stream on a durable consumer (as
				// this one was before) fetches the first 200 events and
				// dies without acknowledging them: the server gives them
				// to nobody on that consumer until its ack wait, ten
				// minutes, has passed. The consumer reads from its
				// checkpoint and does not wait for them.
				dead, err := e.js.CreateConsumer(ctx, e.store.Config().UsageStream, jetstream.ConsumerConfig{
					Durable: "usage", AckPolicy: jetstream.AckAllPolicy, AckWait: 10 * time.Minute, MaxAckPending: 1000,
				})
				if err != nil {
					t.Fatal(err)
				}
				held, err := dead.Fetch(200, jetstream.FetchMaxWait(time.Second))
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				for range held.Messages() {
					n++
				}
				if n != 200 {
					t.Fatalf("the dying consumer fetched %d events, want 200", n)
				}
				begin := time.Now()
				second := e.start(e.config())
				stacktest.Eventually(t, 10*time.Second, func() bool { return second.w.Stats().Events == 600 },
					"all 600 events applied well within the ten-minute ack wait")
				t.Logf("applied 600 events %v after the start", time.Since(begin).Round(time.Millisecond))
				waitSlid(t, second.w, e.usageLast())
				if st := second.w.Stats(); st.Events != 600 || st.Deferred != 0 {
					t.Errorf("stats %+v: want all 600 events applied, none deferred", st)
				}
			},
		},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newUsageEnv(t, nil)
			ids := make([]domain.TokenID, 30)
			for j := range ids {
				id, err := domain.NewTokenID(e.clock.Now(), nil)
				if err != nil {
					t.Fatal(err)
				}
				ids[j] = id
			}
			tc.run(t, e, ids, rand.New(rand.NewPCG(uint64(i), 3)))
			e.requireUsageMatches()
			if cp, err := e.proj.Checkpoint(context.Background(), "usage"); err != nil || cp != e.usageLast() {
				t.Errorf("checkpoint %d, %v; want the stream's last sequence %d", cp, err, e.usageLast())
			}
		})
	}
}

// TestUsageConsumerGivesUpAgedOutEvents lets usage events outlive the usage
// stream's retention before a consumer ever runs: the consumer must move
// its checkpoint past them, say how many uses were lost, and project the
// events the stream still holds.
func TestUsageConsumerGivesUpAgedOutEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	storeCfg := eventstore.DefaultConfig()
	storeCfg.DuplicateWindow = time.Second
	storeCfg.UsageMaxAge = time.Second
	e := newUsageEnvWith(t, nil, storeCfg)
	rng := rand.New(rand.NewPCG(6, 6))
	ids := []domain.TokenID{newUsageTokenID(t), newUsageTokenID(t)}
	lost := e.appendUses(randomUses(t, rng, ids, 50, e.clock.Now())...)
	stacktest.Eventually(t, time.Minute, func() bool {
		info, err := e.store.State(ctx, eventstore.Usage)
		return err == nil && info.Msgs == 0
	}, "the first events aged out")
	e.uses = nil
	last := e.appendUses(randomUses(t, rng, ids, 30, e.clock.Now())...)

	r := e.start(e.config())
	waitSlid(t, r.w, last)
	e.requireUsageMatches()
	if st := r.w.Stats(); st.AgedOut != lost || st.Events != last-lost {
		t.Errorf("stats %+v: want %d events aged out and %d applied", st, lost, last-lost)
	}
	if n := e.logs.count("aged out of the usage stream before they were projected"); n != 1 {
		t.Errorf("the loss was logged %d times, want once", n)
	}
}

// TestUsageConsumerStatusAndReadiness checks the lag and readiness a
// consumer reports before it runs, while it runs and after it caught up.
func TestUsageConsumerStatusAndReadiness(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newUsageEnv(t, nil)
	id, err := domain.NewTokenID(e.clock.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(4, 4))
	last := e.appendUses(randomUses(t, rng, []domain.TokenID{id}, 120, e.clock.Now())...)

	idle, err := consumers.NewUsageConsumer(e.store, e.proj, e.config())
	if err != nil {
		t.Fatal(err)
	}
	st, err := idle.Progress(ctx)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	if st.Checkpoint != 0 || st.StreamFirst != 1 || st.StreamLast != last || st.LagEvents != last || st.LagSeconds < 0 {
		t.Errorf("status before running: %+v; want checkpoint 0 and %d events of lag", st, last)
	}
	if err := idle.Ready(ctx, ^uint64(0)); !errors.Is(err, consumers.ErrNotRunning) {
		t.Errorf("Ready before Run: %v, want ErrNotRunning", err)
	}

	r := e.start(e.config())
	waitSlid(t, r.w, last)
	if err := r.w.Ready(ctx, 0); err != nil {
		t.Errorf("Ready after catching up: %v", err)
	}
	st, err = r.w.Progress(ctx)
	if err != nil || st.Checkpoint != last || st.LagEvents != 0 || st.LagSeconds != 0 || st.Halted != nil || st.LastError != "" {
		t.Errorf("status after catching up: %+v, %v", st, err)
	}
	if st.Stats.Events != 120 {
		t.Errorf("status stats %+v: want 120 events", st.Stats)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if err := r.w.Ready(ctx, 0); !errors.Is(err, consumers.ErrNotRunning) {
		t.Errorf("Ready after Run returned: %v, want ErrNotRunning", err)
	}
	if err := r.w.Run(ctx); err == nil {
		t.Error("a second Run was accepted")
	}
}

// TestUsageConfigValidate checks that every problem of a configuration is
// reported.
func TestUsageConfigValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		cfg  consumers.UsageConfig
		want []string
	}{
		{"defaults", consumers.UsageConfig{}, nil},
		{"bad name", consumers.UsageConfig{Name: "us.age"}, []string{"only ASCII letters"}},
		{"batch too large", consumers.UsageConfig{BatchSize: consumers.MaxUsageBatchSize + 1}, []string{"batch size"}},
		{"negative batch", consumers.UsageConfig{BatchSize: -1}, []string{"batch size"}},
		{"retry bounds", consumers.UsageConfig{RetryInitial: time.Second, RetryMax: time.Millisecond}, []string{"retry max"}},
		{"invalid policy", consumers.UsageConfig{Policy: domain.Policy{DefaultLifetime: time.Hour}}, []string{"policy"}},
		{"several at once", consumers.UsageConfig{BatchSize: -1, MaxWait: -time.Second}, []string{"batch size", "max wait"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted %+v", tc.cfg)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// usageLogs collects log output from many goroutines.
type usageLogs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *usageLogs) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// count returns how many log lines contain s.
func (b *usageLogs) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for line := range strings.SplitSeq(b.buf.String(), "\n") {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

func (b *usageLogs) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	lines := strings.Split(strings.TrimRight(b.buf.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
