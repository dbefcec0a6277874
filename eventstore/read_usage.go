package eventstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tokenledger/tokenledger/domain"
)

// ReadUsage passes every usage event the usage stream still holds from
// stream sequence from (1 when 0) to the stream's last sequence captured
// when ReadUsage started, in stream order, to fn. It returns last, the
// sequence of the last event fn accepted (from-1 when none), and stops at
// the first error: fn's own, or a *DecodeError for a message that is not a
// valid event. Events appended after ReadUsage started are not delivered.
//
// The usage stream keeps events for Config.UsageMaxAge only: events that
// aged out are silently absent (the first sequence delivered may be later
// than from), and so are events that age out while the read runs.
func (s *Store) ReadUsage(ctx context.Context, from uint64, fn func(domain.Envelope) error) (last uint64, err error) {
	if from == 0 {
		from = 1
	}
	last = from - 1
	ictx, cancel := s.withTimeout(ctx)
	info, err := s.usage.Info(ictx)
	cancel()
	if err != nil {
		return last, fmt.Errorf("read usage: stream %s: %w", s.cfg.UsageStream, err)
	}
	end := info.State.LastSeq
	if info.State.Msgs == 0 || from > end {
		return last, nil
	}
	cctx, cancel := s.withTimeout(ctx)
	cons, err := s.usage.OrderedConsumer(cctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       from,
		InactiveThreshold: 30 * time.Second,
	})
	cancel()
	if err != nil {
		return last, fmt.Errorf("read usage from %d: %w", from, err)
	}
	defer s.deleteUsageConsumer(cons)
	it, err := cons.Messages(jetstream.PullMaxMessages(s.cfg.ReadBatch))
	if err != nil {
		return last, fmt.Errorf("read usage from %d: %w", from, err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				err = cerr
			}
			return last, fmt.Errorf("read usage after %d: %w", last, err)
		}
		seq, pending, ok := parseAckSeqPending(msg.Reply())
		if !ok {
			md, err := msg.Metadata()
			if err != nil {
				return last, fmt.Errorf("read usage after %d: %w", last, err)
			}
			seq, pending = md.Sequence.Stream, md.NumPending
		}
		if err := ctx.Err(); err != nil {
			return last, fmt.Errorf("read usage after %d: %w", last, err)
		}
		e, err := s.decode(s.cfg.UsageStream, msg.Subject(), seq, msg.Data())
		if err != nil {
			return last, err
		}
		if err := fn(e); err != nil {
			return last, fmt.Errorf("read usage: event at sequence %d: %w", seq, err)
		}
		last = seq
		// Nothing pending means the stream holds nothing after this
		// message: the events up to end aged out meanwhile, and waiting
		// for them would wait forever.
		if seq >= end || pending == 0 {
			return last, nil
		}
	}
}

// deleteUsageConsumer removes a usage read's consumer right away instead
// of leaving it to the server's inactivity cleanup.
func (s *Store) deleteUsageConsumer(cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	defer cancel()
	_ = s.js.DeleteConsumer(ctx, s.cfg.UsageStream, info.Name)
}

// parseAckSeqPending extracts the stream sequence and the number of
// messages pending after this one from a JetStream ack reply subject
// (either layout parseAckReply understands).
func parseAckSeqPending(reply string) (seq, pending uint64, ok bool) {
	seq, _, ok = parseAckReply(reply)
	if !ok {
		return 0, 0, false
	}
	tokens := strings.Split(reply, ".")
	var pendingTok string
	switch {
	case len(tokens) == 9:
		pendingTok = tokens[8]
	case len(tokens) >= 11:
		pendingTok = tokens[10]
	default:
		return 0, 0, false
	}
	pending, ok = parseUint(pendingTok)
	return seq, pending, ok
}
