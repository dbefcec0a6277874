package consumers_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/consumers"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/projections"
)

// TestLifecycleProjectorMatchesFold projects 10,000 random lifecycle
// events over 1,000 tokens and 50 owners, appended through the event store
// under their expectations, and compares every row, column by column, with
// the fold of the events read back from the store.
func TestLifecycleProjectorMatchesFold(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, nil, 1)
	e.w.appendEvents(10_000, 1_000)
	last := e.last()
	if e.w.issued != 1_000 || e.w.uses == 0 {
		t.Fatalf("history has %d tokens and %d uses, want 1000 tokens and some uses", e.w.issued, e.w.uses)
	}

	begin := time.Now()
	r := e.start(e.testConfig())
	e.waitCaughtUp("lifecycle", last, 3*time.Minute)
	elapsed := time.Since(begin)
	t.Logf("caught up with %d events in %v: %.0f events/s, a batch per transaction", last, elapsed.Round(time.Millisecond), float64(last)/elapsed.Seconds())

	// Events appended while the projector follows the stream.
	begin = time.Now()
	e.w.appendEvents(500, 1_050)
	live := e.last()
	e.waitCaughtUp("lifecycle", live, time.Minute)
	elapsed = time.Since(begin)
	t.Logf("followed %d live events (appended and projected) in %v: %.0f events/s", live-last, elapsed.Round(time.Millisecond), float64(live-last)/elapsed.Seconds())

	e.requireMatchesFold("lifecycle")

	st, err := r.w.Progress(ctx)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	want := projections.Progress{Name: "lifecycle", Checkpoint: live, StreamLast: live}
	if st.Name != want.Name || st.Checkpoint != want.Checkpoint || st.StreamLast != want.StreamLast ||
		st.LagEvents != 0 || st.LagSeconds != 0 || st.Halted != nil || st.Skipped != nil || st.LastError != "" {
		t.Errorf("Status = %+v, want %+v", st, want)
	}
	if err := r.w.Ready(ctx, 0); err != nil {
		t.Errorf("Ready(0) once caught up: %v", err)
	}
}

// TestLifecycleProjectorRestart stops a projector mid-stream and starts
// another with the same name: it continues where the first stopped, from
// the checkpoint, and applies no event twice.
func TestLifecycleProjectorRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, 2)
	e.w.appendEvents(3_000, 300)
	cfg := e.testConfig()

	first := e.start(cfg)
	stacktest.Eventually(t, time.Minute, func() bool { return e.checkpoint("lifecycle") >= 1_000 }, "first projector applied 1000 events")
	if err := first.stop(); err != nil {
		t.Fatalf("first projector's Run: %v", err)
	}
	// The projector catches up at thousands of events a second, so it may
	// have reached the stream's end by the time it stops (the crash tests
	// of cmd/tokenledger stop it mid-batch); the events appended next are
	// then what the second one must continue with.
	stopped := e.checkpoint("lifecycle")
	t.Logf("stopped at checkpoint %d of %d", stopped, e.last())

	e.w.appendEvents(1_000, 400)
	last := e.last()
	begin := time.Now()
	e.start(cfg)
	e.waitCaughtUp("lifecycle", last, 90*time.Second)
	t.Logf("second projector applied %d events in %v", last-stopped, time.Since(begin).Round(time.Millisecond))
	e.requireMatchesFold("lifecycle")
	if n := len(e.logs.lines("reading the stream", "from_sequence="+strconv.FormatUint(stopped+1, 10))); n != 1 {
		t.Errorf("%d log lines say the second projector read from %d, want 1:\n%s", n, stopped+1, e.logs.tail(10))
	}
}

// TestLifecycleProjectorRefillsAnEmptyReadModel points a projector at an
// empty read model after another projector of the same name projected the
// whole stream (a database recreated or restored from an old backup): the
// checkpoint is the truth, so the projector projects everything again.
func TestLifecycleProjectorRefillsAnEmptyReadModel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, 5)
	e.w.appendEvents(300, 60)
	last := e.last()
	first := e.start(e.testConfig())
	e.waitCaughtUp("lifecycle", last, time.Minute)
	if err := first.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	pool := stacktest.PostgresPool(t)
	migrate(t, pool)
	e.proj = projections.New(pool, projections.WithClock(e.w.clock))
	e.start(e.testConfig())
	e.waitCaughtUp("lifecycle", last, time.Minute)
	e.requireMatchesFold("lifecycle")
}

func TestLifecycleConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     consumers.LifecycleConfig
		wantErr []string // substrings, one per expected problem
	}{
		{name: "zero config takes the defaults", cfg: consumers.LifecycleConfig{}},
		{name: "explicit valid config", cfg: consumers.LifecycleConfig{Name: "lifecycle-2_b", RetryInitial: time.Millisecond, RetryMax: time.Second, SkipSequence: 7}},
		{name: "name with a dot is not a consumer name", cfg: consumers.LifecycleConfig{Name: "life.cycle"}, wantErr: []string{"name"}},
		{name: "name too long", cfg: consumers.LifecycleConfig{Name: strings.Repeat("a", 65)}, wantErr: []string{"longer than 64"}},
		{name: "negative retry initial", cfg: consumers.LifecycleConfig{RetryInitial: -time.Second}, wantErr: []string{"negative"}},
		{name: "retry max below retry initial", cfg: consumers.LifecycleConfig{RetryInitial: time.Second, RetryMax: time.Millisecond}, wantErr: []string{"below retry initial"}},
		{
			name:    "every problem at once",
			cfg:     consumers.LifecycleConfig{Name: "a b", RetryInitial: time.Second, RetryMax: time.Millisecond},
			wantErr: []string{"name", "below retry initial"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.Validate()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %d problems", len(tt.wantErr))
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.wantErr) {
				t.Errorf("Validate() reported %d problems, want %d: %v", len(lines), len(tt.wantErr), err)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Validate() = %v, want it to mention %q", err, want)
				}
			}
		})
	}
}

func TestNewLifecycleProjectorRefusesAndClosesTheConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, 3)
	conn, err := e.srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := consumers.NewLifecycleProjector(e.store, conn, nil, consumers.LifecycleConfig{Name: "bad name"}); err == nil {
		t.Fatal("NewLifecycleProjector accepted a nil projections store and an invalid name")
	} else if !strings.Contains(err.Error(), "projections store is required") || !strings.Contains(err.Error(), "name") {
		t.Errorf("error %v does not name both problems", err)
	}
	if !conn.IsClosed() {
		t.Error("the connection handed to a failing NewLifecycleProjector is still open")
	}
}
