package eventstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tokenledger/tokenledger/domain"
)

// Load returns every lifecycle event of aggregate a, oldest first, with
// Sequence set; an empty slice when it has none. The result includes
// every append acknowledged before Load was called: Load first asks the
// stream leader which subjects of the aggregate hold how many events, then
// reads them with direct gets, which any replica may answer, waiting for a
// replica that lags behind the leader to catch up.
//
// Direct batch gets are used rather than an ordered consumer: an
// aggregate's history is small and spread over a long stream, and a
// direct get of one subject is served from the server's per-subject index,
// where a consumer costs a create, a walk of the stream and a delete.
func (s *Store) Load(ctx context.Context, a Aggregate) ([]domain.Envelope, error) {
	if a.IsZero() {
		return nil, fmt.Errorf("load: %w: no aggregate", domain.ErrInvalidArgument)
	}
	events := []domain.Envelope{}
	err := s.loadRaw(ctx, s.subj.Filter(a), 1, func(m *jetstream.RawStreamMsg) error {
		e, err := s.decodeRaw(m)
		if err != nil {
			return err
		}
		events = append(events, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", a, err)
	}
	return events, nil
}

// LoadToken returns every lifecycle event of token id, as Load.
func (s *Store) LoadToken(ctx context.Context, id domain.TokenID) ([]domain.Envelope, error) {
	return s.Load(ctx, Token(id))
}

// LoadIssued returns the token.issued event of token id; ok is false when
// the token has none. The event is the one message on its subject, read
// with one direct get, which any replica may answer: when that finds
// nothing (a replica that has not caught up yet may answer "not found"),
// LoadIssued loads the token as LoadToken does, which waits for it. Both
// share one Config.RequestTimeout.
func (s *Store) LoadIssued(ctx context.Context, id domain.TokenID) (e domain.Envelope, ok bool, err error) {
	subject, err := s.subj.TokenSubject(id, domain.TypeTokenIssued)
	if err != nil {
		return domain.Envelope{}, false, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	msg, err := s.stream.GetLastMsgForSubject(ctx, subject)
	switch {
	case err == nil:
		if e, err = s.decodeRaw(msg); err != nil {
			return domain.Envelope{}, false, err
		}
		if _, ok := e.Data.(domain.TokenIssued); !ok {
			return domain.Envelope{}, false, fmt.Errorf("%w: %s holds a %s event", domain.ErrCorruptEvent, subject, e.Type)
		}
		return e, true, nil
	case !errors.Is(err, jetstream.ErrMsgNotFound):
		return domain.Envelope{}, false, fmt.Errorf("load token.issued of %s: %w", id, err)
	}
	events, err := s.LoadToken(ctx, id)
	if err != nil {
		return domain.Envelope{}, false, err
	}
	if len(events) > 0 {
		if _, ok := events[0].Data.(domain.TokenIssued); ok {
			return events[0], true, nil
		}
	}
	return domain.Envelope{}, false, nil
}

// LoadOwner returns every owner-wide event of owner, as Load.
func (s *Store) LoadOwner(ctx context.Context, owner domain.OwnerID) ([]domain.Envelope, error) {
	if err := domain.ValidateOwner(owner); err != nil {
		return nil, fmt.Errorf("load owner: %w", err)
	}
	return s.Load(ctx, Owner(owner))
}

// LastSequence returns the stream sequence of aggregate a's last event, 0
// when it has none: the value to pass to ExpectToken/ExpectOwner. On a
// replicated stream it is answered by the stream leader, so it reflects
// every acknowledged append.
func (s *Store) LastSequence(ctx context.Context, a Aggregate) (uint64, error) {
	if a.IsZero() {
		return 0, fmt.Errorf("last sequence: %w: no aggregate", domain.ErrInvalidArgument)
	}
	var seq uint64
	err := s.untilDeadline(ctx, func(ctx context.Context) (err error) {
		seq, err = s.lastSequence(ctx, s.subj.Filter(a))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("last sequence of %s: %w", a, err)
	}
	return seq, nil
}

// StreamLastSequence returns the lifecycle stream's last sequence (0 when
// empty), as known to the stream leader.
func (s *Store) StreamLastSequence(ctx context.Context) (uint64, error) {
	var last uint64
	err := s.untilDeadline(ctx, func(ctx context.Context) error {
		info, err := s.stream.Info(ctx)
		if err != nil {
			return err
		}
		last = info.State.LastSeq
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("stream %s last sequence: %w", s.cfg.Stream, err)
	}
	return last, nil
}

// lastSequence returns the sequence of the last message matching filter.
func (s *Store) lastSequence(ctx context.Context, filter string) (uint64, error) {
	if s.cfg.Replicas == 1 {
		// The only replica answers direct gets, and a direct get skips
		// the JSON and base64 of the API response.
		m, err := s.stream.GetLastMsgForSubject(ctx, filter)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		return m.Sequence, nil
	}
	return s.leaderLastSequence(ctx, filter)
}

// leaderLastSequence asks the stream leader (not a direct get, which any
// replica may answer) for the last message matching filter.
func (s *Store) leaderLastSequence(ctx context.Context, filter string) (uint64, error) {
	req, err := json.Marshal(struct {
		LastFor string `json:"last_by_subj"`
		NoHdr   bool   `json:"no_hdr"`
	}{filter, true})
	if err != nil {
		return 0, err
	}
	resp, err := s.js.Conn().RequestWithContext(ctx, s.apiPrefix+"STREAM.MSG.GET."+s.cfg.Stream, req)
	if err != nil {
		return 0, err
	}
	var r struct {
		Error   *jetstream.APIError `json:"error"`
		Message *struct {
			Sequence uint64 `json:"seq"`
		} `json:"message"`
	}
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		return 0, fmt.Errorf("stream msg get response: %w", err)
	}
	switch {
	case r.Error != nil && r.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return 0, nil
	case r.Error != nil:
		return 0, r.Error
	case r.Message == nil:
		return 0, jetstream.ErrInvalidJetStreamResponse
	}
	return r.Message.Sequence, nil
}

// loadRaw passes every message matching filter from stream sequence from
// on, in stream order, to fn. The result is at least as new as the stream
// leader when loadRaw was called.
//
// The server answers a wildcard "next message" request by walking the
// stream's blocks message by message once a block holds many subjects, as
// it does here (every token has subjects of its own), and it stops
// skipping blocks by subject once the stream has more than a million
// subjects. So loadRaw does not page through the wildcard filter: it asks
// the stream leader which literal subjects match and how many messages
// each holds (answered from the per-subject index), then fetches each
// subject with a direct batch get of exactly that many messages, which the
// server serves from its per-subject index too, and merges them by
// sequence.
func (s *Store) loadRaw(ctx context.Context, filter string, from uint64, fn func(*jetstream.RawStreamMsg) error) error {
	// fn sees the messages only once all are fetched, so a retried
	// attempt never passes a message twice.
	return s.untilDeadline(ctx, func(ctx context.Context) error {
		return s.loadRawOnce(ctx, filter, from, fn)
	})
}

// loadRawOnce is one attempt of loadRaw.
func (s *Store) loadRawOnce(ctx context.Context, filter string, from uint64, fn func(*jetstream.RawStreamMsg) error) error {
	info, err := s.stream.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return err
	}
	total := 0
	for _, n := range info.State.Subjects {
		total += int(n)
	}
	var msgs []*jetstream.RawStreamMsg
	if len(info.State.Subjects) == 1 {
		for subject, n := range info.State.Subjects {
			if msgs, err = s.getSubject(ctx, subject, int(n), make([]*jetstream.RawStreamMsg, 0, n)); err != nil {
				return err
			}
		}
	} else {
		// The subjects are fetched concurrently: each get is a round trip
		// and an aggregate has only a handful of subjects.
		type result struct {
			msgs []*jetstream.RawStreamMsg
			err  error
		}
		results := make(chan result, len(info.State.Subjects))
		for subject, n := range info.State.Subjects {
			go func() {
				got, err := s.getSubject(ctx, subject, int(n), make([]*jetstream.RawStreamMsg, 0, n))
				results <- result{got, err}
			}()
		}
		msgs = make([]*jetstream.RawStreamMsg, 0, total)
		var errs []error
		for range info.State.Subjects {
			r := <-results
			msgs = append(msgs, r.msgs...)
			if r.err != nil {
				errs = append(errs, r.err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
	}
	slices.SortFunc(msgs, func(a, b *jetstream.RawStreamMsg) int { return cmp.Compare(a.Sequence, b.Sequence) })
	for _, m := range msgs {
		if m.Sequence < from {
			continue
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	return nil
}

// getSubject appends the first n messages on the literal subject to msgs.
// Any replica may answer a direct get; one that has not caught up with the
// leader yet returns fewer than n, and is asked again until it has.
func (s *Store) getSubject(ctx context.Context, subject string, n int, msgs []*jetstream.RawStreamMsg) ([]*jetstream.RawStreamMsg, error) {
	var next uint64 = 1
	backoff := time.Millisecond
	for got := 0; got < n; {
		page, last, pending, err := s.getPage(ctx, subject, next, min(n-got, s.cfg.LoadBatch))
		if err != nil {
			return msgs, fmt.Errorf("get %s from sequence %d: %w", subject, next, err)
		}
		msgs = append(msgs, page...)
		got += len(page)
		if len(page) > 0 {
			next = last + 1
		}
		if got >= n || (len(page) > 0 && pending > 0) {
			continue
		}
		if err := wait(ctx, backoff); err != nil {
			return msgs, fmt.Errorf("get %s: replica has %d of %d messages: %w", subject, got, n, err)
		}
		backoff = min(2*backoff, 50*time.Millisecond)
	}
	return msgs, nil
}

// getPage asks for up to batch messages on subject from sequence from and
// returns them with the last sequence and the number of messages the
// server reported still pending after them.
func (s *Store) getPage(ctx context.Context, subject string, from uint64, batch int) (page []*jetstream.RawStreamMsg, last uint64, pending uint64, err error) {
	page, pending, err = s.direct.get(ctx, subject, from, batch)
	if err != nil || len(page) == 0 {
		return page, 0, 0, err
	}
	return page, page[len(page)-1].Sequence, pending, nil
}

// Read passes every lifecycle event from stream sequence from (1 when 0)
// to the stream's last sequence captured when Read started, in stream
// order, to fn. It returns last, the sequence of the last event fn
// accepted (from-1 when none), so a caller resumes at last+1. It stops at
// the first error: fn's own, or a *DecodeError for a message that is not a
// valid event. Events appended after Read started are not delivered.
//
// Read asks for the history in batches of consecutive sequences, several
// at once, and decodes on every core (see Scanner and bulkRead), handing
// the events to fn in order on the calling goroutine. It checks every
// event's content, that no sequence is missing, and that every event is
// stored on its aggregate's subject, as Load and the projector do.
func (s *Store) Read(ctx context.Context, from uint64, fn func(domain.Envelope) error) (last uint64, err error) {
	if from == 0 {
		from = 1
	}
	last = from - 1
	end, err := s.StreamLastSequence(ctx)
	if err != nil {
		return last, fmt.Errorf("read: %w", err)
	}
	if from > end {
		return last, nil
	}
	return s.scanRange(ctx, s.stream, s.cfg.Stream, from, end, fn)
}

// scanRange passes the events of stream (named name) from sequence from
// through end to fn, in order, as consume does without a filter or an
// instant, but decoding on every core with a Scanner: a long read is
// mostly decoding. It returns the sequence of the last event fn accepted
// (from-1 when none).
func (s *Store) scanRange(ctx context.Context, stream jetstream.Stream, name string, from, end uint64, fn func(domain.Envelope) error) (uint64, error) {
	last := from - 1
	sc, err := s.scan(ctx, stream, name, from, end)
	if err != nil {
		return last, fmt.Errorf("read %s from %d: %w", name, from, err)
	}
	defer sc.Close()
	for {
		e, err := sc.Next(ctx)
		if err != nil {
			return last, err
		}
		if e == nil {
			return last, nil
		}
		if err := ctx.Err(); err != nil {
			return last, fmt.Errorf("read %s after %d: %w", name, last, err)
		}
		if err := fn(*e); err != nil {
			return last, fmt.Errorf("read %s: event at sequence %d: %w", name, e.Sequence, err)
		}
		last = e.Sequence
	}
}

// ReadTokenEvents passes every lifecycle event of type t on any token, from
// stream sequence from (1 when 0) through through, in stream order, to fn.
// It returns the sequence of the last event fn accepted (from-1 when none).
// Errors are as for Read.
//
// The stream is read with a subject filter (Subjects.TokenTypeFilter), so
// the server skips every other event and only the matching ones travel;
// the server still walks the range, so the cost grows with through-from.
// It is meant for short ranges, such as the events a projection has not
// applied yet.
func (s *Store) ReadTokenEvents(ctx context.Context, t domain.EventType, from, through uint64, fn func(domain.Envelope) error) (last uint64, err error) {
	if from == 0 {
		from = 1
	}
	filter, err := s.subj.TokenTypeFilter(t)
	if err != nil {
		return from - 1, fmt.Errorf("read %s events: %w", t, err)
	}
	if from > through {
		return from - 1, nil
	}
	return s.consume(ctx, s.stream, s.cfg.Stream, filter, from, through, fn)
}

// consume passes the events of stream (named name) from sequence from
// through end to fn, in order, with an ordered consumer, only those on
// subjects matching filter unless it is empty. It stops after end, when the
// server says nothing is pending after a message (events that aged out of
// a stream with a retention never arrive), or at the first error. It returns
// the sequence of the last event fn accepted (from-1 when none).
func (s *Store) consume(ctx context.Context, stream jetstream.Stream, name, filter string, from, end uint64,
	fn func(domain.Envelope) error) (uint64, error) {
	last := from - 1
	cfg := jetstream.OrderedConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       from,
		InactiveThreshold: 30 * time.Second,
	}
	if filter != "" {
		cfg.FilterSubjects = []string{filter}
	}
	cctx, cancel := s.withTimeout(ctx)
	cons, err := stream.OrderedConsumer(cctx, cfg)
	cancel()
	if err != nil {
		return last, fmt.Errorf("read %s from %d: %w", name, from, err)
	}
	defer s.deleteConsumer(name, cons)
	if info := cons.CachedInfo(); filter != "" && info != nil && info.NumPending == 0 {
		// Nothing matches from the start sequence on: waiting for a
		// message would wait for the next matching append.
		return last, nil
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(s.cfg.ReadBatch))
	if err != nil {
		return last, fmt.Errorf("read %s from %d: %w", name, from, err)
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
			return last, fmt.Errorf("read %s after %d: %w", name, last, err)
		}
		seq, _, pending, ok := parseAckReplyPending(msg.Reply())
		if !ok {
			md, err := msg.Metadata()
			if err != nil {
				return last, fmt.Errorf("read %s after %d: %w", name, last, err)
			}
			seq, pending = md.Sequence.Stream, md.NumPending
		}
		if seq > end {
			return last, nil
		}
		if err := ctx.Err(); err != nil {
			return last, fmt.Errorf("read %s after %d: %w", name, last, err)
		}
		e, err := s.decode(name, msg.Subject(), seq, msg.Data())
		if err != nil {
			return last, err
		}
		if err := fn(e); err != nil {
			return last, fmt.Errorf("read %s: event at sequence %d: %w", name, seq, err)
		}
		last = seq
		if seq >= end || pending == 0 {
			return last, nil
		}
	}
}

// deleteConsumer removes a read's consumer on stream name right away
// instead of leaving it to the server's inactivity cleanup.
func (s *Store) deleteConsumer(name string, cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	defer cancel()
	_ = s.js.DeleteConsumer(ctx, name, info.Name)
}
