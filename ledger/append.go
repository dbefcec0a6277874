package ledger

import (
	"context"
	"errors"
	"fmt"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	mrand "math/rand/v2"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
)

// retry runs decide until it succeeds, fails with anything but a store
// conflict, or MaxAttempts ran out. Between attempts it pauses for a
// random part of a growing backoff, so that writers racing for one
// aggregate stop colliding (and a replica that served a load catches up)
// instead of spending every attempt within the same few milliseconds.
func (s *Service) retry(ctx context.Context, op string, decide func(now time.Time) error) error {
	var err error
	backoff := conflictBackoffMin
	for attempt := 0; attempt < s.cfg.MaxAttempts; attempt++ {
		if attempt > 0 {
			if s.cfg.Metrics != nil {
				s.cfg.Metrics.ObserveRetry(op)
			}
			if span := trace.SpanFromContext(ctx); span.IsRecording() {
				span.AddEvent("conflict retry", trace.WithAttributes(
					attribute.String("tokenledger.op", op), attribute.Int("tokenledger.attempt", attempt+1)))
			}
			if werr := sleep(ctx, mrand.N(backoff)+1); werr != nil {
				return fmt.Errorf("%w: %w", ErrUnavailable, werr)
			}
			backoff = min(2*backoff, conflictBackoffMax)
		}
		err = decide(s.cfg.Clock.Now())
		if !errors.Is(err, eventstore.ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("%w: gave up after %d attempts: %w", ErrConflict, s.cfg.MaxAttempts, err)
}

// The pauses between conflict retries grow from conflictBackoffMin to
// conflictBackoffMax: DefaultMaxAttempts attempts span about half a
// second at most.
const (
	conflictBackoffMin = 2 * time.Millisecond
	conflictBackoffMax = 128 * time.Millisecond
)

// sleep pauses for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// append stores tok's pending changes with do, tells the observers, and
// marks them stored.
func (s *Service) append(ctx context.Context, op string, tok *domain.Token, do func() ([]domain.Envelope, error)) error {
	start := time.Now()
	stored, err := do()
	s.observeAppend(op, start, err)
	if err != nil {
		return storeErr(err)
	}
	s.observe(stored)
	return markStored(tok, stored)
}

func (s *Service) observeAppend(op string, start time.Time, err error) {
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.ObserveAppend(op, time.Since(start), err)
	}
}

func (s *Service) observe(stored []domain.Envelope) {
	if s.cfg.Observer != nil && len(stored) > 0 {
		s.cfg.Observer.Observe(stored...)
	}
}

func markStored(tok *domain.Token, stored []domain.Envelope) error {
	if err := tok.MarkStored(sequences(stored)...); err != nil {
		return fmt.Errorf("mark token %s stored: %w", tok.ID(), err)
	}
	return nil
}

func sequences(events []domain.Envelope) []uint64 {
	seqs := make([]uint64, len(events))
	for i, e := range events {
		seqs[i] = e.Sequence
	}
	return seqs
}

// lifetimeErr reports a lifetime beyond the caller's bound (the only bound
// the ledger sets) as ErrLifetimeExceedsCaller.
func lifetimeErr(err error) error {
	if errors.Is(err, domain.ErrLifetimeBound) {
		return fmt.Errorf("%w: %w", ErrLifetimeExceedsCaller, err)
	}
	return err
}

// storeErr passes conflicts through (they are retried) and marks every
// other failure of the store as ErrUnavailable.
func storeErr(err error) error {
	if errors.Is(err, eventstore.ErrConflict) || errors.Is(err, domain.ErrInvalidArgument) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
