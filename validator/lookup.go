package validator

import (
	"context"
	"sync"

	"go.opentelemetry.io/otel/trace"

	"github.com/tokenledger/tokenledger/domain"
)

// lookups resolves young token ids that are not in memory by loading
// their history from the event store. It is what keeps unknown ids from
// turning into load on the store:
//   - only young ids get here (Validator.validateUnknown);
//   - concurrent lookups of one id share a single load;
//   - loads are rate limited for the whole validator by a token bucket;
//   - an id a load did not find is refused from memory for NegativeTTL,
//     in a cache of bounded size.
type lookups struct {
	v *Validator

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup // loads in flight
	calls  map[domain.TokenID]*lookupCall
	// neg maps ids not found to when that answer expires (Unix µs); ring
	// holds them in insertion order to bound their number.
	neg     map[domain.TokenID]int64
	ring    []domain.TokenID
	next    int
	tokens  float64 // token bucket level
	refill  int64   // Unix µs of the last refill
	rate    float64 // tokens per µs
	burst   float64
	negTTL  int64
	negSize int
}

// lookupCall is one load shared by every caller asking for its id.
type lookupCall struct {
	done chan struct{}
	err  error // nil: the token is in memory now
}

func newLookups(v *Validator) *lookups {
	return &lookups{
		v:       v,
		calls:   make(map[domain.TokenID]*lookupCall),
		neg:     make(map[domain.TokenID]int64),
		tokens:  float64(v.cfg.LookupBurst),
		refill:  v.clock.Now().UnixMicro(),
		rate:    v.cfg.LookupRate / 1e6,
		burst:   float64(v.cfg.LookupBurst),
		negTTL:  v.cfg.NegativeTTL.Microseconds(),
		negSize: v.cfg.NegativeCacheSize,
	}
}

// resolve makes sure id is in memory if the store has it: nil means it
// now is. Otherwise the error matches ErrUnknown.
func (l *lookups) resolve(ctx context.Context, id domain.TokenID, now int64) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	if until, ok := l.neg[id]; ok {
		if now < until {
			l.mu.Unlock()
			l.v.stats.negativeHits.Add(1)
			return errLookupNegative
		}
		delete(l.neg, id)
	}
	if c, ok := l.calls[id]; ok {
		l.mu.Unlock()
		l.v.stats.lookupsCoalesced.Add(1)
		return l.wait(ctx, c)
	}
	if !l.take(now) {
		l.mu.Unlock()
		l.v.stats.lookupsLimited.Add(1)
		return errLookupLimited
	}
	c := &lookupCall{done: make(chan struct{})}
	l.calls[id] = c
	l.wg.Add(1)
	l.mu.Unlock()
	// The load runs on its own, bounded by LookupTimeout and the
	// validator's life rather than by the first caller's ctx: callers that
	// give up do not cancel it for the others.
	go l.load(trace.SpanContextFromContext(ctx), id, c)
	return l.wait(ctx, c)
}

func (l *lookups) wait(ctx context.Context, c *lookupCall) error {
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return &detailError{msg: "unknown token: gave up waiting for the store lookup", cause: ctx.Err()}
	}
}

// take takes one token from the bucket, refilled up to now.
func (l *lookups) take(now int64) bool {
	if now > l.refill {
		l.tokens = min(l.burst, l.tokens+float64(now-l.refill)*l.rate)
		l.refill = now
	}
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}

// load loads id's history, applies it, and completes c. Its span is a
// child of parent, the span of the caller that started the load.
func (l *lookups) load(parent trace.SpanContext, id domain.TokenID, c *lookupCall) {
	defer l.wg.Done()
	v := l.v
	v.stats.lookups.Add(1)
	ctx, span := tracer().Start(trace.ContextWithSpanContext(v.runCtx, parent), SpanLookup,
		trace.WithAttributes(AttrTokenID.String(id.String())))
	ctx, cancel := context.WithTimeout(ctx, v.cfg.LookupTimeout)
	events, err := v.cfg.Store.LoadToken(ctx, id)
	cancel()
	span.SetAttributes(AttrFound.Bool(len(events) > 0))
	endSpan(span, err)
	found := false
	switch {
	case err != nil:
		v.stats.lookupErrors.Add(1)
		v.log.Warn("store lookup of a young token id failed", "token", id.String(), "error", err)
		c.err = &detailError{msg: "unknown token: store lookup failed", cause: err}
	case len(events) > 0:
		v.st.mu.Lock()
		found = v.w.applyHistory(id, events, v.applied.Load())
		v.st.mu.Unlock()
	}
	l.mu.Lock()
	if err == nil && !found {
		c.err = errLookupNegative
		l.remember(id, v.clock.Now().UnixMicro()+l.negTTL)
	}
	delete(l.calls, id)
	l.mu.Unlock()
	close(c.done)
}

// remember adds id to the negative cache, forgetting the oldest entry
// when it is full.
func (l *lookups) remember(id domain.TokenID, until int64) {
	if l.negSize == 0 {
		return
	}
	if len(l.ring) < l.negSize {
		l.ring = append(l.ring, id)
	} else {
		delete(l.neg, l.ring[l.next])
		l.ring[l.next] = id
		l.next = (l.next + 1) % l.negSize
	}
	l.neg[id] = until
}

// close refuses new lookups and waits for the loads in flight, which the
// end of the validator's run context cuts short.
func (l *lookups) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.wg.Wait()
}
