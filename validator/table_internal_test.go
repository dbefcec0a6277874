package validator

import (
	"fmt"
	"math/rand/v2"
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
