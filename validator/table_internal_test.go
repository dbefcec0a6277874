package validator

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tokenledger/tokenledger/domain"
)

func randomToken(rng *rand.Rand, i int) newToken {
	var t newToken
	for k := range t.id {
		t.id[k] = byte(rng.Uint32())
	}
	for k := range t.hash {
		t.hash[k] = byte(rng.Uint32())
	}
	t.owner = domain.OwnerID(fmt.Sprintf("owner-%d", i%97))
	t.scopes = []string{fmt.Sprintf("s%d", i%13), "read"}
	t.created = int64(i)
	t.expires = neverExpires
	t.issuedSeq = uint64(i + 1)
	return t
}

// TestStateFindsEveryTokenWhileGrowing inserts tokens while readers look
// up the ones already inserted, through several index and page growths:
// every published token is found, complete, and ids never inserted are
// not.
func TestStateFindsEveryTokenWhileGrowing(t *testing.T) {
	t.Parallel()
	const n = 30_000
	rng := rand.New(rand.NewPCG(7, 8))
	tokens := make([]newToken, n)
	for i := range tokens {
		tokens[i] = randomToken(rng, i)
	}
	st := newState()
	var published atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := range 2 {
		wg.Go(func() {
			rr := rand.New(rand.NewPCG(uint64(r), 9))
			for {
				select {
				case <-stop:
					return
				default:
				}
				p := published.Load()
				if p == 0 {
					continue
				}
				want := &tokens[rr.IntN(int(p))]
				e, _, _ := st.find(&want.id)
				if e == nil || !e.hashEqual(&want.hash) || e.tokenID() != want.id || st.ownerAt(st.grantAt(e.grant.Load()).owner) != want.owner {
					t.Errorf("token %d: not found complete while inserting", want.issuedSeq)
					return
				}
			}
		})
	}
	st.mu.Lock()
	for i := range tokens {
		st.insert(tokens[i])
		published.Store(int64(i + 1))
	}
	st.mu.Unlock()
	close(stop)
	wg.Wait()

	for i := range tokens {
		e, num, _ := st.find(&tokens[i].id)
		if e == nil || num != uint32(i) || st.createdOf(e, num) != int64(i) {
			t.Fatalf("token %d: found %v as number %d", i, e != nil, num)
		}
		if got := st.scopesAt(st.grantAt(e.grant.Load()).scopes); len(got) != 2 || got[0] != "read" {
			t.Fatalf("token %d: scopes %v", i, got)
		}
	}
	for range 1000 {
		missing := randomToken(rng, 0)
		if e, _, _ := st.find(&missing.id); e != nil {
			t.Fatal("found a token never inserted")
		}
	}
	if st.tokens() != n || st.ownersLen() != 97 || len(*st.scopeSet.Load()) != 13 {
		t.Errorf("%d tokens, %d owners, %d scope sets", st.tokens(), st.ownersLen(), len(*st.scopeSet.Load()))
	}
}

// TestExpiryCodeIsExactOrEarly checks the packed expiry: exact to the
// microsecond within 35 years of the token's id, and never later than the
// real expiry beyond, so no token validates after its expiry.
func TestExpiryCodeIsExactOrEarly(t *testing.T) {
	t.Parallel()
	const base = 1_800_000_000_000_000
	for _, exp := range []int64{base, base + 1, base + 999, base + 86_400_000_000, base + 35*365*86_400_000_000, base - 1, base - 86_400_000_000, neverExpires - 1, neverExpires} {
		got := expiryOf(base, withExpiry(0xfff, base, exp))
		switch {
		case exp == neverExpires && got != neverExpires:
			t.Errorf("never: got %d", got)
		case exp >= base && exp-base < expNever-2 && got != exp:
			t.Errorf("expiry %d: got %d, want it exactly", exp, got)
		case got > exp:
			t.Errorf("expiry %d: got %d, later", exp, got)
		}
		for _, now := range []int64{exp - 1, exp, exp + 1} {
			if exp != neverExpires && now >= exp && now < got {
				t.Errorf("expiry %d: valid at %d", exp, now)
			}
		}
	}
	if st := withExpiry(0xfff, base, base+5); st&(1<<expShift-1) != 0xfff {
		t.Errorf("flags and creation time lost: %x", st)
	}
}

// TestStateFindsEveryLiveTokenWhileEvicting evicts tokens and inserts new
// ones, reusing the numbers of evicted entries, while readers look up the
// tokens that stay: every one is found, complete, through several index
// rebuilds.
func TestStateFindsEveryLiveTokenWhileEvicting(t *testing.T) {
	t.Parallel()
	const keep, rounds, churn = 2_000, 30, 3_000
	rng := rand.New(rand.NewPCG(3, 4))
	st := newState()
	st.mu.Lock()
	kept := make([]newToken, keep)
	for i := range kept {
		kept[i] = randomToken(rng, i)
		st.insert(kept[i])
	}
	st.mu.Unlock()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := range 2 {
		wg.Go(func() {
			rr := rand.New(rand.NewPCG(uint64(r), 5))
			for {
				select {
				case <-stop:
					return
				default:
				}
				want := &kept[rr.IntN(keep)]
				e, _, ix := st.find(&want.id)
				if e == nil || !e.hashEqual(&want.hash) || e.tokenID() != want.id || st.ownerAt(st.grantAt(e.grant.Load()).owner) != want.owner {
					t.Errorf("a kept token was not found complete")
					return
				}
				runtime.KeepAlive(ix)
			}
		})
	}
	reused := 0
	for round := range rounds {
		st.mu.Lock()
		batch := make([]newToken, churn)
		for i := range batch {
			batch[i] = randomToken(rng, keep+round*churn+i)
			batch[i].revoked = true
			if _, fresh := st.peekNumber(); !fresh {
				reused++
			}
			st.insert(batch[i])
		}
		st.sweep(0, st.hwm, 0, 0, math.MaxInt64)
		st.settle()
		st.mu.Unlock()
		runtime.GC()
	}
	close(stop)
	wg.Wait()
	if st.tokens() != keep {
		t.Errorf("%d tokens, want %d", st.tokens(), keep)
	}
	if reused == 0 || st.hwm >= keep+rounds*churn {
		t.Errorf("%d numbers reused, %d used in all: evicted numbers are not reused", reused, st.hwm)
	}
}
