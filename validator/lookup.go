package validator

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/trace"

	"github.com/tokenledger/tokenledger/domain"
)

// lookups resolves token ids that are not in memory by loading their
// history from the event store: young ids (the tail may not have
// delivered them yet) and, with a Config.Capacity, any other id (cold
// ones, evicted from or never loaded into the hot set). It is what keeps
// unknown ids from turning into load on the store:
//   - without a Capacity only young ids get here
//     (Validator.validateUnknown);
//   - concurrent lookups of one id share a single load;
//   - loads are rate limited for the whole validator by a token bucket,
//     one for young ids and one for cold ones;
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
	young   bucket
	cold    bucket
	negTTL  int64
	negSize int
	// gate, when set (by tests), is received from by each load between
	// reading the store and applying what it read; paused counts the
	// loads waiting there.
	gate   atomic.Pointer[chan struct{}]
	paused atomic.Int32
}

// bucket is a token bucket: burst tokens, refilled at rate per µs.
type bucket struct {
	tokens float64
	refill int64 // Unix µs of the last refill
	rate   float64
	burst  float64
}

func newBucket(perSecond float64, burst int, now int64) bucket {
	return bucket{tokens: float64(burst), refill: now, rate: perSecond / 1e6, burst: float64(burst)}
}

// take takes one token from the bucket, refilled up to now.
func (b *bucket) take(now int64) bool {
	if now > b.refill {
		b.tokens = min(b.burst, b.tokens+float64(now-b.refill)*b.rate)
		b.refill = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// lookupCall is one load shared by every caller asking for its id.
type lookupCall struct {
	done chan struct{}
	err  error // nil: the token is in memory now
}

func newLookups(v *Validator) *lookups {
	now := v.clock.Now().UnixMicro()
	return &lookups{
		v:       v,
		calls:   make(map[domain.TokenID]*lookupCall),
		neg:     make(map[domain.TokenID]int64),
		young:   newBucket(v.cfg.LookupRate, v.cfg.LookupBurst, now),
		cold:    newBucket(v.cfg.ColdLookupRate, v.cfg.ColdLookupBurst, now),
		negTTL:  v.cfg.NegativeTTL.Microseconds(),
		negSize: v.cfg.NegativeCacheSize,
	}
}

// resolve makes sure id is in memory if the store has it: nil means it
// now is. Otherwise the error matches ErrUnknown. cold tells a cold
// lookup (an id that is not young) from a young one: they are limited
// and counted apart, and a cold one beyond its limit is refused with
// ErrLookupLimited.
func (l *lookups) resolve(ctx context.Context, id domain.TokenID, now int64, cold bool) error {
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
	st := &l.v.stats
	if c, ok := l.calls[id]; ok {
		l.mu.Unlock()
		if cold {
			st.coldCoalesced.Add(1)
		} else {
			st.lookupsCoalesced.Add(1)
		}
		return l.wait(ctx, c)
	}
	if cold && !l.cold.take(now) {
		l.mu.Unlock()
		st.coldLimited.Add(1)
		return ErrLookupLimited
	}
	if !cold && !l.young.take(now) {
		l.mu.Unlock()
		st.lookupsLimited.Add(1)
		return errLookupLimited
	}
	c := &lookupCall{done: make(chan struct{})}
	l.calls[id] = c
	l.wg.Add(1)
	l.mu.Unlock()
	// The load runs on its own, bounded by LookupTimeout and the
	// validator's life rather than by the first caller's ctx: callers that
	// give up do not cancel it for the others.
	go l.load(trace.SpanContextFromContext(ctx), id, c, cold)
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

// load loads id's history, applies it, and completes c. While it reads
// the store, the tail hands the events of id it applies to the writer
// (tokenWriter.watch), so that an event the tail passed while the token
// was not in memory (a revocation of a cold token, say) is applied with
// the history even if the store read missed it. Its span is a child of
// parent, the span of the caller that started the load.
func (l *lookups) load(parent trace.SpanContext, id domain.TokenID, c *lookupCall, cold bool) {
	defer l.wg.Done()
	v := l.v
	if cold {
		v.stats.coldLookups.Add(1)
	} else {
		v.stats.lookups.Add(1)
	}
	v.st.mu.Lock()
	v.w.watch(id)
	v.st.mu.Unlock()
	ctx, span := tracer().Start(trace.ContextWithSpanContext(v.runCtx, parent), SpanLookup,
		trace.WithAttributes(AttrTokenID.String(id.String()), AttrCold.Bool(cold)))
	ctx, cancel := context.WithTimeout(ctx, v.cfg.LookupTimeout)
	events, families, err := l.loadHistory(ctx, id)
	cancel()
	span.SetAttributes(AttrFound.Bool(len(events) > 0))
	endSpan(span, err)
	if gate := l.gate.Load(); gate != nil {
		l.paused.Add(1)
		select {
		case <-*gate:
		case <-v.runCtx.Done():
		}
		l.paused.Add(-1)
	}
	v.st.mu.Lock()
	seen := v.w.unwatch(id)
	found := false
	if err == nil {
		for _, e := range families {
			v.w.applyOwner(e)
		}
		if len(events) > 0 || len(seen) > 0 {
			found = v.w.applyHistory(id, mergeEvents(events, seen), v.applied.Load())
		}
		if e, _, _ := v.st.find(&id); e != nil {
			v.st.stampLoaded(e, v.clock.Now().UnixMicro())
		}
	}
	v.st.mu.Unlock()
	if err != nil {
		v.stats.lookupErrors.Add(1)
		v.log.Warn("store lookup of a token id not in memory failed", "token", id.String(), "cold", cold, "error", err)
		c.err = &detailError{msg: "unknown token: store lookup failed", cause: err}
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

// loadHistory loads the events of token id and, if the token belongs to a
// rotation family (issued by a rotation, or rotated), its owner's
// revocations of that family: they are owner events, which the tail
// applies to the tokens in memory only, so a cold token's history needs
// them, else a family revoked before the snapshot would be missed.
func (l *lookups) loadHistory(ctx context.Context, id domain.TokenID) (events, families []domain.Envelope, err error) {
	store := l.v.cfg.Store
	events, err = store.LoadToken(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	var (
		owner    domain.OwnerID
		family   = id
		rotation bool
	)
	for _, e := range events {
		switch e.Type {
		case domain.TypeTokenIssued:
			if d, ok := domain.PayloadAs[domain.TokenIssued](e.Data); ok {
				owner = d.Owner
				if d.Family != nil && !d.Family.IsZero() {
					family, rotation = *d.Family, true
				}
			}
		case domain.TypeTokenExpirySet:
			if d, ok := domain.PayloadAs[domain.TokenExpirySet](e.Data); ok && d.RotatedTo != nil {
				rotation = true
			}
		}
	}
	if !rotation || owner == "" {
		return events, nil, nil
	}
	ownerEvents, err := store.LoadOwner(ctx, owner)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range ownerEvents {
		if d, ok := domain.PayloadAs[domain.OwnerFamilyRevoked](e.Data); ok && e.Type == domain.TypeOwnerFamilyRevoked && d.Family == family {
			families = append(families, e)
		}
	}
	return events, families, nil
}

// mergeEvents returns the events of loaded and seen (each in stream
// order) in stream order, each once.
func mergeEvents(loaded, seen []domain.Envelope) []domain.Envelope {
	if len(seen) == 0 {
		return loaded
	}
	all := append(slices.Clone(loaded), seen...)
	slices.SortStableFunc(all, func(a, b domain.Envelope) int { return cmp.Compare(a.Sequence, b.Sequence) })
	return slices.CompactFunc(all, func(a, b domain.Envelope) bool { return a.Sequence == b.Sequence })
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
