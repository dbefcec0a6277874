package validator_test

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/stack"
	"github.com/tokenledger/tokenledger/validator"
)

// swappableNATS is a server that the test may stop and start again on the
// same port and store: connections made through it reconnect.
type swappableNATS struct {
	cfg stack.NATSConfig
	srv *stack.NATS
}

func (s *swappableNATS) Connect(opts ...nats.Option) (*nats.Conn, error) {
	return s.srv.Connect(opts...)
}

func (s *swappableNATS) restart(tb testing.TB) {
	tb.Helper()
	u, err := url.Parse(s.srv.ClientURL())
	if err != nil {
		tb.Fatal(err)
	}
	cfg := s.cfg
	if cfg.Port, err = strconv.Atoi(u.Port()); err != nil {
		tb.Fatal(err)
	}
	srv, err := stack.StartNATS(cfg)
	if err != nil {
		tb.Fatalf("restart nats: %v", err)
	}
	if srv.ClientURL() != s.srv.ClientURL() {
		tb.Fatalf("restarted on %s, not %s", srv.ClientURL(), s.srv.ClientURL())
	}
	s.srv = srv
}

// TestStaleValidatorFailsClosedAndRecovers stops the NATS server under two
// validators: the one failing closed refuses with ErrStale once the bound
// has passed, the one failing open keeps answering (and drops the usage it
// cannot store once its queue is full). When the server is back, both
// follow the stream again from where they stopped.
func TestStaleValidatorFailsClosedAndRecovers(t *testing.T) {
	t.Parallel()
	cfg := stack.NATSConfig{StoreDir: t.TempDir(), ServerName: "stale"}
	first, err := stack.StartNATS(cfg)
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	srv := &swappableNATS{cfg: cfg, srv: first}
	// Registered first, so it runs last: the validators flush their
	// usage to the server when they close.
	t.Cleanup(func() { srv.srv.Shutdown() })
	e := newEnvOn(t, srv, nats.ReconnectWait(20*time.Millisecond), nats.MaxReconnects(-1))
	const bound = 300 * time.Millisecond
	closed := e.start(t, validator.Config{MaxStaleness: bound})
	open := e.start(t, validator.Config{MaxStaleness: bound, FailOpen: true, FlushInterval: 10 * time.Millisecond, FlushQueue: 2})
	secret, tok := e.issue(t, "alice", time.Now(), nil)
	waitApplied(t, closed, e.lastSeq(t))
	waitApplied(t, open, e.lastSeq(t))

	down := time.Now()
	first.Shutdown()
	stacktest.Eventually(t, 10*time.Second, func() bool {
		_, err := closed.Validate(context.Background(), secret)
		return errors.Is(err, validator.ErrStale)
	}, "the validator failing closed refuses")
	if elapsed := time.Since(down); elapsed < bound {
		t.Errorf("stale after %s, before the bound %s", elapsed, bound)
	}
	if st := closed.Status(); !st.Stale || st.StaleSince.IsZero() || st.StaleReason == nil {
		t.Errorf("status %+v, want stale since a time, with a reason", st)
	}
	if _, err := open.Validate(context.Background(), secret); err != nil {
		t.Errorf("the validator failing open: %v", err)
	}
	stacktest.Eventually(t, 10*time.Second, func() bool { return open.Status().Stale },
		"the validator failing open reports itself stale")
	lookups := open.Stats().Lookups
	if _, err := open.Validate(context.Background(), forge(t, time.Now())); !errors.Is(err, validator.ErrUnknown) {
		t.Errorf("a young unknown id while disconnected: %v, want unknown", err)
	}
	if got := open.Stats().Lookups; got != lookups {
		t.Errorf("%d store lookups while disconnected, want none", got-lookups)
	}
	stacktest.Eventually(t, 10*time.Second, func() bool {
		if _, err := open.Validate(context.Background(), secret); err != nil {
			t.Fatalf("the validator failing open: %v", err)
		}
		return open.Stats().UsageEventsDropped > 0
	}, "usage dropped once the queue is full")

	srv.restart(t)
	stacktest.Eventually(t, 20*time.Second, func() bool {
		_, err := closed.Validate(context.Background(), secret)
		return err == nil
	}, "the validator failing closed answers again")
	if st := closed.Status(); st.Stale || !st.StaleSince.IsZero() {
		t.Errorf("status %+v, want not stale", st)
	}

	// A revocation stored after the restart reaches both: they subscribed
	// again after the last event they had applied.
	if err := tok.Revoke("test", meta, time.Now()); err != nil {
		t.Fatal(err)
	}
	stacktest.Eventually(t, 20*time.Second, func() bool {
		stored, err := e.store.Append(context.Background(), eventstore.ExpectToken(tok.ID(), tok.Version()), tok.Changes()...)
		if err != nil {
			return false
		}
		return tok.MarkStored(sequences(stored)...) == nil
	}, "revocation stored after the restart")
	for name, v := range map[string]*validator.Validator{"closed": closed, "open": open} {
		stacktest.Eventually(t, 20*time.Second, func() bool {
			_, err := v.Validate(context.Background(), secret)
			return errors.Is(err, validator.ErrRevoked)
		}, "the validator failing %s sees the revocation", name)
	}
}

// TestUndecodableEventMakesTheValidatorStale stores a message the
// validator cannot decode on a lifecycle subject: rather than skip it
// (it could be a revocation), the validator stops there and turns stale
// once the bound has passed, although it keeps re-subscribing.
func TestUndecodableEventMakesTheValidatorStale(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const bound = 300 * time.Millisecond
	v := e.start(t, validator.Config{MaxStaleness: bound})
	secret, tok := e.issue(t, "alice", time.Now(), nil)
	waitApplied(t, v, e.lastSeq(t))
	subject, err := e.store.Subjects().TokenSubject(tok.ID(), domain.TypeTokenRevoked)
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(e.store.Conn())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(context.Background(), subject, []byte("not an event")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	stored := time.Now()
	stacktest.Eventually(t, 10*time.Second, func() bool {
		_, err := v.Validate(context.Background(), secret)
		return errors.Is(err, validator.ErrStale)
	}, "stale after an undecodable event")
	if elapsed := time.Since(stored); elapsed < bound {
		t.Errorf("stale after %s, before the bound %s", elapsed, bound)
	}
	var decodeErr *eventstore.DecodeError
	if st := v.Status(); !errors.As(st.StaleReason, &decodeErr) {
		t.Errorf("stale reason %v, want a decode error", st.StaleReason)
	}
	if st := v.Stats(); st.TailRestarts < 2 {
		t.Errorf("%d tail restarts, want the tail to keep retrying", st.TailRestarts)
	}
}
