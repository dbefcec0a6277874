package eventstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tokenledger/tokenledger/domain"
)

// Decode turns a message a Follower read into its Envelope, with Sequence
// set to the message's stream sequence. A message that is not a valid
// event, or is stored on a subject that does not match its content,
// yields a *DecodeError naming its stream sequence.
func (s *Store) Decode(msg Message) (domain.Envelope, error) {
	m := msg.m
	seq, _, ok := parseAckReply(m.Reply())
	if !ok {
		md, err := m.Metadata()
		if err != nil {
			return domain.Envelope{}, fmt.Errorf("decode message on %q: no stream sequence: %w", m.Subject(), err)
		}
		seq = md.Sequence.Stream
	}
	return s.decode(s.streamOf(m.Subject()), m.Subject(), seq, m.Data())
}

// decodeRaw turns a message read with a direct or stream get into its
// Envelope, with Sequence set. Errors are as for Decode.
func (s *Store) decodeRaw(msg *jetstream.RawStreamMsg) (domain.Envelope, error) {
	return s.decode(s.streamOf(msg.Subject), msg.Subject, msg.Sequence, msg.Data)
}

// decode unmarshals data stored at seq on subject of stream: a JSON event,
// or a usage batch in its binary form. An empty subject (a bulk read's
// message, see bulkRead) is not checked against the event.
func (s *Store) decode(stream, subject string, seq uint64, data []byte) (domain.Envelope, error) {
	var (
		e   domain.Envelope
		err error
	)
	if domain.IsUsageBatch(data) {
		e, err = s.reg.UnmarshalUsageBatch(data)
	} else {
		e, err = s.reg.Unmarshal(data)
	}
	if err != nil {
		return domain.Envelope{}, &DecodeError{Stream: stream, Sequence: seq, Subject: subject, Err: err}
	}
	if subject != "" && !s.subj.matches(subject, e) {
		return domain.Envelope{}, &DecodeError{Stream: stream, Sequence: seq, Subject: subject,
			Err: fmt.Errorf("%w: event %s (%s of %s %s) does not belong on this subject",
				domain.ErrCorruptEvent, e.ID, e.Type, e.AggregateKind, e.AggregateID)}
	}
	e.Sequence = seq
	return e, nil
}

// nameSubject fills in the subject of a DecodeError of a bulk read, whose
// messages come without, by getting the message again.
func (s *Store) nameSubject(ctx context.Context, err error) error {
	var de *DecodeError
	if !errors.As(err, &de) || de.Subject != "" {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	if m, gerr := s.stream.GetMsg(ctx, de.Sequence); gerr == nil {
		de.Subject = m.Subject
	}
	return err
}

// streamOf names the stream a subject belongs to, for error messages.
func (s *Store) streamOf(subject string) string {
	if rest, ok := strings.CutPrefix(subject, s.subj.prefix+"."); ok && strings.HasPrefix(rest, "usage.") {
		return s.cfg.UsageStream
	}
	return s.cfg.Stream
}

// parseAckReply extracts the stream sequence and the store timestamp (Unix
// nanoseconds) from a JetStream ack reply subject without allocating. Both
// layouts are understood:
//
//	$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>
//	$JS.ACK.<domain>.<acc>.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>[.<token>]
func parseAckReply(reply string) (seq uint64, ts int64, ok bool) {
	const maxTokens = 12
	var tokens [maxTokens]string
	n := 0
	for n < maxTokens {
		i := strings.IndexByte(reply, '.')
		if i < 0 {
			tokens[n] = reply
			n++
			reply = ""
			break
		}
		tokens[n] = reply[:i]
		n++
		reply = reply[i+1:]
	}
	if reply != "" || n < 9 || tokens[0] != "$JS" || tokens[1] != "ACK" {
		return 0, 0, false
	}
	var seqTok, tsTok string
	switch {
	case n == 9:
		seqTok, tsTok = tokens[5], tokens[7]
	case n >= 11:
		seqTok, tsTok = tokens[7], tokens[9]
	default:
		return 0, 0, false
	}
	seq, ok = parseUint(seqTok)
	if !ok || seq == 0 {
		return 0, 0, false
	}
	t, ok := parseUint(tsTok)
	if !ok {
		return 0, 0, false
	}
	return seq, int64(t), true
}

// parseUint parses a decimal number without allocating.
func parseUint(s string) (uint64, bool) {
	if s == "" || len(s) > 19 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}
