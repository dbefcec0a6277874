package webhooks_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/webhooks"
)

// TestDeliversEveryEventSignedInOrder: every lifecycle event after the
// registration reaches a real receiver, signed (checked by an independent
// verifier), each token's events in stream order, although a fifth of the
// attempts get a 500 and are retried.
func TestDeliversEveryEventSignedInOrder(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := newReceiver(t)
	r.answer = func(a arrival, attempt int) (int, time.Duration) {
		if attempt == 1 && a.seq%5 == 0 {
			return http.StatusInternalServerError, 0
		}
		return http.StatusOK, 0
	}
	ep, secret := h.register(r.srv.URL+"/hook", true)
	r.setSecret(secret)
	h.startDispatcher(testConfig())
	from, err := h.store.StreamLastSequence(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	h.workload(40)
	want := h.deliverable(from)

	stacktest.Eventually(t, 60*time.Second, func() bool {
		got := map[string]bool{}
		for _, a := range r.got() {
			if a.verified {
				got[a.id] = true
			}
		}
		return len(got) == len(want)
	}, "every event delivered")
	arrivals := r.got()
	for _, a := range arrivals {
		if !a.verified {
			t.Errorf("delivery of %s failed signature verification", a.id)
		}
		if _, ok := want[a.id]; !ok {
			t.Errorf("delivered %s, which is no event after the registration", a.id)
		}
	}
	checkOrder(t, arrivals, want)

	m := webhooks.NewManager(h.pool, h.store, true, nil)
	stacktest.Eventually(t, 10*time.Second, func() bool {
		ds, err := m.Deliveries(context.Background(), admin, ep.ID, 0, webhooks.MaxDeliveriesPage)
		if err != nil || len(ds) != len(want) {
			return false
		}
		for _, d := range ds {
			if d.Status != webhooks.StatusDelivered {
				return false
			}
		}
		return true
	}, "every delivery listed as delivered")
}

// TestRetriesWithGrowingDelays: an event answered with 500 four times and
// then not answered in time is retried until it is accepted, with the
// same webhook-id each time and pauses between attempts that grow, as the
// receiver's own clock recorded them; the deliveries list shows the
// attempts.
func TestRetriesWithGrowingDelays(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := newReceiver(t)
	cfg := testConfig()
	// Pauses that double from 400 ms grow by far more than a loaded
	// machine's scheduling noise.
	cfg.BackoffInitial = 400 * time.Millisecond
	r.answer = func(a arrival, attempt int) (int, time.Duration) {
		switch {
		case attempt <= 4:
			return http.StatusInternalServerError, 0
		case attempt == 5:
			return http.StatusOK, 2 * cfg.Timeout // answered too late: a timeout
		}
		return http.StatusNoContent, 0
	}
	ep, secret := h.register(r.srv.URL, true)
	r.setSecret(secret)
	h.startDispatcher(cfg)
	iss, err := h.svc.Issue(context.Background(), admin, domain.IssueRequest{Owner: "alice", ExpiresIn: time.Hour}, "")
	if err != nil {
		t.Fatal(err)
	}
	stacktest.Eventually(t, 60*time.Second, func() bool { return len(r.got()) >= 6 }, "six attempts")

	var at []time.Time
	for _, a := range r.got() {
		if a.tokenID != iss.Token.ID().String() || a.typ != string(webhooks.EventIssued) {
			t.Fatalf("unexpected delivery %+v", a)
		}
		if a.id != r.got()[0].id {
			t.Errorf("attempt with webhook-id %s, first was %s", a.id, r.got()[0].id)
		}
		at = append(at, a.at)
	}
	for i := 2; i < len(at); i++ {
		prev, cur := at[i-1].Sub(at[i-2]), at[i].Sub(at[i-1])
		if cur <= prev {
			t.Errorf("pause before attempt %d was %s, not longer than the one before (%s)", i+1, cur, prev)
		}
	}
	m := webhooks.NewManager(h.pool, h.store, true, nil)
	stacktest.Eventually(t, 10*time.Second, func() bool {
		ds, err := m.Deliveries(context.Background(), admin, ep.ID, 0, 10)
		return err == nil && len(ds) == 1 && ds[0].Status == webhooks.StatusDelivered && ds[0].Attempts == 6 && ds[0].LastStatus == http.StatusNoContent
	}, "the delivery listed as delivered after 6 attempts")
}

// TestFailsAfterTheRetryPeriodAndDisables: a receiver that always fails
// gets retries for the retry period; then the delivery is failed, the
// endpoint disabled with the reason, and later events are not sent.
func TestFailsAfterTheRetryPeriodAndDisables(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := newReceiver(t)
	r.answer = func(arrival, int) (int, time.Duration) { return http.StatusBadGateway, 0 }
	ep, secret := h.register(r.srv.URL, true)
	r.setSecret(secret)
	cfg := testConfig()
	cfg.RetryPeriod = time.Second
	h.startDispatcher(cfg)
	if _, err := h.svc.Issue(context.Background(), admin, domain.IssueRequest{Owner: "alice", ExpiresIn: time.Hour}, ""); err != nil {
		t.Fatal(err)
	}
	m := webhooks.NewManager(h.pool, h.store, true, nil)
	stacktest.Eventually(t, 30*time.Second, func() bool {
		e, err := m.Get(context.Background(), admin, ep.ID)
		return err == nil && !e.DisabledAt.IsZero()
	}, "the endpoint disabled")
	e, _ := m.Get(context.Background(), admin, ep.ID)
	if !strings.Contains(e.DisabledReason, "502") {
		t.Errorf("disabled reason %q does not say what failed", e.DisabledReason)
	}
	ds, err := m.Deliveries(context.Background(), admin, ep.ID, 0, 10)
	if err != nil || len(ds) != 1 || ds[0].Status != webhooks.StatusFailed || ds[0].Attempts < 2 {
		t.Fatalf("deliveries %+v (%v), want one failed after retries", ds, err)
	}
	before := len(r.got())
	if _, err := h.svc.Issue(context.Background(), admin, domain.IssueRequest{Owner: "alice", ExpiresIn: time.Hour}, ""); err != nil {
		t.Fatal(err)
	}
	// The fan-out of the new event is visible: a disabled endpoint gets
	// no delivery row for it.
	stacktest.Eventually(t, 10*time.Second, func() bool {
		var pending int
		_ = h.pool.QueryRow(context.Background(), `SELECT count(*) FROM webhook_deliveries`).Scan(&pending)
		n, _ := h.fannedOut()
		return n >= 2 && pending == 1
	}, "the new event passed the fan-out")
	if after := len(r.got()); after != before {
		t.Errorf("a disabled endpoint got %d more requests", after-before)
	}
}

// fannedOut reports how many events the dispatcher's consumer
// acknowledged.
func (h *harness) fannedOut() (uint64, error) {
	c, err := h.store.Durable(context.Background(), webhooks.DefaultConsumer)
	if err != nil {
		return 0, err
	}
	return c.AckFloor, nil
}

// TestRefusesPrivateTargets: without AllowPrivateTargets, URLs naming
// loopback, private and link-local addresses are refused at registration,
// and a name that resolves to loopback is refused when the dispatcher
// dials it: the receiver gets nothing, the delivery says why.
func TestRefusesPrivateTargets(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	m := webhooks.NewManager(h.pool, h.store, false, nil)
	for _, u := range []string{"http://127.0.0.1:8080/x", "http://[::1]/", "http://10.1.2.3/", "http://169.254.169.254/latest/meta-data",
		"http://192.168.0.1/", "http://[fe80::1]/", "http://0.0.0.0/", "http://100.64.0.1/", "ftp://example.com/", "http://user:pw@example.com/"} {
		_, err := m.Register(context.Background(), admin, u, nil, nil)
		if !errors.Is(err, domain.ErrInvalidArgument) {
			t.Errorf("register %s: %v, want ErrInvalidArgument", u, err)
		}
	}
	r := newReceiver(t)
	port := r.srv.URL[strings.LastIndex(r.srv.URL, ":")+1:]
	ep, secret := h.register("http://localhost:"+port+"/hook", false)
	r.setSecret(secret)
	cfg := testConfig()
	cfg.AllowPrivateTargets = false
	h.startDispatcher(cfg)
	if _, err := h.svc.Issue(context.Background(), admin, domain.IssueRequest{Owner: "alice", ExpiresIn: time.Hour}, ""); err != nil {
		t.Fatal(err)
	}
	stacktest.Eventually(t, 30*time.Second, func() bool {
		ds, err := m.Deliveries(context.Background(), admin, ep.ID, 0, 10)
		return err == nil && len(ds) == 1 && ds[0].Attempts >= 2 && strings.Contains(ds[0].LastError, "refused webhook target")
	}, "the delivery refused at dial time, twice")
	if n := len(r.got()); n != 0 {
		t.Fatalf("the loopback receiver got %d requests", n)
	}
}

// childEnv names the environment variables of a dispatcher run as a child
// process of the test binary.
const childEnv = "TOKENLEDGER_TEST_WEBHOOK_DISPATCHER"

// runChildDispatcher runs a dispatcher until it is killed: NATS and
// PostgreSQL URLs come from the environment.
func runChildDispatcher() int {
	parts := strings.SplitN(os.Getenv(childEnv), " ", 2)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	nc, err := nats.Connect(parts[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	store, err := eventstore.OpenExisting(ctx, nc, domain.NewDefaultRegistry(), eventstore.DefaultConfig())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	pool, err := pgxpool.New(ctx, parts[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dc, err := nats.Connect(parts[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	d, err := webhooks.NewDispatcher(pool, store, dc, testConfig())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := d.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestKilledDispatcherLosesNothing: a dispatcher running as a child
// process is killed with SIGKILL while it delivers to a slow receiver, and
// again; a new one takes over each time. Every event is delivered, each
// token's in stream order, and a duplicate carries the same webhook-id (a
// delivery is identified by it).
func TestKilledDispatcherLosesNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := newReceiver(t)
	r.answer = func(arrival, int) (int, time.Duration) { return http.StatusOK, 30 * time.Millisecond }
	_, secret := h.register(r.srv.URL, true)
	r.setSecret(secret)
	if err := webhooks.EnsureConsumer(context.Background(), h.store, webhooks.DefaultConsumer, testConfig().AckWait); err != nil {
		t.Fatal(err)
	}
	from, err := h.store.StreamLastSequence(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+h.srv.ClientURL()+" "+h.url)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	child := start()
	h.workload(60)
	want := h.deliverable(from)
	for kill := 1; kill <= 2; kill++ {
		n := kill * len(want) / 3
		stacktest.Eventually(t, 60*time.Second, func() bool { return len(r.got()) >= n }, "deliveries under way")
		if err := child.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = child.Wait()
		child = start()
	}
	stacktest.Eventually(t, 90*time.Second, func() bool {
		got := map[string]bool{}
		for _, a := range r.got() {
			got[a.id] = true
		}
		return len(got) == len(want)
	}, "every event delivered after the kills")
	arrivals := r.got()
	for _, a := range arrivals {
		if !a.verified {
			t.Errorf("delivery of %s failed signature verification", a.id)
		}
		if _, ok := want[a.id]; !ok {
			t.Errorf("delivered %s, which is no event after the registration", a.id)
		}
	}
	checkOrder(t, arrivals, want)
	t.Logf("%d events, %d requests", len(want), len(arrivals))
}
