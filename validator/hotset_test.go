package validator_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/validator"
)

// hotSetEnv is a deployment with more tokens than a validator's capacity,
// issued an hour before now (their ids are not young), and a validator of
// that capacity started on it.
type hotSetEnv struct {
	*env
	clock   *domain.ManualClock
	now     time.Time
	secrets []string
	tokens  []*domain.Token
	v       *validator.Validator
}

const hotCapacity = 64

// newHotSetEnv issues n tokens of eight owners and, before the snapshot,
// calls before (if not nil), then starts a validator of cfg with
// Capacity hotCapacity on the projected read model.
func newHotSetEnv(t *testing.T, n int, cfg validator.Config, before func(h *hotSetEnv)) *hotSetEnv {
	t.Helper()
	h := &hotSetEnv{env: newEnv(t), now: domain.NormalizeTime(time.Now())}
	h.clock = domain.NewManualClock(h.now)
	for i := range n {
		s, tok := h.issue(t, domain.OwnerID(fmt.Sprintf("owner-%d", i%8)), h.now.Add(-time.Hour), nil)
		h.secrets = append(h.secrets, s)
		h.tokens = append(h.tokens, tok)
	}
	if before != nil {
		before(h)
	}
	h.project(t)
	cfg.Clock = h.clock
	cfg.Capacity = hotCapacity
	cfg.EvictionInterval = time.Hour
	h.v = h.start(t, cfg)
	return h
}

// cold returns the index of a token the validator does not hold.
func (h *hotSetEnv) cold(t *testing.T) int {
	t.Helper()
	for i, tok := range h.tokens {
		if !validator.Holds(h.v, tok.ID()) {
			return i
		}
	}
	t.Fatal("every token is in memory")
	return 0
}

// hot returns the index of a token the validator holds.
func (h *hotSetEnv) hot(t *testing.T) int {
	t.Helper()
	for i, tok := range h.tokens {
		if validator.Holds(h.v, tok.ID()) {
			return i
		}
	}
	t.Fatal("no token is in memory")
	return 0
}

// TestCapacityKeepsAHotSetAndLooksUpColdTokens checks the mode for more
// tokens than one node holds: with a Capacity the validator starts with at
// most that many tokens in memory, every other token still validates (it
// is looked up in the event store by id, whatever its age), and the
// memory is brought back under the capacity once it overflows. Tokens
// revoked before the snapshot, by themselves or with their rotation family
// (an owner event, not one of the token's), are refused when looked up
// cold; a forged old id is looked up once, then refused from the negative
// cache.
func TestCapacityKeepsAHotSetAndLooksUpColdTokens(t *testing.T) {
	t.Parallel()
	var revokedSecret, rotatedOut, familyLive string
	h := newHotSetEnv(t, 4*hotCapacity, validator.Config{ColdLookupBurst: 10000}, func(h *hotSetEnv) {
		var tok *domain.Token
		revokedSecret, tok = h.issue(t, "bob", h.now.Add(-time.Hour), nil)
		h.revoke(t, tok, h.now.Add(-time.Hour))
		// A rotation family revoked by a reuse: one owner event.
		var a *domain.Token
		rotatedOut, a = h.issue(t, "carol", h.now.Add(-3*time.Hour), nil)
		b, bSecret, err := domain.Rotate(policy(), nil, a, 0, nil, meta, h.now.Add(-2*time.Hour), nil)
		if err != nil {
			t.Fatal(err)
		}
		h.storeToken(t, b)
		h.storeToken(t, a)
		familyLive = bSecret.Reveal()
		history, err := h.store.LoadOwner(context.Background(), "carol")
		if err != nil {
			t.Fatal(err)
		}
		o, err := domain.OwnerFromHistory("carol", history)
		if err != nil {
			t.Fatal(err)
		}
		if err := o.RevokeFamily(a, domain.SecretReuse{Token: a.ID()}, meta, h.now.Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
		h.appendEvents(t, eventstore.ExpectOwner("carol", o.Version()), o.Changes()...)
	})
	v := h.v
	if got := v.Status().Tokens; got > hotCapacity {
		t.Fatalf("%d tokens in memory after the start, want at most the capacity %d", got, hotCapacity)
	}
	ctx := context.Background()
	for round := range 2 {
		for i, s := range h.secrets {
			// Time passes between validations, so that the tokens
			// validated longest ago can be told from the others.
			h.clock.Advance(10 * time.Millisecond)
			p, err := v.Validate(ctx, s)
			if err != nil {
				t.Fatalf("round %d, token %d: %v", round, i, err)
			}
			if p.TokenID != h.tokens[i].ID() {
				t.Fatalf("round %d, token %d: principal of %s", round, i, p.TokenID)
			}
		}
	}
	if err := validator.FlushNow(ctx, v); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(time.Second)
	validator.Trim(v)
	if got := v.Status().Tokens; got > hotCapacity {
		t.Errorf("%d tokens in memory after a trim, want at most the capacity %d", got, hotCapacity)
	}
	st := v.Stats()
	// Tokens with uses not flushed yet are not evicted, so how many the
	// second round finds in memory depends on the flushes' timing.
	if min := uint64(len(h.secrets) - hotCapacity); st.ColdLookups < min {
		t.Errorf("%d cold lookups for %d tokens with a capacity of %d, want at least %d", st.ColdLookups, len(h.secrets), hotCapacity, min)
	}
	if st.CapacityEvicted == 0 || st.ColdLookupsLimited != 0 || st.LookupErrors != 0 {
		t.Errorf("stats %+v: want capacity evictions, and no limited or failed lookup", st)
	}

	for name, secret := range map[string]string{"revoked": revokedSecret, "rotated out of a revoked family": rotatedOut, "live in a revoked family": familyLive} {
		if _, err := v.Validate(ctx, secret); !errors.Is(err, validator.ErrRevoked) {
			t.Errorf("the %s token, cold: %v, want %v", name, err, validator.ErrRevoked)
		}
	}

	before := v.Stats().ColdLookups
	forged := forge(t, h.now.Add(-time.Hour))
	for range 3 {
		_, err := v.Validate(ctx, forged)
		wantErr(t, err, validator.ErrUnknown)
	}
	if st := v.Stats(); st.ColdLookups != before+1 || st.NegativeHits != 2 {
		t.Errorf("a forged old id presented 3 times: %d cold lookups, %d negative hits; want 1 and 2", st.ColdLookups-before, st.NegativeHits)
	}
}

// TestCapacityRevocationOfHotAndColdTokens checks that revocation stays
// immediate for a token in memory (the tail applies it; no lookup) and
// correct for a cold one (the tail has nothing to apply; its next
// validation loads the revocation), including a revocation the tail
// applies while the cold token's history is being loaded, after the
// load read the store.
func TestCapacityRevocationOfHotAndColdTokens(t *testing.T) {
	t.Parallel()
	h := newHotSetEnv(t, 2*hotCapacity, validator.Config{}, nil)
	v, ctx := h.v, context.Background()

	hot := h.hot(t)
	if _, err := v.Validate(ctx, h.secrets[hot]); err != nil {
		t.Fatalf("the hot token: %v", err)
	}
	cold := h.cold(t)
	h.revoke(t, h.tokens[hot], h.now)
	h.revoke(t, h.tokens[cold], h.now)
	waitApplied(t, v, h.lastSeq(t))
	before := v.Stats().ColdLookups
	_, err := v.Validate(ctx, h.secrets[hot])
	wantErr(t, err, validator.ErrRevoked)
	if got := v.Stats().ColdLookups; got != before {
		t.Errorf("the revoked hot token was looked up (%d cold lookups)", got-before)
	}
	if validator.Holds(v, h.tokens[cold].ID()) {
		t.Fatal("the revocation of a cold token put it in memory")
	}
	_, err = v.Validate(ctx, h.secrets[cold])
	wantErr(t, err, validator.ErrRevoked)
	if got := v.Stats().ColdLookups; got != before+1 {
		t.Errorf("%d cold lookups for the revoked cold token, want 1", got-before)
	}

	// The load reads the store before the revocation is stored, and
	// applies what it read after the tail applied the revocation.
	racing := h.cold(t)
	release := validator.PauseLookups(v)
	defer release()
	done := make(chan error, 1)
	go func() {
		_, err := v.Validate(ctx, h.secrets[racing])
		done <- err
	}()
	stacktest.Eventually(t, 10*time.Second, func() bool { return validator.PausedLookups(v) == 1 }, "the lookup has read the store")
	h.revoke(t, h.tokens[racing], h.now)
	waitApplied(t, v, h.lastSeq(t))
	release()
	wantErr(t, <-done, validator.ErrRevoked)
}

// TestCapacityColdLookupsAreCoalescedAndLimited checks that concurrent
// validations of one cold token share one store load, and that beyond the
// cold lookup rate limit a cold token is refused with ErrLookupLimited
// (which matches ErrUnknown: fail closed) until the bucket refills, while
// tokens in memory keep validating.
func TestCapacityColdLookupsAreCoalescedAndLimited(t *testing.T) {
	t.Parallel()
	h := newHotSetEnv(t, 2*hotCapacity, validator.Config{ColdLookupRate: 1, ColdLookupBurst: 2}, nil)
	v, ctx := h.v, context.Background()

	cold := h.cold(t)
	release := validator.PauseLookups(v)
	const callers = 8
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			_, err := v.Validate(ctx, h.secrets[cold])
			errs <- err
		})
	}
	stacktest.Eventually(t, 10*time.Second, func() bool {
		return validator.PausedLookups(v) == 1 && v.Stats().ColdLookupsCoalesced == callers-1
	}, "%d callers wait for one load", callers)
	release()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("a caller of the coalesced lookup: %v", err)
		}
	}
	if st := v.Stats(); st.ColdLookups != 1 {
		t.Fatalf("%d cold lookups for %d concurrent callers, want 1", st.ColdLookups, callers)
	}

	// The burst of 2 has one lookup left; the clock does not move, so
	// the bucket does not refill.
	var limited int
	for i, tok := range h.tokens {
		if validator.Holds(v, tok.ID()) {
			continue
		}
		if i == cold {
			continue
		}
		_, err := v.Validate(ctx, h.secrets[i])
		if limited == 0 && err == nil {
			continue
		}
		if !errors.Is(err, validator.ErrLookupLimited) || !errors.Is(err, validator.ErrUnknown) {
			t.Fatalf("a cold token beyond the limit: %v, want ErrLookupLimited (matching ErrUnknown)", err)
		}
		limited = i
		break
	}
	if limited == 0 {
		t.Fatal("no cold token was limited")
	}
	st := v.Stats()
	if st.ColdLookups != 2 || st.ColdLookupsLimited != 1 {
		t.Errorf("%d cold lookups, %d limited; want 2 and 1", st.ColdLookups, st.ColdLookupsLimited)
	}
	hot := h.hot(t)
	if _, err := v.Validate(ctx, h.secrets[hot]); err != nil {
		t.Errorf("a hot token while cold lookups are limited: %v", err)
	}
	h.clock.Advance(time.Second)
	if _, err := v.Validate(ctx, h.secrets[limited]); err != nil {
		t.Errorf("the limited token once the bucket refilled: %v", err)
	}
}
