package validator

import "time"

// The hot set: a validator with a Config.Capacity keeps at most about that
// many tokens in memory, and looks the others up in the event store when
// they are presented (lookup.go).
//
// When an insert takes the memory past Capacity, the trimmer evicts tokens
// until it holds lowWaterNum/lowWaterDen of it, least recently validated
// first, approximately, with a clock sweep: a hand walks the entry
// numbers, one chunk per hold of the writer's lock, and evicts the token
// under it unless it was touched since the hand began its previous round.
// A token's last touch is the latest of its creation (the time in its
// id: a token just issued is kept a while), its last use (in its usage
// cell, which Validate writes anyway: the hot set costs the read path
// nothing) and its load by a store lookup (stamped in the same cell, so
// that the validation that asked for it finds it).
//
// A token with uses not flushed yet is never evicted (as for eviction),
// nor one touched within minAge: the validation that loaded it must find
// it, however fast the hand turns. Two rounds that find nothing to evict
// are followed by one that evicts every other token, so the memory comes
// back under the capacity; a trim turns the hand at most maxRounds times,
// and the next insert or flush over the capacity starts another.
// An evicted token can still validate: its next validation loads it
// again, revocation included, as a cold lookup.

const (
	lowWaterNum, lowWaterDen = 15, 16
	// minAge (µs): see above.
	minAge    = int64(time.Second / time.Microsecond)
	maxRounds = 4
)

// signalOverCapacity wakes the trimmer if the memory holds more than the
// capacity. Safe for concurrent use.
func (s *state) signalOverCapacity() {
	if s.capacity > 0 && int(s.live.Load()) > s.capacity {
		select {
		case s.overCapacity <- struct{}{}:
		default:
		}
	}
}

// touched returns when e was last touched (Unix µs): see above.
func (s *state) touched(e *entry) int64 {
	id := e.tokenID()
	t := idBase(&id)
	if u := s.cells.of(e); u != nil {
		t = max(t, u.usedFirst.Load(), u.usedLast.Load())
	}
	return t
}

// stampLoaded marks e as touched at now, by a store lookup. The stamp is
// the cell's first-use time, which a flush reads only with uses counted
// (and then the first use has set it). The caller holds s.mu.
func (s *state) stampLoaded(e *entry, now int64) {
	if s.capacity == 0 {
		return
	}
	if u := s.cells.get(e); u.uses.Load() == 0 {
		u.usedFirst.Store(now)
	}
}

// trimChunk moves the clock hand over at most sweepChunk entries, at now
// (Unix µs), evicting at most want of them: those not touched since the
// start of the hand's previous round nor within minAge, or with force
// only the latter. It returns how many it evicted and how many rounds
// the hand began. The caller holds s.mu.
func (s *state) trimChunk(want int, now int64, force bool) (evicted, rounds int) {
	pages := *s.pages.Load()
	for visited := uint32(0); visited < min(sweepChunk, s.hwm) && evicted < want; visited++ {
		if s.hand >= s.hwm {
			s.hand = 0
			s.handSince, s.handWrap = s.handWrap, now
			rounds++
		}
		k := s.hand
		s.hand++
		e := &pages[k>>pageBits][k&pageMask]
		if !live(e.state.Load()) {
			continue
		}
		if u := s.cells.of(e); u != nil && u.uses.Load() != 0 {
			continue
		}
		keepAfter := min(s.handSince, now-minAge)
		if force {
			keepAfter = now - minAge
		}
		if s.touched(e) >= keepAfter {
			continue
		}
		s.evict(e, k)
		evicted++
	}
	return evicted, rounds
}

// trim evicts tokens until the memory holds the low water mark of the
// capacity, one chunk per hold of the writer's lock, turning the hand at
// most maxRounds times.
func (v *Validator) trim() {
	low := v.cfg.Capacity * lowWaterNum / lowWaterDen
	defer func() {
		v.st.mu.Lock()
		v.st.settle()
		v.st.mu.Unlock()
	}()
	// fruitless counts the rounds begun since the last eviction: two mean
	// a whole round found nothing to evict.
	force, fruitless, rounds := false, 0, 0
	for rounds < maxRounds {
		v.st.mu.Lock()
		want := v.st.tokens() - low
		if want <= 0 {
			v.st.mu.Unlock()
			return
		}
		n, r := v.st.trimChunk(want, v.clock.Now().UnixMicro(), force)
		v.st.mu.Unlock()
		v.stats.capacityEvicted.Add(uint64(n))
		rounds += r
		if n > 0 {
			fruitless = 0
			continue
		}
		if fruitless += r; fruitless >= 2 {
			force = true
		}
	}
}

// runTrimmer trims the hot set whenever an insert took it past the
// capacity, until the validator closes.
func (v *Validator) runTrimmer() {
	defer v.workers.Done()
	for {
		select {
		case <-v.runCtx.Done():
			return
		case <-v.st.overCapacity:
			v.trim()
		}
	}
}
