package validator

import (
	"time"

	"github.com/tokenledger/tokenledger/domain"
)

// Eviction keeps in memory only the tokens that can still validate, so a
// validator's memory follows the live set, not the history.
//
// A sweep, run by the writer every Config.EvictionInterval in chunks (the
// tail waits for one chunk at most), evicts:
//   - revoked tokens (by themselves, their family or their owner): they
//     never validate again;
//   - tokens expired more than Config.EvictionGrace ago: within the grace
//     they are still refused with ErrExpired, the precise reason;
//   - but a rotated-out token only once its rotation family has no token
//     left that can validate: until then presenting its secret must still
//     be seen as a reuse and revoke the family (see reuse.go). When the
//     family is gone, there is nothing left to protect.
//
// An evicted token is refused from memory like any unknown id older than
// Config.YoungWindow (no store lookup). A revoked token whose id is still
// young is kept until it is not: evicted, it would be looked up again.
//
// A token with uses not flushed yet is left for the next sweep, so no
// counted use is lost.

// sweepChunk is how many entries a sweep visits per hold of state.mu.
const sweepChunk = 1 << 16

// sweep evicts the entries numbered [from, to) that can no longer
// validate at now (Unix µs), with grace (µs), but the revoked ones whose
// id time is after youngAfter (Unix µs), and returns how many it evicted.
// The caller holds s.mu.
func (s *state) sweep(from, to uint32, now, grace, youngAfter int64) int {
	to = min(to, s.hwm)
	pages := *s.pages.Load()
	evicted := 0
	for k := from; k < to; k++ {
		e := &pages[k>>pageBits][k&pageMask]
		st := e.state.Load()
		if !live(st) || !s.evictable(e, k, st, now, grace, youngAfter) {
			continue
		}
		if u := s.cells.of(e); u != nil && u.uses.Load() != 0 {
			continue
		}
		s.evict(e, k)
		evicted++
	}
	return evicted
}

// evictable reports whether live entry number k, of state word st, is to
// be evicted (see sweep).
func (s *state) evictable(e *entry, k uint32, st uint64, now, grace, youngAfter int64) bool {
	id := e.tokenID()
	base := idBase(&id)
	if st&(flagRevoked|flagOwnerRevoked) != 0 {
		return base <= youngAfter
	}
	exp := expiryOf(base, st)
	if exp == neverExpires || exp > now-grace {
		return false
	}
	if st&flagRotated == 0 {
		return true
	}
	family, ok := s.familyOf[k]
	if !ok {
		family = id
	}
	return !s.familyLive(family, now)
}

// familyLive reports whether a token of family can validate at now.
func (s *state) familyLive(family domain.TokenID, now int64) bool {
	valid := func(e *entry) bool {
		st := e.state.Load()
		if !live(st) || st&(flagRevoked|flagOwnerRevoked) != 0 {
			return false
		}
		id := e.tokenID()
		return now < expiryOf(idBase(&id), st)
	}
	if e, _, _ := s.find(&family); e != nil && valid(e) {
		return true
	}
	for _, n := range s.members[family] {
		if valid(s.entryAt(n)) {
			return true
		}
	}
	return false
}

// evict removes live entry number k from the state. Its number (and its
// usage cell's) is reused once no reader can hold it (see rebuild).
func (s *state) evict(e *entry, k uint32) {
	id := e.tokenID()
	ix := s.idx.Load()
	ix.remove(&id, k)
	e.state.Store(freeState)
	s.limbo.entries = append(s.limbo.entries, k)
	if c := e.cell.Load(); c != 0 {
		s.limbo.cells = append(s.limbo.cells, c-1)
	}
	if f, ok := s.familyOf[k]; ok {
		delete(s.familyOf, k)
		m := s.members[f]
		if i := indexOf(m, k); i >= 0 {
			m[i] = m[len(m)-1]
			m = m[:len(m)-1]
		}
		if len(m) == 0 {
			delete(s.members, f)
		} else {
			s.members[f] = m
		}
	}
	delete(s.pending, k)
	delete(s.createdExc, k)
	s.live.Add(^uint32(0))
}

func indexOf(s []uint32, v uint32) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// settle rebuilds the index once the numbers waiting to be freed are
// many: that drops the tombstones and frees the numbers (see rebuild). The
// caller holds s.mu.
func (s *state) settle() {
	ix := s.idx.Load()
	if len(s.limbo.entries) > max(minIndex, s.tokens()/8) || ix.tombs > int(ix.size)/4 {
		s.rebuild(s.tokens())
	}
}

// evict runs one sweep of the whole state at the Clock's now, one chunk
// per hold of the writer's lock.
func (v *Validator) evict() {
	grace := v.cfg.EvictionGrace.Microseconds()
	for from := uint32(0); ; from += sweepChunk {
		v.st.mu.Lock()
		if from >= v.st.hwm {
			v.st.settle()
			v.st.mu.Unlock()
			return
		}
		now := v.clock.Now().UnixMicro()
		n := v.st.sweep(from, from+sweepChunk, now, grace, now-v.youngWindow)
		v.st.mu.Unlock()
		v.stats.evicted.Add(uint64(n))
	}
}

// runEvictor sweeps every EvictionInterval until the validator closes.
func (v *Validator) runEvictor() {
	defer v.workers.Done()
	t := time.NewTicker(v.cfg.EvictionInterval)
	defer t.Stop()
	for {
		select {
		case <-v.runCtx.Done():
			return
		case <-t.C:
			v.evict()
		}
	}
}
