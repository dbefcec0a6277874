package eventstore

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
)

// TestBulkReceiveChecksTheBatch feeds answers to one request of a bulk
// read and checks that a batch whose end-of-batch answer does not add up
// with what arrived is fetched again with headers.
func TestBulkReceiveChecksTheBatch(t *testing.T) {
	t.Parallel()
	eob := func(reply string, status string, last uint64) *nats.Msg {
		m := nats.NewMsg(reply)
		m.Header.Set(statusHeader, status)
		if last > 0 {
			m.Header.Set(lastSequenceHeader, strconv.FormatUint(last, 10))
		}
		return m
	}
	// msg is the message of sequence seq on subject subj.
	msg := func(reply string, seq uint64, subj string) *nats.Msg {
		m := nats.NewMsg(reply)
		m.Data = []byte(`{}`)
		m.Header.Set("Nats-Sequence", strconv.FormatUint(seq, 10))
		if subj != "" {
			m.Header.Set("Nats-Subject", subj)
		}
		return m
	}
	data := func(reply string, seq uint64) *nats.Msg { return msg(reply, seq, "tl.token.x.issued_v1") }
	cases := []struct {
		name     string
		answer   func(reply string) []*nats.Msg
		wantSlow bool
	}{
		{"complete", func(r string) []*nats.Msg {
			return []*nats.Msg{data(r, 10), data(r, 11), data(r, 12), eob(r, "204", 12)}
		}, false},
		{"a message missing", func(r string) []*nats.Msg { return []*nats.Msg{data(r, 10), data(r, 12), eob(r, "204", 12)} }, true},
		{"short: a replica behind", func(r string) []*nats.Msg { return []*nats.Msg{data(r, 10), data(r, 11), eob(r, "204", 11)} }, true},
		{"no last sequence", func(r string) []*nats.Msg {
			return []*nats.Msg{data(r, 10), data(r, 11), data(r, 12), eob(r, "204", 0)}
		}, true},
		{"not found", func(r string) []*nats.Msg { return []*nats.Msg{eob(r, "404", 0)} }, true},
		{"a message without its subject", func(r string) []*nats.Msg {
			return []*nats.Msg{msg(r, 10, ""), data(r, 11), data(r, 12), eob(r, "204", 12)}
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			work := make(chan *chunk, 1)
			b := &bulkRead{prefix: "_INBOX.x.", window: 2, work: work, slots: make(chan struct{}, 2), pending: make([]*chunk, 2)}
			c := &chunk{from: 10, count: 3, request: 5}
			b.pending[5%2] = c
			b.slots <- struct{}{}
			// An answer to another request is dropped.
			b.receive(data(b.prefix+strconv.FormatUint(3, 36), 10))
			for _, m := range tc.answer(b.prefix + strconv.FormatUint(5, 36)) {
				b.receive(m)
			}
			select {
			case got := <-work:
				if got != c || got.slow != tc.wantSlow {
					t.Fatalf("chunk handed on with slow %v, want %v", got.slow, tc.wantSlow)
				}
				if !tc.wantSlow && len(got.items) != 3 {
					t.Fatalf("%d items, want 3", len(got.items))
				}
				if tc.wantSlow && len(got.items) != 0 {
					t.Fatalf("a chunk to fetch again keeps %d items", len(got.items))
				}
			default:
				t.Fatal("the chunk was not handed to the decoders")
			}
			if len(b.slots) != 0 {
				t.Fatal("the request's place in the window was not freed")
			}
		})
	}
}

// TestBulkSlowChunksReadTheSame reads a stream with every chunk fetched
// the fast way and fetched again with headers, and requires the same
// events, with their sequences, either way.
func TestBulkSlowChunksReadTheSame(t *testing.T) {
	ctx := context.Background()
	nc := stacktest.Conn(t, stacktest.NATS(t))
	store, err := Open(ctx, nc, domain.NewDefaultRegistry(), DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	now := time.Now().UTC()
	const tokens = 2 * bulkBatch
	var batch []domain.Envelope
	for i := range tokens {
		tok, _, err := domain.IssueToken(domain.DefaultPolicy(), nil, domain.IssueRequest{Owner: domain.OwnerID("o" + strconv.Itoa(i%7))},
			domain.Meta{Actor: "test"}, now, nil)
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, tok.Changes()...)
		if len(batch) == MaxBatch || i == tokens-1 {
			if _, err := store.AppendAtomic(ctx, Change{Expect: ExpectNothing(), Events: batch}); err != nil {
				t.Fatal(err)
			}
			batch = nil
		}
	}
	var fast []domain.Envelope
	last, err := store.Read(ctx, 1, func(e domain.Envelope) error {
		fast = append(fast, e)
		return nil
	})
	if err != nil || last != tokens || len(fast) != tokens {
		t.Fatalf("read %d events through %d: %v", len(fast), last, err)
	}
	for i, e := range fast {
		if e.Sequence != uint64(i+1) {
			t.Fatalf("event %d has sequence %d", i, e.Sequence)
		}
	}
	// The same ranges, fetched again with headers, as an answer that did
	// not add up is.
	var slow []domain.Envelope
	for from := uint64(1); from <= tokens; from += bulkBatch {
		c := &chunk{from: from, count: min(bulkBatch, tokens-from+1), done: make(chan struct{})}
		if err := store.fillSlow(ctx, c); err != nil {
			t.Fatal(err)
		}
		for _, it := range c.items {
			if it.subject == "" || it.seq == 0 {
				t.Fatalf("a message fetched with headers lacks its subject or sequence: %+v", it)
			}
		}
		store.decodeChunk(ctx, store.cfg.Stream, c)
		if c.err != nil {
			t.Fatal(c.err)
		}
		slow = append(slow, c.events...)
	}
	if !slices.EqualFunc(fast, slow, func(a, b domain.Envelope) bool {
		return a.ID == b.ID && a.Sequence == b.Sequence && a.AggregateID == b.AggregateID
	}) {
		t.Fatalf("fetched again with headers: %d events differ from the %d read", len(slow), len(fast))
	}
}
