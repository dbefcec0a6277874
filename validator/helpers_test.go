package validator_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/migrations"
	"github.com/tokenledger/tokenledger/projections"
	"github.com/tokenledger/tokenledger/validator"
)

func TestMain(m *testing.M) { stacktest.Main(m) }

// projection is the projection the tests fill and the validators load.
const projection = projections.LifecycleName

var meta = domain.Meta{Actor: "test"}

// policy allows tokens that never expire, so the tests can issue them.
func policy() domain.Policy {
	p := domain.DefaultPolicy()
	p.AllowNeverExpires = true
	return p
}

// env is one deployment: a JetStream server, an event store on it, and a
// read model in a database of its own.
type env struct {
	srv   stacktest.Connector
	opts  []nats.Option // of every connection
	reg   *domain.Registry
	store *eventstore.Store
	read  *projections.ReadModel
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	return newEnvOn(tb, stacktest.NATS(tb))
}

// newEnvOn is newEnv on a given server.
func newEnvOn(tb testing.TB, srv stacktest.Connector, opts ...nats.Option) *env {
	tb.Helper()
	e := &env{srv: srv, opts: opts, reg: domain.NewDefaultRegistry()}
	e.store = e.openStore(tb)
	pool := stacktest.PostgresPool(tb)
	conn, err := pool.Acquire(context.Background())
	if err != nil {
		tb.Fatalf("acquire: %v", err)
	}
	defer conn.Release()
	if err := migrations.Migrate(context.Background(), conn.Conn()); err != nil {
		tb.Fatalf("migrate: %v", err)
	}
	e.read = projections.New(pool)
	return e
}

// openStore opens the event store on a connection of its own.
func (e *env) openStore(tb testing.TB) *eventstore.Store {
	tb.Helper()
	nc := stacktest.Conn(tb, e.srv, e.opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := eventstore.Open(ctx, nc, e.reg, eventstore.DefaultConfig())
	if err != nil {
		tb.Fatalf("open event store: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// newValidator returns a validator of cfg, not started, whose Store
// (unless cfg has one) is on a connection of its own; it is closed when
// the test ends.
func (e *env) newValidator(tb testing.TB, cfg validator.Config) *validator.Validator {
	tb.Helper()
	if cfg.Store == nil {
		cfg.Store = e.openStore(tb)
	}
	if cfg.Projections == nil {
		cfg.Projections = e.read
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	v, err := validator.New(cfg)
	if err != nil {
		tb.Fatalf("new validator: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := v.Close(ctx); err != nil {
			tb.Errorf("close validator: %v", err)
		}
	})
	return v
}

// start returns a started validator of cfg (see newValidator).
func (e *env) start(tb testing.TB, cfg validator.Config) *validator.Validator {
	tb.Helper()
	v := e.newValidator(tb, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := v.Start(ctx); err != nil {
		tb.Fatalf("start validator: %v", err)
	}
	return v
}

// appendEvents stores events under expect and returns them stored.
func (e *env) appendEvents(tb testing.TB, expect eventstore.Expect, events ...domain.Envelope) []domain.Envelope {
	tb.Helper()
	stored, err := e.store.Append(context.Background(), expect, events...)
	if err != nil {
		tb.Fatalf("append: %v", err)
	}
	return stored
}

func sequences(events []domain.Envelope) []uint64 {
	seqs := make([]uint64, len(events))
	for i, ev := range events {
		seqs[i] = ev.Sequence
	}
	return seqs
}

// storeToken appends tok's pending changes, expecting its version.
func (e *env) storeToken(tb testing.TB, tok *domain.Token) []domain.Envelope {
	tb.Helper()
	stored := e.appendEvents(tb, eventstore.ExpectToken(tok.ID(), tok.Version()), tok.Changes()...)
	if err := tok.MarkStored(sequences(stored)...); err != nil {
		tb.Fatalf("mark stored: %v", err)
	}
	return stored
}

// issue issues and stores a token of owner at now; mod, if given, edits
// the request first. It returns the secret and the token.
func (e *env) issue(tb testing.TB, owner domain.OwnerID, now time.Time, mod func(*domain.IssueRequest)) (string, *domain.Token) {
	tb.Helper()
	req := domain.IssueRequest{Owner: owner, Name: "test", Scopes: []string{"write", "read"}}
	if mod != nil {
		mod(&req)
	}
	tok, secret, err := domain.IssueToken(policy(), nil, req, meta, now, nil)
	if err != nil {
		tb.Fatalf("issue: %v", err)
	}
	e.storeToken(tb, tok)
	return secret.Reveal(), tok
}

// rotatedOut issues a token two hours before now, rotates it without
// grace an hour before now, stores both, and returns the old token's
// secret: rotated out and past its grace at now.
func (e *env) rotatedOut(tb testing.TB, now time.Time) string {
	tb.Helper()
	secret, old := e.issue(tb, "alice", now.Add(-2*time.Hour), nil)
	next, _, err := domain.Rotate(policy(), nil, old, 0, nil, meta, now.Add(-time.Hour), nil)
	if err != nil {
		tb.Fatalf("rotate: %v", err)
	}
	e.storeToken(tb, next)
	e.storeToken(tb, old)
	return secret
}

// revoke revokes and stores tok at now.
func (e *env) revoke(tb testing.TB, tok *domain.Token, now time.Time) []domain.Envelope {
	tb.Helper()
	if err := tok.Revoke("test", meta, now); err != nil {
		tb.Fatalf("revoke: %v", err)
	}
	return e.storeToken(tb, tok)
}

// setExpiry sets and stores tok's expiry at now.
func (e *env) setExpiry(tb testing.TB, tok *domain.Token, at time.Time, now time.Time) {
	tb.Helper()
	if err := tok.SetExpiry(policy(), &at, meta, now); err != nil {
		tb.Fatalf("set expiry: %v", err)
	}
	e.storeToken(tb, tok)
}

// revokeOwner revokes every token of owner at now, with until if given.
func (e *env) revokeOwner(tb testing.TB, owner domain.OwnerID, until *time.Time, now time.Time) []domain.Envelope {
	tb.Helper()
	history, err := e.store.LoadOwner(context.Background(), owner)
	if err != nil {
		tb.Fatalf("load owner: %v", err)
	}
	o, err := domain.OwnerFromHistory(owner, history)
	if err != nil {
		tb.Fatalf("owner from history: %v", err)
	}
	if err := o.RevokeTokens(until, "test", meta, now); err != nil {
		tb.Fatalf("revoke tokens: %v", err)
	}
	stored := e.appendEvents(tb, eventstore.ExpectOwner(owner, o.Version()), o.Changes()...)
	if err := o.MarkStored(sequences(stored)...); err != nil {
		tb.Fatalf("mark stored: %v", err)
	}
	return stored
}

// readAll returns every lifecycle event from sequence from on.
func (e *env) readAll(tb testing.TB, from uint64) []domain.Envelope {
	tb.Helper()
	var events []domain.Envelope
	if _, err := e.store.Read(context.Background(), from, func(ev domain.Envelope) error {
		events = append(events, ev)
		return nil
	}); err != nil {
		tb.Fatalf("read: %v", err)
	}
	return events
}

// project applies every stored event up to the stream's end to the read
// model, as the lifecycle projector would, and returns the checkpoint.
func (e *env) project(tb testing.TB) {
	tb.Helper()
	if err := e.projectAll(context.Background()); err != nil {
		tb.Fatal(err)
	}
}

// projectAll is project for goroutines other than the test's.
func (e *env) projectAll(ctx context.Context) error {
	cp, err := e.read.Checkpoint(ctx, projection)
	if err != nil {
		return err
	}
	var events []domain.Envelope
	if _, err := e.store.Read(ctx, cp+1, func(ev domain.Envelope) error {
		events = append(events, ev)
		return nil
	}); err != nil {
		return err
	}
	for len(events) > 0 {
		n := min(len(events), 7)
		if _, err := e.read.ApplyBatch(ctx, projection, events[:n]); err != nil {
			return err
		}
		events = events[n:]
	}
	return nil
}

// lastSeq returns the lifecycle stream's last sequence.
func (e *env) lastSeq(tb testing.TB) uint64 {
	tb.Helper()
	seq, err := e.store.StreamLastSequence(context.Background())
	if err != nil {
		tb.Fatalf("stream last sequence: %v", err)
	}
	return seq
}

// waitApplied waits until v has applied the stream up to seq.
func waitApplied(tb testing.TB, v *validator.Validator, seq uint64) {
	tb.Helper()
	stacktest.Eventually(tb, 10*time.Second, func() bool { return v.Status().AppliedSequence >= seq },
		"validator applied sequence %d", seq)
}

// usageSums are the use counts of the usage stream per token, and the
// client addresses its events carry.
type usageSums struct {
	counts map[domain.TokenID]uint64
	addrs  map[domain.TokenID][]string
}

// readUsage sums the use counts of every usage batch in the usage stream,
// per token, and checks each use.
func (e *env) readUsage(tb testing.TB) usageSums {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sums := usageSums{counts: map[domain.TokenID]uint64{}, addrs: map[domain.TokenID][]string{}}
	info, err := e.store.State(ctx, eventstore.Usage)
	if err != nil {
		tb.Fatalf("usage stream info: %v", err)
	}
	if info.Msgs == 0 {
		return sums
	}
	_, err = e.store.ReadUsage(ctx, 1, func(ev domain.Envelope) error {
		if ev.Type != domain.TypeUsageBatch {
			tb.Fatalf("usage event %s is %s, want one usage batch per flush", ev.ID, ev.Type)
		}
		for id, used := range domain.Uses(ev) {
			if used.Count == 0 || used.LastAt.Before(used.FirstAt) {
				tb.Errorf("usage event %s: token %s: count %d, first %s, last %s", ev.ID, id, used.Count, used.FirstAt, used.LastAt)
			}
			sums.counts[id] += used.Count
			sums.addrs[id] = append(sums.addrs[id], used.ClientAddr)
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("read usage: %v", err)
	}
	return sums
}

// forge returns a well-formed secret of a token id stamped at, which no
// token has.
func forge(tb testing.TB, at time.Time) string {
	tb.Helper()
	id, err := domain.NewTokenID(at, nil)
	if err != nil {
		tb.Fatalf("token id: %v", err)
	}
	s, err := domain.GenerateSecret(id, nil)
	if err != nil {
		tb.Fatalf("generate secret: %v", err)
	}
	return s.Reveal()
}

// typo changes one character of the random part of secret to another
// base62 character, so that only the checksum can catch it.
func typo(secret string) string {
	b := []byte(secret)
	const at = 40
	if b[at] == 'a' {
		b[at] = 'b'
	} else {
		b[at] = 'a'
	}
	return string(b)
}

// wantErr fails the test unless err matches want (nil: no error).
func wantErr(tb testing.TB, err, want error) {
	tb.Helper()
	switch {
	case want == nil && err != nil:
		tb.Fatalf("got error %v, want none", err)
	case want != nil && !errors.Is(err, want):
		tb.Fatalf("got error %v, want %v", err, want)
	}
}
