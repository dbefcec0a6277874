package consumers_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tokenledger/tokenledger/consumers"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/projections"
)

// TestUsageConsumerHaltsAtPoison stores a message the registry cannot
// decode in the middle of the usage stream: the consumer must apply the
// uses before it, stop there and stay stopped (saying so once in its log,
// in Status and in Ready), never skip it on its own, and move on only when
// a new consumer names that very event in SkipSequence.
func TestUsageConsumerHaltsAtPoison(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// poison returns the subject and body of the message to store on
		// the usage subject of token id.
		poison func(t *testing.T, e *usageEnv, id domain.TokenID) (string, []byte)
		cause  error
	}{
		{
			name: "truncated JSON",
			poison: func(t *testing.T, e *usageEnv, id domain.TokenID) (string, []byte) {
				body, err := e.store.Registry().Marshal(useEvent(t, id, 1, e.clock.Now(), e.clock.Now(), ""))
				if err != nil {
					t.Fatal(err)
				}
				return "tl.usage." + id.String(), body[:len(body)/2]
			},
			cause: domain.ErrCorruptEvent,
		},
		{
			name: "unknown event type",
			poison: func(t *testing.T, e *usageEnv, id domain.TokenID) (string, []byte) {
				body := fmt.Sprintf(`{"id":%q,"type":"token.used.v9","aggregate_type":"token","aggregate_id":%q,"actor":"validator:1","time":"2030-01-01T00:00:00Z","schema":1,"data":{"count":1}}`,
					newUsageEventID(t), id)
				return "tl.usage." + id.String(), []byte(body)
			},
			cause: domain.ErrUnknownEventType,
		},
		{
			name: "a lifecycle event on a usage subject",
			poison: func(t *testing.T, e *usageEnv, id domain.TokenID) (string, []byte) {
				tok, _, err := domain.IssueToken(e.policy, nil, domain.IssueRequest{Owner: "mallory"}, domain.Meta{Actor: "user:1"}, e.clock.Now(), nil)
				if err != nil {
					t.Fatal(err)
				}
				body, err := e.store.Registry().Marshal(tok.Changes()[0])
				if err != nil {
					t.Fatal(err)
				}
				return "tl.usage." + tok.ID().String(), body
			},
			cause: domain.ErrCorruptEvent,
		},
		{
			name: "a use of another token",
			poison: func(t *testing.T, e *usageEnv, id domain.TokenID) (string, []byte) {
				other, err := domain.NewTokenID(e.clock.Now(), nil)
				if err != nil {
					t.Fatal(err)
				}
				body, err := e.store.Registry().Marshal(useEvent(t, other, 1000, e.clock.Now(), e.clock.Now(), ""))
				if err != nil {
					t.Fatal(err)
				}
				return "tl.usage." + id.String(), body
			},
			cause: domain.ErrCorruptEvent,
		},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := newUsageEnv(t, nil)
			rng := rand.New(rand.NewPCG(uint64(i), 9))
			ids := []domain.TokenID{newUsageTokenID(t), newUsageTokenID(t), newUsageTokenID(t)}
			e.appendUses(randomUses(t, rng, ids, 30, e.clock.Now())...)
			subject, body := tc.poison(t, e, ids[0])
			msg := nats.NewMsg(subject)
			msg.Data = body
			msg.Header.Set(jetstream.MsgIDHeader, newUsageEventID(t).String())
			ack, err := e.js.PublishMsg(ctx, msg)
			if err != nil {
				t.Fatalf("store the poison: %v", err)
			}
			poison := ack.Sequence
			before := e.uses
			e.appendUses(randomUses(t, rng, ids, 30, e.clock.Now())...)

			cfg := e.config()
			cfg.BatchSize = 20
			r := e.start(cfg)
			var st projections.UsageProgress
			stacktest.Eventually(t, time.Minute, func() bool {
				st, err = r.w.Progress(ctx)
				return err == nil && st.Halted != nil
			}, "the consumer reports a halt")
			if st.Halted.Sequence != poison || st.Halted.Subject != subject || st.Checkpoint != poison-1 {
				t.Fatalf("status %+v, halt %+v: want halted at %d on %q with checkpoint %d", st, st.Halted, poison, subject, poison-1)
			}
			// It stays halted while it keeps fetching the event again.
			fetches := r.w.Stats().Fetches
			stacktest.Eventually(t, time.Minute, func() bool { return r.w.Stats().Fetches >= fetches+3 }, "three more fetches")
			err = r.w.Ready(ctx, ^uint64(0))
			if !errors.Is(err, consumers.ErrHalted) || !errors.Is(err, tc.cause) {
				t.Errorf("Ready = %v, want ErrHalted wrapping %v", err, tc.cause)
			}
			if cp, err := e.proj.Checkpoint(ctx, "usage"); err != nil || cp != poison-1 {
				t.Errorf("checkpoint %d, %v while halted; want %d", cp, err, poison-1)
			}
			if n := e.logs.count("usage projection HALTED"); n != 1 {
				t.Errorf("the halt was logged %d times, want once", n)
			}
			all := e.uses
			e.uses = before
			e.requireUsageMatches()
			e.uses = all
			if err := r.stop(); err != nil {
				t.Fatal(err)
			}

			// A skip naming another event skips nothing.
			wrong := e.config()
			wrong.SkipSequence = poison + 1
			r = e.start(wrong)
			stacktest.Eventually(t, time.Minute, func() bool {
				st, err = r.w.Progress(ctx)
				return err == nil && st.Halted != nil
			}, "the consumer with the wrong skip sequence halts")
			if st.Halted.Sequence != poison || st.Skipped != nil {
				t.Errorf("with skip sequence %d: halted %+v, skipped %+v", wrong.SkipSequence, st.Halted, st.Skipped)
			}
			if err := r.stop(); err != nil {
				t.Fatal(err)
			}

			skip := e.config()
			skip.SkipSequence = poison
			r = e.start(skip)
			waitSlid(t, r.w, e.usageLast())
			st, err = r.w.Progress(ctx)
			if err != nil || st.Halted != nil || st.Skipped == nil || st.Skipped.Sequence != poison || st.Checkpoint != e.usageLast() {
				t.Errorf("after the skip: status %+v, %v", st, err)
			}
			if n := e.logs.count("SKIPPED an undecodable usage event"); n != 1 {
				t.Errorf("the skip was logged %d times, want once", n)
			}
			e.requireUsageMatches()
		})
	}
}

func newUsageEventID(t *testing.T) domain.EventID {
	t.Helper()
	id, err := domain.NewEventID(time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func newUsageTokenID(t *testing.T) domain.TokenID {
	t.Helper()
	id, err := domain.NewTokenID(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), nil)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
