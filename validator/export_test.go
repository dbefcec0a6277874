package validator

import (
	"context"
	"sync"

	"github.com/tokenledger/tokenledger/domain"
)

// PauseTail makes the tail of v wait, before applying each event, until
// the returned release function is called.
func PauseTail(v *Validator) (release func()) {
	gate := make(chan struct{})
	hook := func(domain.Envelope) { <-gate }
	v.beforeApply.Store(&hook)
	return sync.OnceFunc(func() {
		v.beforeApply.Store(nil)
		close(gate)
	})
}

// FlushNow flushes the uses counted so far and waits until they are
// stored or dropped.
func FlushNow(ctx context.Context, v *Validator) error { return v.flushNow(ctx) }

// Abort stops v as a crash would: nothing more is flushed.
func Abort(v *Validator) { v.abort() }

// Evict sweeps v's memory now, at its Clock's time.
func Evict(v *Validator) { v.evict() }

// peekNumber reports whether the next insert would take a fresh entry
// number rather than reuse a freed one.
func (s *state) peekNumber() (n uint32, fresh bool) {
	s.freeMu.Lock()
	defer s.freeMu.Unlock()
	if k := len(s.free); k > 0 {
		return s.free[k-1], false
	}
	return s.hwm, true
}

// Holds reports whether v holds token id in memory.
func Holds(v *Validator, id domain.TokenID) bool {
	e, _, _ := v.st.find(&id)
	return e != nil
}

// PauseLookups makes v's store lookups wait, between reading the store
// and applying what they read, until the returned release function is
// called.
func PauseLookups(v *Validator) (release func()) {
	gate := make(chan struct{})
	v.lookups.gate.Store(&gate)
	return sync.OnceFunc(func() {
		v.lookups.gate.Store(nil)
		close(gate)
	})
}

// Trim trims v's hot set now, as its trimmer does when an insert takes it
// past its capacity.
func Trim(v *Validator) { v.trim() }

// PausedLookups is how many of v's store lookups wait for the release of
// PauseLookups.
func PausedLookups(v *Validator) int { return int(v.lookups.paused.Load()) }
