package validator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
)

// Following the lifecycle stream.
//
// The tail reads the stream with an eventstore.Follower (an ordered
// consumer) from the sequence after the last one applied, and applies each event before asking for the
// next, so "delivered" and "applied" are the same position: however the
// consumer is re-created (by the client library after a reconnect, or by
// runTail after an error), it resumes right after the last applied event,
// and every event is applied once, in order.
//
// The validator is stale while it is not following the stream: from the
// moment the NATS connection is seen down (watchConnection polls it), or
// the tail fails (a consumer error, an event it cannot decode), until both
// are healthy again. Validate fails closed once that has lasted longer
// than Config.MaxStaleness.

const (
	// tailBatch is how many messages the consumer keeps in flight.
	tailBatch = 1024
	// tailRequestTimeout bounds creating the follower.
	tailRequestTimeout = 5 * time.Second
	// tailInactive is how long the server keeps a consumer nobody reads,
	// when the validator could not delete it.
	tailInactive = time.Minute
	// Backoff between attempts to follow the stream again.
	tailBackoffMin = 50 * time.Millisecond
	tailBackoffMax = 2 * time.Second
)

// health tracks the two ways the validator can stop following the
// stream, and publishes the earlier start of either as staleSince.
type health struct {
	mu       sync.Mutex
	connDown int64 // Unix µs; 0 while connected
	tailDown int64 // Unix µs; 0 while the tail is following
	lastErr  error
	// tailGen counts the tail's failures, so that a subscription that
	// settles clears only the failure it followed.
	tailGen uint64
	// tailBroken mirrors tailDown != 0, for the tail to check per event
	// without the lock; connBroken mirrors connDown != 0, for lookups.
	tailBroken, connBroken atomic.Bool
}

// setHealth records that the connection (conn) or the tail is down since
// now, with err, or up again. A down that is already recorded keeps its
// start: retrying does not restart the staleness clock.
func (v *Validator) setHealth(conn bool, down bool, now int64, err error) {
	v.health.mu.Lock()
	defer v.health.mu.Unlock()
	v.setHealthLocked(conn, down, now, err)
}

// settleTail records that the tail follows the stream again, unless it
// failed again since generation gen.
func (v *Validator) settleTail(gen uint64) {
	v.health.mu.Lock()
	defer v.health.mu.Unlock()
	if v.health.tailGen == gen {
		v.setHealthLocked(false, false, 0, nil)
	}
}

func (v *Validator) setHealthLocked(conn bool, down bool, now int64, err error) {
	h := &v.health
	if !conn && down {
		h.tailGen++
	}
	p := &h.tailDown
	if conn {
		p = &h.connDown
	}
	switch {
	case !down:
		*p = 0
	case *p == 0:
		*p = now
	}
	if down && err != nil {
		h.lastErr = err
	}
	h.tailBroken.Store(h.tailDown != 0)
	h.connBroken.Store(h.connDown != 0)
	since := h.connDown
	if since == 0 || (h.tailDown != 0 && h.tailDown < since) {
		since = h.tailDown
	}
	if since == 0 {
		h.lastErr = nil
	}
	if v.staleSince.Load() != since {
		v.staleSince.Store(since)
	}
}

// watchInterval is how often the connection's state is polled: a tenth
// of the staleness bound, within [5 ms, 500 ms].
func (v *Validator) watchInterval() time.Duration {
	return min(max(v.cfg.MaxStaleness/10, 5*time.Millisecond), 500*time.Millisecond)
}

// watchConnection marks the validator stale while the NATS connection is
// not connected.
func (v *Validator) watchConnection() {
	defer v.workers.Done()
	nc := v.cfg.Store.Conn()
	t := time.NewTicker(v.watchInterval())
	defer t.Stop()
	for {
		status := nc.Status()
		up := status == nats.CONNECTED
		var err error
		if !up {
			err = fmt.Errorf("nats connection %s", status)
		}
		v.setHealth(true, !up, v.clock.Now().UnixMicro(), err)
		select {
		case <-v.runCtx.Done():
			return
		case <-t.C:
		}
	}
}

// runTail follows the stream until the validator closes, re-subscribing
// after the last applied event whenever following fails.
func (v *Validator) runTail() {
	defer v.workers.Done()
	ctx := v.runCtx
	backoff := tailBackoffMin
	for {
		began := time.Now()
		progressed, err := v.follow(ctx)
		if ctx.Err() != nil {
			return
		}
		v.setHealth(false, true, v.clock.Now().UnixMicro(), err)
		v.stats.tailRestarts.Add(1)
		if progressed || time.Since(began) > tailBackoffMax {
			// It worked for a while: this is a new failure, not the same
			// one again.
			backoff = tailBackoffMin
		}
		v.log.Warn("following the lifecycle stream failed; subscribing again",
			"after_sequence", v.applied.Load(), "retry_in", backoff, "error", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, tailBackoffMax)
	}
}

// tailSettle is how long a new subscription must run without failing
// before the tail counts as following again, when no event arrives to
// prove it sooner: a subscription that fails at once (an event that
// cannot be decoded, a consumer that keeps being lost) must not reset
// the staleness clock at every retry.
func (v *Validator) tailSettle() time.Duration {
	return min(v.cfg.MaxStaleness/4, time.Second)
}

// follow subscribes after the last applied event and applies events until
// something fails; progressed reports whether it applied any.
func (v *Validator) follow(ctx context.Context) (progressed bool, err error) {
	// The span covers the subscription, not the following: a trace per
	// (re)connection of the tail.
	after := v.applied.Load()
	cctx, span := tracer().Start(ctx, SpanTail, trace.WithNewRoot(), trace.WithAttributes(
		AttrSequence.Int64(int64(after)), AttrRestarts.Int64(int64(v.stats.tailRestarts.Load()))))
	cctx, cancel := context.WithTimeout(cctx, tailRequestTimeout)
	f, err := v.cfg.Store.Follow(cctx, eventstore.Lifecycle, after+1, eventstore.FollowConfig{
		Buffer:   tailBatch,
		Inactive: tailInactive,
		Remove:   true,
	})
	cancel()
	endSpan(span, err)
	if err != nil {
		return false, fmt.Errorf("follow: %w", err)
	}
	defer f.Stop()
	stop := context.AfterFunc(ctx, f.Stop)
	defer stop()
	if v.health.tailBroken.Load() {
		v.health.mu.Lock()
		gen := v.health.tailGen
		v.health.mu.Unlock()
		settled := time.AfterFunc(v.tailSettle(), func() { v.settleTail(gen) })
		defer settled.Stop()
	}
	for {
		msg, err := f.Next()
		if err != nil {
			if errors.Is(err, eventstore.ErrStopped) && ctx.Err() != nil {
				return progressed, ctx.Err()
			}
			return progressed, fmt.Errorf("next event after sequence %d: %w", v.applied.Load(), err)
		}
		e, err := v.cfg.Store.Decode(msg)
		if err != nil {
			// Skipping an event could skip a revocation: stop here, and
			// stay stale until the event can be read.
			return progressed, err
		}
		v.applyTail(e)
		progressed = true
		if v.health.tailBroken.Load() {
			v.setHealth(false, false, 0, nil)
		}
	}
}

// applyTail applies one event delivered by the tail.
func (v *Validator) applyTail(e domain.Envelope) {
	if hook := v.beforeApply.Load(); hook != nil {
		(*hook)(e)
	}
	v.st.mu.Lock()
	if e.Sequence <= v.applied.Load() {
		v.st.mu.Unlock()
		return
	}
	v.w.applyTail(e)
	v.applied.Store(e.Sequence)
	v.st.mu.Unlock()
	v.lastEventTime.Store(micros(e.Time))
	v.lastAppliedAt.Store(v.clock.Now().UnixMicro())
	v.stats.eventsApplied.Add(1)
	if e.Sequence >= v.target {
		v.caughtOnce.Do(func() { close(v.caughtUp) })
	}
}
