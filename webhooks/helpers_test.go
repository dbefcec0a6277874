package webhooks_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"

	"github.com/tokenledger/tokenledger/app"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/ledger"
	"github.com/tokenledger/tokenledger/projections"
	"github.com/tokenledger/tokenledger/stack"
	"github.com/tokenledger/tokenledger/webhooks"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChildDispatcher())
	}
	stacktest.Main(m)
}

var admin = ledger.Caller{Owner: "ops", Scopes: []string{ledger.ScopeAdmin}}

// harness is an event store, a read model database and a ledger.
type harness struct {
	t     *testing.T
	srv   *stack.NATS
	url   string
	pool  *pgxpool.Pool
	store *eventstore.Store
	svc   *ledger.Service
}

func newHarness(t *testing.T) *harness {
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
	srv := stacktest.NATS(t)
	store, err := eventstore.Open(context.Background(), stacktest.Conn(t, srv), domain.NewDefaultRegistry(), eventstore.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	p := domain.DefaultPolicy()
	svc, err := ledger.New(ledger.Config{Store: store, Projections: projections.New(pool), Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, srv: srv, url: url, pool: pool, store: store, svc: svc}
}

// testConfig is a dispatcher configuration with short pauses, delivering
// to loopback (where the test receivers listen).
func testConfig() webhooks.Config {
	cfg := webhooks.DefaultConfig()
	cfg.AllowPrivateTargets = true
	cfg.PollInterval = 20 * time.Millisecond
	cfg.BackoffInitial = 100 * time.Millisecond
	cfg.BackoffMax = 5 * time.Second
	cfg.Timeout = 500 * time.Millisecond
	cfg.AckWait = 2 * time.Second
	return cfg
}

// startDispatcher runs a dispatcher in this process until the test ends.
func (h *harness) startDispatcher(cfg webhooks.Config) {
	h.t.Helper()
	nc, err := h.srv.Connect(nats.Name("webhooks-test"))
	if err != nil {
		h.t.Fatal(err)
	}
	d, err := webhooks.NewDispatcher(h.pool, h.store, nc, cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	// The dispatcher creates its consumer itself, once it sees the
	// endpoint registered, to start right after it: the events the test
	// appends meanwhile are not missed.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	h.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("dispatcher: %v", err)
		}
	})
}

// register registers an endpoint at url for every event type of every
// owner, and returns it with its secret as shown.
func (h *harness) register(url string, allowPrivate bool) (webhooks.Endpoint, string) {
	h.t.Helper()
	m := webhooks.NewManager(h.pool, h.store, allowPrivate, nil)
	r, err := m.Register(context.Background(), admin, url, nil, nil)
	if err != nil {
		h.t.Fatalf("register %s: %v", url, err)
	}
	return r.Endpoint, r.Secret.Reveal()
}

// arrival is one request the receiver got.
type arrival struct {
	at       time.Time
	id       string
	tokenID  string
	owner    string
	seq      uint64
	typ      string
	verified bool
	// accepted is whether the receiver answered 2xx.
	accepted bool
}

// receiver is a real HTTP server that verifies every request's signature
// with verify (below, written from the Standard Webhooks specification,
// sharing no code with the signer), records every request, and answers
// what answer says (200 when nil).
type receiver struct {
	srv    *httptest.Server
	secret string

	mu       sync.Mutex
	arrivals []arrival
	answer   func(a arrival, attempt int) (status int, delay time.Duration)
	attempts map[string]int
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	r := &receiver{attempts: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) setSecret(s string) {
	r.mu.Lock()
	r.secret = s
	r.mu.Unlock()
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	secret := r.secret
	r.mu.Unlock()
	a := arrival{at: time.Now(), id: req.Header.Get("webhook-id")}
	a.verified = verify(secret, req.Header, body, a.at) == nil
	var p struct {
		Type string `json:"type"`
		Data struct {
			EventID  string `json:"event_id"`
			Sequence uint64 `json:"sequence"`
			TokenID  string `json:"token_id"`
			Owner    string `json:"owner"`
		} `json:"data"`
	}
	if json.Unmarshal(body, &p) != nil || p.Data.EventID != a.id {
		a.verified = false
	}
	a.tokenID, a.owner, a.seq, a.typ = p.Data.TokenID, p.Data.Owner, p.Data.Sequence, p.Type
	r.mu.Lock()
	r.attempts[a.id]++
	n := r.attempts[a.id]
	answer := r.answer
	r.mu.Unlock()
	status, delay := http.StatusOK, time.Duration(0)
	if !a.verified {
		status = http.StatusBadRequest
	} else if answer != nil {
		status, delay = answer(a, n)
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-req.Context().Done():
			status = 0
		}
	}
	// Recorded when answered, so that an accepted delivery is recorded
	// before the dispatcher can send the token's next event.
	a.accepted = status >= 200 && status < 300
	r.mu.Lock()
	r.arrivals = append(r.arrivals, a)
	r.mu.Unlock()
	if status != 0 {
		w.WriteHeader(status)
	}
}

// got returns a copy of the arrivals so far.
func (r *receiver) got() []arrival {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]arrival(nil), r.arrivals...)
}

// verify checks a Standard Webhooks request: the three headers, a
// timestamp within five minutes of now, and one "v1,<base64>" signature in
// the space-separated list equal to HMAC-SHA256 under the base64-decoded
// secret (after "whsec_") of "<id>.<timestamp>.<body>".
func verify(secret string, h http.Header, body []byte, now time.Time) error {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return errVerify("missing header")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errVerify("bad timestamp")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return errVerify("timestamp out of tolerance")
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || !strings.HasPrefix(secret, "whsec_") {
		return errVerify("bad secret")
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	want := mac.Sum(nil)
	for _, s := range strings.Split(sigs, " ") {
		version, sig, ok := strings.Cut(s, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errVerify("no matching signature")
}

type errVerify string

func (e errVerify) Error() string { return string(e) }

// deliverable reads the stream after sequence from and returns the events
// a subscriber of every type gets, by event id, with their token (or
// owner) key and sequence.
func (h *harness) deliverable(from uint64) map[string]domain.Envelope {
	h.t.Helper()
	out := map[string]domain.Envelope{}
	if _, err := h.store.Read(context.Background(), from+1, func(e domain.Envelope) error {
		switch e.Type {
		case domain.TypeTokenIssued, domain.TypeTokenRevoked, domain.TypeOwnerTokensRevoked, domain.TypeTokenExpiring,
			domain.TypeTokenExpired, domain.TypeOwnerFamilyRevoked:
			out[e.ID.String()] = e
		}
		return nil
	}); err != nil {
		h.t.Fatal(err)
	}
	return out
}

// checkOrder requires every request for an event of a token (or owner)
// to come after each earlier event of it in want was accepted: events are
// delivered in stream order per token, and a failed attempt holds back
// the token's later events until it is retried successfully.
func checkOrder(t *testing.T, arrivals []arrival, want map[string]domain.Envelope) {
	t.Helper()
	keyOf := func(e domain.Envelope) string { return string(e.AggregateKind) + ":" + e.AggregateID }
	accepted := map[string]bool{}
	for _, a := range arrivals {
		e, ok := want[a.id]
		if !ok {
			continue
		}
		for id, earlier := range want {
			if keyOf(earlier) == keyOf(e) && earlier.Sequence < e.Sequence && !accepted[id] {
				t.Errorf("%s: event %s (sequence %d) sent before event %s (sequence %d) was accepted", keyOf(e), a.id, e.Sequence, id, earlier.Sequence)
			}
		}
		if a.accepted {
			accepted[a.id] = true
		}
	}
}

// workload issues n tokens of a few owners, changes and revokes some,
// and revokes one owner's tokens.
func (h *harness) workload(n int) {
	h.t.Helper()
	ctx := context.Background()
	for i := range n {
		owner := domain.OwnerID("owner-" + strconv.Itoa(i%4))
		iss, err := h.svc.Issue(ctx, admin, domain.IssueRequest{Owner: owner, ExpiresIn: time.Hour}, "")
		if err != nil {
			h.t.Fatal(err)
		}
		if i%2 == 0 {
			if err := h.svc.Revoke(ctx, admin, iss.Token.ID(), "rotated keys", ""); err != nil {
				h.t.Fatal(err)
			}
		}
	}
	if _, err := h.svc.RevokeOwner(ctx, admin, "owner-3", nil, "offboarded", ""); err != nil {
		h.t.Fatal(err)
	}
}
