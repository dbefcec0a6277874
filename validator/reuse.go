package validator

import (
	"context"
	"runtime"
	"time"

	"github.com/tokenledger/tokenledger/domain"
)

// A rotated-out secret presented after its grace is how a stolen token that
// was rotated meanwhile shows itself. Validate detects it from memory (the
// token is expired and flagged rotated) and hands it to a worker through a
// bounded queue, without blocking, allocating or doing I/O; the worker
// calls the ReuseHandler, which revokes the token's rotation family. Each
// token is reported once (flagReuseReported), so a flood of presentations
// of one secret becomes one report; a report the handler could not record
// clears the flag, so a later presentation reports it again.

// ReuseHandler records the reuse of a rotated-out secret; the ledger's
// RevokeReusedFamily. It is called by one worker goroutine, off the
// validation path, with a context that ends when the validator closes.
type ReuseHandler func(ctx context.Context, reuse domain.SecretReuse) error

// reuseQueue is how many reports may wait for the handler; more are
// dropped (and reported again by a later presentation).
const reuseQueue = 256

// reuseTimeout bounds one call of the handler.
const reuseTimeout = 10 * time.Second

// SetReuseHandler sets the handler of rotated-out secrets presented after
// their grace. Until it is set, reuses are detected but not reported. It
// is safe to call at any time.
func (v *Validator) SetReuseHandler(h ReuseHandler) {
	v.reuseHandler.Store(&h)
}

// reportReuse queues the reuse of entry e's rotated-out secret, once per
// token. It does not block or allocate.
func (v *Validator) reportReuse(e *entry, id *domain.TokenID, addr, route string) {
	for {
		st := e.state.Load()
		if st&flagReuseReported != 0 {
			return
		}
		if e.state.CompareAndSwap(st, st|flagReuseReported) {
			break
		}
	}
	select {
	case v.reuses <- reuseReport{id: *id, addr: addr, route: route}:
	default:
		e.clearReuseReported()
	}
}

// clearReuseReported clears flagReuseReported of e, if it still holds a
// token.
func (e *entry) clearReuseReported() {
	for {
		st := e.state.Load()
		if !live(st) || e.state.CompareAndSwap(st, st&^flagReuseReported) {
			return
		}
	}
}

type reuseReport struct {
	id          domain.TokenID
	addr, route string
}

// runReuses hands queued reuses to the handler until the validator closes.
func (v *Validator) runReuses() {
	defer v.workers.Done()
	for {
		select {
		case <-v.runCtx.Done():
			return
		case r := <-v.reuses:
			v.handleReuse(r)
		}
	}
}

func (v *Validator) handleReuse(r reuseReport) {
	h := v.reuseHandler.Load()
	var err error
	if h != nil && *h != nil {
		ctx, cancel := context.WithTimeout(v.runCtx, reuseTimeout)
		err = (*h)(ctx, domain.SecretReuse{Token: r.id, ClientAddr: r.addr, Route: truncateRoute(r.route)})
		cancel()
		if err == nil {
			v.log.Warn("rotated-out secret presented after its grace: family revoked",
				"token_id", r.id, "client_addr", r.addr, "route", r.route)
			return
		}
		v.log.Error("revoke the family of a reused rotated-out secret", "token_id", r.id, "error", err)
	}
	if e, _, ix := v.st.find(&r.id); e != nil {
		e.clearReuseReported()
		runtime.KeepAlive(ix)
	}
}

func truncateRoute(route string) string {
	if len(route) > domain.MaxRouteLen {
		return route[:domain.MaxRouteLen]
	}
	return route
}
