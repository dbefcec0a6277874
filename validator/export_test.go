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
