package eventstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tokenledger/tokenledger/domain"
)

// seedWindow is how many messages of a Seed await their acknowledgements
// at a time.
const seedWindow = 2048

// Seed stores lifecycle events as fast as the server takes them, for
// loading a benchmark's or a test's data set: each event is encoded and
// published on its subject with its id as Nats-Msg-Id, as Append would,
// but without any concurrency expectation, pipelined up to a few thousand
// awaiting their acknowledgements. Nothing checks that the events are
// valid decisions: live traffic goes through Append (package ledger),
// never through Seed. It returns once every event is acknowledged, or at
// the first failure; events already stored stay stored, and a repeated
// call stores none twice within the duplicate window.
func (s *Store) Seed(ctx context.Context, events []domain.Envelope) error {
	futures := make([]jetstream.PubAckFuture, 0, min(len(events), seedWindow))
	flush := func() error {
		var errs []error
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				errs = append(errs, fmt.Errorf("seed %s: %w", f.Msg().Subject, err))
			case <-ctx.Done():
				return fmt.Errorf("seed: %w", ctx.Err())
			}
		}
		futures = futures[:0]
		return errors.Join(errs...)
	}
	for _, e := range events {
		if e.Type == domain.TypeTokenUsed || e.Type == domain.TypeUsageBatch {
			return fmt.Errorf("seed: %w: event %s is usage", domain.ErrInvalidArgument, e.ID)
		}
		subject, err := s.subj.Subject(e)
		if err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		data, err := s.reg.Marshal(e)
		if err != nil {
			return fmt.Errorf("seed: %w: %v", domain.ErrInvalidArgument, err)
		}
		m := nats.NewMsg(subject)
		m.Data = data
		m.Header.Set(jetstream.MsgIDHeader, e.ID.String())
		f, err := s.js.PublishMsgAsync(m)
		if err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		futures = append(futures, f)
		if len(futures) == seedWindow {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}
