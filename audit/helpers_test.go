package audit_test

import (
	"context"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/migrations"
	"github.com/tokenledger/tokenledger/projections"
)

func TestMain(m *testing.M) { stacktest.Main(m) }

// The projection names the tests' read models apply under.
const (
	lifecycleName = "lifecycle"
	usageName     = "usage"
)

// ledger is a real event store (embedded nats-server) and a real read model
// (PostgreSQL) that tests write to as the API and the live projectors do:
// every append is applied to the read model right after it is stored. It
// keeps every stored event, in stream order.
type ledger struct {
	t     testing.TB
	store *eventstore.Store
	read  *projections.ReadModel
	// lifecycle and usage are the stored events of the two streams.
	lifecycle, usage []domain.Envelope
	// lagging: lifecycle events are stored but no longer projected, as
	// when the projector stopped.
	lagging bool
	// uses counts the calls of use.
	uses int
}

func newLedger(t testing.TB) *ledger {
	t.Helper()
	ctx := context.Background()
	nc := stacktest.Conn(t, stacktest.NATS(t))
	store, err := eventstore.Open(ctx, nc, domain.NewDefaultRegistry(), eventstore.DefaultConfig())
	if err != nil {
		t.Fatalf("open event store: %v", err)
	}
	t.Cleanup(func() { _ = store.Close() })
	pool := stacktest.PostgresPool(t)
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	err = migrations.Migrate(ctx, conn.Conn())
	conn.Release()
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return &ledger{t: t, store: store, read: projections.New(pool)}
}

// appendEvents appends events under expect and projects them.
func (l *ledger) appendEvents(expect eventstore.Expect, events ...domain.Envelope) []domain.Envelope {
	l.t.Helper()
	stored, err := l.store.Append(context.Background(), expect, events...)
	if err != nil {
		l.t.Fatalf("append: %v", err)
	}
	l.project(stored)
	return stored
}

// appendAtomic appends changes in one atomic batch and projects them.
func (l *ledger) appendAtomic(changes ...eventstore.Change) []domain.Envelope {
	l.t.Helper()
	stored, err := l.store.AppendAtomic(context.Background(), changes...)
	if err != nil {
		l.t.Fatalf("append atomic: %v", err)
	}
	l.project(stored)
	return stored
}

func (l *ledger) project(stored []domain.Envelope) {
	l.t.Helper()
	if l.lagging {
		l.lifecycle = append(l.lifecycle, stored...)
		return
	}
	if _, err := l.read.ApplyBatch(context.Background(), lifecycleName, stored); err != nil {
		l.t.Fatalf("apply batch: %v", err)
	}
	l.lifecycle = append(l.lifecycle, stored...)
}

// last returns the sequence of the last lifecycle event stored.
func (l *ledger) last() uint64 {
	if len(l.lifecycle) == 0 {
		return 0
	}
	return l.lifecycle[len(l.lifecycle)-1].Sequence
}

// appendUsage appends usage events to the usage stream and projects them.
func (l *ledger) appendUsage(events ...domain.Envelope) {
	l.t.Helper()
	ctx := context.Background()
	stored, err := l.store.AppendUsage(ctx, events...)
	if err != nil {
		l.t.Fatalf("append usage: %v", err)
	}
	res, err := l.read.ApplyUsageBatch(ctx, usageName, stored)
	if err != nil {
		l.t.Fatalf("apply usage batch: %v", err)
	}
	if res.Applied != len(stored) {
		l.t.Fatalf("apply usage batch: %d of %d events applied (%+v)", res.Applied, len(stored), res)
	}
	l.usage = append(l.usage, stored...)
}

// issue stores tok's pending issue, expecting its owner o's version, and
// marks both stored.
func (l *ledger) issue(tok *domain.Token, o *domain.Owner) {
	l.t.Helper()
	l.markStored(tok, l.appendEvents(eventstore.ExpectOwner(o.ID(), o.Version()), tok.Changes()...))
}

// change stores tok's pending changes, expecting its version.
func (l *ledger) change(tok *domain.Token) {
	l.t.Helper()
	l.markStored(tok, l.appendEvents(eventstore.ExpectToken(tok.ID(), tok.Version()), tok.Changes()...))
}

// rotate stores a rotation of old into nt atomically.
func (l *ledger) rotate(old, nt *domain.Token, o *domain.Owner) {
	l.t.Helper()
	oldChanges, newChanges := old.Changes(), nt.Changes()
	stored := l.appendAtomic(
		eventstore.Change{Expect: eventstore.ExpectToken(old.ID(), old.Version()), Events: oldChanges},
		eventstore.Change{Expect: eventstore.ExpectOwner(o.ID(), o.Version()), Events: newChanges},
	)
	l.markStored(old, stored[:len(oldChanges)])
	l.markStored(nt, stored[len(oldChanges):])
}

// revokeOwner stores o's pending revocation.
func (l *ledger) revokeOwner(o *domain.Owner) {
	l.t.Helper()
	stored := l.appendEvents(eventstore.ExpectOwner(o.ID(), o.Version()), o.Changes()...)
	if err := o.MarkStored(sequences(stored)...); err != nil {
		l.t.Fatalf("mark owner stored: %v", err)
	}
}

// use records count uses of tok between first and now on a throwaway copy
// rebuilt from its stored events (uses have their own stream and must not
// move tok's version) and appends them to the usage stream.
func (l *ledger) use(tok *domain.Token, count uint64, first time.Time, addr string, m domain.Meta, now time.Time) {
	l.t.Helper()
	var history []domain.Envelope
	for _, e := range l.lifecycle {
		if id, ok := e.TokenID(); ok && id == tok.ID() {
			history = append(history, e)
		}
	}
	tmp, err := domain.TokenFromHistory(history)
	if err != nil {
		l.t.Fatalf("rebuild token %s: %v", tok.ID(), err)
	}
	// Every other use is recorded as validators record it now, in a usage
	// batch; the rest as they did before, as token.used events: the usage
	// stream holds both.
	l.uses++
	if l.uses%2 == 0 {
		batch, err := domain.RecordUsage([]domain.TokenUse{{Token: tok.ID(), Count: count, FirstAt: first, LastAt: now, ClientAddr: addr}}, m, now, 0)
		if err != nil {
			l.t.Fatalf("record usage batch of %s: %v", tok.ID(), err)
		}
		l.appendUsage(batch...)
		return
	}
	if err := tmp.RecordUse(count, first, now, addr, m, now); err != nil {
		l.t.Fatalf("record use of %s: %v", tok.ID(), err)
	}
	l.appendUsage(tmp.Changes()...)
}

func (l *ledger) markStored(tok *domain.Token, stored []domain.Envelope) {
	l.t.Helper()
	if err := tok.MarkStored(sequences(stored)...); err != nil {
		l.t.Fatalf("mark token %s stored: %v", tok.ID(), err)
	}
}

func sequences(events []domain.Envelope) []uint64 {
	seqs := make([]uint64, len(events))
	for i, e := range events {
		seqs[i] = e.Sequence
	}
	return seqs
}
