package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/internal/testkit/projectionstest"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/internal/testkit/storetest"
	"github.com/tokenledger/tokenledger/projections"
)

// proc is a running tokenledger process.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr syncBuffer
	exited         chan struct{}
	waitErr        error
}

// startBinary starts tokenledger with args and extra environment
// variables; the test's cleanup kills it if it still runs.
func startBinary(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	bin, err := buildBinary()
	if err != nil {
		t.Fatalf("build tokenledger: %v", err)
	}
	p := &proc{cmd: exec.Command(bin, args...), exited: make(chan struct{})}
	p.cmd.Env = append(cleanEnv(), env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start tokenledger: %v", err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
	return p
}

// running reports whether the process has not exited yet.
func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits until the process is gone; it fails the
// test if the process had exited by itself before.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	if !p.running() {
		t.Fatalf("tokenledger exited by itself (%v); stderr:\n%s", p.waitErr, p.stderr.String())
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited
	ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("tokenledger ended with %v, not by SIGKILL; stderr:\n%s", p.waitErr, p.stderr.String())
	}
}

// stop sends SIGTERM and expects a clean exit within the shutdown timeout.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
		if p.waitErr != nil {
			t.Fatalf("tokenledger exited with %v after SIGTERM; stderr:\n%s", p.waitErr, p.stderr.String())
		}
	case <-time.After(defaultShutdownTimeout + 5*time.Second):
		t.Fatalf("tokenledger did not stop within %v of SIGTERM; stderr:\n%s", defaultShutdownTimeout+5*time.Second, p.stderr.String())
	}
}

var healthAddrLine = regexp.MustCompile(`msg="health endpoint listening" addr=(\S+)`)

// healthURL waits for the log line naming the health endpoint's address.
func (p *proc) healthURL(t *testing.T) string {
	t.Helper()
	var addr string
	stacktest.Eventually(t, time.Minute, func() bool {
		if m := healthAddrLine.FindStringSubmatch(p.stderr.String()); m != nil {
			addr = m[1]
			return true
		}
		if !p.running() {
			t.Fatalf("tokenledger exited (%v); stderr:\n%s", p.waitErr, p.stderr.String())
		}
		return false
	}, "the health endpoint's address in the log")
	return "http://" + addr
}

// testStack is a NATS server with the event streams and a migrated
// database, for tokenledger processes to work on.
type testStack struct {
	natsURL, postgresURL string
	store                *eventstore.Store
	pool                 *pgxpool.Pool
}

func newTestStack(t *testing.T) *testStack {
	t.Helper()
	natsURL := stacktest.NATSProcess(t)
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatalf("connect to nats-server: %v", err)
	}
	t.Cleanup(nc.Close)
	store, err := eventstore.Open(context.Background(), nc, domain.NewDefaultRegistry(), eventstore.DefaultConfig())
	if err != nil {
		t.Fatalf("open event store: %v", err)
	}
	t.Cleanup(func() { _ = store.Close() })
	s := &testStack{natsURL: natsURL, postgresURL: stacktest.PostgresURL(t), store: store}
	if r := runBinary(t, nil, "migrate", "--postgres-url", s.postgresURL); r.code != 0 {
		t.Fatalf("migrate: exit %d: %s", r.code, r.stderr)
	}
	s.pool, err = pgxpool.New(context.Background(), s.postgresURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.pool.Close)
	return s
}

// env configures a tokenledger process for the stack, through the
// environment as a deployment would.
func (s *testStack) env() []string {
	return []string{"TOKENLEDGER_NATS_URL=" + s.natsURL, "TOKENLEDGER_POSTGRES_URL=" + s.postgresURL}
}

func (s *testStack) checkpoint(t *testing.T) uint64 {
	t.Helper()
	return s.checkpointOf(t, "lifecycle")
}

func (s *testStack) checkpointOf(t *testing.T, name string) uint64 {
	t.Helper()
	var seq int64
	err := s.pool.QueryRow(context.Background(), `SELECT last_seq FROM projection_checkpoints WHERE name = $1`, name).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0
	}
	if err != nil {
		t.Fatalf("read checkpoint: %v", err)
	}
	return uint64(seq)
}

func (s *testStack) streamLast(t *testing.T) uint64 {
	t.Helper()
	last, err := s.store.StreamLastSequence(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return last
}

// lifecycleHistory is projectionstest.LifecycleHistory's events.
func lifecycleHistory(seed uint64, n int) []domain.Envelope {
	events, _ := projectionstest.LifecycleHistory(seed, n)
	return events
}

// appendBatched appends events in order, in atomic batches: faster than
// storetest.AppendAll for a history to start from.
func appendBatched(ctx context.Context, store *eventstore.Store, events []domain.Envelope) error {
	for i := 0; i < len(events); i += 200 {
		batch := events[i:min(i+200, len(events))]
		if _, err := store.AppendAtomic(ctx, eventstore.Change{Expect: eventstore.ExpectNothing(), Events: batch}); err != nil {
			return fmt.Errorf("append events %d..%d: %w", i, i+len(batch)-1, err)
		}
	}
	return nil
}

// writeLogSQL records every row the projection writes, committed or not
// (a rolled-back transaction takes its records with it): the key of the
// row and the last_seq it was written with.
const writeLogSQL = `
CREATE TABLE write_log (tbl text NOT NULL, key text NOT NULL, last_seq bigint NOT NULL);
CREATE FUNCTION log_token_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO write_log VALUES ('tokens', NEW.id::text, NEW.last_seq); RETURN NEW; END $$;
CREATE FUNCTION log_owner_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO write_log VALUES ('owner_revocations', NEW.owner, NEW.last_seq); RETURN NEW; END $$;
CREATE TRIGGER tokens_write_log AFTER INSERT OR UPDATE ON tokens FOR EACH ROW EXECUTE FUNCTION log_token_write();
CREATE TRIGGER owners_write_log AFTER INSERT OR UPDATE ON owner_revocations FOR EACH ROW EXECUTE FUNCTION log_owner_write();`

// TestProjectSurvivesSIGKILL is the crash test of the projection workers:
// `tokenledger project` runs as a subprocess and is killed with SIGKILL at
// random moments, at least twenty of them while it is consuming a catch-up
// of 10,000 events (and more arriving), and restarted each time. Then it
// catches up and must hold exactly the fold of the stream, with its
// checkpoint at the stream's end, every event applied exactly once. Each
// restart must make progress within restartBound: the server keeps no
// delivery of a killed projector that the next one would wait for (a
// durable consumer held it for its ack wait, 30 s by default).
//
// SIGKILL of a separate process is the honest test: it stops the process
// between any two instructions, with a commit in flight, written but not
// acknowledged, or acknowledged but not yet recorded by JetStream, exactly
// as a crash or the OOM killer does. Cancelling a context in the same
// process cannot do that: the projector would see the cancellation at its
// next check, finish or roll back the statement in flight, and hand the
// event back, which tests the graceful path instead of the crash.
func TestProjectSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newTestStack(t)
	if _, err := s.pool.Exec(ctx, writeLogSQL); err != nil {
		t.Fatalf("install the write log: %v", err)
	}
	// The projector catches up at tens of thousands of events a second,
	// so that most kills land while it consumes, every run starts with a
	// backlog: the history, then a chunk appended before each start from
	// the third on.
	const chunk = 1_500
	events := lifecycleHistory(51, 10_000+30*chunk)
	initial, more := events[:10_000], events[10_000:]
	start := time.Now()
	if err := appendBatched(ctx, s.store, initial); err != nil {
		t.Fatal(err)
	}
	t.Logf("appended %d events in %v", len(initial), time.Since(start).Round(time.Millisecond))
	start = time.Now()

	seed := uint64(time.Now().UnixNano())
	t.Logf("kill schedule seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	args := []string{"project", "--health-listen", "off", "--retry-initial", "20ms", "--retry-max", "300ms"}

	const (
		startupKills   = 4
		consumingKills = 20
	)
	var kills, whileConsuming int
	var killedAt []uint64
	var resumed []time.Duration
	for whileConsuming < consumingKills || kills < consumingKills+startupKills {
		if kills >= 2 && len(more) > 0 {
			// From the third run on, events also arrive between a kill
			// and the restart.
			n := min(chunk, len(more))
			if _, err := storetest.AppendAll(ctx, s.store, more[:n]); err != nil {
				t.Fatal(err)
			}
			more = more[n:]
		}
		from := s.checkpoint(t)
		started := time.Now()
		p := startBinary(t, s.env(), args...)
		if kills%6 == 5 {
			// Killed at a random moment of its start-up: connecting,
			// checking the schema, creating its consumer.
			<-time.After(time.Duration(rng.IntN(150)) * time.Millisecond)
		} else {
			// Killed a random number of events into its work, then a
			// random fraction of an event later.
			target := from + 1 + uint64(rng.IntN(250))
			behind := from < s.streamLast(t)
			var progress time.Duration
			stacktest.Eventually(t, time.Minute, func() bool {
				if !p.running() {
					t.Fatalf("tokenledger project exited by itself (%v); stderr:\n%s", p.waitErr, p.stderr.String())
				}
				cp := s.checkpoint(t)
				if progress == 0 && cp > from {
					progress = time.Since(started)
				}
				return cp >= min(target, s.streamLast(t))
			}, "projector %d reaches sequence %d", kills+1, target)
			if behind {
				requireResumed(t, "projector", kills+1, progress)
				resumed = append(resumed, progress)
			}
			<-time.After(time.Duration(rng.IntN(2000)) * time.Microsecond)
		}
		p.kill(t)
		kills++
		at := s.checkpoint(t)
		killedAt = append(killedAt, at)
		if at > from && at < s.streamLast(t) {
			whileConsuming++
		}
		if kills > 100 {
			t.Fatalf("only %d of %d kills happened while consuming: %v", whileConsuming, kills, killedAt)
		}
	}
	t.Logf("%d kills in %v, %d while consuming, at checkpoints %v", kills, time.Since(start).Round(time.Millisecond), whileConsuming, killedAt)
	t.Logf("time from start to first progress of each restart (process start included): %v", resumed)
	start = time.Now()
	if _, err := storetest.AppendAll(ctx, s.store, more); err != nil {
		t.Fatal(err)
	}

	// The last run catches up, is ready, and stops cleanly on SIGTERM.
	p := startBinary(t, s.env(), "project", "--health-listen", "127.0.0.1:0", "--ready-max-lag", "0",
		"--retry-initial", "20ms", "--retry-max", "300ms")
	url := p.healthURL(t) + "/readyz"
	last := s.streamLast(t)
	stacktest.Eventually(t, 2*time.Minute, func() bool {
		var body struct {
			Ready      bool   `json:"ready"`
			Checkpoint uint64 `json:"checkpoint"`
		}
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusOK && json.Unmarshal(raw, &body) == nil && body.Ready && body.Checkpoint == last
	}, "/readyz says ready at sequence %d", last)
	p.stop(t)
	t.Logf("caught up from %d to %d in %v", killedAt[len(killedAt)-1], last, time.Since(start).Round(time.Millisecond))

	if cp := s.checkpoint(t); cp != last {
		t.Fatalf("checkpoint %d after the catch-up, stream ends at %d", cp, last)
	}
	stream := storetest.ReadAll(t, s.store)
	if uint64(len(stream)) != last {
		t.Fatalf("read %d events, stream ends at %d", len(stream), last)
	}
	projectionstest.RequireMatchesState(t, projections.New(s.pool), "lifecycle", projectionstest.Fold(stream), last, time.Time{})
	checkAppliedOnce(t, s.pool, stream)
}

// checkAppliedOnce checks the write log against the stream: no row was
// written twice with the same last_seq (an event applied twice writes its
// row twice with its sequence), every write is of an event of that row's
// aggregate (nothing applied out of thin air), and the final write of every
// row is its aggregate's last event (nothing left out at the end).
func checkAppliedOnce(t *testing.T, pool *pgxpool.Pool, stream []domain.Envelope) {
	t.Helper()
	ctx := context.Background()
	type key struct {
		tbl, key string
		seq      int64
	}
	belongs := make(map[key]bool, len(stream))
	// A family revocation (an owner event) writes its members' rows once
	// more, leaving their last_seq, the sequence of their own last event,
	// as it is: such a row may be written once for its event and once for
	// each family revocation after it.
	family := map[string]domain.TokenID{}
	var familyRevoked []domain.Envelope
	for _, e := range stream {
		switch e.AggregateKind {
		case domain.AggregateToken:
			id, ok := e.TokenID()
			if !ok {
				continue
			}
			belongs[key{"tokens", uuidText(id), int64(e.Sequence)}] = true
			// The first issued event of a token counts (an odd history
			// issues some twice; the projection ignores the second).
			if _, seen := family[uuidText(id)]; seen {
				continue
			}
			if d, ok := e.Data.(domain.TokenIssued); ok {
				family[uuidText(id)] = id
				if d.Family != nil {
					family[uuidText(id)] = *d.Family
				}
			}
		case domain.AggregateOwner:
			belongs[key{"owner_revocations", e.AggregateID, int64(e.Sequence)}] = true
			if e.Type == domain.TypeOwnerFamilyRevoked {
				familyRevoked = append(familyRevoked, e)
			}
		}
	}
	allowed := func(k key) int {
		n := 1
		if k.tbl != "tokens" {
			return n
		}
		for _, e := range familyRevoked {
			if d, ok := e.Data.(domain.OwnerFamilyRevoked); ok && d.Family == family[k.key] && int64(e.Sequence) > k.seq {
				n++
			}
		}
		return n
	}
	rows, err := pool.Query(ctx, `SELECT tbl, key, last_seq, count(*) FROM write_log GROUP BY 1, 2, 3`)
	if err != nil {
		t.Fatal(err)
	}
	writes := 0
	var problems []string
	for rows.Next() {
		var k key
		var n int
		if err := rows.Scan(&k.tbl, &k.key, &k.seq, &n); err != nil {
			t.Fatal(err)
		}
		writes += n
		if n > allowed(k) {
			problems = append(problems, fmt.Sprintf("%s %s written %d times with last_seq %d: an event applied more than once", k.tbl, k.key, n, k.seq))
		}
		if !belongs[k] {
			problems = append(problems, fmt.Sprintf("%s %s written with last_seq %d, which is no event of it", k.tbl, k.key, k.seq))
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var unlogged int
	if err := pool.QueryRow(ctx, `
SELECT (SELECT count(*) FROM tokens t WHERE NOT EXISTS (
          SELECT 1 FROM write_log w WHERE w.tbl = 'tokens' AND w.key = t.id::text AND w.last_seq = t.last_seq))
     + (SELECT count(*) FROM owner_revocations o WHERE NOT EXISTS (
          SELECT 1 FROM write_log w WHERE w.tbl = 'owner_revocations' AND w.key = o.owner AND w.last_seq = o.last_seq))`).Scan(&unlogged); err != nil {
		t.Fatal(err)
	}
	if unlogged > 0 {
		problems = append(problems, fmt.Sprintf("%d rows hold a last_seq no logged write gave them", unlogged))
	}
	if len(problems) > 0 {
		t.Fatalf("%d problems in %d writes, first: %s", len(problems), writes, problems[0])
	}
	if writes == 0 {
		t.Fatal("the write log is empty: the check checked nothing")
	}
	t.Logf("%d row writes, each of a distinct event (or of a family revocation after it)", writes)
}

// uuidText is a token id as PostgreSQL prints a uuid.
func uuidText(id domain.TokenID) string {
	b := id[:]
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// restartBound is the longest a restarted `project` may take, from the
// start of its process, to make progress again. It is a bound, not a
// speed: far below the ack wait a durable consumer would make a killed
// worker's successor wait out (30 s by default), far above the time a
// worker that reads from its checkpoint needs.
const restartBound = 10 * time.Second

// requireResumed fails the test if the n-th run of a worker took longer
// than restartBound to make progress (0: it made none).
func requireResumed(t *testing.T, worker string, n int, progress time.Duration) {
	t.Helper()
	if progress == 0 || progress > restartBound {
		t.Fatalf("%s run %d made its first progress after %v, want within %v of its start", worker, n, progress, restartBound)
	}
}

// TestProjectUsageSurvivesSIGKILL is the crash test of the usage consumer:
// `tokenledger project` works through 20,000 usage events (token.used
// events and, every tenth, a usage batch of up to 40 tokens) in batches
// of 100 and is killed with SIGKILL at random moments mid-batch, ten
// times, and restarted each time. Every restart must make progress within
// restartBound, and in the end every use is counted exactly once: the
// usage table holds, per token, the sum of its uses' counts.
func TestProjectUsageSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newTestStack(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	base := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	ids := make([]domain.TokenID, 300)
	for i := range ids {
		id, err := domain.NewTokenID(base, nil)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	want := make(map[string]uint64, len(ids))
	uses := make([]domain.Envelope, 20_000)
	for i := range uses {
		last := base.Add(time.Duration(i) * time.Millisecond)
		if i%10 == 9 {
			// Every tenth event is a usage batch, as validators write
			// them now, of up to 40 tokens.
			var batch []domain.TokenUse
			for _, k := range rng.Perm(len(ids))[:1+rng.IntN(40)] {
				count := uint64(1 + rng.IntN(20))
				batch = append(batch, domain.TokenUse{Token: ids[k], Count: count, FirstAt: last, LastAt: last})
				want[uuidText(ids[k])] += count
			}
			events, err := domain.RecordUsage(batch, domain.Meta{Actor: "validator:test"}, last, 0)
			if err != nil || len(events) != 1 {
				t.Fatalf("record usage: %d batches, %v", len(events), err)
			}
			uses[i] = events[0]
			continue
		}
		id := ids[rng.IntN(len(ids))]
		count := uint64(1 + rng.IntN(20))
		eid, err := domain.NewEventID(last, nil)
		if err != nil {
			t.Fatal(err)
		}
		uses[i] = domain.Envelope{
			ID: eid, Type: domain.TypeTokenUsed, AggregateKind: domain.AggregateToken, AggregateID: id.String(),
			Actor: "validator:test", Time: domain.NormalizeTime(last), Schema: 1,
			Data: domain.TokenUsed{Count: count, FirstAt: domain.NormalizeTime(last), LastAt: domain.NormalizeTime(last)},
		}
		want[uuidText(id)] += count
	}
	for i := 0; i < len(uses); i += 500 {
		if _, err := s.store.AppendUsage(ctx, uses[i:min(i+500, len(uses))]...); err != nil {
			t.Fatalf("append usage: %v", err)
		}
	}
	info, err := s.store.State(ctx, eventstore.Usage)
	if err != nil {
		t.Fatal(err)
	}
	last := info.Last

	args := []string{"project", "--health-listen", "off", "--retry-initial", "20ms", "--retry-max", "300ms",
		"--usage-batch", "100", "--usage-max-wait", "20ms"}
	var killedAt []uint64
	var resumed []time.Duration
	for len(killedAt) < 10 {
		from := s.checkpointOf(t, "usage")
		if from >= last {
			t.Fatalf("the usage projection reached the stream's end after %d kills: %v", len(killedAt), killedAt)
		}
		started := time.Now()
		p := startBinary(t, s.env(), args...)
		target := from + 1 + uint64(rng.IntN(1500))
		var progress time.Duration
		stacktest.Eventually(t, time.Minute, func() bool {
			if !p.running() {
				t.Fatalf("tokenledger project exited by itself (%v); stderr:\n%s", p.waitErr, p.stderr.String())
			}
			cp := s.checkpointOf(t, "usage")
			if progress == 0 && cp > from {
				progress = time.Since(started)
			}
			return cp >= min(target, last)
		}, "usage consumer run %d reaches sequence %d", len(killedAt)+1, target)
		requireResumed(t, "usage consumer", len(killedAt)+1, progress)
		resumed = append(resumed, progress)
		<-time.After(time.Duration(rng.IntN(5000)) * time.Microsecond)
		p.kill(t)
		killedAt = append(killedAt, s.checkpointOf(t, "usage"))
	}
	t.Logf("killed at usage checkpoints %v; first progress after each start %v", killedAt, resumed)

	p := startBinary(t, s.env(), args...)
	stacktest.Eventually(t, 2*time.Minute, func() bool { return s.checkpointOf(t, "usage") == last }, "usage checkpoint at %d", last)
	p.stop(t)

	rows, err := s.pool.Query(ctx, `SELECT token_id::text, use_count FROM token_usage`)
	if err != nil {
		t.Fatal(err)
	}
	got := make(map[string]uint64, len(want))
	for rows.Next() {
		var id string
		var n int64
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		got[id] = uint64(n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("token_usage holds %d tokens, want %d", len(got), len(want))
	}
	for id, n := range want {
		if got[id] != n {
			t.Errorf("token %s: use_count %d, want %d (each use counted once)", id, got[id], n)
		}
	}
}

// TestProjectStandbyTakesOver runs two `tokenledger project` processes on
// one projection: one leads and projects, the other stands by (its
// /readyz says so) and projects nothing. While events keep arriving, the
// leader is killed with SIGKILL, five times, each time with a new standby
// started: each standby must lead and make progress within restartBound,
// and in the end every event is applied exactly once and the read model
// equals the fold of the stream.
func TestProjectStandbyTakesOver(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newTestStack(t)
	if _, err := s.pool.Exec(ctx, writeLogSQL); err != nil {
		t.Fatalf("install the write log: %v", err)
	}
	events := lifecycleHistory(52, 8_000)
	initial, more := events[:2_000], events[2_000:]
	if err := appendBatched(ctx, s.store, initial); err != nil {
		t.Fatal(err)
	}
	// Events keep arriving, a few at a time, until the kills are over. The
	// background appender leaves a reserve, so that however long the
	// processes take to start, each round still has events to project:
	// feed appends the next few in stream order.
	const reserve = 200
	var appendMu sync.Mutex
	feed := func(n int) error {
		appendMu.Lock()
		defer appendMu.Unlock()
		n = min(n, len(more))
		_, err := storetest.AppendAll(ctx, s.store, more[:n])
		more = more[n:]
		return err
	}
	stopAppending := make(chan struct{})
	appended := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stopAppending:
				appended <- feed(len(more))
				return
			case <-time.After(5 * time.Millisecond):
			}
			appendMu.Lock()
			left := len(more)
			appendMu.Unlock()
			if left <= reserve {
				continue
			}
			if err := feed(10); err != nil {
				appended <- err
				return
			}
		}
	}()
	// progressed waits until the checkpoint passes from, feeding events
	// meanwhile.
	progressed := func(from uint64, format string, args ...any) {
		t.Helper()
		stacktest.Eventually(t, time.Minute, func() bool {
			if s.checkpoint(t) > from {
				return true
			}
			if err := feed(2); err != nil {
				t.Error(err)
				return true
			}
			return false
		}, append([]any{format}, args...)...)
	}

	args := []string{"project", "--health-listen", "127.0.0.1:0", "--retry-initial", "20ms", "--retry-max", "300ms"}
	role := func(p *proc) string {
		resp, err := http.Get(p.healthURL(t) + "/readyz")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Header.Get("X-Tokenledger-Role")
	}
	waitRole := func(p *proc, want string, timeout time.Duration) {
		t.Helper()
		var r string
		stacktest.Eventually(t, timeout, func() bool {
			if r = role(p); r == want {
				return true
			}
			if !p.running() {
				t.Fatalf("the process exited (%v) as %q, want %q; its stderr:\n%s", p.waitErr, r, want, p.stderr.String())
			}
			return false
		}, "%v", stacktest.Lazy(func() string {
			return fmt.Sprintf("the process is %q, want %q; its stderr:\n%s", r, want, p.stderr.String())
		}))
	}
	leaderProc := startBinary(t, s.env(), args...)
	waitRole(leaderProc, "active", time.Minute)
	var takeovers []time.Duration
	for i := range 5 {
		standby := startBinary(t, s.env(), args...)
		waitRole(standby, "standby", time.Minute)
		// The leader projects while the standby waits.
		progressed(s.checkpoint(t), "the leader projects")
		leaderProc.kill(t)
		killed := time.Now()
		waitRole(standby, "active", restartBound)
		progressed(s.checkpoint(t), "standby %d projects", i+1)
		progress := time.Since(killed)
		requireResumed(t, "standby", i+1, progress)
		takeovers = append(takeovers, progress)
		leaderProc = standby
	}
	t.Logf("time from the leader's SIGKILL to the standby's first progress: %v", takeovers)
	close(stopAppending)
	if err := <-appended; err != nil {
		t.Fatal(err)
	}
	last := s.streamLast(t)
	stacktest.Eventually(t, 2*time.Minute, func() bool { return s.checkpoint(t) == last }, "the last leader catches up")
	leaderProc.stop(t)
	stream := storetest.ReadAll(t, s.store)
	projectionstest.RequireMatchesState(t, projections.New(s.pool), "lifecycle", projectionstest.Fold(stream), last, time.Time{})
	checkAppliedOnce(t, s.pool, stream)
}
