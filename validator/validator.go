package validator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/projections"
)

// Lifecycle of a Validator.
const (
	runNew int32 = iota
	runStarting
	runRunning
	runClosed
)

// Validator answers "is this secret a valid token, and whose is it?" from
// memory. It holds every token of the read model that can still validate
// (with Config.Capacity, a hot set of them) and follows the
// lifecycle stream, so a revocation appended anywhere is seen within the
// stream's propagation delay; it counts uses in memory and writes them to
// the usage stream once per Config.FlushInterval.
//
// Create it with New, call Start once, then Validate from any number of
// goroutines; Close flushes the usage counted so far. A Validator is safe
// for concurrent use.
type Validator struct {
	cfg   Config
	clock domain.Clock
	log   *slog.Logger

	st *state
	// w applies events to st; guarded by st.mu.
	w *tokenWriter

	run atomic.Int32
	// life serialises Start with the end of a Close that interrupts it.
	life sync.Mutex

	// Settings in Unix microseconds, for the read path.
	maxStale    int64
	youngWindow int64
	maxSkew     int64

	// staleSince is when the validator stopped following the stream, in
	// Unix microseconds; 0 while it follows it.
	staleSince atomic.Int64
	health     health

	snapshotSeq   atomic.Uint64
	applied       atomic.Uint64 // written under st.mu
	lastEventTime atomic.Int64
	lastAppliedAt atomic.Int64
	target        uint64
	caughtUp      chan struct{}
	caughtOnce    sync.Once

	lookups *lookups
	usage   usage
	queue   chan usageBatch
	// flushReq asks the flusher for an immediate flush; the channel
	// given is closed once that flush is published or dropped.
	flushReq chan chan struct{}

	stats counters

	runCtx    context.Context
	cancelRun context.CancelFunc
	pubCtx    context.Context
	cancelPub context.CancelFunc
	workers   sync.WaitGroup // tail, watchdog, flusher
	pubDone   chan struct{}
	// publisherStarted tells whether pubDone will ever be closed.
	publisherStarted atomic.Bool

	// reuses queues rotated-out secrets presented after their grace for
	// reuseHandler (see reuse.go).
	reuses       chan reuseReport
	reuseHandler atomic.Pointer[ReuseHandler]

	// release, when set (by Connect), closes the connections the
	// validator was given; Close calls it once, last.
	release     func()
	releaseOnce sync.Once

	// beforeApply, when set (by tests), is called by the tail before it
	// applies each event.
	beforeApply atomic.Pointer[func(domain.Envelope)]
}

// New returns a Validator configured by cfg (zero fields take the
// defaults; see Config), not started yet. It fails if cfg is invalid.
func New(cfg Config) (*Validator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new validator: %w", err)
	}
	cfg = cfg.withDefaults()
	st := newState()
	st.capacity = cfg.Capacity
	v := &Validator{
		cfg:         cfg,
		clock:       cfg.Clock,
		log:         cfg.Logger.With("component", "validator"),
		st:          st,
		w:           newTokenWriter(st),
		maxStale:    cfg.MaxStaleness.Microseconds(),
		youngWindow: cfg.YoungWindow.Microseconds(),
		maxSkew:     cfg.MaxClockSkew.Microseconds(),
		caughtUp:    make(chan struct{}),
		queue:       make(chan usageBatch, cfg.FlushQueue),
		flushReq:    make(chan chan struct{}),
		pubDone:     make(chan struct{}),
		reuses:      make(chan reuseReport, reuseQueue),
	}
	v.usage.init()
	v.lookups = newLookups(v)
	v.runCtx, v.cancelRun = context.WithCancel(context.Background())
	v.pubCtx, v.cancelPub = context.WithCancel(context.Background())
	return v, nil
}

// Start loads the snapshot of the read model, starts following the
// lifecycle stream from the sequence after it and the usage flusher, and
// returns once the validator has applied every event the stream held when
// the snapshot was loaded: from then on Validate answers. ctx bounds the
// start only, not the validator's life. Start may be called once; if it
// fails, the Validator is unusable (Close is still safe to call).
func (v *Validator) Start(ctx context.Context) error {
	v.life.Lock()
	defer v.life.Unlock()
	if !v.run.CompareAndSwap(runNew, runStarting) {
		return errors.New("start validator: already started or closed")
	}
	if err := v.start(ctx); err != nil {
		v.abort()
		return fmt.Errorf("start validator: %w", err)
	}
	if !v.run.CompareAndSwap(runStarting, runRunning) {
		return fmt.Errorf("start validator: %w", ErrClosed)
	}
	return nil
}

func (v *Validator) start(ctx context.Context) error {
	// A Close during Start ends it.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(v.runCtx, cancel)
	defer stop()

	sctx, span := tracer().Start(ctx, SpanSnapshot)
	v.st.mu.Lock()
	now := v.clock.Now().UnixMicro()
	keepAfter, youngAfter := now-v.cfg.EvictionGrace.Microseconds(), now-v.youngWindow
	// What can no longer validate stays in the database; with a capacity,
	// so do the tokens beyond it, left cold.
	keep := projections.ValidatorKeep{
		ExpiredAfter: time.UnixMicro(keepAfter),
		RevokedAfter: time.UnixMicro(youngAfter),
		Limit:        v.cfg.Capacity,
	}
	begin := func(info *projections.SnapshotInfo) {
		// The rows reflect every event up to the checkpoint: none is
		// ahead of the tail.
		v.st.advance(info.Sequence)
		for i := range info.Owners {
			v.w.loadOwner(&info.Owners[i])
		}
		// Sized once for the rows to come, the index is not rebuilt
		// again and again as it fills.
		est := int(info.EstimatedTokens)
		if v.cfg.Capacity > 0 {
			est = min(est, v.cfg.Capacity)
		}
		v.st.reserve(est)
	}
	info, err := v.cfg.Projections.ValidatorSnapshot(sctx, v.cfg.ProjectionName, keep, begin, func(r *projections.ValidatorRow) error {
		v.w.loadLiveRow(r, keepAfter, youngAfter)
		return nil
	})
	v.st.fit()
	v.snapshotSeq.Store(info.Sequence)
	v.applied.Store(info.Sequence)
	tokens := v.st.tokens()
	v.st.mu.Unlock()
	span.SetAttributes(AttrSequence.Int64(int64(info.Sequence)), AttrTokens.Int(tokens))
	endSpan(span, err)
	if err != nil {
		return err
	}
	target, err := v.cfg.Store.StreamLastSequence(ctx)
	if err != nil {
		return err
	}
	v.target = target
	if target <= info.Sequence {
		v.caughtOnce.Do(func() { close(v.caughtUp) })
	}
	v.log.Info("snapshot loaded", "sequence", info.Sequence, "tokens", tokens,
		"owners", v.st.ownersLen(), "stream_last_sequence", target)

	if v.runCtx.Err() != nil {
		return ErrClosed
	}
	v.workers.Add(5)
	if v.cfg.Capacity > 0 {
		v.workers.Add(1)
		go v.runTrimmer()
	}
	go v.runEvictor()
	go v.watchConnection()
	go v.runTail()
	go v.runFlusher()
	go v.runReuses()
	v.publisherStarted.Store(true)
	go v.runPublisher()

	select {
	case <-v.caughtUp:
		return nil
	case <-v.runCtx.Done():
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("catching up with the stream: applied %d of %d: %w", v.applied.Load(), target, ctx.Err())
	}
}

// Validate checks a presented secret: its format and checksum, then, from
// memory, that it is the secret of a known token that is neither revoked
// (by itself or with its owner's tokens) nor expired at the Clock's now.
// On success it counts one use of the token and returns its Principal.
//
// For a known token Validate does no I/O and allocates nothing, and it
// takes no lock but, once per token and flush interval, a per-shard mutex
// held for a slice append, to list the token for the next flush. A well-formed secret of a token not in memory is looked up in
// the event store only if its id is young (see Config.YoungWindow); such
// lookups are coalesced per id and rate limited, and ctx bounds the wait
// for one. Every other unknown id is refused from memory, unless the
// validator has a Config.Capacity: then it is looked up too (a cold
// lookup), coalesced, rate limited and refused with ErrLookupLimited
// beyond the limit.
//
// Errors match (errors.Is) exactly one of ErrMalformed, ErrUnknown,
// ErrRevoked, ErrOwnerRevoked, ErrExpired, ErrIPNotAllowed, ErrStale,
// ErrNotStarted or ErrClosed (ErrLookupLimited matches ErrUnknown too);
// they never contain the secret. Validate knows no client address, so a
// token limited to networks (allowed_cidrs) is refused with
// ErrIPNotAllowed: use ValidateFrom.
func (v *Validator) Validate(ctx context.Context, secret string) (Principal, error) {
	return v.validate(ctx, secret, "", "")
}

// ValidateFrom is Validate for a request from clientAddr (an IP address
// without a port), which a token limited to networks must be in
// (ErrIPNotAllowed otherwise), and which is recorded in the token's usage
// event (of the uses in a flush interval,
// the last one's address). Recording it takes the per-shard mutex at every
// use. An address longer than domain.MaxClientAddrLen bytes, or not valid
// text, is not recorded.
func (v *Validator) ValidateFrom(ctx context.Context, secret, clientAddr string) (Principal, error) {
	return v.validate(ctx, secret, clientAddr, "")
}

// ValidateAt is ValidateFrom for a secret presented at route (for example
// "/v1/auth", the route as the access log names it). When the secret is a rotated-out one presented after its
// grace (ErrExpired), the token, clientAddr and route are handed to the
// ReuseHandler off the validation path, once per token.
func (v *Validator) ValidateAt(ctx context.Context, secret, clientAddr, route string) (Principal, error) {
	return v.validate(ctx, secret, clientAddr, route)
}

func (v *Validator) validate(ctx context.Context, secret, addr, route string) (Principal, error) {
	if r := v.run.Load(); r != runRunning {
		if r == runClosed {
			return Principal{}, ErrClosed
		}
		return Principal{}, ErrNotStarted
	}
	id, hash, err := domain.CheckSecret(secret)
	if err != nil {
		v.stats.malformed.Add(1)
		return Principal{}, err
	}
	now := v.clock.Now().UnixMicro()
	if since := v.staleSince.Load(); since != 0 && now-since > v.maxStale && !v.cfg.FailOpen {
		v.stats.stale.Add(1)
		return Principal{}, ErrStale
	}
	e, n, ix := v.st.find(&id)
	if e == nil {
		return v.validateUnknown(ctx, id, hash, now, addr, route)
	}
	p, err := v.check(e, n, &id, &hash, now, addr, route)
	// The entry's number is not reused while ix is reachable.
	runtime.KeepAlive(ix)
	return p, err
}

// check decides for token id, found in memory as entry e, number n.
func (v *Validator) check(e *entry, n uint32, id *domain.TokenID, hash *domain.SecretHash, now int64, addr, route string) (Principal, error) {
	if !e.hashEqual(hash) {
		v.stats.unknown.Add(1)
		return Principal{}, ErrUnknown
	}
	st := e.state.Load()
	if st&flagRevoked != 0 {
		v.stats.revoked.Add(1)
		return Principal{}, ErrRevoked
	}
	if st&flagOwnerRevoked != 0 {
		v.stats.ownerRevoked.Add(1)
		return Principal{}, ErrOwnerRevoked
	}
	exp := expiryOf(idBase(id), st)
	if now >= exp {
		v.stats.expired.Add(1)
		if st&flagRotated != 0 {
			v.reportReuse(e, id, addr, route)
		}
		return Principal{}, ErrExpired
	}
	g := v.st.grantAt(e.grant.Load())
	if g.cidrs != 0 && !addrAllowed(v.st.cidrsAt(g.cidrs), addr) {
		v.stats.ipNotAllowed.Add(1)
		return Principal{}, ErrIPNotAllowed
	}
	v.usage.record(v.st.cells.get(e), n, now, addr)
	p := Principal{TokenID: *id, Owner: v.st.ownerAt(g.owner), Scopes: v.st.scopesAt(g.scopes), Kind: domain.KindAPI}
	if g.session {
		p.Kind = domain.KindSession
	}
	if g.cidrs != 0 {
		p.AllowedCIDRs = v.st.cidrsAt(g.cidrs)
	}
	if exp != neverExpires {
		p.ExpiresAt = time.UnixMicro(exp).UTC()
	}
	return p, nil
}

// addrAllowed reports whether the client address addr (an IP address,
// without a port) is in one of cidrs. It does not allocate.
func addrAllowed(cidrs []netip.Prefix, addr string) bool {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		ap, perr := netip.ParseAddrPort(addr)
		if perr != nil {
			return false
		}
		a = ap.Addr()
	}
	a = a.Unmap()
	for _, p := range cidrs {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// validateUnknown decides for a well-formed secret whose id is not in
// memory: refused at once unless the id is young or the validator has a
// capacity (and the id is not in the future), else looked up.
func (v *Validator) validateUnknown(ctx context.Context, id domain.TokenID, hash domain.SecretHash, now int64, addr, route string) (Principal, error) {
	age := now - int64(ulid.ULID(id).Time())*1000
	cold := age > v.youngWindow
	if -age > v.maxSkew || cold && v.cfg.Capacity == 0 {
		v.stats.unknown.Add(1)
		return Principal{}, ErrUnknown
	}
	if v.health.connBroken.Load() {
		// The store is out of reach: answer from memory at once rather
		// than after a lookup timeout.
		v.stats.unknown.Add(1)
		if cold {
			return Principal{}, errColdDisconnected
		}
		return Principal{}, errLookupDisconnected
	}
	// A token loaded for this validation is kept in memory long enough
	// for it to be found (see hotset.go); should the trimmer still have
	// evicted it, it is loaded once more.
	for attempt := 0; ; attempt++ {
		if err := v.lookups.resolve(ctx, id, now, cold); err != nil {
			v.stats.unknown.Add(1)
			return Principal{}, err
		}
		e, n, ix := v.st.find(&id)
		if e == nil {
			if attempt == 0 && v.cfg.Capacity > 0 {
				continue
			}
			v.stats.unknown.Add(1)
			return Principal{}, ErrUnknown
		}
		p, err := v.check(e, n, &id, &hash, now, addr, route)
		runtime.KeepAlive(ix)
		return p, err
	}
}

// Observe applies events the caller has just appended to the lifecycle
// stream (with the sequences the append returned) without waiting for the
// tail, so that the node that handled a revocation rejects the token at
// once. Only events whose effect does not depend on their order are
// applied now: token.issued, token.revoked and owner.tokens_revoked; the
// others (token.expiry_set) are left to the tail, which delivers them
// within the propagation delay. Events without a sequence, or that the
// tail has applied already, are ignored, and the tail's later delivery of
// the same events changes nothing. Safe for concurrent use.
func (v *Validator) Observe(events ...domain.Envelope) {
	if v.run.Load() != runRunning {
		return
	}
	v.st.mu.Lock()
	defer v.st.mu.Unlock()
	applied := v.applied.Load()
	for _, e := range events {
		if e.Sequence > applied {
			v.w.applyObserved(e)
		}
	}
}

// LastUse returns the latest use of token id this validator counted since
// the token entered its memory; ok is false if it counted none (or does not
// hold the token). It sees only this node's uses, so it is a lower bound of
// the token's last use across the deployment, useful when the read model,
// which holds that, cannot be read. Safe for concurrent use; it takes no
// lock.
func (v *Validator) LastUse(id domain.TokenID) (at time.Time, ok bool) {
	e, _, ix := v.st.find(&id)
	defer runtime.KeepAlive(ix)
	if e == nil {
		return time.Time{}, false
	}
	u := v.st.cells.of(e)
	if u == nil {
		return time.Time{}, false
	}
	us := u.usedLast.Load()
	if us == 0 {
		return time.Time{}, false
	}
	return time.UnixMicro(us).UTC(), true
}

// Close stops following the stream, flushes the uses counted so far to
// the usage stream and waits until they are stored, or until ctx ends:
// then the unflushed uses are dropped (and counted in
// Stats.UsageEventsDropped) and the error wraps ctx's. Validate returns
// ErrClosed afterwards; validations racing with Close may go uncounted.
// Close is idempotent. A validator made by Connect closes its connections
// last.
func (v *Validator) Close(ctx context.Context) error {
	err := v.close(ctx)
	if v.release != nil {
		v.releaseOnce.Do(v.release)
	}
	return err
}

func (v *Validator) close(ctx context.Context) error {
	prev := v.run.Swap(runClosed)
	switch prev {
	case runClosed:
		return nil
	case runNew, runStarting:
		// Never started, or starting: end the Start, wait for it, and
		// make sure everything it started is stopped.
		v.cancelRun()
		v.life.Lock()
		defer v.life.Unlock()
		v.abort()
		return nil
	}
	v.cancelRun()
	v.workers.Wait()
	v.lookups.close()
	v.flush(nil)
	close(v.queue)
	select {
	case <-v.pubDone:
		v.cancelPub()
		return nil
	case <-ctx.Done():
		v.cancelPub()
		<-v.pubDone
		return fmt.Errorf("close validator: usage not flushed: %w", ctx.Err())
	}
}

// abort stops every goroutine at once, flushing nothing: what a crash
// does to the usage counted since the last flush.
func (v *Validator) abort() {
	v.run.Store(runClosed)
	v.cancelRun()
	v.cancelPub()
	v.workers.Wait()
	v.lookups.close()
	if v.publisherStarted.Load() {
		<-v.pubDone
	}
}
