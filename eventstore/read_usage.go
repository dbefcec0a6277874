package eventstore

import (
	"context"
	"fmt"
	"strings"

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
	return s.scanRange(ctx, s.usage, s.cfg.UsageStream, from, end, fn)
}

// parseAckReplyPending extracts the stream sequence, the storage time and
// the number of messages pending after this one from a JetStream ack reply
// subject (either layout parseAckReply understands), without allocating.
func parseAckReplyPending(reply string) (seq uint64, ts int64, pending uint64, ok bool) {
	seq, ts, ok = parseAckReply(reply)
	if !ok {
		return 0, 0, 0, false
	}
	// The pending count is the token after the timestamp: the ninth of the
	// short layout, the eleventh of the long one, which parseAckReply
	// told apart by the number of tokens.
	n := strings.Count(reply, ".") + 1
	var want int
	switch {
	case n == 9:
		want = 8
	case n >= 11:
		want = 10
	default:
		return 0, 0, 0, false
	}
	for range want {
		reply = reply[strings.IndexByte(reply, '.')+1:]
	}
	if i := strings.IndexByte(reply, '.'); i >= 0 {
		reply = reply[:i]
	}
	pending, ok = parseUint(reply)
	return seq, ts, pending, ok
}
