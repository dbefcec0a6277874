package validator

import (
	"context"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tokenledger/tokenledger/domain"
)

// Usage is counted in memory, lock-free on the read path, and written to
// the usage stream once per flush interval as one usage batch
// (domain.RecordUsage) holding every token used in the interval: one
// message per flush, more only when the flush is larger than a message
// may be.
//
// Each used token counts its own uses (an atomic add) and the times of the
// first and last of them, in its usage cell (cells.go). The first use of a token in an interval also
// puts its entry number on a dirty list, one list per shard of entries,
// so a flush visits only the tokens used, never the whole table. The
// count is exact: a flush swaps it to zero, so every use is in exactly
// one flush. The first and last times are the clock readings of the uses,
// to within the validations running concurrently with the flush.

const usageShards = 64

type usageShard struct {
	mu    sync.Mutex
	dirty []uint32
	spare []uint32
	// addrs holds the client address of the latest use, for entries used
	// with one in this interval.
	addrs map[uint32]string
	_     [64]byte // keeps shards off each other's cache lines
}

type usage struct {
	shards [usageShards]usageShard
}

func (u *usage) init() {
	for i := range u.shards {
		u.shards[i].addrs = make(map[uint32]string)
	}
}

// record counts one use at now of entry number n; e is its usage cell.
func (u *usage) record(e *usageCell, n uint32, now int64, addr string) {
	if e.uses.Add(1) == 1 {
		e.usedFirst.Store(now)
		sh := &u.shards[n%usageShards]
		sh.mu.Lock()
		sh.dirty = append(sh.dirty, n)
		sh.mu.Unlock()
	}
	e.usedLast.Store(now)
	if addr != "" {
		sh := &u.shards[n%usageShards]
		sh.mu.Lock()
		sh.addrs[n] = addr
		sh.mu.Unlock()
	}
}

// usageBatch is one flush: the events to append and the uses they count.
type usageBatch struct {
	events []domain.Envelope
	uses   uint64
	// done, if not nil, is closed once the batch is stored or dropped.
	done chan struct{}
}

// collect takes the uses counted since the last collect and returns them
// as the usage batches of a flush at now. The batches keep their event
// ids through every retry, so the stream stores each once.
func (v *Validator) collect(now time.Time) usageBatch {
	now = domain.NormalizeTime(now)
	var (
		b    usageBatch
		uses []domain.TokenUse
	)
	for i := range v.usage.shards {
		sh := &v.usage.shards[i]
		sh.mu.Lock()
		dirty := sh.dirty
		sh.dirty = sh.spare[:0]
		var addrs map[uint32]string
		if len(sh.addrs) > 0 {
			addrs = sh.addrs
			sh.addrs = make(map[uint32]string, len(addrs))
		}
		sh.mu.Unlock()
		for _, n := range dirty {
			ent := v.st.entryAt(n)
			e := v.st.cells.of(ent)
			if e == nil {
				continue
			}
			id := ent.tokenID()
			// The times are read before the count is taken: a use after
			// the swap belongs to the next flush, and must not lend this
			// one its time.
			first, last := e.usedFirst.Load(), e.usedLast.Load()
			count := e.uses.Swap(0)
			if count == 0 {
				continue
			}
			last = max(last, first)
			uses = append(uses, domain.TokenUse{
				Token:      id,
				Count:      uint64(count),
				FirstAt:    time.UnixMicro(first).UTC(),
				LastAt:     time.UnixMicro(last).UTC(),
				ClientAddr: clientAddr(addrs[n]),
			})
			b.uses += uint64(count)
		}
		sh.mu.Lock()
		sh.spare = dirty[:0]
		sh.mu.Unlock()
	}
	if len(uses) == 0 {
		return b
	}
	events, err := domain.RecordUsage(uses, domain.Meta{Actor: v.cfg.UsageActor}, now, 0)
	if err != nil {
		// The uses come from the clock and the table: nothing a flush
		// holds should be refused. Should it happen, they are lost and
		// counted, never retried for ever.
		v.log.Error("cannot record usage", "tokens", len(uses), "error", err)
		v.stats.usesDropped.Add(b.uses)
		return b
	}
	b.events = events
	return b
}

// clientAddr returns addr if a usage event may carry it, else "".
func clientAddr(addr string) string {
	if len(addr) > domain.MaxClientAddrLen || !utf8.ValidString(addr) {
		return ""
	}
	for _, r := range addr {
		if unicode.IsControl(r) {
			return ""
		}
	}
	return addr
}

// flush collects the uses counted so far and queues them for the
// publisher; if the queue is full they are dropped and counted. done, if
// not nil, is closed once they are stored or dropped.
func (v *Validator) flush(done chan struct{}) {
	b := v.collect(v.clock.Now())
	b.done = done
	v.stats.valid.Add(b.uses)
	// Tokens with uses not flushed are not trimmed from the hot set: the
	// memory may have stayed past the capacity for them.
	v.st.signalOverCapacity()
	if len(b.events) == 0 {
		if done != nil {
			close(done)
		}
		return
	}
	select {
	case v.queue <- b:
	default:
		v.drop(b, "the usage queue is full")
	}
}

// drop gives up on a batch.
func (v *Validator) drop(b usageBatch, why string) {
	v.stats.usageDropped.Add(uint64(len(b.events)))
	v.stats.usesDropped.Add(b.uses)
	v.log.Warn("usage dropped", "reason", why, "events", len(b.events), "uses", b.uses)
	if b.done != nil {
		close(b.done)
	}
}

// runFlusher flushes every FlushInterval, and when asked to.
func (v *Validator) runFlusher() {
	defer v.workers.Done()
	t := time.NewTicker(v.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-v.runCtx.Done():
			return
		case <-t.C:
			v.flush(nil)
		case done := <-v.flushReq:
			v.flush(done)
		}
	}
}

// Backoff between attempts to store a batch.
const (
	publishBackoffMin = 100 * time.Millisecond
	publishBackoffMax = 5 * time.Second
)

// runPublisher stores queued batches in the usage stream, in order,
// retrying each until it is stored. It ends when the queue is closed and
// empty, or when pubCtx ends (the rest is dropped).
func (v *Validator) runPublisher() {
	defer close(v.pubDone)
	for {
		select {
		case b, ok := <-v.queue:
			if !ok {
				return
			}
			v.publish(b)
		case <-v.pubCtx.Done():
			for {
				select {
				case b, ok := <-v.queue:
					if !ok {
						return
					}
					v.drop(b, "the validator stopped")
				default:
					return
				}
			}
		}
	}
}

// publish stores one batch, retrying with the same event ids (which the
// stream de-duplicates) until it is stored or pubCtx ends.
func (v *Validator) publish(b usageBatch) {
	backoff := publishBackoffMin
	for {
		_, err := v.cfg.Store.AppendUsage(v.pubCtx, b.events...)
		if err == nil {
			v.stats.usagePublished.Add(uint64(len(b.events)))
			v.stats.usesPublished.Add(b.uses)
			if b.done != nil {
				close(b.done)
			}
			return
		}
		v.stats.usagePublishErrors.Add(1)
		if v.pubCtx.Err() != nil {
			v.drop(b, "the validator stopped")
			return
		}
		v.log.Warn("storing usage failed; retrying", "events", len(b.events), "retry_in", backoff, "error", err)
		t := time.NewTimer(backoff)
		select {
		case <-v.pubCtx.Done():
			t.Stop()
		case <-t.C:
		}
		backoff = min(2*backoff, publishBackoffMax)
	}
}

// flushNow flushes at once and waits until the flush is stored or
// dropped, or ctx ends.
func (v *Validator) flushNow(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case v.flushReq <- done:
	case <-v.runCtx.Done():
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
