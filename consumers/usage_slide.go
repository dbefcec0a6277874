package consumers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/ledger"
	"github.com/tokenledger/tokenledger/projections"
)

// SessionSlideActor is the actor of the session extensions the usage
// consumer records.
const SessionSlideActor = ledger.SessionSlideActor

const (
	// slideAttempts bounds how often one extension is decided again after
	// a concurrent change of the token.
	slideAttempts = 4
	// slideWorkers is how many sessions are extended at once; each
	// extension is a load and an append, a few round trips to the server.
	slideWorkers = 8
	// slideTimeout bounds one extension, retries included.
	slideTimeout = 10 * time.Second
	// tokenCacheSize is the number of tokens a cache generation holds.
	tokenCacheSize = 1 << 16
)

// slide extends the sessions among the tokens a committed batch used. It
// never fails: what it cannot do is logged and counted, and a session's
// next use tries again.
//
// Loading a token's history costs a few round trips, so it is done only
// for a token that may move: api tokens are known by their cached kind
// (kinds never change), and a session's lifetime is taken from the later
// of the read model's row and what this consumer last saw of the token's
// history (the read model may not have projected this consumer's own
// extensions yet).
func (c *UsageConsumer) slide(ctx context.Context, usage []projections.Usage, lastSeq uint64) {
	candidates := make([]projections.Usage, 0, len(usage))
	ids := make([]domain.TokenID, 0, len(usage))
	for _, u := range usage {
		if f, ok := c.tokens.get(u.TokenID); ok && f.kind != domain.KindSession {
			continue
		}
		candidates = append(candidates, u)
		ids = append(ids, u.TokenID)
	}
	if len(candidates) == 0 {
		return
	}
	qctx, cancel := context.WithTimeout(ctx, slideTimeout)
	lifetimes, err := c.proj.TokenLifetimes(qctx, ids)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			c.stats.extensionErrors.Add(uint64(len(candidates)))
			c.log.Warn("sessions not slid: reading their lifetimes failed; their next use tries again", "tokens", len(candidates), "error", err)
		}
		return
	}
	now := c.cfg.Clock.Now()
	due := candidates[:0]
	for _, u := range candidates {
		lt, known := lifetimes[u.TokenID]
		if f, ok := c.tokens.get(u.TokenID); ok && f.known && (!known || f.lifetime.LastSeq > lt.LastSeq) {
			lt, known = f.lifetime, true
		}
		if known {
			if lt.Kind != domain.KindSession {
				c.tokens.put(u.TokenID, tokenFacts{kind: lt.Kind})
				continue
			}
			if !mayExtend(lt, u.LastAt, c.cfg.Policy.SessionExtendStep, now) {
				continue
			}
		}
		due = append(due, u)
	}
	meta := domain.Meta{Actor: SessionSlideActor, CorrelationID: fmt.Sprintf("%s:%d", c.cfg.Name, lastSeq)}
	work := make(chan projections.Usage)
	var wg sync.WaitGroup
	for range min(slideWorkers, len(due)) {
		wg.Go(func() {
			for u := range work {
				c.extend(ctx, u.TokenID, u.LastAt, meta)
			}
		})
	}
	for _, u := range due {
		if ctx.Err() != nil {
			break
		}
		work <- u
	}
	close(work)
	wg.Wait()
}

// mayExtend reports whether a use at lastUse could move the session lt
// describes, by the rule of domain.Token.ExtendSession. lt may be behind
// the token's history: a later change by someone else (an expiry set by
// its owner, for example) is seen only once projected, so a use right
// after it may not slide the session; the next use does.
func mayExtend(lt projections.TokenLifetime, lastUse time.Time, step time.Duration, now time.Time) bool {
	if lt.Kind != domain.KindSession || lt.Revoked || lt.Rotated || lt.ExpiresAt.IsZero() || !lt.ExpiresAt.After(now) {
		return false
	}
	if lastUse.After(now) {
		lastUse = now
	}
	next := lastUse.Add(lt.IdleTimeout)
	if !lt.AbsoluteExpiresAt.IsZero() && next.After(lt.AbsoluteExpiresAt) {
		next = lt.AbsoluteExpiresAt
	}
	return next.After(lt.ExpiresAt.Add(domain.SessionSlideStep(step, lt.IdleTimeout)))
}

// extend slides session id after a use at lastUse, counting and logging
// the outcome.
func (c *UsageConsumer) extend(ctx context.Context, id domain.TokenID, lastUse time.Time, meta domain.Meta) {
	ctx, cancel := context.WithTimeout(ctx, slideTimeout)
	defer cancel()
	extended, err := c.tryExtend(ctx, id, lastUse, meta)
	switch {
	case errors.Is(err, context.Canceled):
	case err != nil:
		c.stats.extensionErrors.Add(1)
		c.log.Warn("session not slid; its next use tries again", "token", id.String(), "last_use", lastUse, "error", err)
	case extended:
		c.stats.extensions.Add(1)
	}
}

// tryExtend slides session id through the ledger's use case and
// remembers what it learnt of the token.
func (c *UsageConsumer) tryExtend(ctx context.Context, id domain.TokenID, lastUse time.Time, meta domain.Meta) (bool, error) {
	t, extended, err := c.sessions.Extend(ctx, id, lastUse, meta)
	switch {
	case errors.Is(err, domain.ErrNotFound):
		// Used but never issued (Load sees every acknowledged append,
		// and a token is usable only once its issue is acknowledged):
		// nothing to slide, now or later.
		c.tokens.put(id, tokenFacts{})
		return false, nil
	case err != nil:
		return false, err
	case t == nil:
	case t.Kind() != domain.KindSession:
		c.tokens.put(id, tokenFacts{kind: t.Kind()})
	default:
		c.tokens.put(id, sessionFacts(t))
	}
	return extended, nil
}

// tokenFacts is what the usage consumer remembers of a token: its kind
// (empty for an id that was never issued), and for a session the lifetime
// its history gave when last loaded.
type tokenFacts struct {
	kind domain.TokenKind
	// known is set when lifetime holds a session's lifetime as of its
	// LastSeq (the token's version).
	known    bool
	lifetime projections.TokenLifetime
}

// sessionFacts returns the facts of a session loaded from its history.
func sessionFacts(t *domain.Token) tokenFacts {
	lt := projections.TokenLifetime{Kind: t.Kind(), IdleTimeout: t.IdleTimeout(), LastSeq: t.Version()}
	lt.ExpiresAt, _ = t.ExpiresAt()
	lt.AbsoluteExpiresAt, _ = t.AbsoluteExpiresAt()
	_, lt.Revoked = t.RevokedAt()
	_, lt.Rotated = t.RotatedTo()
	return tokenFacts{kind: t.Kind(), known: true, lifetime: lt}
}

// tokenCache remembers tokenFacts. It keeps two generations of at most
// size tokens: when the current one is full it becomes the old one, and a
// hit in the old one moves the entry back, so the tokens in use stay while
// the others fall out. Safe for concurrent use.
type tokenCache struct {
	mu       sync.Mutex
	size     int
	cur, old map[domain.TokenID]tokenFacts
}

func newTokenCache(size int) *tokenCache {
	return &tokenCache{size: size, cur: make(map[domain.TokenID]tokenFacts)}
}

func (k *tokenCache) get(id domain.TokenID) (tokenFacts, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if f, ok := k.cur[id]; ok {
		return f, true
	}
	f, ok := k.old[id]
	if ok {
		k.putLocked(id, f)
	}
	return f, ok
}

func (k *tokenCache) put(id domain.TokenID, f tokenFacts) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.putLocked(id, f)
}

func (k *tokenCache) putLocked(id domain.TokenID, f tokenFacts) {
	if _, ok := k.cur[id]; !ok && len(k.cur) >= k.size {
		k.old, k.cur = k.cur, make(map[domain.TokenID]tokenFacts, k.size)
	}
	k.cur[id] = f
}
