package consumers_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tokenledger/tokenledger/consumers"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/projections"
)

// TestLifecycleProjectorHaltsAtPoison stores messages the registry cannot
// decode in the lifecycle stream: the projector must stop just before
// such an event, apply nothing after it, say so in Status and Ready, and
// move on only when a new projector names that very event in SkipSequence.
func TestLifecycleProjectorHaltsAtPoison(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// poison returns the body and subject of the message to store,
		// for a fresh token id.
		poison func(t *testing.T, e *env, id domain.TokenID) (subject string, body []byte)
		cause  error
	}{
		{
			name: "unknown event type",
			poison: func(t *testing.T, e *env, id domain.TokenID) (string, []byte) {
				body := fmt.Sprintf(`{"id":%q,"type":"token.renamed.v1","aggregate_type":"token","aggregate_id":%q,"actor":"user:1","time":"2030-06-01T00:00:00Z","schema":1,"data":{"name":"new name"}}`,
					newEventID(t), id)
				return fmt.Sprintf("tl.token.%s.renamed_v1", id), []byte(body)
			},
			cause: domain.ErrUnknownEventType,
		},
		{
			name: "corrupt payload",
			poison: func(t *testing.T, e *env, id domain.TokenID) (string, []byte) {
				body := fmt.Sprintf(`{"id":%q,"type":"token.issued.v1","aggregate_type":"token","aggregate_id":%q,"actor":"user:1","time":"2030-06-01T00:00:00Z","schema":1,"data":{"owner":`,
					newEventID(t), id)
				return fmt.Sprintf("tl.token.%s.issued_v1", id), []byte(body)
			},
			cause: domain.ErrCorruptEvent,
		},
		{
			name: "valid event stored on another token's subject",
			poison: func(t *testing.T, e *env, id domain.TokenID) (string, []byte) {
				tok, _, err := domain.IssueToken(e.w.policy, nil, domain.IssueRequest{Owner: "someone"}, domain.Meta{Actor: "user:1"}, e.w.clock.Now(), nil)
				if err != nil {
					t.Fatal(err)
				}
				body, err := e.store.Registry().Marshal(tok.Changes()[0])
				if err != nil {
					t.Fatal(err)
				}
				return fmt.Sprintf("tl.token.%s.issued_v1", id), body
			},
			cause: domain.ErrCorruptEvent,
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := newEnv(t, nil, uint64(10+i))
			cfg := e.testConfig()
			e.w.appendEvents(100, 20)
			first := e.start(cfg)
			e.waitCaughtUp(cfg.Name, e.last(), time.Minute)

			subject, body := tt.poison(t, e, newTokenID(t))
			msg := nats.NewMsg(subject)
			msg.Data = body
			msg.Header.Set(jetstream.MsgIDHeader, newEventID(t).String())
			ack, err := e.js.PublishMsg(ctx, msg)
			if err != nil {
				t.Fatalf("store the poison message: %v", err)
			}
			poison := ack.Sequence
			issuedBefore := len(e.w.tokens)
			e.w.appendEvents(50, 40)
			after := e.w.tokens[issuedBefore:]
			if len(after) == 0 {
				t.Fatal("no token issued after the poison event")
			}
			last := e.last()

			st := waitHalted(t, first.w, poison)
			if st.Halted.Subject != subject || st.Checkpoint != poison-1 || st.LagEvents != last-poison+1 || st.LagSeconds <= 0 {
				t.Errorf("Status = %+v (halt %+v), want halted at %d on %q with checkpoint %d and %d events of lag",
					st, *st.Halted, poison, subject, poison-1, last-poison+1)
			}
			err = first.w.Ready(ctx, last)
			if !errors.Is(err, consumers.ErrHalted) || !errors.Is(err, tt.cause) {
				t.Errorf("Ready = %v, want an error wrapping ErrHalted and %v", err, tt.cause)
			}

			// It stays halted while it reads the event again and again,
			// and nothing after the event is applied.
			stillHalted := func() int { return len(e.logs.lines("still halted", fmt.Sprintf("sequence=%d", poison))) }
			reads := stillHalted()
			stacktest.Eventually(t, 30*time.Second, func() bool { return stillHalted() >= reads+3 }, "the poison event read three more times")
			if cp := e.checkpoint(cfg.Name); cp != poison-1 {
				t.Errorf("checkpoint %d after reading it again, want %d", cp, poison-1)
			}
			for _, tok := range after {
				if _, err := e.proj.Get(ctx, tok.ID()); !errors.Is(err, domain.ErrNotFound) {
					t.Errorf("token %s, issued after the poison event, is in the projection (Get: %v)", tok.ID(), err)
				}
			}
			haltLine := fmt.Sprintf(" sequence=%d ", poison)
			if n := len(e.logs.lines("level=ERROR", "HALTED", haltLine)); n != 1 {
				t.Errorf("%d error lines report the halt, want exactly 1 however often the event comes back:\n%s", n, e.logs.tail(20))
			}
			if err := first.stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}

			// A skip sequence naming another event skips nothing.
			wrong := cfg
			wrong.SkipSequence = poison + 1
			second := e.start(wrong)
			waitHalted(t, second.w, poison)
			if err := second.stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if cp := e.checkpoint(cfg.Name); cp != poison-1 {
				t.Fatalf("checkpoint %d after a projector with skip sequence %d, want %d", cp, poison+1, poison-1)
			}

			// The explicit skip moves on, logs it and records it.
			skip := cfg
			skip.SkipSequence = poison
			third := e.start(skip)
			e.waitCaughtUp(cfg.Name, last, time.Minute)
			st, err = third.w.Progress(ctx)
			if err != nil {
				t.Fatalf("Status: %v", err)
			}
			if st.Halted != nil || st.Skipped == nil || st.Skipped.Sequence != poison || st.Skipped.Subject != subject {
				t.Errorf("Status after the skip = %+v, want not halted and event %d skipped", st, poison)
			}
			if err := third.w.Ready(ctx, 0); err != nil {
				t.Errorf("Ready after the skip: %v", err)
			}
			if n := len(e.logs.lines("level=ERROR", "SKIPPED", haltLine)); n != 1 {
				t.Errorf("%d error lines report the skip of %d, want 1", n, poison)
			}
			_, _, undecodable := e.fold()
			if len(undecodable) != 1 || undecodable[0] != poison {
				t.Fatalf("undecodable events %v, want [%d]", undecodable, poison)
			}
			e.requireMatchesFold(cfg.Name)
		})
	}
}

// waitHalted waits until p reports a halt at seq and returns its status.
func waitHalted(t *testing.T, p *consumers.LifecycleProjector, seq uint64) projections.Progress {
	t.Helper()
	var st projections.Progress
	stacktest.Eventually(t, 30*time.Second, func() bool {
		s, err := p.Progress(context.Background())
		st = s
		return err == nil && s.Halted != nil && s.Halted.Sequence == seq
	}, "projector halted at sequence %d", seq)
	return st
}

func newEventID(t *testing.T) domain.EventID {
	t.Helper()
	id, err := domain.NewEventID(time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func newTokenID(t *testing.T) domain.TokenID {
	t.Helper()
	id, err := domain.NewTokenID(time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
