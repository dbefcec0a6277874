package consumers_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tokenledger/tokenledger/consumers"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/internal/testkit/projectionstest"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/migrations"
	"github.com/tokenledger/tokenledger/projections"
	"github.com/tokenledger/tokenledger/stack"
)

func TestMain(m *testing.M) { stacktest.Main(m) }

// env is one test's world: its own JetStream server and event store, and
// a migrated database with a projections store whose clock is the
// writer's.
type env struct {
	t     *testing.T
	srv   *stack.NATS
	js    jetstream.JetStream
	store *eventstore.Store
	proj  *projections.ReadModel
	w     *writer
	logs  *logBuffer
}

// newEnv builds an env on pool (nil: a fresh database of the shared
// cluster).
func newEnv(t *testing.T, pool *pgxpool.Pool, seed uint64) *env {
	t.Helper()
	ctx := context.Background()
	srv := stacktest.NATS(t)
	nc := stacktest.Conn(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	store, err := eventstore.Open(ctx, nc, domain.NewDefaultRegistry(), eventstore.DefaultConfig())
	if err != nil {
		t.Fatalf("open event store: %v", err)
	}
	t.Cleanup(func() { _ = store.Close() })
	if pool == nil {
		pool = stacktest.PostgresPool(t)
	}
	migrate(t, pool)
	e := &env{t: t, srv: srv, js: js, store: store, w: newWriter(t, store, seed, 50), logs: &logBuffer{}}
	e.proj = projections.New(pool, projections.WithClock(e.w.clock))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("projector logs:\n%s", e.logs.tail(80))
		}
	})
	return e
}

func migrate(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	defer conn.Release()
	if err := migrations.Migrate(ctx, conn.Conn()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
}

// testConfig retries quickly and logs everything, so that a test can
// count how often a halted projector read its event again.
func (e *env) testConfig() consumers.LifecycleConfig {
	return consumers.LifecycleConfig{
		Name:         "lifecycle",
		RetryInitial: 20 * time.Millisecond,
		RetryMax:     500 * time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// worker is what both projection workers offer a test: run until the
// context ends, and say whether they are consuming.
type worker interface {
	Run(ctx context.Context) error
	Ready(ctx context.Context, maxLag uint64) error
}

// workerRun is a worker's Run in its own goroutine.
type workerRun[W worker] struct {
	w      W
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// running is a lifecycle projector's run.
type running = workerRun[*consumers.LifecycleProjector]

// runWorker runs w until the test ends (a Run error fails the test) and
// waits until it consumes.
func runWorker[W worker](t testing.TB, what string, w W) *workerRun[W] {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &workerRun[W]{w: w, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- w.Run(ctx) }()
	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("%s Run: %v", what, err)
		}
	})
	stacktest.Eventually(t, 30*time.Second, func() bool {
		return !errors.Is(w.Ready(context.Background(), ^uint64(0)), consumers.ErrNotRunning)
	}, what+" consuming")
	return r
}

// start runs a projector with cfg on a connection of its own, and stops
// it at cleanup. It waits until the projector consumes.
func (e *env) start(cfg consumers.LifecycleConfig) *running {
	e.t.Helper()
	conn, err := e.srv.Connect(nats.Name("watermill-" + cfg.Name))
	if err != nil {
		e.t.Fatalf("connect: %v", err)
	}
	p, err := consumers.NewLifecycleProjector(e.store, conn, e.proj, cfg)
	if err != nil {
		e.t.Fatalf("new projector: %v", err)
	}
	return runWorker(e.t, "projector", p)
}

// stop cancels Run and returns its result.
func (r *workerRun[W]) stop() error {
	r.once.Do(func() {
		r.cancel()
		select {
		case r.err = <-r.done:
		case <-time.After(time.Minute):
			r.err = errors.New("Run did not return within a minute of its context ending")
		}
	})
	return r.err
}

// last returns the lifecycle stream's last sequence.
func (e *env) last() uint64 {
	e.t.Helper()
	last, err := e.store.StreamLastSequence(context.Background())
	if err != nil {
		e.t.Fatalf("stream last sequence: %v", err)
	}
	return last
}

func (e *env) checkpoint(name string) uint64 {
	e.t.Helper()
	cp, err := e.proj.Checkpoint(context.Background(), name)
	if err != nil {
		e.t.Fatalf("checkpoint: %v", err)
	}
	return cp
}

// waitCaughtUp waits until projection name's checkpoint is seq.
func (e *env) waitCaughtUp(name string, seq uint64, timeout time.Duration) {
	e.t.Helper()
	stacktest.Eventually(e.t, timeout, func() bool {
		cp, err := e.proj.Checkpoint(context.Background(), name)
		return err == nil && cp == seq
	}, "checkpoint of %q reaches %d", name, seq)
}

// fold reads the lifecycle stream back and folds it with domain.State,
// stepping over the sequences that do not decode, which it returns.
func (e *env) fold() (state *domain.State, last uint64, undecodable []uint64) {
	e.t.Helper()
	ctx := context.Background()
	state = domain.NewState()
	last = e.last()
	from := uint64(1)
	for from <= last {
		got, err := e.store.Read(ctx, from, func(ev domain.Envelope) error {
			state.Apply(ev)
			return nil
		})
		var de *eventstore.DecodeError
		switch {
		case errors.As(err, &de):
			undecodable = append(undecodable, de.Sequence)
			from = de.Sequence + 1
		case err != nil:
			e.t.Fatalf("read the stream from %d: %v", from, err)
		default:
			from = got + 1
		}
	}
	return state, last, undecodable
}

// requireMatchesFold fails the test unless projection name equals the fold
// of the stream, column by column and in status at the writer's clock,
// with its checkpoint at the stream's end.
func (e *env) requireMatchesFold(name string) *domain.State {
	e.t.Helper()
	state, last, _ := e.fold()
	projectionstest.RequireMatchesState(e.t, e.proj, name, state, last, e.w.clock.Now())
	return state
}

// logBuffer collects log output safely from many goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines returns the log lines containing every one of parts.
func (b *logBuffer) lines(parts ...string) []string {
	var out []string
	for line := range strings.SplitSeq(b.String(), "\n") {
		ok := line != ""
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

func (b *logBuffer) tail(n int) string {
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
